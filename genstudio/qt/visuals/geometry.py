"""Pure numpy geometry behind the 3-D viewers (no vispy, no GL), so it is testable anywhere.

The splat shader and these functions share one formula: a 3-D covariance seen through a projective
map P (world -> clip, 4x4) has the 2-D pixel covariance J Sigma J^T, where J is the Jacobian of
the pixel position at the mean (EWA splatting, Zwicker et al. 2002). For a pinhole camera J equals
the textbook ``J W`` of :func:`genstudio.core.scene.gaussians.project_gaussians`; working from P
directly makes the viewer independent of which vispy camera (turntable, fly) produced it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DILATION = 0.3  # pixels^2 added to every 2-D covariance (the rasteriser's low-pass filter)


def pack_covariances(cov: np.ndarray) -> np.ndarray:
    """(N, 3, 3) symmetric -> (N, 6): xx, xy, xz, yy, yz, zz (the layout the shader reads)."""
    return np.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 1], cov[:, 1, 2], cov[:, 2, 2]], 1)


def pixel_jacobian(clip: np.ndarray, means: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (N, 2) (x right, y up, origin at the viewport centre) and d(pixel)/d(world)
    (N, 2, 3) of points seen through ``clip`` (4x4, column-vector convention) in a viewport ``size``
    = (width, height). Pixel = (clip.xy / clip.w) * size / 2."""
    half = np.asarray(size, np.float64) / 2
    h = np.c_[means, np.ones(len(means))] @ clip.T  # (N, 4)
    w = h[:, 3:4]
    ndc = h[:, :2] / w
    jac = (clip[None, :2, :3] - ndc[:, :, None] * clip[None, 3:4, :3]) / w[:, :, None]
    return ndc * half, jac * half[None, :, None]


def covariance_2d(clip: np.ndarray, means: np.ndarray, cov3d: np.ndarray, size: tuple[int, int],
                  dilation: float = DILATION) -> np.ndarray:
    """EWA 2-D pixel covariance (N, 2, 2) = J Sigma J^T + dilation I (what the shader computes)."""
    _, jac = pixel_jacobian(clip, means, size)
    return jac @ cov3d @ jac.transpose(0, 2, 1) + dilation * np.eye(2)


