"""Neural fields: coordinate MLPs (SIREN, Fourier features, plain ReLU), analytic signed distance
functions, sphere tracing, and marching cubes to a mesh.

SIREN: Sitzmann et al. 2020 (sin activations, w0 = 30 and their uniform init). Fourier features:
Tancik et al. 2020 (gamma(v) = [cos 2 pi B v, sin 2 pi B v], B ~ N(0, scale^2), fixed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn


def make_mlp(in_dim: int, hidden: int, depth: int, out_dim: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with ``act`` between them, linear output."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), act()]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class SineLayer(nn.Module):
    """y = sin(w0 (W x + b)) with SIREN's initialisation (keeps activations ~arcsine distributed)."""

    def __init__(self, in_dim: int, out_dim: int, w0: float = 30.0, first: bool = False) -> None:
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(in_dim, out_dim)
        bound = 1.0 / in_dim if first else math.sqrt(6.0 / in_dim) / w0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.w0 * self.linear(x))


class Siren(nn.Module):
    """Sine-activated MLP: coordinates (..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, hidden: int = 128, depth: int = 3, out_dim: int = 3, w0: float = 30.0) -> None:
        super().__init__()
        layers = [SineLayer(in_dim, hidden, w0, first=True)] + [SineLayer(hidden, hidden, w0) for _ in range(depth - 1)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, out_dim)
        bound = math.sqrt(6.0 / hidden) / w0
        with torch.no_grad():
            self.out.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))


class FourierFeatures(nn.Module):
    """Random Fourier features of coordinates; B is a fixed buffer (saved with the model)."""

    def __init__(self, in_dim: int, n_features: int = 128, scale: float = 10.0, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(in_dim, n_features, generator=g) * scale)

    @property
    def out_dim(self) -> int:
        return 2 * self.B.shape[1]

    def forward(self, x: Tensor) -> Tensor:
        proj = 2 * math.pi * x @ self.B
        return torch.cat([proj.cos(), proj.sin()], -1)


class FourierMLP(nn.Module):
    """Fourier features followed by a ReLU MLP."""

    def __init__(self, in_dim: int, hidden: int = 128, depth: int = 3, out_dim: int = 3, n_features: int = 128,
                 scale: float = 10.0, seed: int = 0) -> None:
        super().__init__()
        self.features = FourierFeatures(in_dim, n_features, scale, seed)
        self.mlp = make_mlp(self.features.out_dim, hidden, depth, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.features(x))


# -- signed distance functions ------------------------------------------------------------------
def sdf_sphere(p: Tensor, radius: float = 0.6) -> Tensor:
    return p.norm(dim=-1) - radius


def sdf_torus(p: Tensor, major: float = 0.55, minor: float = 0.22) -> Tensor:
    """Torus around the z axis."""
    q = torch.stack([p[..., :2].norm(dim=-1) - major, p[..., 2]], -1)
    return q.norm(dim=-1) - minor


def sdf_round_box(p: Tensor, half: float = 0.45, radius: float = 0.12) -> Tensor:
    q = p.abs() - (half - radius)
    return q.clamp_min(0).norm(dim=-1) + q.max(-1).values.clamp(max=0) - radius


SHAPES: dict[str, Callable[[Tensor], Tensor]] = {"sphere": sdf_sphere, "torus": sdf_torus, "roundbox": sdf_round_box}


def sdf_normals(fn: Callable[[Tensor], Tensor], p: Tensor, eps: float = 1e-3) -> Tensor:
    """Unit normals as the central-difference gradient of ``fn`` (works for networks and formulas)."""
    offs = torch.eye(3, device=p.device, dtype=p.dtype) * eps
    grad = torch.stack([fn(p + o) - fn(p - o) for o in offs], -1)
    return torch.nn.functional.normalize(grad, dim=-1)


def sphere_trace(fn: Callable[[Tensor], Tensor], origins: Tensor, dirs: Tensor, *, near: float = 0.0,
                 far: float = 10.0, steps: int = 64, eps: float = 1e-3) -> tuple[Tensor, Tensor]:
    """March unit-direction rays by the SDF value; returns (hit mask, distance). Learned SDFs are
    only roughly Lipschitz-1, so steps are damped a little."""
    t = torch.full(origins.shape[:-1], near, device=origins.device, dtype=origins.dtype)
    hit = torch.zeros_like(t, dtype=torch.bool)
    for _ in range(steps):
        d = fn(origins + t[..., None] * dirs)
        hit = hit | (d.abs() < eps)
        t = torch.where(hit, t, t + 0.9 * d.clamp_min(-0.05))
        if bool(((t > far) | hit).all()):
            break
    return hit & (t <= far), t


def shade_sdf(fn: Callable[[Tensor], Tensor], origins: Tensor, dirs: Tensor, *, light: Tensor | None = None,
              color: tuple[float, float, float] = (0.8, 0.75, 0.7), background: float = 1.0, **kw) -> Tensor:
    """Lambert-shaded image of an SDF's zero level set seen along the given rays: (..., 3) in [0, 1]."""
    hit, t = sphere_trace(fn, origins, dirs, **kw)
    p = origins + t[..., None] * dirs
    n = sdf_normals(fn, p)
    light = light if light is not None else torch.nn.functional.normalize(torch.tensor([0.4, -0.3, 0.85]), dim=0)
    lam = (n * light.to(p)).sum(-1).clamp_min(0)
    rgb = torch.tensor(color, device=p.device, dtype=p.dtype) * (0.3 + 0.7 * lam)[..., None]
    return torch.where(hit[..., None], rgb, torch.full_like(rgb, background))


def grid_points(resolution: int, bound: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    """(R^3, 3) points of a regular grid over [-bound, bound]^3 in (x, y, z) 'ij' order."""
    a = torch.linspace(-bound, bound, resolution, device=device)
    return torch.stack(torch.meshgrid(a, a, a, indexing="ij"), -1).reshape(-1, 3)


@torch.no_grad()
def eval_grid(fn: Callable[[Tensor], Tensor], resolution: int, bound: float = 1.0, chunk: int = 1 << 16,
              device: torch.device | str = "cpu") -> np.ndarray:
    """Values of ``fn`` on the grid, (R, R, R) float32 numpy indexed [x, y, z]."""
    pts = grid_points(resolution, bound, device)
    vals = torch.cat([fn(pts[i:i + chunk]).reshape(-1).float().cpu() for i in range(0, len(pts), chunk)])
    return vals.reshape(resolution, resolution, resolution).numpy()


def marching_cubes(fn_or_grid: Callable[[Tensor], Tensor] | np.ndarray, resolution: int = 64, bound: float = 1.0,
                   level: float = 0.0, device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh of the ``level`` set of an SDF (a function or a precomputed [x, y, z] grid over
    [-bound, bound]^3): (vertices (V, 3) float32 in world units, faces (F, 3) int32, normals (V, 3))."""
    try:
        from skimage.measure import marching_cubes as mc
    except ImportError as exc:  # scikit-image is a declared dependency; say so if it is missing
        raise RuntimeError("marching cubes needs scikit-image (pip install scikit-image)") from exc
    grid = fn_or_grid if isinstance(fn_or_grid, np.ndarray) else eval_grid(fn_or_grid, resolution, bound, device=device)
    res = grid.shape[0]
    if not grid.min() < level < grid.max():
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros((0, 3), np.float32)
    step = 2 * bound / (res - 1)
    verts, faces, normals, _ = mc(grid, level=level, spacing=(step, step, step))
    return (verts - bound).astype(np.float32), faces.astype(np.int32), normals.astype(np.float32)
