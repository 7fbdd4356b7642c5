"""A run's logged previews as a time-lapse: which previews a run has (the PNGs ``jobs.train``
writes: ``step_N.png`` and, for models with views, ``view_NAME_N.png``), the loss at each, and
labelled frames of one size for :func:`genstudio.core.imaging.save_animation`. Used by the
training monitor's filmstrip and export button and by ``genstudio timelapse``; no Qt here."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from genstudio.core.imaging import ANIMATION_SUFFIXES, _font, readable_scale, save_animation

SAMPLE_RE = re.compile(r"^step_(\d+)\.png$")
VIEW_RE = re.compile(r"^view_(.+)_(\d+)\.png$")
FRAME_MIN = 512  # px: the short side a time-lapse frame is upscaled to (an 8x8 grid of 8x8 digits -> 64 px cells)
LABEL_PX = 22  # font size of the "step N · loss X" strip: readable on a 512 px frame


def logged_previews(sample_dir: Path) -> tuple[dict[int, Path], dict[str, dict[int, Path]]]:
    """(step -> sample grid PNG, view name -> step -> PNG) of a run's samples folder."""
    samples: dict[int, Path] = {}
    views: dict[str, dict[int, Path]] = {}
    try:
        entries = list(sample_dir.iterdir())
    except OSError:
        return samples, views
    for p in entries:
        if m := SAMPLE_RE.match(p.name):
            samples[int(m.group(1))] = p
        elif m := VIEW_RE.match(p.name):
            views.setdefault(m.group(1), {})[int(m.group(2))] = p
    return samples, views


def loss_at(steps: np.ndarray, losses: np.ndarray, step: int) -> float | None:
    """The loss logged at ``step``, or at the last logged step before it (a preview's step need
    not be a multiple of log_every); None before the first row or where it is not finite."""
    steps = np.asarray(steps, np.float64)
    losses = np.asarray(losses, np.float64)
    ok = np.isfinite(steps) & np.isfinite(losses)
    steps, losses = steps[ok], losses[ok]
    i = int(np.searchsorted(steps, step, side="right")) - 1
    return float(losses[i]) if i >= 0 else None


