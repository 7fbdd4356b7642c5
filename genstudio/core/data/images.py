"""Reading the user's image files (image folders, the views of a transforms.json scene) safely.

Two traps of opening images straight with pillow:

- size: a PNG of a few hundred bytes may declare 20000 x 20000 pixels and decode to 1.2 GB, and
  pillow only refuses past ~179 Mpx (a warning from ~89 Mpx). We check the size the header
  declares against :data:`MAX_PIXELS` before any pixel is decoded.
- 16-bit greyscale (mode ``I;16``, or ``I``): ``convert("RGB")`` clips 0..65535 to 0..255, so a
  16-bit photo turns almost white. We scale it to 8 bits first (v * 255 / 65535, rounded).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image

MAX_PIXELS = 40_000_000  # 40 Mpx: larger than any camera photo we expect, ~160 MB once decoded as RGBA
_WIDE_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")  # modes whose values run to 65535


class ImageFileError(ValueError):
    """An image file we refuse to decode (over :data:`MAX_PIXELS`)."""


def _open(path: str | os.PathLike, max_pixels: int) -> Image.Image:
    """The lazily opened image (header read, pixels not decoded), its size checked."""
    try:
        with warnings.catch_warnings():  # pillow's own bomb warning: our limit is lower, we raise below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError:
        raise ImageFileError(f"{path}: image is over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx; input images "
                             f"may have at most {max_pixels / 1e6:.0f} Mpx (downscale it)") from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ImageFileError(f"{path}: image is {w}x{h} ({w * h / 1e6:.0f} Mpx); input images may have at most "
                             f"{max_pixels / 1e6:.0f} Mpx (downscale it)")
    return im


def image_size(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header alone; :class:`ImageFileError` past ``max_pixels``."""
    with _open(path, max_pixels) as im:
        return im.size


def read_image(path: str | os.PathLike, mode: str = "RGB", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The decoded image converted to ``mode`` (16-bit greyscale scaled, not clipped, to 8 bits).
    Raises :class:`ImageFileError` past ``max_pixels`` and pillow's OSError on unreadable files."""
    with _open(path, max_pixels) as im:
        if im.mode in _WIDE_MODES:
            a = np.asarray(im).astype(np.float64)
            return Image.fromarray(np.clip(np.rint(a * (255 / 65535)), 0, 255).astype(np.uint8), "L").convert(mode)
        return im.convert(mode)
