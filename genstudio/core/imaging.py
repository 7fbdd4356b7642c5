"""Turning samples into pictures (grids of images, scatter plots of 2-D points) and files.
Used by jobs (sample PNGs in the run folder), the CLI and the panels' export buttons."""

from __future__ import annotations

import math
from collections.abc import Sequence
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
