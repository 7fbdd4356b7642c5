"""Camera paths for 3-D fly-throughs: keyframes (a pose and a field of view), interpolated at
evenly spaced times (positions and fields of view linearly, orientations by spherical linear
interpolation, scipy's ``Slerp``, so the camera turns at a steady rate and never shears), a JSON
file to keep them, and the frames a Scene model renders along the path. Shared by the 3-D viewers'
"Export fly-through…" and ``genstudio flythrough``; no Qt here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genstudio.core.scene.cameras import Camera, CameraFileError, focal_from_fov, sphere_cameras_at

SCHEMA = 1


@dataclass
class Keyframe:
    """A camera pose (4x4 c2w, OpenGL axes as everywhere in GenStudio) and its vertical field of view."""

    c2w: np.ndarray
    fov_y_deg: float = 40.0

    def __post_init__(self) -> None:
        self.c2w = np.asarray(self.c2w, np.float64).reshape(4, 4)

    @classmethod
    def from_camera(cls, cam: Camera) -> Keyframe:
        return cls(cam.c2w.double().numpy(), math.degrees(cam.fov_y))


def interpolate(keyframes: Sequence[Keyframe], n_frames: int) -> list[Keyframe]:
    """``n_frames`` poses along the keyframes (first and last included, keyframes equally spaced in
    time): positions and fields of view lerped, rotations slerped. One keyframe: held still."""
    from scipy.spatial.transform import Rotation, Slerp

    if not keyframes:
        raise ValueError("no keyframes: add at least one (two to move)")
    n_frames = max(1, int(n_frames))
    if len(keyframes) == 1:
        return [Keyframe(keyframes[0].c2w.copy(), keyframes[0].fov_y_deg) for _ in range(n_frames)]
    times = np.arange(len(keyframes), dtype=np.float64)
    u = np.linspace(0.0, times[-1], n_frames)
    mats = np.stack([k.c2w for k in keyframes])
    rots = Slerp(times, Rotation.from_matrix(mats[:, :3, :3]))(u).as_matrix()
    pos = np.stack([np.interp(u, times, mats[:, i, 3]) for i in range(3)], -1)
    fov = np.interp(u, times, [k.fov_y_deg for k in keyframes])
    out = []
    for r, p, f in zip(rots, pos, fov):
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = r, p
        out.append(Keyframe(c2w, float(f)))
    return out


def to_camera(k: Keyframe, width: int, height: int) -> Camera:
    """A pinhole camera of ``width`` x ``height`` pixels at keyframe ``k`` (square pixels)."""
    fl = focal_from_fov(math.radians(k.fov_y_deg), height)
    return Camera(torch.as_tensor(k.c2w, dtype=torch.float32), fl, fl, width / 2, height / 2, int(width), int(height))


def path_cameras(keyframes: Sequence[Keyframe], n_frames: int, width: int, height: int) -> list[Camera]:
    return [to_camera(k, width, height) for k in interpolate(keyframes, n_frames)]


def orbit_keyframes(radius: float, *, n: int = 8, elev_deg: float = 25.0, target: Sequence[float] = (0, 0, 0),
                    fov_deg: float = 40.0) -> list[Keyframe]:
    """A closed turntable of ``n`` + 1 keyframes around ``target`` (the default path)."""
    cams = sphere_cameras_at([(360.0 * i / n, elev_deg) for i in range(n + 1)], radius, target=target,
                             fov_deg=fov_deg)
    return [Keyframe(c.c2w.double().numpy(), fov_deg) for c in cams]


def save_keyframes(path: str | os.PathLike, keyframes: Sequence[Keyframe]) -> Path:
    p = Path(path)
    data = {"schema": SCHEMA, "keyframes": [{"c2w": k.c2w.tolist(), "fov_y_deg": k.fov_y_deg} for k in keyframes]}
    p.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return p


def load_keyframes(path: str | os.PathLike) -> list[Keyframe]:
    """Keyframes of a file :func:`save_keyframes` wrote; CameraFileError naming what is wrong."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CameraFileError(f"{p.name} is not a readable keyframes file: {e}") from None
    items = data.get("keyframes") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise CameraFileError(f"{p.name} has no 'keyframes' list")
    out = []
    for i, k in enumerate(items):
        try:
            c2w = np.asarray(k["c2w"], np.float64)
            fov = float(k.get("fov_y_deg", 40.0))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CameraFileError(f"{p.name} keyframe {i}: expected {{'c2w': 4x4, 'fov_y_deg': degrees}}") from None
        if c2w.shape != (4, 4) or not np.isfinite(c2w).all() or not 0 < fov < 180:
            raise CameraFileError(f"{p.name} keyframe {i}: c2w must be a finite 4x4 matrix and fov in (0, 180)")
        r = c2w[:3, :3]
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-4):
            raise CameraFileError(f"{p.name} keyframe {i}: the rotation part of c2w is not orthonormal")
        out.append(Keyframe(c2w, fov))
    return out


def flythrough_frames(render: Callable[[Camera], Any], cameras: Sequence[Camera]) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames of ``render(camera)`` ((H, W, 3) in [0, 1], a tensor or an array) along
    the path; a generator, so a caller can show progress or stop."""
    for cam in cameras:
        img = render(cam)
        a = img.detach().float().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, np.float32)
        yield (np.clip(a[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)


def scene_render(model: Any) -> Callable[[Camera], Any]:
    """The Scene face's ``render(camera, width, height)`` at the camera's own size."""
    return lambda cam: model.render(cam, width=cam.width, height=cam.height)


def default_keyframes(model: Any) -> list[Keyframe]:
    """An orbit around a Scene model's content: at its training cameras' median distance and
    elevation when it has them (``model.scene``), else 4 units out at 25 degrees."""
    scene = getattr(model, "scene", None)
    cams = list(getattr(scene, "cameras", None) or [])
    if not cams:
        return orbit_keyframes(4.0)
    lo, hi = (np.asarray(t, np.float64) for t in scene.bbox)
    centre = (lo + hi) / 2
    rel = np.stack([c.position.double().numpy() for c in cams]) - centre
    dist = np.linalg.norm(rel, axis=1)
    elev = math.degrees(float(np.median(np.arcsin(np.clip(rel[:, 2] / np.maximum(dist, 1e-9), -1, 1)))))
    return orbit_keyframes(float(np.median(dist)), elev_deg=elev, target=centre,
                           fov_deg=math.degrees(cams[0].fov_y))
