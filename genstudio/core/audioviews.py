"""Pictures of audio and of codes as (H, W, 3) uint8 arrays (GUI-free): waveforms drawn as
per-column min/max envelopes, log-magnitude spectrograms, input-vs-reconstruction comparisons
with their difference, the code grid (codebook level x frame) and codebook usage per level.
The training previews, the codec's model views and the PNGs of ``genstudio sample`` use them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from genstudio.core.imaging import _label, colormap
from genstudio.core.metrics.audio import stft_mag

BACKGROUND = (20, 22, 28)
INPUT, RECON, DIFF = (200, 200, 210), (255, 160, 40), (230, 70, 70)


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).reshape(-1)


def waveform_image(curves: Sequence[tuple[torch.Tensor | np.ndarray, tuple[int, int, int]]], width: int = 512,
                   height: int = 96, label: str = "", lim: float = 1.0) -> np.ndarray:
    """Waveforms over each other, each as its min..max per pixel column (what a DAW draws when
    zoomed out), later curves on top; y spans [-lim, lim]."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BACKGROUND
    img[height // 2] = (60, 62, 70)
    for x, rgb in curves:
        a = _np(x)
        edges = np.linspace(0, len(a), width + 1).astype(int)
        for col, (s, e) in enumerate(zip(edges[:-1], edges[1:])):
            seg = a[s:max(e, s + 1)]
            lo, hi = (np.clip(1 - (v / lim + 1) / 2, 0, 1) * (height - 1) for v in (seg.max(), seg.min()))
            img[int(lo):int(hi) + 1, col] = rgb
    return _label(img, label)


def spectrogram_db(x: torch.Tensor | np.ndarray, n_fft: int = 256, hop: int = 64) -> np.ndarray:
    """20 log10 |STFT| (freq, frames), low frequencies first."""
    t = torch.as_tensor(_np(x), dtype=torch.float32)
    return 20 * np.log10(stft_mag(t, n_fft, hop).numpy() + 1e-5)


def spectrogram_image(x: torch.Tensor | np.ndarray, label: str = "", top_db: float = 80.0, ref_db: float | None = None,
                      n_fft: int = 256, hop: int = 64, width: int = 0) -> np.ndarray:
    """Viridis log spectrogram, low frequencies at the bottom, ``top_db`` of range below ``ref_db``
    (default: the clip's own maximum; pass one to compare clips on one scale)."""
    db = spectrogram_db(x, n_fft, hop)
    ref = db.max() if ref_db is None else ref_db
    img = colormap((db[::-1] - (ref - top_db)) / top_db)
    if width and img.shape[1] != width:
        cols = np.linspace(0, img.shape[1] - 1, width).round().astype(int)
        img = img[:, cols]
    return _label(np.ascontiguousarray(img), label)


def comparison_image(ref: torch.Tensor | np.ndarray, est: torch.Tensor | np.ndarray, label: str = "",
                     width: int = 512) -> np.ndarray:
    """Input (grey) and reconstruction (orange) waveforms over each other with their difference (red)
    below, and the spectrograms of input | reconstruction | difference on one dB scale."""
    r, e = _np(ref), _np(est)
    d = e - r
    waves = waveform_image([(r, INPUT), (e, RECON)], width, 96, label)
    diff = waveform_image([(d, DIFF)], width, 48, "difference")
    ref_db = float(spectrogram_db(r).max())
    third = width // 3
    specs = np.concatenate([spectrogram_image(s, name, ref_db=ref_db, width=third)
                            for s, name in ((r, "input"), (e, "reconstruction"), (d, "difference"))], 1)
    specs = np.pad(specs, ((0, 0), (0, width - specs.shape[1]), (0, 0)))
    return np.concatenate([waves, diff, specs], 0)


def audio_preview(x: torch.Tensor, max_clips: int = 4, width: int = 384) -> np.ndarray:
    """A batch of clips (N, 1, T): for each of the first ``max_clips`` its waveform over its
    spectrogram; clips side by side in two columns."""
    tiles = []
    for i, clip in enumerate(x[:max_clips]):
        tiles.append(np.concatenate([waveform_image([(clip, RECON)], width, 64, f"clip {i}"),
                                     spectrogram_image(clip, width=width)], 0))
    if not tiles:
        return np.zeros((8, width, 3), np.uint8)
    while len(tiles) % 2 and len(tiles) > 1:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + 2], 1) for i in range(0, len(tiles), 2)]
    return np.ascontiguousarray(np.concatenate(rows, 0))


def code_grid_image(codes: torch.Tensor | np.ndarray, size: int, cell: int = 6, label: str = "") -> np.ndarray:
    """Codes (n_q, frames) as a picture: one row per codebook level (level 1 on top), colour = code index."""
    c = np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.float64)
    img = colormap(c / max(size - 1, 1))
    return _label(np.ascontiguousarray(img.repeat(cell, 0).repeat(max(1, cell // 2), 1)), label)


def usage_image(counts: torch.Tensor | np.ndarray, row: int = 10, label: str = "") -> np.ndarray:
    """Code use per level (n_q, K) as a heat map: each level's codes sorted by use (most used left),
    brightness log-scaled, so a collapsed codebook is one bright cell and a healthy one a long ramp."""
    c = np.sort(np.asarray(counts.cpu() if isinstance(counts, torch.Tensor) else counts, np.float64), 1)[:, ::-1]
    v = np.log1p(c) / max(float(np.log1p(c).max()), 1e-12)
    img = colormap(v).repeat(row, 0)
    if img.shape[1] < 256:
        img = img.repeat(max(1, 256 // img.shape[1]), 1)
    return _label(np.ascontiguousarray(img), label)
