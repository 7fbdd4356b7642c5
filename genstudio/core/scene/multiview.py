"""A posed multi-view image set (train and held-out test views), whatever its origin: the
procedural scene or a user's nerfstudio / instant-ngp / NeRF-Blender folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genstudio.core.scene.cameras import Camera, CameraFileError, load_transforms


@dataclass
class SceneData:
    """Images are (N, H, W, 3) float32 in [0, 1]; ``bbox`` is (lo, hi) enclosing the content."""

    name: str
    images: Tensor
    cameras: list[Camera]
    test_images: Tensor
    test_cameras: list[Camera]
    bbox: tuple[Tensor, Tensor]
    background: Tensor = field(default_factory=lambda: torch.ones(3))
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    description: str = ""

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def extent(self) -> float:
        """Radius of the cameras' spread around their mean (3DGS's scene extent, for densify)."""
        pos = torch.stack([c.position for c in self.cameras])
        return float(1.1 * (pos - pos.mean(0)).norm(dim=1).max())

    def rays(self, test: bool = False) -> Tensor:
        """Every pixel of every (train or test) view as a ray: (N*H*W, 9) = origin, unit direction, rgb."""
        cams, imgs = (self.test_cameras, self.test_images) if test else (self.cameras, self.images)
        out = []
        for cam, img in zip(cams, imgs):
            o, d = cam.rays()
            out.append(torch.cat([o, d, img], -1).reshape(-1, 9))
        return torch.cat(out) if out else torch.zeros(0, 9)

    def view(self, i: int, test: bool = False) -> tuple[Camera, Tensor]:
        cams, imgs = (self.test_cameras, self.test_images) if test else (self.cameras, self.images)
        return cams[i], imgs[i]


class SceneLoadError(ValueError):
    """A multi-view folder that cannot be loaded (no cameras, unreadable images, ...)."""


def _load_image(path: str | None, cam: Camera, size: tuple[int, int], background: Tensor) -> Tensor:
    """The view's image resized to ``size``. Its own size must be the one its camera declares: the
    intrinsics are in that camera's pixels, so another size (even of the same aspect) would mean
    resizing to a guess, and another aspect would stretch the picture silently."""
    from PIL import Image, UnidentifiedImageError

    from genstudio.core.data.images import ImageFileError, read_image

    if not path or not os.path.exists(path):
        raise SceneLoadError(f"image for camera {cam.name!r} not found: {path}")
    try:
        im = read_image(path, "RGBA")
    except ImageFileError as exc:
        raise SceneLoadError(str(exc)) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise SceneLoadError(f"cannot read image {path}: {exc}") from None
    if im.size != (cam.width, cam.height):
        raise SceneLoadError(f"{path}: image is {im.size[0]}x{im.size[1]} but its camera says "
                             f"{cam.width}x{cam.height} (w, h); all views must match their cameras' sizes")
    a = np.asarray(im.resize(size, Image.BILINEAR), dtype=np.float32) / 255.0
    rgb, alpha = torch.from_numpy(a[..., :3]), torch.from_numpy(a[..., 3:])
    return rgb * alpha + (1 - alpha) * background  # transparent pixels show the background


def bbox_from_cameras(cameras: list[Camera]) -> tuple[Tensor, Tensor]:
    """A cube around the point the cameras look at (least squares over their optical axes), half as
    big as their mean distance to it: a sensible guess when a dataset gives no bounds."""
    a = torch.zeros(3, 3, dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    for c in cameras:
        d = -c.c2w[:3, 2].double()
        d = d / d.norm()
        m = torch.eye(3, dtype=torch.float64) - torch.outer(d, d)
        a += m
        b += m @ c.position.double()
    try:
        centre = torch.linalg.solve(a, b)
    except RuntimeError:
        centre = torch.stack([c.position.double() for c in cameras]).mean(0)
    dist = torch.stack([(c.position.double() - centre).norm() for c in cameras]).mean()
    half = 0.5 * dist
    return (centre - half).float(), (centre + half).float()


def load_transforms_scene(path: str | os.PathLike, *, max_size: int = 64, test_every: int = 8,
                          background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> SceneData:
    """Load a nerfstudio / instant-ngp ``transforms.json`` folder (or the NeRF Blender layout with
    transforms_train.json / transforms_test.json), images resized so the longer side is
    ``max_size`` (intrinsics scaled to match). Without a test file every ``test_every``-th frame is
    held out. RGBA images are composited on ``background``."""
    p = Path(path).expanduser()
    folder = p if p.is_dir() else p.parent
    bg = torch.tensor(background, dtype=torch.float32)
    try:
        if p.is_dir() and not (p / "transforms.json").exists() and (p / "transforms_train.json").exists():
            train = load_transforms(p / "transforms_train.json")
            test_file = p / "transforms_test.json"
            test = load_transforms(test_file)[:8] if test_file.exists() else []
        else:
            cams = load_transforms(p)
            test = cams[::test_every] if test_every > 0 and len(cams) > 2 else []
            held = {id(c) for c in test}
            train = [c for c in cams if id(c) not in held]
    except CameraFileError as exc:
        raise SceneLoadError(str(exc)) from None
    if not train:
        raise SceneLoadError(f"no training cameras in {p}")

    def load(cams: list[Camera]) -> tuple[list[Camera], Tensor]:
        out_c, out_i = [], []
        for c in cams:
            s = max_size / max(c.width, c.height)
            w, h = max(1, round(c.width * s)), max(1, round(c.height * s))
            rc = c.resized(w, h)
            out_c.append(rc)
            out_i.append(_load_image(c.image_path, c, (w, h), bg))
        shapes = {tuple(i.shape) for i in out_i}
        if len(shapes) > 1:
            raise SceneLoadError(f"images of different sizes after resizing: {sorted(shapes)}")
        return out_c, (torch.stack(out_i) if out_i else torch.zeros(0, 1, 1, 3))

    train_c, train_i = load(train)
    test_c, test_i = load(test)
    if not len(test_c):
        test_i = train_i[:0]
    return SceneData(folder.name or str(folder), train_i, train_c, test_i, test_c,
                     bbox_from_cameras(train_c + test_c), bg, description=f"{len(train_c)} views from {folder}")