def metric_columns(rows: Sequence[dict[str, Any]], name: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of metric ``name`` in a run's rows (``Run.metrics()``), NaN where missing."""
    steps = np.array([float(r.get("step", np.nan)) for r in rows])
    vals = np.array([float(v) if isinstance(v := r.get(name), (int, float)) else np.nan for r in rows])
    return steps, vals


def frame_label(step: int, loss: float | None) -> str:
    """The caption of a preview: "step 500 · loss 0.4312" (no loss logged yet: the step alone)."""
    return f"step {step:,} \u00b7 loss {loss:.4g}" if loss is not None else f"step {step:,}"


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def frame_size(h: int, w: int, min_side: int = FRAME_MIN) -> tuple[int, int]:
    """The size a preview of ``h`` x ``w`` px has in a time-lapse (whole-number upscale, as
    :func:`readable_scale`), without its label strip."""
    s = readable_scale(h, w, cell=min_side)
    return h * s, w * s


def labelled_frame(img: np.ndarray, label: str, size: tuple[int, int] | None = None,
                   min_side: int = FRAME_MIN) -> np.ndarray:
    """``img`` upscaled by a whole factor (nearest: small grids stay crisp) to at least ``min_side``
    px, centred on a dark canvas of ``size`` (h, w; default its own) under a ``label`` strip."""
    h, w = img.shape[:2]
    s = readable_scale(h, w, cell=min_side)
    big = img.repeat(s, 0).repeat(s, 1) if s > 1 else img
    ch, cw = size or big.shape[:2]
    strip = LABEL_PX + 12
    out = np.full((ch + strip, max(cw, 300), 3), (20, 22, 28), np.uint8)
    y0 = strip + (ch - big.shape[0]) // 2
    x0 = (out.shape[1] - big.shape[1]) // 2
    out[y0:y0 + big.shape[0], x0:x0 + big.shape[1]] = big[:ch, :out.shape[1], :3]
    im = Image.fromarray(out)
    ImageDraw.Draw(im).text((8, 5), label, fill=(255, 255, 255), font=_font(LABEL_PX))
    return np.asarray(im)


def timelapse_frames(sample_dir: Path, rows: Sequence[dict[str, Any]], view: str | None = None
                     ) -> tuple[int, Iterator[np.ndarray]]:
    """(frame count, frames) of every logged preview (or of model view ``view``) in step order,
    each labelled "step N · loss X" from the run's metric ``rows``, all of one size (the largest
    upscaled preview; smaller ones are centred). Frames are built lazily, one PNG at a time."""
    samples, views = logged_previews(sample_dir)
    frames = samples if view is None else views.get(view, {})
    steps = sorted(frames)
    sizes = []
    for s in steps:  # headers only: cheap even for hundreds of previews
        with Image.open(frames[s]) as im:
            sizes.append(frame_size(im.height, im.width))
    size = (max((h for h, _ in sizes), default=0), max((w for _, w in sizes), default=0))
    cols = metric_columns(rows)

    def build() -> Iterator[np.ndarray]:
        for s in steps:
            yield labelled_frame(read_rgb(frames[s]), frame_label(s, loss_at(*cols, s)), size)

    return len(steps), build()


def animation_path(out: str | Path) -> Path:
    """``out`` as a Path, or ValueError when its suffix is not one ``save_animation`` writes."""
    out = Path(out)
    if out.suffix.lower() not in ANIMATION_SUFFIXES:
        raise ValueError(f"{out.name}: a time-lapse is written as {' or '.join(ANIMATION_SUFFIXES)}")
    return out


def write_timelapse(sample_dir: Path, rows: Sequence[dict[str, Any]], out: str | Path, fps: float = 4.0,
                    view: str | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write every logged preview as a GIF or MP4 (by ``out``'s suffix) via ``save_animation``;
    ``progress(done, total)`` after each frame. ValueError for a bad suffix or no previews."""
    out = animation_path(out)  # before any frame is built
    total, frames = timelapse_frames(sample_dir, rows, view)
    if not total:
        what = "previews" if view is None else f"{view!r} views"
        raise ValueError(f"no logged {what} in {sample_dir} yet")
    return _write(frames, total, out, fps, progress)


def _write(frames: Iterator[np.ndarray], total: int, out: Path, fps: float,
           progress: Callable[[int, int], None] | None) -> Path:
    built = []
    for f in frames:
        built.append(f)
        if progress is not None:
            progress(len(built), total)
    return save_animation(built, out, fps=fps)


def checkpoint_samples(run: Any, *, n: int = 64, seed: int = 0, steps: int | None = None,
                       sampler: str | None = None, device: str | None = None, **sample_kw: Any
                       ) -> Iterator[tuple[int, np.ndarray]]:
    """(step, picture) of the same seed's samples drawn from each of ``run``'s checkpoints, oldest
    first: the fixed-noise grid evolving over training, from the weights themselves rather than the
    logged previews (so any n, seed, sampler or option, e.g. a GAN's truncation)."""
    import torch

    from genstudio.core.jobs import load_model, preview_image

    for step, path in run.checkpoints():
        model, ds, _ = load_model(run, device, checkpoint_path=path)
        last = None
        with torch.no_grad():
            for last in model.sample(n, seed=seed, steps=steps, sampler=sampler, **sample_kw):  # noqa: B007
                pass
        if last is None:
            raise RuntimeError(f"the sampler produced nothing at step {step}")
        yield step, preview_image(ds.spec, last.x.detach().cpu())


def write_checkpoint_evolution(run: Any, out: str | Path, *, fps: float = 2.0,
                               progress: Callable[[int, int], None] | None = None, **kw: Any) -> Path:
    """The same seed's samples at every checkpoint as a GIF or MP4, each frame labelled "step N ·
    loss X" (``kw`` as :func:`checkpoint_samples`). ValueError for a bad suffix or no checkpoint."""
    out = animation_path(out)
    total = len(run.checkpoints())
    if not total:
        raise ValueError(f"run {run.id} has no checkpoint yet")
    pics = list(checkpoint_samples(run, **kw))
    size = (max(frame_size(*p.shape[:2])[0] for _, p in pics), max(frame_size(*p.shape[:2])[1] for _, p in pics))
    cols = metric_columns(run.metrics())
    frames = (labelled_frame(p, frame_label(s, loss_at(*cols, s)), size) for s, p in pics)
    return _write(frames, len(pics), out, fps, progress)
