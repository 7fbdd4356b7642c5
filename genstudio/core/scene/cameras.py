"""Pinhole cameras in the nerfstudio / instant-ngp convention, and the two camera files the 3D
world exchanges (nerfstudio ``transforms.json`` and INRIA 3DGS ``cameras.json``).

Convention everywhere in GenStudio: ``c2w`` is a 4x4 camera-to-world matrix in OpenGL camera axes
(+x right, +y up, the camera looks down -z). Pixel (i, j) covers [j, j+1) x [i, i+1) in (u, v) and
its centre is (j + 0.5, i + 0.5); v grows downwards. A camera-space point (x, y, z) with z < 0
projects to u = cx + fl_x * x / -z, v = cy - fl_y * y / -z.

INRIA's cameras.json stores, per camera, ``position`` (the camera centre) and ``rotation`` (the
camera-to-world rotation, rows) in COLMAP/OpenCV axes (+x right, +y down, looks down +z): its
``camera_to_JSON`` inverts the world-to-camera [R|T] and writes that inverse's columns. OpenCV and
OpenGL camera axes differ by flipping y and z, i.e. ``R_gl = R_cv @ diag(1, -1, -1)``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # flips y, z; its own inverse


class CameraFileError(ValueError):
    """A camera file that cannot be read (missing keys, bad matrices, not JSON)."""


@dataclass
class Camera:
    """A pinhole camera. ``c2w`` is a (4, 4) float tensor (OpenGL axes, see the module docstring)."""

    c2w: Tensor
    fl_x: float
    fl_y: float
    cx: float
    cy: float
    width: int
    height: int
    name: str = ""
    image_path: str | None = None  # the ground-truth image, if the camera came from a dataset file
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.c2w = torch.as_tensor(self.c2w, dtype=torch.float32).reshape(4, 4).clone()

    # -- geometry ----------------------------------------------------------------------------
    @property
    def position(self) -> Tensor:
        return self.c2w[:3, 3]

    @property
    def w2c(self) -> Tensor:
        """World-to-camera (OpenGL axes), computed in float64 for a clean inverse."""
        return torch.linalg.inv(self.c2w.double()).float()

    @property
    def fov_x(self) -> float:
        return 2 * math.atan(self.width / (2 * self.fl_x))

    @property
    def fov_y(self) -> float:
        return 2 * math.atan(self.height / (2 * self.fl_y))

    def intrinsics(self) -> Tensor:
        """3x3 K for OpenCV camera axes (the matrix COLMAP and 3DGS use)."""
        return torch.tensor([[self.fl_x, 0, self.cx], [0, self.fl_y, self.cy], [0, 0, 1.0]])

    def resized(self, width: int, height: int) -> Camera:
        """Same view at another resolution (focal lengths and principal point scale with it)."""
        sx, sy = width / self.width, height / self.height
        return replace(self, c2w=self.c2w, fl_x=self.fl_x * sx, fl_y=self.fl_y * sy, cx=self.cx * sx,
                       cy=self.cy * sy, width=int(width), height=int(height))

    def rays(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
             normalize: bool = True) -> tuple[Tensor, Tensor]:
        """Origins and directions (H, W, 3) through every pixel centre. With ``normalize`` the
        directions are unit vectors, so ray parameters are Euclidean distances."""
        dev = torch.device(device) if device is not None else self.c2w.device
        j = torch.arange(self.width, device=dev, dtype=dtype) + 0.5
        i = torch.arange(self.height, device=dev, dtype=dtype) + 0.5
        v, u = torch.meshgrid(i, j, indexing="ij")
        d_cam = torch.stack([(u - self.cx) / self.fl_x, -(v - self.cy) / self.fl_y, -torch.ones_like(u)], -1)
        c2w = self.c2w.to(dev, dtype)
        d = d_cam @ c2w[:3, :3].T
        if normalize:
            d = d / d.norm(dim=-1, keepdim=True)
        o = c2w[:3, 3].expand_as(d)
        return o, d

    def world_to_camera(self, points: Tensor) -> Tensor:
        """(N, 3) world points -> OpenGL camera coordinates (in front of the camera: z < 0)."""
        w2c = self.w2c.to(points.device, points.dtype)
        return points @ w2c[:3, :3].T + w2c[:3, 3]

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 3) world points -> pixel coordinates (N, 2) as (u, v) and depth (N,) along the view
        axis (positive in front of the camera)."""
        p = self.world_to_camera(points)
        depth = -p[:, 2]
        u = self.cx + self.fl_x * p[:, 0] / depth
        v = self.cy - self.fl_y * p[:, 1] / depth
        return torch.stack([u, v], -1), depth


