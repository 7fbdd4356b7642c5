"""Video metrics: clips (N, C, T, H, W) in [-1, 1].

* :func:`temporal_difference` -- mean absolute frame-to-frame difference per clip; generated clips
  should change about as much as real ones (``temporal``: |generated - real| / real).
* ``fcd_frames`` -- the project's classifier-feature Frechet distance on single frames (a
  SmallCNN trained on frames of the dataset, cached like FCD's).
* ``fvcd`` -- "Frechet video-classifier distance": the Frechet distance in the features of a small
  video classifier (a SmallCNN over the frames stacked on channels, trained to tell the motion
  classes apart, cached the same way). FVD-like, but *not* FVD (no I3D network).
* :func:`track` / :func:`motion_correct` -- the foreground centroid per frame (the shapes are bright
  on black; background-subtracted and smoothed, so sampler noise does not swamp it) and whether it
  moves in the clip's direction: its coordinate along that axis must correlate with time
  (r >= ``MIN_R``) in the right sense. Shuffled frames break it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genstudio.core.data import Dataset, DataSpec, TensorDataset
from genstudio.core.metrics.features import Extractor, classifier_for

MIN_R = 0.8  # correlation of the centroid's coordinate with time that counts as moving that way
FG = 0.15  # brightness (0..1) above the frame's background above which a (smoothed) pixel is foreground
SMOOTH = 3  # box-filter side applied before the threshold (suppresses per-pixel noise)
REF_CLIPS = 512  # clips the cached classifiers are trained on (procedural data)


# -- pictures and files --------------------------------------------------------------------------------
def clip_frames(x: torch.Tensor, scale: int = 0) -> list[np.ndarray]:
    """Clips (N, C, T, H, W) -> T uint8 pictures, the N clips side by side in each."""
    from genstudio.core.imaging import image_grid, readable_scale

    scale = scale or readable_scale(int(x.shape[-2]), int(x.shape[-1]))
    return [image_grid(x[:, :, f], ncol=len(x), scale=scale) for f in range(x.shape[2])]


def frame_strips(x: torch.Tensor, n: int = 8, scale: int = 0) -> np.ndarray:
    """Up to ``n`` clips as one picture: a row of T frames per clip (the training preview)."""
    from genstudio.core.imaging import image_grid, readable_scale

    x = x[:n]
    scale = scale or readable_scale(int(x.shape[-2]), int(x.shape[-1]))
    b, c, t, h, w = x.shape
    return image_grid(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), ncol=t, scale=scale)


def save_clip(x: torch.Tensor, path: str | Path, fps: float = 8.0) -> Path:
    """GIF or MP4 (by suffix) of clips (N, C, T, H, W): T frames, the clips side by side."""
    from genstudio.core.imaging import save_animation

    return save_animation(clip_frames(x), path, fps=fps)


# -- measures ------------------------------------------------------------------------------------------
def temporal_difference(x: torch.Tensor) -> torch.Tensor:
    """(N,) mean |x_{t+1} - x_t| over pixels and frames, in [0, 1] units."""
    return ((x[:, :, 1:] - x[:, :, :-1]).abs() / 2).flatten(1).mean(1)


def track(x: torch.Tensor) -> torch.Tensor:
    """(N, T, 2) foreground centroid per frame in image units (x right, y up; NaN if empty).

    Robust to the pixel noise an undertrained sampler leaves: each frame's brightness minus its
    median (the background: shapes cover far less than half a frame) is averaged over 3x3
    (``SMOOTH``) before the ``FG`` threshold, so a solid shape keeps its level while independent
    per-pixel noise shrinks 3x; without it, noise of std 0.3 in [-1, 1] units already swamped a
    16x16 clip's centroid (real clips plus that noise: 0.6 instead of 1.0). The threshold is low
    (0.15) because smoothing dims the faint, small shapes a young model draws."""
    n, _, t, h, w = x.shape
    b = ((x.float() + 1) / 2).amax(1)  # (N, T, H, W) brightness
    b = b - b.flatten(2).median(-1).values[..., None, None]
    b = F.avg_pool2d(b.reshape(n * t, 1, h, w), SMOOTH, 1, SMOOTH // 2, count_include_pad=False).reshape(n, t, h, w)
    m = (b > FG).float()
    pix = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2 - 1
    mass = m.sum((2, 3))
    cx = (m * pix[None, None, None, :]).sum((2, 3)) / mass
    cy = -(m * pix[None, None, :, None]).sum((2, 3)) / mass
    return torch.stack([cx, cy], -1)


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson r along the last axis (0 where either is constant or has NaNs)."""
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    r = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-9)
    return r.nan_to_num(0.0)


