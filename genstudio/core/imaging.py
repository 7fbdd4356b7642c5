"""Turning samples into pictures (grids of images, scatter plots of 2-D points) and files.
Used by jobs (sample PNGs in the run folder), the CLI and the panels' export buttons."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def to_uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8, any shape."""
    a = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    return np.clip((a + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def image_grid(x: torch.Tensor | np.ndarray, ncol: int | None = None, pad: int = 1, scale: int = 1) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> one (H', W', 3) uint8 grid; C may be 1 or 3."""
    a = to_uint8(x)
    n, c, h, w = a.shape
    if c == 1:
        a = np.repeat(a, 3, axis=1)
    ncol = ncol or max(1, math.ceil(math.sqrt(n)))
    nrow = math.ceil(n / ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), 40, np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = a[i, :3].transpose(1, 2, 0)
    if scale > 1:
        grid = grid.repeat(scale, 0).repeat(scale, 1)
    return grid


MIN_CELL = 64  # px: the smallest image cell a saved grid shows (8x8 digits are unreadable at 1:1)


def readable_scale(h: int, w: int, cell: int = MIN_CELL) -> int:
    """The whole-number (nearest-neighbour) factor that makes an ``h`` x ``w`` cell at least ``cell`` px."""
    return max(1, math.ceil(cell / max(1, min(h, w))))


def scatter_image(points: torch.Tensor | np.ndarray, size: int = 256, lim: float = 3.0,
                  color: tuple[int, int, int] = (80, 160, 255), radius: float | None = None) -> np.ndarray:
    """Render (N, 2) points as a dark square image with axes at 0 (for PNGs and GIFs); dots of
    ``radius`` px (default: about 1 % of ``size``, so they stay visible when the image is shown small)."""
    im = Image.new("RGB", (size, size), (20, 22, 28))
    d = ImageDraw.Draw(im)
    mid = size // 2
    d.line([(0, mid), (size, mid)], fill=(60, 60, 70))
    d.line([(mid, 0), (mid, size)], fill=(60, 60, 70))
    return dots_on(np.asarray(im), points, lim, color, radius)


def dots_on(img: np.ndarray, points: torch.Tensor | np.ndarray, lim: float = 3.0,
            color: tuple[int, int, int] = (255, 255, 255), radius: float | None = None) -> np.ndarray:
    """(N, 2) points drawn as dots over ``img``, a square picture of [-lim, lim]^2 (a heat map,
    a density), e.g. real and generated points over a GAN critic's decision surface."""
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    im = Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8))
    size = im.size[0]
    d = ImageDraw.Draw(im)
    px = (p[:, 0] + lim) / (2 * lim) * (size - 1)
    py = (lim - p[:, 1]) / (2 * lim) * (size - 1)
    ok = np.isfinite(px) & np.isfinite(py)
    r = radius if radius is not None else max(1.5, size / 100)
    for x, y in zip(px[ok], py[ok]):
        d.ellipse((float(x) - r, float(y) - r, float(x) + r, float(y) + r), fill=color)
    return np.asarray(im)


def samples_image(x: torch.Tensor, **kw) -> np.ndarray:
    """The natural picture of a batch of samples: a grid for images, a scatter for points."""
    if x.dim() == 2 and x.shape[1] == 2:
        return scatter_image(x, **kw)
    if x.dim() == 4:
        return image_grid(x, **kw)
    raise ValueError(f"don't know how to draw samples of shape {tuple(x.shape)}")


def save_png(img: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 12.0) -> Path:
    """Animated GIF of equally sized RGB frames (the last frame is held a little longer)."""
    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ims = [Image.fromarray(f) for f in frames]
    dur = [int(1000 / fps)] * len(ims)
    dur[-1] = 1000
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=dur, loop=0, optimize=False)
    return path


ANIMATION_SUFFIXES = (".gif", ".mp4")


