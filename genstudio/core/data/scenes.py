"""3-D scene datasets (kind ``"scene"``) and neural-field targets (kind ``"field"``).

Scene datasets hold posed views (:class:`~genstudio.core.scene.multiview.SceneData` in
``dataset.scene``). ``batch(n)`` returns ``n`` random training rays as (n, 9) = origin, unit
direction, rgb in [0, 1] (labels None), so the generic training job drives a NeRF with ray batches
unchanged. Plugins that need whole images (Gaussian splatting) take the dataset with
``get_dataset(data.name)`` in ``setup()`` and pick views from ``dataset.scene`` themselves,
ignoring the batch content (give them batch_size 1 so the batch costs nothing).

Field datasets sample a target function: an image (``(x, y) in [-1, 1]^2 -> rgb``, rows
(n, 2 + C)) or a signed distance (``xyz in [-1, 1]^3 -> sdf``, rows (n, 4)); half of the SDF
points lie near the surface, where the detail is.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
from torch import Tensor

from genstudio.core.data import Dataset, DataSpec, register_dataset
from genstudio.core.scene.multiview import SceneData, load_transforms_scene


class SceneDataset(Dataset):
    """Rays of a multi-view scene; ``scene`` has the full views, cameras and bounding box."""

    def __init__(self, name: str, scene: SceneData) -> None:
        self.scene = scene
        self.rays = scene.rays()
        self.spec = DataSpec(name, "scene", (9,), size=len(self.rays),
                             description=scene.description or f"{len(scene.cameras)} posed views")

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, None]:
        idx = torch.randint(0, len(self.rays), (n,), generator=generator)
        return self.rays[idx], None


@functools.lru_cache(maxsize=4)
def _primitives(size: int = 64) -> SceneDataset:
    from genstudio.core.scene.procedural import make_scene

    return SceneDataset("scene:primitives", make_scene(size=size))


@register_dataset("scene:primitives", "3-D: spheres and boxes on a checker floor, 48 + 8 held-out views, 64 px", kind="scene")
def primitives() -> SceneDataset:
    return _primitives()


TRANSFORMS_PREFIX = "transforms:"


def load_transforms_dataset(path: str | os.PathLike, max_size: int = 64) -> SceneDataset:
    """A user's nerfstudio / instant-ngp folder (or transforms.json) as a scene dataset, registered
    under ``transforms:PATH`` so jobs in this process can find it by name (what the GUI calls after
    the user picks a folder)."""
    name = f"{TRANSFORMS_PREFIX}{os.path.abspath(os.fspath(path))}"
    ds = _transforms(name, max_size)
    register_dataset(name, ds.spec.description, ds.spec.kind)(functools.partial(_transforms, name, max_size))
    return ds


@functools.lru_cache(maxsize=4)
def _transforms(name: str, max_size: int) -> SceneDataset:
    return SceneDataset(name, load_transforms_scene(name[len(TRANSFORMS_PREFIX):], max_size=max_size))


# -- neural-field targets ------------------------------------------------------------------------
class ImageField(Dataset):
    """A picture as a function of pixel position; ``image`` is (H, W, C) in [0, 1]."""

    def __init__(self, name: str, image: np.ndarray, description: str) -> None:
        img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        self.image = img if img.dim() == 3 else img[..., None]
        h, w, c = self.image.shape
        self.in_dim, self.out_dim = 2, c
        ys = (torch.arange(h) + 0.5) / h * 2 - 1
        xs = (torch.arange(w) + 0.5) / w * 2 - 1
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        self.coords = torch.stack([gx, gy], -1).reshape(-1, 2)  # (H*W, 2) (x, y), y down
        self.values = self.image.reshape(-1, c)
        self.spec = DataSpec(name, "field", (2 + c,), size=h * w, description=description)

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, None]:
        idx = torch.randint(0, len(self.coords), (n,), generator=generator)
        return torch.cat([self.coords[idx], self.values[idx]], 1), None


class SDFField(Dataset):
    """An analytic signed distance function on [-1, 1]^3 (``fn``: (N, 3) -> (N,))."""

    def __init__(self, name: str, fn, description: str) -> None:
        self.fn = fn
        self.in_dim, self.out_dim = 3, 1
        self.bound = 1.0
        self.spec = DataSpec(name, "field", (4,), description=description)

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, None]:
        from genstudio.core.scene.fields import sdf_normals

        m = n // 2
        p = torch.rand(n, 3, generator=generator) * 2 - 1
        # move half the points onto the surface (p - f(p) grad f(p)), then jitter them off it a little
        near = p[:m] - self.fn(p[:m])[:, None] * sdf_normals(self.fn, p[:m])
        p = torch.cat([near + 0.03 * torch.randn(m, 3, generator=generator), p[m:]]).clamp(-1, 1)
        return torch.cat([p, self.fn(p)[:, None]], 1), None


def _skimage_image(which: str, size: int = 128) -> np.ndarray:
    from PIL import Image
    from skimage import data as skdata

    arr = getattr(skdata, which)()
    im = Image.fromarray(arr)
    side = min(im.size)
    left, top = (im.size[0] - side) // 2, (im.size[1] - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
    return np.asarray(im, dtype=np.float32) / 255.0


def _register_images() -> None:
    for which, desc in (("astronaut", "colour photo"), ("camera", "greyscale photo"), ("coffee", "colour photo")):
        name = f"field:{which}"

        @functools.lru_cache(maxsize=1)
        def make(which: str = which, name: str = name, desc: str = desc) -> ImageField:
            return ImageField(name, _skimage_image(which), f"scikit-image '{which}' {desc}, 128 px, as (x, y) -> colour")

        register_dataset(name, f"neural field: scikit-image '{which}' ({desc}), 128 px", kind="field")(make)


def _register_shapes() -> None:
    from genstudio.core.scene.fields import SHAPES

    for shape, fn in SHAPES.items():
        name = f"field:sdf-{shape}"
        register_dataset(name, f"neural field: signed distance to a {shape} in [-1, 1]^3", kind="field")(
            functools.partial(SDFField, name, fn, f"signed distance to a {shape}"))


_register_images()
_register_shapes()