def look_at(eye: Sequence[float] | Tensor, target: Sequence[float] | Tensor = (0, 0, 0),
            up: Sequence[float] | Tensor = (0, 0, 1)) -> Tensor:
    """c2w (OpenGL axes) of a camera at ``eye`` looking at ``target`` with ``up`` roughly up."""
    eye = torch.as_tensor(eye, dtype=torch.float64)
    fwd = torch.as_tensor(target, dtype=torch.float64) - eye
    fwd = fwd / fwd.norm()
    up_t = torch.as_tensor(up, dtype=torch.float64)
    right = torch.linalg.cross(fwd, up_t)
    if right.norm() < 1e-9:  # looking straight along up: pick any perpendicular
        right = torch.linalg.cross(fwd, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    right = right / right.norm()
    true_up = torch.linalg.cross(right, fwd)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, -fwd, eye
    return c2w.float()


def focal_from_fov(fov_rad: float, size: int) -> float:
    return 0.5 * size / math.tan(0.5 * fov_rad)


def sphere_cameras(n: int, radius: float = 4.0, *, width: int = 64, height: int | None = None,
                   fov_deg: float = 45.0, target: Sequence[float] = (0, 0, 0), up: Sequence[float] = (0, 0, 1),
                   min_elev_deg: float = 10.0, max_elev_deg: float = 70.0, offset: float = 0.0,
                   prefix: str = "view") -> list[Camera]:
    """``n`` cameras spread evenly (a Fibonacci spiral) over a band of elevations of a sphere around
    ``target``, all looking at it. ``offset`` in [0, 1) shifts the spiral (held-out sets use another)."""
    height = height or width
    fl = focal_from_fov(math.radians(fov_deg), width)
    golden = math.pi * (3 - math.sqrt(5))
    zlo, zhi = math.sin(math.radians(min_elev_deg)), math.sin(math.radians(max_elev_deg))
    tgt = torch.as_tensor(target, dtype=torch.float32)
    cams = []
    for k in range(n):
        f = (k + 0.5 + offset) / n
        z = zlo + (zhi - zlo) * (f % 1.0)
        r = math.sqrt(max(0.0, 1 - z * z))
        a = golden * (k + offset * 7.3)
        eye = tgt + radius * torch.tensor([r * math.cos(a), r * math.sin(a), z])
        cams.append(Camera(look_at(eye, tgt, up), fl, fl, width / 2, height / 2, width, height, f"{prefix}_{k:03d}"))
    return cams


def orbit_cameras(n: int, radius: float = 4.0, elev_deg: float = 30.0, **kw) -> list[Camera]:
    """``n`` cameras on a horizontal circle (a turntable), for previews and videos."""
    return sphere_cameras_at([(360.0 * k / n, elev_deg) for k in range(n)], radius, **kw)


def sphere_cameras_at(az_elev_deg: Sequence[tuple[float, float]], radius: float = 4.0, *, width: int = 64,
                      height: int | None = None, fov_deg: float = 45.0, target: Sequence[float] = (0, 0, 0),
                      up: Sequence[float] = (0, 0, 1), prefix: str = "orbit") -> list[Camera]:
    """Cameras at given (azimuth, elevation) in degrees on a sphere (z up) looking at ``target``."""
    height = height or width
    fl = focal_from_fov(math.radians(fov_deg), width)
    tgt = torch.as_tensor(target, dtype=torch.float32)
    out = []
    for k, (az, el) in enumerate(az_elev_deg):
        a, e = math.radians(az), math.radians(el)
        eye = tgt + radius * torch.tensor([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
        out.append(Camera(look_at(eye, tgt, up), fl, fl, width / 2, height / 2, width, height, f"{prefix}_{k:03d}"))
    return out


# -- conversions -------------------------------------------------------------------------------
def opencv_c2w_to_gl(c2w_cv: Tensor) -> Tensor:
    """Camera-to-world with OpenCV camera axes -> OpenGL camera axes (flip camera y and z)."""
    out = torch.as_tensor(c2w_cv, dtype=torch.float32).clone()
    out[:3, :3] = out[:3, :3] @ GL_TO_CV
    return out


gl_c2w_to_opencv = opencv_c2w_to_gl  # the flip is an involution


# -- nerfstudio / instant-ngp transforms.json --------------------------------------------------
def _number(src: dict, key: str, where: str, *, positive: bool = True) -> float:
    """``src[key]`` as a finite float (> 0 unless ``positive`` is False): JSON null, strings,
    booleans, NaN and zero focal lengths otherwise fail later, far from the file."""
    v = src[key]
    try:
        x = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
    except OverflowError:  # a JSON integer of hundreds of digits
        x = math.inf
    if not math.isfinite(x) or (positive and x <= 0):
        raise CameraFileError(f"{where}: {key} must be a {'positive' if positive else 'finite'} number, got {v!r}")
    return x


def _pixels(src: dict, key: str, where: str) -> int:
    """An image side (``w`` or ``h``): a positive whole number of pixels."""
    x = _number(src, key, where)
    if x != int(x):
        raise CameraFileError(f"{where}: {key} must be a whole number of pixels, got {src[key]!r}")
    return int(x)


def _angle(src: dict, key: str, where: str) -> float:
    """A field of view in radians, in (0, pi) (0 makes the focal length infinite)."""
    a = _number(src, key, where)
    if a >= math.pi:
        raise CameraFileError(f"{where}: {key} must be in (0, pi) radians, got {src[key]!r}")
    return a


def _intrinsics(d: dict, fallback: dict | None = None, where: str = "transforms.json") -> dict:
    """fl_x, fl_y, cx, cy, w, h from a transforms dict (frame-level keys override global ones);
    ``where`` (file and frame) starts the message of a :class:`CameraFileError` on a bad value."""
    src = {**(fallback or {}), **d}
    if "w" not in src or "h" not in src:
        raise CameraFileError(f"{where}: no image size (w, h)")
    w, h = _pixels(src, "w", where), _pixels(src, "h", where)
    if "fl_x" in src:
        fl_x = _number(src, "fl_x", where)
    elif "camera_angle_x" in src:
        fl_x = focal_from_fov(_angle(src, "camera_angle_x", where), w)
    else:
        raise CameraFileError(f"{where}: neither fl_x nor camera_angle_x")
    if "fl_y" in src:
        fl_y = _number(src, "fl_y", where)
    elif "camera_angle_y" in src:
        fl_y = focal_from_fov(_angle(src, "camera_angle_y", where), h)
    else:
        fl_y = fl_x
    cx = _number(src, "cx", where, positive=False) if "cx" in src else w / 2
    cy = _number(src, "cy", where, positive=False) if "cy" in src else h / 2
    return {"fl_x": fl_x, "fl_y": fl_y, "cx": cx, "cy": cy, "width": w, "height": h}


def _image_size(path: Path) -> tuple[int, int] | None:
    from genstudio.core.data.images import image_size

    try:
        return image_size(path)
    except OSError:
        return None


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies under ``root``, by absolute names (abspath folds ``..``)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(root))


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CameraFileError(f"camera file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CameraFileError(f"{path.name} is not readable JSON: {exc}") from None


def _matrix(value: object, shape: tuple[int, ...], what: str) -> Tensor:
    try:
        t = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise CameraFileError(f"{what} is not a numeric matrix") from None
    if tuple(t.shape) != shape and not (shape == (4, 4) and tuple(t.shape) == (3, 4)):
        raise CameraFileError(f"{what} has shape {tuple(t.shape)}, expected {shape}")
    if not torch.isfinite(t).all():
        raise CameraFileError(f"{what} has non-finite entries")
    if t.shape == (3, 4):
        t = torch.cat([t, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    return t.float()


def load_transforms(path: str | os.PathLike) -> list[Camera]:
    """Cameras of a nerfstudio / instant-ngp ``transforms.json`` (a file, or a folder holding one).

    Each camera's ``image_path`` is the frame's ``file_path`` resolved against the file's folder
    (a missing extension is tried as .png, as the NeRF Blender sets omit it). A ``file_path`` that
    leads outside that folder (absolute, or through ``..``) is refused: a downloaded scene must not
    make us open ``/etc/passwd``. Symbolic links inside the folder are followed (the user put them
    there). When the file gives no ``w``/``h`` (the original Blender sets), the size is read from
    the first image.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "transforms.json"
    data = _read_json(p)
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise CameraFileError(f"{p.name} has no 'frames' list")
    root = p.parent
    glob = {k: v for k, v in data.items() if k != "frames"}
    cams = []
    for k, fr in enumerate(data["frames"]):
        where = f"{p} frame {k}"
        if not isinstance(fr, dict) or "transform_matrix" not in fr:
            raise CameraFileError(f"{where}: no transform_matrix")
        img = None
        if fr.get("file_path"):
            img = Path(os.path.abspath(root / str(fr["file_path"])))
            if not _inside(img, root):
                raise CameraFileError(f"{where}: file_path {fr['file_path']!r} is outside the scene folder {root}")
            if not img.suffix and not img.exists() and img.with_suffix(".png").exists():
                img = img.with_suffix(".png")
        if ("w" not in glob and "w" not in fr) and img is not None:
            size = _image_size(img)
            if size:
                glob["w"], glob["h"] = size
        intr = _intrinsics({k2: v for k2, v in fr.items() if k2 != "transform_matrix"}, glob, where)
        c2w = _matrix(fr["transform_matrix"], (4, 4), f"{where}: transform_matrix")
        cams.append(Camera(c2w, name=Path(str(fr.get("file_path", f"frame_{k:04d}"))).stem,
                           image_path=str(img) if img else None, **intr))
    return cams


def save_transforms(path: str | os.PathLike, cameras: Sequence[Camera],
                    image_paths: Sequence[str | os.PathLike | None] | None = None) -> Path:
    """Write a nerfstudio ``transforms.json``. Intrinsics shared by all cameras are written once at
    the top level, others per frame; image paths are stored relative to the file's folder, so they
    must lie inside it (:func:`load_transforms` refuses the others; CameraFileError here)."""
    p = Path(path)
    if p.suffix != ".json":
        p = p / "transforms.json"
    images = list(image_paths) if image_paths is not None else [c.image_path for c in cameras]
    outside = [str(i) for i in images if i is not None and not _inside(Path(i), p.parent)]
    if outside:
        raise CameraFileError(f"image {outside[0]} is outside the scene folder {p.parent}; move it inside")
    p.parent.mkdir(parents=True, exist_ok=True)
    keys = ("fl_x", "fl_y", "cx", "cy", "w", "h")

    def intr(c: Camera) -> dict:
        return {"fl_x": c.fl_x, "fl_y": c.fl_y, "cx": c.cx, "cy": c.cy, "w": c.width, "h": c.height}

    first = intr(cameras[0]) if cameras else {}
    shared = {k: first[k] for k in keys if all(intr(c)[k] == first[k] for c in cameras)}
    frames = []
    for k, c in enumerate(cameras):
        img = images[k]
        fr: dict = {}
        if img is not None:
            fr["file_path"] = Path(os.path.relpath(os.path.abspath(img), os.path.abspath(p.parent))).as_posix()
        fr["transform_matrix"] = c.c2w.double().tolist()
        fr.update({kk: v for kk, v in intr(c).items() if kk not in shared})
        frames.append(fr)
    out = {"camera_model": "OPENCV", **shared, "frames": frames}
    p.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return p


# -- INRIA 3DGS cameras.json -------------------------------------------------------------------
def load_inria_cameras(path: str | os.PathLike) -> list[Camera]:
    """Cameras of an INRIA 3DGS ``cameras.json`` (principal point at the image centre, which is
    all that format records)."""
    p = Path(path)
    if p.is_dir():
        p = p / "cameras.json"
    data = _read_json(p)
    if not isinstance(data, list):
        raise CameraFileError(f"{p.name}: expected a list of cameras")
    cams = []
    for k, d in enumerate(data):
        try:
            w, h, fx, fy = int(d["width"]), int(d["height"]), float(d["fx"]), float(d["fy"])
            rot, pos = d["rotation"], d["position"]
        except (KeyError, TypeError, ValueError):
            raise CameraFileError(f"camera {k} lacks width/height/fx/fy/rotation/position") from None
        c2w_cv = torch.eye(4)
        c2w_cv[:3, :3] = _matrix(rot, (3, 3), f"camera {k} rotation")
        c2w_cv[:3, 3] = _matrix(pos, (3,), f"camera {k} position")
        cams.append(Camera(opencv_c2w_to_gl(c2w_cv), fx, fy, w / 2, h / 2, w, h,
                           name=str(d.get("img_name", f"{k:05d}")), meta={"id": d.get("id", k)}))
    return cams


def save_inria_cameras(path: str | os.PathLike, cameras: Sequence[Camera]) -> Path:
    """Write an INRIA 3DGS ``cameras.json`` (rotation = camera-to-world rows, OpenCV axes)."""
    p = Path(path)
    if p.suffix != ".json":
        p = p / "cameras.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for k, c in enumerate(cameras):
        cv = gl_c2w_to_opencv(c.c2w).double()
        out.append({"id": k, "img_name": c.name or f"{k:05d}", "width": c.width, "height": c.height,
                    "position": cv[:3, 3].tolist(), "rotation": cv[:3, :3].tolist(),
                    "fy": c.fl_y, "fx": c.fl_x})
    p.write_text(json.dumps(out), encoding="utf-8")
    return p


def stack_c2w(cameras: Sequence[Camera]) -> np.ndarray:
    """(N, 4, 4) float32 array of the cameras' c2w (for viewers drawing frustums)."""
    return np.stack([c.c2w.numpy() for c in cameras]) if cameras else np.zeros((0, 4, 4), np.float32)