def save_animation(frames: Sequence[np.ndarray], path: str | Path, fps: float = 12.0) -> Path:
    """GIF or MP4 by the path's suffix, so every exporter (trajectories, time-lapses, walks) has
    one writer. MP4 goes through imageio-ffmpeg, whose wheel ships ffmpeg (nothing to install);
    frames are padded to even sides because H.264 needs them."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return save_gif(frames, path, fps=fps)
    if suffix != ".mp4":
        raise ValueError(f"{path.name}: animations are written as {' or '.join(ANIMATION_SUFFIXES)}")
    if not frames:
        raise ValueError("no frames to write")
    import imageio.v2 as iio

    h, w = frames[0].shape[:2]
    h2, w2 = h + h % 2, w + w % 2
    path.parent.mkdir(parents=True, exist_ok=True)
    with iio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                        macro_block_size=1, ffmpeg_log_level="error") as writer:
        for f in frames:
            f = np.ascontiguousarray(f[..., :3])
            if f.shape[:2] != (h2, w2):
                f = np.pad(f, ((0, h2 - f.shape[0]), (0, w2 - f.shape[1]), (0, 0)))
            writer.append_data(f)
    return path


def outside(points: torch.Tensor | np.ndarray, lim: float) -> np.ndarray:
    """(N,) mask of the (N, 2) points outside the square [-lim, lim]^2 (or not finite)."""
    p = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, np.float64)
    return ~(np.isfinite(p).all(1) & (np.abs(p) <= lim).all(1))


def data_lim(points: torch.Tensor | np.ndarray, floor: float = 2.5) -> float:
    """The half-width of a square that holds (N, 2) points (their 99.5th |coordinate| percentile,
    +10 %, at least ``floor``): the range the Sampler fits to x_T and keeps for the whole trajectory."""
    p = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, np.float64)
    p = p[np.isfinite(p)]
    q = float(np.percentile(np.abs(p), 99.5)) if p.size else 3.0
    return max(floor, 1.1 * q)


def _font(size: int):
    """Pillow's bundled font at ``size`` px (Pillow < 10.1: its fixed bitmap font)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


GIF_SCATTER = 512  # px per side of each 2-D panel of a trajectory frame
_HEADER = 18  # px of the label strip above a trajectory frame


def trajectory_frame(x: torch.Tensor, x0: torch.Tensor | None, label: str = "", lim: float | None = None,
                     size: int = GIF_SCATTER) -> np.ndarray:
    """One frame of a sampling trajectory: x_t and the predicted x0 side by side under a ``label``
    strip (e.g. "step 3/50 · t=0.94"). Image batches keep the grid's native resolution (cells below
    MIN_CELL px are upscaled by a whole factor, nearest); 2-D points draw as ``size`` px scatters
    over [-lim, lim]^2 (default: :func:`data_lim` of ``x``), x0 points outside that square left out
    (the count is in the panel's title). Every frame of one trajectory has the same size."""
    if x.dim() == 4:
        s = readable_scale(x.shape[-2], x.shape[-1])
        panels = [image_grid(x, scale=s)] + ([image_grid(x0, scale=s)] if x0 is not None else [])
        titles = ["x_t", "x0 predicted"]
    elif x.dim() == 2 and x.shape[1] == 2:
        lim = data_lim(x) if lim is None else lim
        r = max(1.5, size / 200)  # a full-size frame: smaller dots than a thumbnail needs
        panels = [scatter_image(x, size=size, lim=lim, radius=r)]
        titles = ["x_t", "x0 predicted"]
        if x0 is not None:
            keep = ~outside(x0, lim)
            panels.append(scatter_image(np.asarray(x0.detach().cpu())[keep], size=size, lim=lim,
                                        color=(255, 140, 66), radius=r))
            n_out = int((~keep).sum())
            if n_out:
                titles[1] += f" ({n_out} of {len(keep)} outside)"
    else:
        raise ValueError(f"don't know how to draw samples of shape {tuple(x.shape)}")
    h = max(p.shape[0] for p in panels)
    gap = 4
    w = max(sum(p.shape[1] for p in panels) + gap * (len(panels) - 1), 260)  # room for the label
    out = np.full((h + 2 * _HEADER, w, 3), (20, 22, 28), np.uint8)
    col = 0
    for k, p in enumerate(panels):
        if k:
            out[_HEADER:, col - gap:col] = (90, 90, 100)  # a rule between the halves
        out[2 * _HEADER:2 * _HEADER + p.shape[0], col:col + p.shape[1]] = p
        col += p.shape[1] + gap
    im = Image.fromarray(out)
    d = ImageDraw.Draw(im)
    d.text((4, 2), label, fill=(255, 255, 255), font=_font(14))
    col = 0
    for p, title in zip(panels, titles):
        d.text((col + 4, _HEADER + 3), title, fill=(190, 190, 200), font=_font(12))
        col += p.shape[1] + gap
    return np.asarray(im)


