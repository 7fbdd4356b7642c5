"""Turning samples into pictures (grids of images, scatter plots of 2-D points) and files.
Used by jobs (sample PNGs in the run folder), the CLI and the panels' export buttons."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


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


def scatter_image(points: torch.Tensor | np.ndarray, size: int = 256, lim: float = 3.0,
                  color: tuple[int, int, int] = (80, 160, 255)) -> np.ndarray:
    """Render (N, 2) points as a dark square image with axes at 0 (for PNGs and GIFs)."""
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    im = Image.new("RGB", (size, size), (20, 22, 28))
    d = ImageDraw.Draw(im)
    mid = size // 2
    d.line([(0, mid), (size, mid)], fill=(60, 60, 70))
    d.line([(mid, 0), (mid, size)], fill=(60, 60, 70))
    px = (p[:, 0] + lim) / (2 * lim) * (size - 1)
    py = (lim - p[:, 1]) / (2 * lim) * (size - 1)
    ok = np.isfinite(px) & np.isfinite(py)
    r = max(1.0, size / 200)  # dots stay visible when the image is shown small
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