def ellipse_axes(cov2d: np.ndarray, n_sigma: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Half-axes of the ``n_sigma`` ellipse of 2-D covariances (N, 2, 2): (major (N, 2), minor (N, 2)).
    The closed-form eigen-decomposition the shader uses (one quad per splat spans major x minor)."""
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    mid = 0.5 * (a + c)
    rad = np.sqrt(np.maximum(0.25 * (a - c) ** 2 + b * b, 0.0))
    lam1, lam2 = mid + rad, np.maximum(mid - rad, 0.0)
    # eigenvector of lam1: (b, lam1 - a), or (1, 0) when the matrix is already diagonal with a >= c
    v = np.stack([b, lam1 - a], 1)
    diag = np.hypot(v[:, 0], v[:, 1]) < 1e-12
    v[diag] = np.where((a >= c)[diag, None], [1.0, 0.0], [0.0, 1.0])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    perp = np.stack([-v[:, 1], v[:, 0]], 1)
    return n_sigma * np.sqrt(lam1)[:, None] * v, n_sigma * np.sqrt(lam2)[:, None] * perp


def lod_order(n: int, seed: int = 0) -> np.ndarray:
    """A fixed random permutation of range(n): the first k entries are the k-splat level of detail.
    Nested and fixed, so moving the budget slider adds/removes splats without the rest flickering."""
    return np.random.default_rng(seed).permutation(n)


def lod_indices(n: int, budget: int, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of at most ``budget`` of ``n`` splats; the same for the same (n, seed)."""
    return np.sort(lod_order(n, seed)[: max(0, min(n, budget))])


def back_to_front(clip: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Order drawing far-to-near (the "over" operator needs it): by clip w (the view depth) for a
    perspective view, by clip z for an orthographic one (constant w); both are linear, so float32
    keys stay exact enough, and introsort on them is ~10x faster than a stable float64 sort."""
    row = 3 if np.abs(clip[3, :3]).max() > 1e-12 else 2
    key = np.asarray(means, np.float32) @ clip[row, :3].astype(np.float32) + np.float32(clip[row, 3])
    return np.argsort(-key)


# -- cameras ------------------------------------------------------------------------------------
def clip_matrix(c2w: np.ndarray, fl_x: float, fl_y: float, width: int, height: int,
                near: float = 0.01, far: float = 100.0) -> np.ndarray:
    """World -> clip (4x4) of a centred pinhole camera (OpenGL axes), as a GL viewer would build it."""
    w2c = np.linalg.inv(np.asarray(c2w, np.float64))
    proj = np.zeros((4, 4))
    proj[0, 0], proj[1, 1] = 2 * fl_x / width, 2 * fl_y / height
    proj[2, 2], proj[2, 3] = -(far + near) / (far - near), -2 * far * near / (far - near)
    proj[3, 2] = -1.0
    return proj @ w2c


def camera_from_clip(clip: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, float]:
    """Invert :func:`clip_matrix`: (c2w 4x4 in OpenGL axes, fl_x, fl_y) of the camera behind a
    perspective world -> clip matrix. The eye is where x, y and w all vanish; w grows along the view
    direction; the x and y rows, taken perpendicular to it, are the right and up axes times the focal."""
    clip = np.asarray(clip, np.float64)
    eye = np.linalg.solve(clip[[0, 1, 3], :3], -clip[[0, 1, 3], 3])
    fwd_raw = clip[3, :3]
    s = np.linalg.norm(fwd_raw)
    fwd = fwd_raw / s
    rx = clip[0, :3] - (clip[0, :3] @ fwd) * fwd
    ry = clip[1, :3] - (clip[1, :3] @ fwd) * fwd
    fl_x = np.linalg.norm(rx) / s * width / 2
    fl_y = np.linalg.norm(ry) / s * height / 2
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = rx / np.linalg.norm(rx), ry / np.linalg.norm(ry), -fwd, eye
    return c2w, float(fl_x), float(fl_y)


def frustum_segments(c2ws: Sequence[np.ndarray], fovs: Sequence[tuple[float, float]], scale: float) -> np.ndarray:
    """Line segments (8 per camera: 4 edges from the eye, 4 around the image plane) as (16 K, 3)
    vertices for ``connect="segments"``. ``fovs`` are (fov_x, fov_y) in radians; ``scale`` = depth."""
    out = []
    for c2w, (fx, fy) in zip(c2ws, fovs):
        c2w = np.asarray(c2w, np.float64)
        tx, ty = math.tan(fx / 2) * scale, math.tan(fy / 2) * scale
        corners_cam = np.array([[-tx, -ty, -scale], [tx, -ty, -scale], [tx, ty, -scale], [-tx, ty, -scale]])
        corners = corners_cam @ c2w[:3, :3].T + c2w[:3, 3]
        eye = c2w[:3, 3]
        for i in range(4):
            out += [eye, corners[i], corners[i], corners[(i + 1) % 4]]
    return np.asarray(out, np.float32).reshape(-1, 3)


def project_points(clip: np.ndarray, points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """World points -> canvas pixels (x right, y down, origin top-left); NaN behind the camera."""
    h = np.c_[points, np.ones(len(points))] @ np.asarray(clip, np.float64).T
    w = h[:, 3]
    ndc = h[:, :2] / np.where(w > 1e-9, w, np.nan)[:, None]
    return np.stack([(ndc[:, 0] + 1) * size[0] / 2, (1 - ndc[:, 1]) * size[1] / 2], 1)


def pick_nearest(screen: np.ndarray, click: tuple[float, float], radius: float = 12.0) -> int | None:
    """Index of the screen point nearest ``click`` within ``radius`` pixels, else None."""
    if len(screen) == 0:
        return None
    d = np.hypot(screen[:, 0] - click[0], screen[:, 1] - click[1])
    d = np.where(np.isnan(d), np.inf, d)
    i = int(np.argmin(d))
    return i if d[i] <= radius else None


def depth_colormap(t: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB, a short blue-to-yellow ramp (near = yellow) used by the depth render mode."""
    t = np.clip(np.asarray(t, np.float64), 0, 1)[..., None]
    return (1 - t) * np.array([0.99, 0.91, 0.15]) + t * np.array([0.13, 0.15, 0.55])