def trajectory_label(step: int, total: int, t: float) -> str:
    """The label of a trajectory frame ("step k/N · t=0.xx")."""
    return f"step {step}/{total} \u00b7 t={t:.2f}"


MAX_ANIMATION_FRAMES = 120  # a trajectory animation keeps at most this many (evenly spaced) states


def frame_indices(n: int, max_frames: int = MAX_ANIMATION_FRAMES) -> list[int]:
    """At most ``max_frames`` evenly spaced indices of ``range(n)``, always first and last."""
    if n <= max_frames:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, max_frames).round().astype(int).tolist()))


def trajectory_frames(states: Sequence[Any], lim: float | None = None,
                      max_frames: int = MAX_ANIMATION_FRAMES) -> Iterator[np.ndarray]:
    """The labelled x_t | x0 frames (:func:`trajectory_frame`) of a sampling trajectory's states
    (anything with ``x``, ``x0``, ``step``, ``total``, ``t``: a SampleState), at most ``max_frames``
    evenly spaced ones. 2-D points share one range, ``lim`` (default: :func:`data_lim` of x_T), so
    the cloud visibly contracts. The one frame builder of the Sampler's export and ``genstudio
    sample --gif``; a generator so a caller can show progress."""
    if not states:
        raise ValueError("no states to draw")
    x_first = states[0].x
    if lim is None and x_first.dim() == 2 and x_first.shape[1] == 2:
        lim = data_lim(x_first)
    for i in frame_indices(len(states), max_frames):
        st = states[i]
        yield trajectory_frame(st.x, st.x0, trajectory_label(st.step, st.total, st.t), lim=lim)


