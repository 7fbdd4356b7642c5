"""Built-in datasets behind one interface. Nothing here downloads: 2-D toys are procedural,
digits ship inside scikit-learn, and image folders are the user's own files.

Usage: ``ds = get_dataset("moons")``; ``x, y = ds.batch(256, generator)``. Images are float
tensors (N, C, H, W) in [-1, 1]; 2-D points are (N, 2) with roughly unit scale. ``y`` is class
labels (N,), None, or for captioned data (kind "captioned") caption token ids (N, L) padded after
an EOS, with ``spec.num_classes`` 0 (see ``captions.CaptionsDataset`` for captions and scene graphs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from genstudio.core.modality import Modality


@dataclass(frozen=True)
class DataSpec:
    """Shape and kind of a dataset: what a plugin needs to build its networks."""

    name: str
    kind: str  # a genstudio.core.modality.MODALITIES name: "points2d", "image", "scene", "field"
    shape: tuple[int, ...]  # one sample, e.g. (2,) or (1, 8, 8)
    num_classes: int = 0  # 0 = unlabelled
    size: int = 0  # number of stored examples; 0 = infinite (procedural)
    description: str = ""
    sample_rate: int = 0  # audio: samples per second (0 = not audio)

    @property
    def modality(self) -> Modality:
        """What this kind of data is (``kind`` is its serialised name)."""
        from genstudio.core.modality import modality_of

        return modality_of(self.kind)

    @property
    def dim(self) -> int:
        out = 1
        for s in self.shape:
            out *= s
        return out


class Dataset:
    """A dataset yields batches; procedural ones draw fresh points every call."""

    spec: DataSpec

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def fixed(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A reproducible reference set (for metrics and previews)."""
        return self.batch(n, torch.Generator().manual_seed(seed))


class TensorDataset(Dataset):
    """A dataset held in memory (digits, image folders): batches are drawn with replacement."""

    def __init__(self, spec: DataSpec, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        self.spec = spec
        self.x = x
        self.y = y

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(0, len(self.x), (n,), generator=generator)
        return self.x[idx], (self.y[idx] if self.y is not None else None)

    def fixed(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self.x), generator=g)[: min(n, len(self.x))]
        return self.x[idx], (self.y[idx] if self.y is not None else None)


_FACTORIES: dict[str, tuple[Callable[..., Dataset], str]] = {}
_KINDS: dict[str, str | None] = {}  # declared at registration, or learnt by building the dataset once


def register_dataset(name: str, description: str, kind: str | None = None) -> Callable:
    """Decorator: add a dataset factory under ``name``. ``kind`` (its ``DataSpec.kind``) lets
    pickers filter datasets without building them (ray-tracing a scene, loading digits)."""

    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _FACTORIES[name] = (fn, description)
        _KINDS.pop(name, None)
        if kind is not None:
            _KINDS[name] = kind
        return fn

    return deco


def dataset_kind(name: str) -> str | None:
    """``DataSpec.kind`` of a registered dataset: the declared one, else built once and cached
    (None if it cannot be built)."""
    _load_builtin()
    if name not in _KINDS:
        try:
            _KINDS[name] = get_dataset(name).spec.kind
        except Exception:  # noqa: BLE001 - a broken dataset is left out of pickers, not fatal
            logging.getLogger(__name__).exception("dataset %s cannot be built", name)
            _KINDS[name] = None
    return _KINDS[name]


class UnknownDataset(KeyError):
    pass


def dataset_names() -> list[str]:
    _load_builtin()
    return list(_FACTORIES)


def dataset_table() -> list[tuple[str, str]]:
    _load_builtin()
    return [(k, d) for k, (_, d) in _FACTORIES.items()] + [("folder:PATH", "your own image folder (png/jpg), resized"),
                                                             ("wav:PATH", "your own audio folder (wav/flac), 1 s clips")]


def get_dataset(name: str) -> Dataset:
    """Build a dataset by name; ``folder:/path[:size]`` loads the user's images and
    ``transforms:/path`` a nerfstudio/instant-ngp scene folder."""
    _load_builtin()
    if name.startswith("folder:"):
        from genstudio.core.data.folder import load_folder

        return load_folder(name[len("folder:"):])
    if name.startswith("wav:"):
        from genstudio.core.data.audio import load_wav_folder

        return load_wav_folder(name[len("wav:"):])
    if name.startswith("video:") and name not in _FACTORIES:  # a user's GIF/MP4 folder
        from genstudio.core.data.video import load_video_folder

        return load_video_folder(name[len("video:"):])
    if name.startswith("transforms:") and name not in _FACTORIES:  # a user's scene, after a restart
        from genstudio.core.data.scenes import load_transforms_dataset

        return load_transforms_dataset(name[len("transforms:"):])
    if name not in _FACTORIES:
        raise UnknownDataset(f"unknown dataset {name!r}; known: {', '.join(dataset_names())}, folder:PATH, wav:PATH")
    return _FACTORIES[name][0]()


def _load_builtin() -> None:
    from genstudio.core.data import (  # noqa: F401  (registers on import)
        audio,  # noqa: F401  (procedural audio clips)
        captions,  # noqa: F401  (captioned shapes: text to image)
        digits,
        scenes,  # noqa: F401  (3-D scenes and neural-field targets)
        sprites,
        toys,
        video,  # noqa: F401  (moving-shapes clips)
    )
