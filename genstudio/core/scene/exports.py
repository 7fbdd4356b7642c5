"""What ``SceneModel.export_scene()`` returns: detached CPU snapshots a 3-D viewer can draw
without touching the model (so the GUI never calls into a model that is training).

- :class:`~genstudio.core.scene.gaussians.Gaussians` for splatting (draw as ellipses);
- :class:`VolumeScene` for NeRF (density / colour on a grid: a volume or an iso-surface);
- :class:`MeshScene` for SDF fields (marching-cubes output);
- :class:`ImageScene` for 2-D fields (nothing 3-D to show: a picture).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class VolumeScene:
    """``density`` (D, D, D) float32 indexed [x, y, z] over the box [lo, hi]; ``rgb`` (D, D, D, 3) the
    colour seen from above (view-dependent fields have no single colour) or None."""

    density: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    rgb: np.ndarray | None = None
    suggested_level: float = 10.0  # an iso-level that outlines surfaces (sigma where alpha ~ 1 - e^-1 per voxel)
    meta: dict = field(default_factory=dict)


@dataclass
class MeshScene:
    vertices: np.ndarray  # (V, 3) float32, world units
    faces: np.ndarray  # (F, 3) int32
    normals: np.ndarray | None = None  # (V, 3)
    colors: np.ndarray | None = None  # (V, 3) in [0, 1]
    meta: dict = field(default_factory=dict)


@dataclass
class ImageScene:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    meta: dict = field(default_factory=dict)