# -- model views: heat maps of 2-D fields and tiled filters ---------------------------------------
# Viridis (perceptually uniform, readable in greyscale and by colour-blind viewers), sampled at 9
# evenly spaced stops from matplotlib's table; linear interpolation between them is within a few
# levels of the full 256-entry map.
_VIRIDIS = np.array([(68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
                     (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)], np.float64)


def colormap(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape; NaN -> 0) -> viridis RGB uint8 with a trailing axis of 3."""
    v = np.nan_to_num(np.clip(np.asarray(v, np.float64), 0.0, 1.0), nan=0.0)
    stops = np.linspace(0.0, 1.0, len(_VIRIDIS))
    rgb = np.stack([np.interp(v, stops, _VIRIDIS[:, c]) for c in range(3)], axis=-1)
    return (rgb + 0.5).astype(np.uint8)


def grid_points(size: int = 128, lim: float = 3.0) -> torch.Tensor:
    """(size*size, 2) points of a square grid over [-lim, lim]^2, row-major from the *top* row
    (y = +lim) so a field reshaped to (size, size) lines up with :func:`scatter_image`."""
    c = torch.linspace(-lim, lim, size)
    yy, xx = torch.meshgrid(c.flip(0), c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)


def heatmap_image(field: np.ndarray | torch.Tensor, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """A 2-D scalar field (H, W) -> (H, W, 3) uint8 viridis image; the maximum is brightest.
    ``lo``/``hi`` fix the colour range (default: the field's finite min and max)."""
    f = field.detach().float().cpu().numpy() if isinstance(field, torch.Tensor) else np.asarray(field, np.float64)
    fin = f[np.isfinite(f)]
    if lo is None:
        lo = float(fin.min()) if fin.size else 0.0
    if hi is None:
        hi = float(fin.max()) if fin.size else 1.0
    return colormap((f - lo) / max(hi - lo, 1e-12))


def density_image(log_density: Callable[[torch.Tensor], torch.Tensor], size: int = 128, lim: float = 3.0,
                  device: torch.device | str = "cpu", chunk: int = 4096) -> np.ndarray:
    """Heat map of exp(log_density) on a grid over [-lim, lim]^2 (the data range of the 2-D toys and
    of :func:`scatter_image`), scaled by its peak, so any unnormalised log-density (an EBM's -E)
    draws the same way. Evaluated in chunks so a big grid never needs one huge batch."""
    pts = grid_points(size, lim)
    lp = torch.cat([log_density(p.to(device)).detach().float().cpu().reshape(-1) for p in pts.split(chunk)])
    lp = torch.nan_to_num(lp, nan=-torch.inf)
    peak = lp[torch.isfinite(lp)].max() if torch.isfinite(lp).any() else torch.tensor(0.0)
    return heatmap_image((lp - peak).exp().reshape(size, size), 0.0, 1.0)


def tile_filters(w: torch.Tensor | np.ndarray, ncol: int | None = None, scale: int = 3) -> np.ndarray:
    """Weights (N, C, H, W) -> one grid image, each filter scaled to its own max |w| (grey = 0), so
    weak and strong units are both readable."""
    t = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w.detach().cpu()).float()
    t = t / t.flatten(1).abs().amax(1).clamp(min=1e-12).view(-1, *([1] * (t.dim() - 1)))
    return image_grid(t, ncol=ncol, scale=scale)


def quiver_image(points: torch.Tensor | np.ndarray, vectors: torch.Tensor | np.ndarray,
                 background: np.ndarray | None = None, size: int = 256, lim: float = 3.0,
                 length: float | None = None, gamma: float = 1.0,
                 color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Arrows (a vector field, e.g. a learned score) at (N, 2) ``points`` over [-lim, lim]^2, drawn on
    ``background`` (any (H, W, 3) uint8 picture of the same square, resized; dark if None).
    Lengths are normalised so the longest arrow spans ``length`` data units (default: one cell of
    a sqrt(N) x sqrt(N) grid, at least 8 cells across), since a score's raw size varies by orders of
    magnitude; ``gamma`` < 1 lifts the short ones (length ~ |v|^gamma) so weak regions stay readable."""
    p = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, np.float64)
    v = np.asarray(vectors.detach().cpu() if isinstance(vectors, torch.Tensor) else vectors, np.float64)
    if background is None:
        im = Image.new("RGB", (size, size), (20, 22, 28))
    else:
        im = Image.fromarray(np.ascontiguousarray(background, dtype=np.uint8)).resize((size, size), Image.BILINEAR)
    d = ImageDraw.Draw(im)
    norm = np.linalg.norm(v, axis=1)
    ok = np.isfinite(norm) & np.isfinite(p).all(1)
    if not ok.any() or norm[ok].max() <= 0:
        return np.asarray(im)
    length = length if length is not None else 2 * lim / max(math.ceil(math.sqrt(len(p))), 8)
    rel = np.where(ok, norm / norm[ok].max(), 0.0) ** gamma
    unit = np.where(norm[:, None] > 0, v / np.maximum(norm, 1e-300)[:, None], 0.0)
    px_per_unit = (size - 1) / (2 * lim)
    head = max(2.0, size / 128)
    for (x, y), u, r, good in zip(p, unit, rel, ok):
        if not good or r <= 0:
            continue
        x0, y0 = (x + lim) * px_per_unit, (lim - y) * px_per_unit  # image y points down
        ux, uy = u[0], -u[1]
        ln = r * length * px_per_unit
        x1, y1 = x0 + ux * ln, y0 + uy * ln
        d.line([(x0, y0), (x1, y1)], fill=color, width=1)
        h = min(head, 0.5 * ln + 1)  # a head no longer than half the shaft
        for s in (1, -1):  # two barbs at +-30 degrees back from the tip
            bx = ux * math.cos(math.pi / 6) - s * uy * math.sin(math.pi / 6)
            by = s * ux * math.sin(math.pi / 6) + uy * math.cos(math.pi / 6)
            d.line([(x1, y1), (x1 - h * bx, y1 - h * by)], fill=color, width=1)
    return np.asarray(im)


def histogram_image(points: torch.Tensor | np.ndarray, bins: int = 64, lim: float = 3.0, size: int | None = None,
                    hi: float | None = None) -> np.ndarray:
    """Heat map of a 2-D histogram of (N, 2) points over [-lim, lim]^2, oriented like
    :func:`scatter_image` (row 0 = y = +lim); ``hi`` fixes the count that is brightest, so two
    histograms of equally many points share one colour scale. Upscaled to ``size`` if given."""
    p = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, np.float64)
    h, _, _ = np.histogram2d(p[:, 1], p[:, 0], bins=bins, range=[[-lim, lim], [-lim, lim]])
    img = heatmap_image(h[::-1], 0.0, hi if hi is not None else max(float(h.max()), 1.0))
    if size is not None and size != bins:
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.NEAREST))
    return img


def data_density_image(dataset: object, sigma: float = 0.0, size: int = 256, lim: float = 3.0) -> np.ndarray:
    """The data's density as a heat map: exact for datasets with ``log_prob(x, sigma)`` (the 2-D
    Gaussian mixtures, smoothed by N(0, sigma^2 I)), else a histogram of 4000 fixed samples."""
    lp = getattr(dataset, "log_prob", None)
    if callable(lp):
        return density_image(lambda x: lp(x, sigma), size=size, lim=lim)
    x, _ = dataset.fixed(4000)  # type: ignore[attr-defined]
    return histogram_image(x, bins=64, lim=lim, size=size)


def _label(img: np.ndarray, label: str) -> np.ndarray:
    """``label`` in the top-left corner on a dark box (readable over whatever is drawn)."""
    if not label:
        return img
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    d.rectangle(d.textbbox((4, 3), label), fill=(20, 22, 28))
    d.text((4, 3), label, fill=(255, 255, 255))
    return np.asarray(im)


def paths_image(history: torch.Tensor | np.ndarray, background: np.ndarray | None = None, size: int = 256,
                lim: float = 3.0, label: str = "", chords: bool = True) -> np.ndarray:
    """Particle paths (L, N, 2) over [-lim, lim]^2 as polylines coloured by step (blue at the start,
    orange at the end: apart from a viridis density background, which is dimmed), each with its
    straight chord start -> end in grey, so how far a learned flow bends away from a straight line
    shows at a glance (rectified flow, OT-CFM)."""
    h = np.asarray(history.detach().cpu() if isinstance(history, torch.Tensor) else history, np.float64)
    if background is None:
        im = Image.new("RGB", (size, size), (20, 22, 28))
    else:
        bg = (np.asarray(background, np.float64) * 0.45).astype(np.uint8)
        im = Image.fromarray(np.ascontiguousarray(bg)).resize((size, size), Image.BILINEAR)
    d = ImageDraw.Draw(im)
    px = (size - 1) / (2 * lim)
    xy = np.stack([(h[..., 0] + lim) * px, (lim - h[..., 1]) * px], -1)  # image y points down
    steps = len(xy)
    if chords and steps > 1:
        for a, b in zip(xy[0], xy[-1]):
            if np.isfinite(a).all() and np.isfinite(b).all():
                d.line([tuple(a), tuple(b)], fill=(110, 110, 110), width=1)
    s = np.linspace(0, 1, max(steps - 1, 1))[:, None]
    cols = ((1 - s) * np.array([90, 160, 255]) + s * np.array([255, 170, 60])).round().astype(int)
    for k in range(steps - 1):
        c = tuple(int(v) for v in cols[k])
        for a, b in zip(xy[k], xy[k + 1]):
            if np.isfinite(a).all() and np.isfinite(b).all():
                d.line([tuple(a), tuple(b)], fill=c, width=1)
    return _label(np.asarray(im), label)


def score_field_image(score: Callable[[torch.Tensor], torch.Tensor], background: np.ndarray | None,
                      grid: int = 20, size: int = 256, lim: float = 3.0, label: str = "") -> np.ndarray:
    """A learned 2-D score field as arrows on a ``grid`` x ``grid`` lattice (cell centres) over a
    density picture; ``score`` maps (N, 2) points to (N, 2) vectors. Lengths ~ sqrt|s| so the
    field between modes (small) and far out (large) both read."""
    c = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2 * lim - lim
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    img = quiver_image(pts, score(pts).float().cpu(), background, size=size, lim=lim,
                       length=0.9 * 2 * lim / grid, gamma=0.5)
    return _label(img, label)


@functools.lru_cache(maxsize=8)
def data_background(dataset_name: str, sigma: float = 0.0, size: int = 256, lim: float = 3.0) -> np.ndarray | None:
    """:func:`data_density_image` of a dataset by name, cached (views redraw it at every preview);
    None when the dataset cannot be rebuilt here (a moved folder): the arrows then go on dark."""
    from genstudio.core.data import get_dataset

    try:
        ds = get_dataset(dataset_name)
    except Exception:
        return None
    img = data_density_image(ds, sigma, size, lim)
    img.setflags(write=False)
    return img
