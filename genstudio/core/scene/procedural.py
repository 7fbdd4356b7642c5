"""A procedural multi-view dataset: coloured spheres and boxes on a checker-textured floor,
ray-traced analytically in torch (ray-sphere, ray-box, ray-plane) with Lambert shading and hard
shadows, seen from cameras on a sphere. It is exact, needs no download and renders in well under
a second, so NeRF and splatting can be trained and tested against known ground truth.

World axes: z up; the floor is the square |x|, |y| <= 1.6 at z = 0; everything lies in ``BBOX``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from genstudio.core.scene.cameras import Camera, sphere_cameras
from genstudio.core.scene.multiview import SceneData
from genstudio.core.scene.render import ray_aabb


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    color: tuple[float, float, float]


SPHERES = (Sphere((0.45, 0.35, 0.45), 0.45, (0.85, 0.2, 0.15)), Sphere((-0.55, -0.55, 0.3), 0.3, (0.2, 0.35, 0.9)))
BOXES = (Box((-0.95, 0.15, 0.0), (-0.35, 0.75, 0.7), (0.2, 0.75, 0.3)),
         Box((0.25, -0.95, 0.0), (0.75, -0.45, 0.35), (0.95, 0.8, 0.15)))
FLOOR_HALF = 1.6
FLOOR_COLORS = ((0.85, 0.85, 0.85), (0.3, 0.3, 0.35))
CHECKER = 0.4
BBOX = (torch.tensor([-FLOOR_HALF, -FLOOR_HALF, -0.05]), torch.tensor([FLOOR_HALF, FLOOR_HALF, 1.0]))
LIGHT = F.normalize(torch.tensor([0.4, -0.3, 0.85]), dim=0)
AMBIENT = 0.3
BACKGROUND = (1.0, 1.0, 1.0)
TARGET = (0.0, 0.0, 0.3)


def _tables(dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Primitive parameters as tensors (the floor is the last, flat box), so rays test all at once."""
    boxes = [(b.lo, b.hi) for b in BOXES] + [((-FLOOR_HALF, -FLOOR_HALF, -0.05), (FLOOR_HALF, FLOOR_HALF, 0.0))]
    return {
        "sc": torch.tensor([s.center for s in SPHERES], dtype=dtype),
        "sr": torch.tensor([s.radius for s in SPHERES], dtype=dtype),
        "blo": torch.tensor([b[0] for b in boxes], dtype=dtype),
        "bhi": torch.tensor([b[1] for b in boxes], dtype=dtype),
        "albedo": torch.tensor([s.color for s in SPHERES] + [b.color for b in BOXES] + [FLOOR_COLORS[0]], dtype=dtype),
    }


def _hits(o: Tensor, d: Tensor, tab: dict[str, Tensor], eps: float = 1e-4) -> Tensor:
    """Hit distances (R, n_spheres + n_boxes) of unit-direction rays, inf where missed."""
    oc = o[:, None] - tab["sc"]  # (R, S, 3)
    b = (oc * d[:, None]).sum(-1)
    c = (oc * oc).sum(-1) - tab["sr"] ** 2
    disc = b * b - c
    sq = disc.clamp_min(0).sqrt()
    ts = torch.where(-b - sq > eps, -b - sq, -b + sq)
    ts = torch.where((disc >= 0) & (ts > eps), ts, torch.full_like(ts, math.inf))
    t0, t1, _ = ray_aabb(o[:, None], d[:, None].expand(-1, tab["blo"].shape[0], -1), tab["blo"], tab["bhi"])
    tb = torch.where((t1 > t0) & (t0 > eps), t0, torch.full_like(t0, math.inf))
    return torch.cat([ts, tb], 1)


