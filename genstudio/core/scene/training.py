"""Pieces the 3-D plugins share: finding the posed views behind a DataSpec, turning rendered
held-out views into SampleStates for the generic sampler / training panels, held-out PSNR, and a
deterministic per-step view choice (so a resumed run sees the same views)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.plugin import SampleState
from genstudio.core.scene.cameras import Camera
from genstudio.core.scene.multiview import SceneData
from genstudio.core.scene.render import psnr


def scene_of(data: DataSpec) -> SceneData:
    """The posed views of a ``scene`` dataset (``get_dataset(data.name).scene``)."""
    ds = get_dataset(data.name)
    scene = getattr(ds, "scene", None)
    if not isinstance(scene, SceneData):
        raise TypeError(f"dataset {data.name!r} has no posed views (kind {data.kind!r}); pick a scene dataset")
    return scene


def dataset_of(data: DataSpec):
    return get_dataset(data.name)


def view_for_step(step: int, n_views: int, seed: int = 0) -> int:
    """A pseudo-random training view that depends only on (step, seed)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
    return int(torch.randint(0, n_views, (1,), generator=g))


def to_model_images(hwc: Tensor) -> Tensor:
    """(N, H, W, 3) in [0, 1] -> (N, 3, H, W) in [-1, 1] (the samples convention)."""
    return (hwc.permute(0, 3, 1, 2) * 2 - 1).clamp(-1, 1)


def render_states(render: Callable[[Any], Tensor], views: Sequence[Any], n: int, *, size: tuple[int, int],
                  targets: Tensor | None = None, seed: int | None = None) -> Iterator[SampleState]:
    """Render ``n`` images of ``views`` (cameras, or anything ``render`` takes) and yield a
    SampleState after each, its ``x`` the (n, 3, H, W) grid so far in [-1, 1] (unrendered ones are
    black). ``render(view)`` returns (H, W, 3) in [0, 1] with (H, W) = ``size``. Views are cycled
    when ``n`` exceeds them and each is rendered once; ``seed`` rotates the list, so different
    seeds show different views and equal seeds the same. With ``targets`` (one (H, W, 3) per view)
    extras carry the PSNR of each view and their mean."""
    if not views:
        raise ValueError("no views to render")
    order = list(range(len(views)))
    if seed is not None:
        k = int(seed) % len(views)
        order = order[k:] + order[:k]
    n = max(1, int(n))
    uniq = min(n, len(views))
    h, w = size
    x = torch.full((n, 3, h, w), -1.0)
    scores: list[float] = []
    for i in range(uniq):
        j = order[i]
        img = render(views[j]).detach().float().cpu().clamp(0, 1)
        x[i::uniq] = to_model_images(img[None])[0]
        extras: dict[str, Any] = {"view": j, "name": getattr(views[j], "name", str(j))}
        if targets is not None:
            scores.append(psnr(img, targets[j].cpu()))
            extras.update(psnr=scores[-1], mean_psnr=sum(scores) / len(scores))
        yield SampleState(i + 1, uniq, 1.0 - (i + 1) / uniq, x.clone(), None, extras)


def heldout_psnr(render: Callable[[Camera], Tensor], cameras: Sequence[Camera], images: Tensor,
                 limit: int | None = None) -> float:
    """Mean PSNR over held-out views (the first ``limit`` of them)."""
    k = len(cameras) if limit is None else min(limit, len(cameras))
    if k == 0:
        return float("nan")
    return sum(psnr(render(cameras[i]).float().cpu(), images[i]) for i in range(k)) / k


class HeldOutViews:
    """Mixin for scene plugins with ``self.scene`` (SceneData) and ``render(camera)``: held-out PSNR
    and sample() as rendered held-out views, shared by NeRF and Gaussian splatting."""

    scene: SceneData

    def test_psnr(self, limit: int | None = None) -> float:
        """Mean PSNR over the held-out views."""
        return heldout_psnr(self.render, self.scene.test_cameras, self.scene.test_images, limit)

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1) -> Iterator[SampleState]:
        """Held-out views as images (cycled to make ``n``; ``seed`` picks where in the list to
        start); one state per rendered view, with its PSNR in ``extras``."""
        cams = self.scene.test_cameras or self.scene.cameras
        targets = self.scene.test_images if self.scene.test_cameras else self.scene.images
        yield from render_states(self.render, cams, n, size=(cams[0].height, cams[0].width), targets=targets,
                                 seed=seed)
