"""The codec explorer's job (GUI-free): encode a run's reference clips once, decode them at every
number of codebooks, measure SI-SDR and mel distance at each bitrate, and hand everything back
at once, so a bitrate slider re-decodes instantly (it only picks a precomputed row) and nothing
calls the plugin from the GUI thread. Works for any model with the Codec face.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genstudio.core.data.audio import SAMPLE_RATE, write_wav
from genstudio.core.faces import Codec, has_face
from genstudio.core.metrics.audio import mel_distance, si_sdr
from genstudio.core.nn.vq import code_stats


@dataclass
class CodecResult:
    """``x`` (n, C, T) input clips; ``recon`` (N, n, C, T) reconstructions through 1..N codebooks;
    ``tokens`` (n, N, frames); ``kbps``, ``si_sdr``, ``mel`` per number of codebooks (the last two
    (N, n)); ``perplexity`` / ``utilisation`` of each level's codes over the clips; ``sr`` in Hz."""

    x: np.ndarray
    recon: np.ndarray
    tokens: np.ndarray
    kbps: list[float]
    si_sdr: np.ndarray
    mel: np.ndarray
    perplexity: list[float]
    utilisation: list[float]
    sr: int
    codebook_size: int

    @property
    def n_codebooks(self) -> int:
        return int(self.recon.shape[0])

    def summary(self, k: int) -> str:
        """One line about the reconstruction through ``k`` codebooks."""
        return (f"{k} codebook{'s' * (k > 1)} · {self.kbps[k - 1]:.3g} kbps · SI-SDR {self.si_sdr[k - 1].mean():.1f} dB · "
                f"mel distance {self.mel[k - 1].mean():.3f}")

    def export(self, folder: str | Path, k: int, clip: int = 0) -> tuple[Path, Path]:
        """(input WAV, reconstruction-at-``k``-codebooks WAV) of one clip, 16-bit PCM, in ``folder``."""
        folder = Path(folder)
        return (write_wav(folder / f"clip{clip}_input.wav", self.x[clip], self.sr),
                write_wav(folder / f"clip{clip}_{k}cb_{self.kbps[k - 1]:.2g}kbps.wav", self.recon[k - 1, clip], self.sr))


@torch.no_grad()
def reconstruct_all(model: Any, x: torch.Tensor) -> CodecResult:
    """Tokens of ``x`` and their decodings at every prefix depth 1..n_codebooks, with the measures."""
    if not has_face(model, Codec):
        raise TypeError(f"{type(model).__name__} has no Codec face (encode_tokens/decode_tokens)")
    sr = int(getattr(getattr(model, "data", None), "sample_rate", 0) or SAMPLE_RATE)
    tokens = model.encode_tokens(x)
    xs = x.to(tokens.device)
    recon, sdr, mel = [], [], []
    for k in range(1, model.n_codebooks + 1):
        y = model.decode_tokens(tokens[:, :k]).clamp(-1, 1)
        recon.append(y.cpu().numpy())
        sdr.append(si_sdr(xs, y).reshape(len(x)).cpu().numpy())
        mel.append(mel_distance(xs, y, sr).reshape(len(x)).cpu().numpy())
    size = int(getattr(getattr(model, "config", None), "codebook_size", 0) or int(tokens.max()) + 1)
    stats = [code_stats(tokens[:, i].cpu(), size) for i in range(tokens.shape[1])]
    return CodecResult(x.cpu().numpy(), np.stack(recon), tokens.cpu().numpy(),
                       [float(model.bitrate_kbps(k)) for k in range(1, model.n_codebooks + 1)],
                       np.stack(sdr), np.stack(mel), [s[0] for s in stats], [s[1] for s in stats], sr, size)


def codec_job(run: Any, n: int = 4, seed: int = 0, control: Any = None, checkpoint: str | Path | None = None,
              ) -> Iterator[str]:
    """Load the run's model (its own instance: never the training one), reconstruct ``n`` reference
    clips drawn with ``seed`` at every bitrate; yields stage names, returns a :class:`CodecResult`."""
    from genstudio.core.jobs import load_model

    yield "loading"
    model, ds, _ = load_model(run, checkpoint_path=checkpoint)
    if control is not None:
        control.check()
    x = ds.fixed(n, seed)[0]
    yield "decoding"
    return reconstruct_all(model, x)