def direction_scores(x: torch.Tensor) -> torch.Tensor:
    """(N, 4) correlation of the centroid with time for MOTIONS right, left, up, down."""
    c = track(x)
    time = torch.arange(c.shape[1], dtype=torch.float32).expand(len(c), -1)
    rx, ry = _corr(c[..., 0], time), _corr(c[..., 1], time)
    return torch.stack([rx, -rx, ry, -ry], 1)


def motion_correct(x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) bool: the clip moves in its label's direction (labels None: in some straight direction)."""
    s = direction_scores(x)
    if labels is None:
        return s.amax(1) >= MIN_R
    return s[torch.arange(len(s)), labels.long().cpu()] >= MIN_R


def shuffle_frames(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Each clip's frames in a random order (what a model without temporal coherence draws)."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([c[:, torch.randperm(c.shape[1], generator=g)] for c in x])


# -- feature spaces -------------------------------------------------------------------------------------
class FrameExtractor(Extractor):
    """Per-frame features of a frame classifier: every frame of every clip is one sample."""

    def __init__(self, inner: Extractor) -> None:
        self.inner, self.name, self.hash, self.dim = inner, inner.name + "-frames", inner.hash, inner.dim
        self.meta = dict(getattr(inner, "meta", {}))

    def features_and_probs(self, x: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, None]:
        b, c, t, h, w = x.shape
        return self.inner.features_and_probs(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), batch_size)[0], None


class ClipExtractor(Extractor):
    """Features of the small video classifier (frames stacked on channels)."""

    def __init__(self, inner: Extractor) -> None:
        self.inner, self.name, self.hash, self.dim = inner, "video-classifier", inner.hash, inner.dim
        self.num_classes = inner.num_classes
        self.meta = dict(getattr(inner, "meta", {}))

    def features_and_probs(self, x: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, Any]:
        return self.inner.features_and_probs(x.flatten(1, 2), batch_size)


