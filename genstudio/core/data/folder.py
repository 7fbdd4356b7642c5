"""The user's own images: every png/jpg/bmp/webp under a folder, resized to a square size.
Sub-folder names become class labels (like torchvision's ImageFolder) when there are several.
Files pillow cannot read are skipped (and counted); an image over the pixel limit of
:mod:`genstudio.core.data.images` stops the load, since skipping it would hide the limit."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from genstudio.core.data import DataSpec, TensorDataset
from genstudio.core.data.images import read_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"}
MAX_SIZE = 1024  # the side images are resized to; beyond it a folder of images no longer fits in memory


class FolderError(ValueError):
    """A ``folder:`` argument that names no usable images (or a bad size)."""



def user_files(path: str, suffixes: Collection[str], folder: str, what: str,
               error: type[Exception]) -> tuple[Path, list[Path]]:
    """(folder, its files with one of ``suffixes``, sorted, searched recursively) of a user's data
    folder; ``error`` saying which is missing when the folder or the files are not there."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise error(f"{folder} not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes)
    if not files:
        raise error(f"no {what} under {root}")
    return root, files

def load_folder(arg: str, default_size: int = 32) -> TensorDataset:
    """``arg`` is ``PATH`` or ``PATH:SIZE``; images become RGB (or L if all are grey) in [-1, 1]."""
    path, size = arg, default_size
    head, sep, tail = arg.rpartition(":")
    if sep and tail.isdigit():
        path, size = head, int(tail)
        if not 1 <= size <= MAX_SIZE:
            raise FolderError(f"folder:{arg}: SIZE must be between 1 and {MAX_SIZE}, got {size}")
    root, files = user_files(path, IMAGE_SUFFIXES, "image folder", "images (png/jpg/bmp/webp)", FolderError)
    images, classes, skipped = [], [], 0
    for p in files:
        try:
            images.append(read_image(p, "RGB").resize((size, size), Image.BILINEAR))
            classes.append(p.parent.relative_to(root).as_posix())
        except (UnidentifiedImageError, OSError):
            skipped += 1
    if not images:
        raise FolderError(f"none of the {len(files)} image files under {root} could be read")
    arr = np.stack([np.asarray(im, dtype=np.float32) / 127.5 - 1 for im in images])  # N,H,W,3
    grey = np.allclose(arr[..., 0], arr[..., 1]) and np.allclose(arr[..., 1], arr[..., 2])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    if grey:
        x = x[:, :1]
    names = sorted(set(classes))
    y = torch.tensor([names.index(c) for c in classes]) if len(names) > 1 else None
    desc = f"{len(images)} images from {root}" + (f" ({skipped} unreadable skipped)" if skipped else "")
    spec = DataSpec(f"folder:{root}", "image", tuple(x.shape[1:]), len(names) if y is not None else 0, len(x), desc)
    return TensorDataset(spec, x, y)