def trace(o: Tensor, d: Tensor, background: Tensor | None = None, chunk: int = 1 << 16) -> Tensor:
    """Shade rays (R, 3) with unit directions: Lambert + ambient, hard shadows from one
    directional light, ``background`` where nothing is hit. Returns (R, 3) in [0, 1]."""
    if o.shape[0] > chunk:  # cache-sized pieces are much faster than one huge pass
        return torch.cat([trace(o[i:i + chunk], d[i:i + chunk], background, chunk) for i in range(0, len(o), chunk)])
    bg = (background if background is not None else torch.tensor(BACKGROUND)).to(o.dtype)
    tab = _tables(o.dtype)
    ns, nb = tab["sc"].shape[0], tab["blo"].shape[0]
    best, idx = _hits(o, d, tab).min(1)
    hit = torch.isfinite(best)
    p = o + torch.where(hit, best, torch.zeros_like(best))[:, None] * d
    is_sphere = idx < ns
    si, bi = idx.clamp(max=ns - 1), (idx - ns).clamp(0, nb - 1)
    n_sphere = (p - tab["sc"][si]) / tab["sr"][si, None]
    # box normal: the axis along which the hit point is furthest out, relative to the half size
    centre, half = 0.5 * (tab["blo"][bi] + tab["bhi"][bi]), 0.5 * (tab["bhi"][bi] - tab["blo"][bi])
    rel = (p - centre) / half
    axis = rel.abs().argmax(1, keepdim=True)
    n_box = torch.zeros_like(p).scatter_(1, axis, torch.sign(rel.gather(1, axis)))
    normal = torch.where(is_sphere[:, None], n_sphere, n_box)
    albedo = tab["albedo"][idx]
    floor = idx == ns + nb - 1
    checker = (torch.floor(p[:, 0] / CHECKER) + torch.floor(p[:, 1] / CHECKER)) % 2
    albedo = torch.where((floor & (checker > 0))[:, None], torch.tensor(FLOOR_COLORS[1], dtype=o.dtype), albedo)
    # shadows: anything between the hit point and the light (the floor cannot shadow)
    light = LIGHT.to(o.dtype)
    sh = _hits(p + 1e-3 * normal, light.expand_as(p), tab)[:, :-1]
    lit = ~torch.isfinite(sh).any(1)
    diffuse = (normal @ light).clamp_min(0) * lit
    shaded = albedo * (AMBIENT + (1 - AMBIENT) * diffuse)[:, None]
    return torch.where(hit[:, None], shaded, bg).clamp(0, 1)


def render_view(cam: Camera, supersample: int = 2, background: Tensor | None = None) -> Tensor:
    """Ground-truth image (H, W, 3) of one camera, anti-aliased by ``supersample``^2 rays a pixel."""
    s = max(1, int(supersample))
    big = cam.resized(cam.width * s, cam.height * s)
    o, d = big.rays()
    img = trace(o.reshape(-1, 3), d.reshape(-1, 3), background).reshape(big.height, big.width, 3)
    if s > 1:
        img = F.avg_pool2d(img.permute(2, 0, 1)[None], s)[0].permute(1, 2, 0)
    return img.contiguous()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tracing is many mid-sized ops; on a busy 2-core machine OpenMP hand-offs made it 20x slower
    with 2 threads than with 1 (37 s vs 1.7 s measured), so generate single-threaded."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def make_scene(n_train: int = 48, n_test: int = 8, size: int = 64, *, radius: float = 4.0,
               fov_deg: float = 40.0, supersample: int = 2) -> SceneData:
    """The procedural primitives scene: ``n_train`` training and ``n_test`` held-out views (a
    different spiral, so test views are new viewpoints) of ``size`` x ``size`` pixels."""
    kw = dict(width=size, fov_deg=fov_deg, target=TARGET, min_elev_deg=15.0, max_elev_deg=65.0)
    train = sphere_cameras(n_train, radius, prefix="train", **kw)
    test = sphere_cameras(n_test, radius, offset=0.5, prefix="test", **kw)
    bg = torch.tensor(BACKGROUND)
    with torch.no_grad(), _one_thread():
        imgs, timgs = ([render_view(c, supersample, bg) for c in cams] for cams in (train, test))
        empty = torch.zeros(0, size, size, 3)
        imgs, timgs = (torch.stack(x) if x else empty for x in (imgs, timgs))
    return SceneData("primitives", imgs, train, timgs, test, (BBOX[0].clone(), BBOX[1].clone()), bg,
                     description=f"procedural spheres/boxes/checker floor, {n_train}+{n_test} views at {size}px")