def _reference(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(dataset, TensorDataset):
        return dataset.x, dataset.y
    clips = getattr(dataset, "clips", None)
    if clips is not None:  # procedural: the motion labels even for the captioned variant
        c = clips(REF_CLIPS, torch.Generator().manual_seed(12345))
        return c.x, c.labels
    return dataset.fixed(REF_CLIPS, seed=12345)


def video_extractors(dataset: Dataset, names: Collection[str], *, root: Any = None, device: Any = "cpu",
                     steps: int = 300) -> dict[str, Extractor]:
    """"raw" (the clips themselves, for temporal and motion), "frames" and "video" classifiers
    where fcd_frames / fvcd are asked for; both trained on first use and cached."""
    from genstudio.core.metrics.features import RawExtractor

    out: dict[str, Extractor] = {"raw": RawExtractor(dataset.spec.dim)}
    names = set(names)
    if not {"fcd_frames", "fvcd"} & names:
        return out
    x, y = _reference(dataset)
    y = y if y is not None and y.dim() == 1 and int(y.max()) >= 1 else None
    b, c, t, h, w = x.shape
    name = dataset.spec.name
    if "fcd_frames" in names:
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        ds = TensorDataset(DataSpec(f"{name}-frames", "image", (c, h, w), size=len(frames)), frames)
        out["frames"] = FrameExtractor(classifier_for(ds, root=root, device=device, steps=steps))
    if "fvcd" in names:
        ds = TensorDataset(DataSpec(f"{name}-clips", "image", (c * t, h, w), size=b), x.flatten(1, 2), y)
        out["video"] = ClipExtractor(classifier_for(ds, root=root, device=device, steps=steps))
    return out


# -- metrics of the eval job ----------------------------------------------------------------------------
def _clips(ctx: Any, which: int) -> torch.Tensor:
    shape = ctx.ds.spec.shape
    return torch.from_numpy(ctx.feats["raw"][which]).float().reshape(-1, *shape)


def _fd(ctx: Any, key: str, name: str, what: str) -> dict[str, Any]:
    from genstudio.core.metrics import fid_from_features

    fr, _, ff, _ = ctx.feats[key]
    ex = ctx.extractors[key]
    half = len(fr) // 2
    ref = float(fid_from_features(fr[:half], fr[half:2 * half])) if half > 2 else None
    return {name: {"value": float(fid_from_features(fr, ff)), "extractor": ex.name, "reference_half": ref,
                   "note": f"Frechet distance in {what} ({ex.dim}-d, {len(fr)} vs {len(ff)} points); reference_half: "
                           "two halves of the real set (a smaller n, so biased upwards)"}}


def eval_fcd_frames(ctx: Any, name: str) -> dict[str, Any]:
    return _fd(ctx, "frames", name, "a frame classifier's features, every frame a sample")


def eval_fvcd(ctx: Any, name: str) -> dict[str, Any]:
    return _fd(ctx, "video", name, "the features of a small video classifier trained on the clips (FVD-like; "
                                   "not FVD)")


def eval_temporal(ctx: Any, name: str) -> dict[str, Any]:
    real, fake = float(temporal_difference(_clips(ctx, 0)).mean()), float(temporal_difference(_clips(ctx, 2)).mean())
    return {name: {"value": abs(fake - real) / max(real, 1e-9), "generated": fake, "real": real, "extractor": "pixels",
                   "note": f"|g - r| / r of the mean |frame t+1 - frame t| (0..1 units): generated g = {fake:.4f}, "
                           f"real r = {real:.4f}"}}


def eval_motion(ctx: Any, name: str) -> dict[str, Any]:
    from genstudio.core.metrics.functional import wilson_interval

    labels = ctx.y_ref if ctx.conditional else None
    ok = motion_correct(_clips(ctx, 2), labels)
    real = motion_correct(_clips(ctx, 0), ctx.y_ref if ctx.y_ref is not None and ctx.y_ref.dim() == 1 else None)
    lo, hi = wilson_interval(int(ok.sum()), len(ok), ctx.alpha)
    how = "its class's direction" if labels is not None else "some straight direction (unconditional run)"
    return {name: {"value": float(ok.float().mean()), "ci_low": lo, "ci_high": hi, "extractor": "centroid-tracker",
                   "reference": float(real.float().mean()),
                   "note": f"fraction of clips whose foreground centroid moves in {how} (r >= {MIN_R}); "
                           "reference: real clips"}}


EVAL_METRICS = {"fcd_frames": eval_fcd_frames, "fvcd": eval_fvcd, "temporal": eval_temporal, "motion": eval_motion}
METRIC_INFO = {"fcd_frames": ("Per-frame FCD (classifier-feature Frechet distance on frames)", "lower"),
               "fvcd": ("Frechet video-classifier distance (FVD-like, not FVD)", "lower"),
               "temporal": ("Temporal consistency gap: frame-to-frame change vs real (relative)", "lower"),
               "motion": ("Motion correctness (tracked direction matches)", "higher")}
METRIC_RANGE = {"fcd_frames": (0.0, None), "fvcd": (0.0, None), "temporal": (0.0, None), "motion": (0.0, 1.0)}

