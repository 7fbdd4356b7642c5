"""Scene item type -> vispy visual, one table (as napari's ``layer_to_visual``).

``make_visual(item, parent)`` looks the item's type up (along its MRO) in :data:`VISUALS`:
:class:`~genstudio.core.scene.gaussians.Gaussians` -> EWA splats, :class:`Frustums` (training
cameras) -> line segments, ``MeshScene`` -> Mesh, ``VolumeScene`` -> iso-surface mesh,
``ImageScene`` -> Image. vispy is imported only when a visual is made (the package itself is
GL-free, so panels can import it without an OpenGL context).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genstudio.qt.visuals import geometry as geo


@dataclass
class Frustums:
    """Training cameras to draw as pyramids; ``scale`` = pyramid depth in world units."""

    cameras: Sequence[Any]  # genstudio.core.scene.cameras.Camera
    scale: float = 0.3
    color: tuple[float, float, float, float] = (0.3, 0.8, 1.0, 1.0)

    def segments(self) -> np.ndarray:
        return geo.frustum_segments([c.c2w.numpy() for c in self.cameras],
                                    [(c.fov_x, c.fov_y) for c in self.cameras], self.scale)

    def centres(self) -> np.ndarray:
        return np.array([c.c2w[:3, 3].numpy() for c in self.cameras], np.float64).reshape(-1, 3)


def _splats(item: Any, parent: Any) -> Any:
    from genstudio.qt.visuals.splat import Splats, splat_arrays
    return Splats(splat_arrays(item), parent=parent)


def _frustums(item: Frustums, parent: Any) -> Any:
    from vispy.scene.visuals import Line
    return Line(item.segments(), color=item.color, connect="segments", parent=parent, antialias=False)


def _mesh(item: Any, parent: Any) -> Any:
    from vispy.scene.visuals import Mesh
    if not len(item.faces):
        return Mesh(parent=parent)  # nothing to draw (vispy cannot bound an empty vertex array)
    colors = None
    if item.colors is not None:
        colors = np.c_[np.asarray(item.colors, np.float32), np.ones(len(item.colors), np.float32)]
    m = Mesh(np.asarray(item.vertices, np.float32), np.asarray(item.faces, np.uint32), vertex_colors=colors,
             color=(0.75, 0.75, 0.8, 1.0), shading="smooth", parent=parent)
    return m


def volume_mesh(item: Any) -> Any:
    """A VolumeScene's iso-surface at its ``suggested_level`` as a MeshScene (world units), coloured
    by the nearest voxel's rgb when the field has one."""
    from skimage.measure import marching_cubes

    from genstudio.core.scene.exports import MeshScene
    dens = np.asarray(item.density, np.float32)
    lo, hi = np.asarray(item.lo, np.float64), np.asarray(item.hi, np.float64)
    level = float(item.suggested_level)
    if not dens.min() < level < dens.max():  # an early model: outline its densest 3 % instead
        level = float(np.percentile(dens, 97))
    if not dens.min() < level < dens.max():
        return MeshScene(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    verts, faces, normals, _ = marching_cubes(dens, level)
    step = (hi - lo) / (np.array(dens.shape) - 1)
    colors = None
    if item.rgb is not None:
        idx = np.clip(np.rint(verts).astype(int), 0, np.array(dens.shape) - 1)
        colors = np.asarray(item.rgb)[idx[:, 0], idx[:, 1], idx[:, 2]]
    return MeshScene((lo + verts * step).astype(np.float32), faces.astype(np.int32), normals, colors)


def _volume(item: Any, parent: Any) -> Any:
    return _mesh(volume_mesh(item), parent)


def _image(item: Any, parent: Any) -> Any:
    from vispy.scene.visuals import Image
    return Image(np.asarray(item.image, np.float32), parent=parent)


def _table() -> dict[type, Callable[[Any, Any], Any]]:
    from genstudio.core.scene.exports import ImageScene, MeshScene, VolumeScene
    from genstudio.core.scene.gaussians import Gaussians
    return {Gaussians: _splats, Frustums: _frustums, MeshScene: _mesh, VolumeScene: _volume, ImageScene: _image}


VISUALS: dict[type, Callable[[Any, Any], Any]] = _table()


def make_visual(item: Any, parent: Any = None) -> Any:
    """The vispy scene node that draws ``item`` (added under ``parent``)."""
    for cls in type(item).__mro__:
        if cls in VISUALS:
            return VISUALS[cls](item, parent)
    raise TypeError(f"no 3-D visual for {type(item).__name__}")
