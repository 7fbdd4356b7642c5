"""3D Gaussian splatting in plain torch: the Gaussian container, covariance maths, spherical
harmonics, a differentiable rasteriser and densify / prune (Kerbl et al. 2023).

Parameterisation matches the INRIA .ply: means, log-scales, unit quaternions (w, x, y, z),
opacity logits, SH coefficients (DC separate from the rest, as they train at different rates).

The rasteriser projects each Gaussian to a 2-D one with the EWA Jacobian, sorts by depth and
alpha-composites front to back. It works on square pixel tiles, keeping per tile only the
Gaussians whose 3-sigma box overlaps it, and is vectorised over (pixels x Gaussians) inside a tile,
so autograd gives exact gradients without a custom CUDA kernel; it runs on whichever device the
tensors are on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from genstudio.core.scene.cameras import GL_TO_CV, Camera

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def sh_coeffs(degree: int) -> int:
    """Number of SH coefficients per colour channel for a degree (1, 4, 9, 16)."""
    return (degree + 1) ** 2


def sh_degree_of(n_coeffs: int) -> int:
    d = int(round(math.sqrt(n_coeffs))) - 1
    if sh_coeffs(d) != n_coeffs or not 0 <= d <= 3:
        raise ValueError(f"{n_coeffs} SH coefficients per channel is not a degree 0-3 layout")
    return d


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: Tensor) -> Tensor:
    return dc * SH_C0 + 0.5


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Real SH basis (N, (degree+1)^2) at unit directions (N, 3), with the sign conventions and
    constants of the 3DGS reference renderer (so exported coefficients mean the same there)."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree > 0:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [SH_C2[0] * xy, SH_C2[1] * yz, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * xz, SH_C2[4] * (xx - yy)]
    if degree > 2:
        out += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * xy * z, SH_C3[2] * y * (4 * zz - xx - yy),
                SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
                SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, -1)


def eval_sh(degree: int, sh: Tensor, dirs: Tensor) -> Tensor:
    """Colour (N, 3) from coefficients (N, K, 3) (K >= (degree+1)^2) viewed along ``dirs``
    (unit vectors from the camera to the Gaussian): sum_k c_k Y_k(d) + 0.5, clamped at 0."""
    k = sh_coeffs(degree)
    basis = sh_basis(degree, dirs)
    return (torch.einsum("nk,nkc->nc", basis, sh[:, :k]) + 0.5).clamp_min(0.0)


def quat_to_rotmat(q: Tensor) -> Tensor:
    """(N, 4) quaternions (w, x, y, z), any norm -> (N, 3, 3) rotation matrices."""
    q = F.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def covariance_3d(log_scales: Tensor, quats: Tensor) -> Tensor:
    """Sigma = R S S^T R^T with S = diag(exp(log_scales)); (N, 3, 3)."""
    m = quat_to_rotmat(quats) * torch.exp(log_scales)[..., None, :]  # R S
    return m @ m.transpose(-1, -2)


@dataclass
class Gaussians:
    """A set of N 3-D Gaussians. Tensors may be plain or ``nn.Parameter`` (while training)."""

    means: Tensor  # (N, 3)
    log_scales: Tensor  # (N, 3)
    quats: Tensor  # (N, 4) w, x, y, z
    opacity_logits: Tensor  # (N,)
    sh_dc: Tensor  # (N, 3): coefficient 0 per channel
    sh_rest: Tensor  # (N, K-1, 3): degrees 1..D, K = (D+1)^2

    @property
    def num(self) -> int:
        return int(self.means.shape[0])

    def __len__(self) -> int:
        return self.num

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(self.sh_rest.shape[1] + 1)

    @property
    def sh(self) -> Tensor:
        return torch.cat([self.sh_dc[:, None], self.sh_rest], 1)

    @property
    def scales(self) -> Tensor:
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def rotations(self) -> Tensor:
        return quat_to_rotmat(self.quats)

    def covariances(self) -> Tensor:
        return covariance_3d(self.log_scales, self.quats)

    def base_colors(self) -> Tensor:
        """View-independent colour (degree 0), (N, 3) in [0, 1] (what .splat files store)."""
        return sh_dc_to_rgb(self.sh_dc).clamp(0.0, 1.0)

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def map(self, fn) -> Gaussians:
        return Gaussians(**{k: fn(v) for k, v in self.tensors().items()})

    def detach(self) -> Gaussians:
        return self.map(lambda t: t.detach().clone())

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Gaussians:
        return self.map(lambda t: t.to(device=device, dtype=dtype))

    def subset(self, index: Tensor) -> Gaussians:
        """Gaussians selected by a bool mask or an index tensor."""
        return self.map(lambda t: t[index])

    @staticmethod
    def cat(parts: list[Gaussians]) -> Gaussians:
        return Gaussians(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Gaussians)})

    def with_sh_degree(self, degree: int) -> Gaussians:
        """Same Gaussians with SH truncated or zero-padded to ``degree``."""
        k = sh_coeffs(degree) - 1
        rest = self.sh_rest[:, :k]
        if rest.shape[1] < k:
            rest = torch.cat([rest, rest.new_zeros(self.num, k - rest.shape[1], 3)], 1)
        return Gaussians(self.means, self.log_scales, self.quats, self.opacity_logits, self.sh_dc, rest)

    def state(self) -> dict[str, Tensor]:
        """Detached CPU tensors (checkpoint-safe)."""
        return {k: v.detach().cpu().clone() for k, v in self.tensors().items()}

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> Gaussians:
        return cls(**{f.name: state[f.name] for f in fields(cls)})

    @classmethod
    def create(cls, means: Tensor, colors: Tensor | None = None, *, scales: Tensor | float | None = None,
               opacity: float = 0.1, sh_degree: int = 0) -> Gaussians:
        """Isotropic Gaussians at ``means`` with RGB ``colors`` in [0, 1] (grey if None). Default
        scale: the mean distance to the 3 nearest neighbours (as 3DGS initialises from points)."""
        n, dev, dt = means.shape[0], means.device, means.dtype
        if scales is None:
            s = knn_mean_distance(means, 3).clamp_min(1e-7)
        elif isinstance(scales, Tensor):
            s = scales.to(dev, dt)
        else:
            s = torch.full((n,), float(scales), device=dev, dtype=dt)
        log_s = torch.log(s)[:, None].expand(n, 3).clone() if s.dim() == 1 else torch.log(s)
        rgb = colors.to(dev, dt) if colors is not None else torch.full((n, 3), 0.5, device=dev, dtype=dt)
        quats = torch.zeros(n, 4, device=dev, dtype=dt)
        quats[:, 0] = 1
        return cls(means.clone(), log_s, quats, torch.full((n,), math.log(opacity / (1 - opacity)), device=dev, dtype=dt),
                   rgb_to_sh_dc(rgb), torch.zeros(n, sh_coeffs(sh_degree) - 1, 3, device=dev, dtype=dt))

    @classmethod
    def random_in_box(cls, n: int, lo: Tensor, hi: Tensor, *, sh_degree: int = 0, opacity: float = 0.1,
                      generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Gaussians:
        """``n`` Gaussians uniform in the box [lo, hi] with random colours (3DGS's synthetic init)."""
        lo, hi = torch.as_tensor(lo, dtype=torch.float32), torch.as_tensor(hi, dtype=torch.float32)
        means = lo + (hi - lo) * torch.rand(n, 3, generator=generator)
        colors = torch.rand(n, 3, generator=generator)
        return cls.create(means, colors, opacity=opacity, sh_degree=sh_degree).to(device)


def knn_mean_distance(points: Tensor, k: int = 3, chunk: int = 1024) -> Tensor:
    """Mean distance of each point to its ``k`` nearest neighbours, in row chunks (memory O(chunk N))."""
    n = points.shape[0]
    if n <= 1:
        return torch.ones(n, dtype=points.dtype, device=points.device)
    k = min(k, n - 1)
    out = []
    for s in range(0, n, chunk):
        d = torch.cdist(points[s:s + chunk], points)
        d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = float("inf")
        out.append(d.topk(k, largest=False).values.mean(1))
    return torch.cat(out)


# -- projection --------------------------------------------------------------------------------
def camera_cv(cam: Camera, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """World-to-camera rotation and translation in OpenCV axes (z forward, y down)."""
    w2c = cam.w2c.to(device, dtype)
    flip = GL_TO_CV.to(device, dtype)
    return flip @ w2c[:3, :3], flip @ w2c[:3, 3]


def projection_jacobian(p_cam: Tensor, fx: float, fy: float) -> Tensor:
    """d(u, v)/d(x, y, z) of the pinhole projection at camera-space points (N, 3) -> (N, 2, 3)."""
    x, y, z = p_cam.unbind(-1)
    zero = torch.zeros_like(z)
    return torch.stack([fx / z, zero, -fx * x / (z * z), zero, fy / z, -fy * y / (z * z)], -1).reshape(-1, 2, 3)


@dataclass
class Projected:
    """Gaussians seen by one camera (all N rows; ``visible`` says which are drawn)."""

    means2d: Tensor  # (N, 2) pixel (u, v)
    depth: Tensor  # (N,)
    cov2d: Tensor  # (N, 2, 2), with the low-pass dilation added
    conic: Tensor  # (N, 3): inverse covariance (a, b, c) of [[a, b], [b, c]]
    radius: Tensor  # (N,) 3-sigma radius in pixels
    visible: Tensor  # (N,) bool


def project_gaussians(g: Gaussians, cam: Camera, *, near: float = 0.01, dilation: float = 0.3,
                      clamp_fov: float = 1.3) -> Projected:
    """EWA splatting: Sigma' = J W Sigma W^T J^T (+ dilation I), W the world-to-camera rotation and
    J the projection Jacobian at the mean. As in the reference renderer, x/z and y/z are clamped to
    ``clamp_fov`` times the half field of view inside J so far off-screen Gaussians stay bounded."""
    dev, dt = g.means.device, g.means.dtype
    rot, trans = camera_cv(cam, dev, dt)
    p = g.means @ rot.T + trans
    z = p[:, 2]
    zs = torch.where(z > near, z, torch.full_like(z, near))  # avoid division blow-ups behind the camera
    u = cam.fl_x * p[:, 0] / zs + cam.cx
    v = cam.fl_y * p[:, 1] / zs + cam.cy
    lim_x = clamp_fov * 0.5 * cam.width / cam.fl_x
    lim_y = clamp_fov * 0.5 * cam.height / cam.fl_y
    pj = torch.stack([(p[:, 0] / zs).clamp(-lim_x, lim_x) * zs, (p[:, 1] / zs).clamp(-lim_y, lim_y) * zs, zs], -1)
    jac = projection_jacobian(pj, cam.fl_x, cam.fl_y)
    t = jac @ rot  # J W
    cov2d = t @ g.covariances() @ t.transpose(-1, -2)
    cov2d = cov2d + dilation * torch.eye(2, device=dev, dtype=dt)
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det = a * c - b * b
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conic = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)
    mid = 0.5 * (a + c)
    lam = mid + torch.sqrt((mid * mid - det).clamp_min(0.1))
    radius = 3.0 * torch.sqrt(lam)
    um, vm = u.detach(), v.detach()
    rad = radius.detach()
    visible = ((z > near) & (det > 0) & (um + rad > 0) & (um - rad < cam.width) & (vm + rad > 0)
               & (vm - rad < cam.height))
    return Projected(torch.stack([u, v], -1), z, cov2d, conic, radius, visible)


# -- rasterisation ------------------------------------------------------------------------------
def rasterize(g: Gaussians, cam: Camera, *, background: Tensor | float | tuple = 0.0, sh_degree: int | None = None,
              tile: int = 16, near: float = 0.01, dilation: float = 0.3, alpha_min: float = 1.0 / 255,
              alpha_max: float = 0.99, retain_means2d: bool = False) -> dict[str, Tensor]:
    """Render ``g`` from ``cam``: returns ``rgb`` (H, W, 3), ``depth`` (H, W) (expected depth of
    what is drawn), ``alpha`` (H, W), the ``projected`` Gaussians and the ``visible`` mask. With
    ``retain_means2d`` the 2-D means keep their gradient (``out["means2d"].grad`` after backward),
    which densification uses."""
    dev, dt = g.means.device, g.means.dtype
    deg = g.sh_degree if sh_degree is None else min(sh_degree, g.sh_degree)
    H, W = cam.height, cam.width
    proj = project_gaussians(g, cam, near=near, dilation=dilation)
    means2d = proj.means2d
    if retain_means2d and means2d.requires_grad:
        means2d.retain_grad()
    bg = torch.as_tensor(background, dtype=dt, device=dev).expand(3)
    idx = torch.nonzero(proj.visible).squeeze(1)
    idx = idx[torch.argsort(proj.depth.detach()[idx])]  # front to back
    out_rgb = bg.expand(H, W, 3).clone()
    out_depth = torch.zeros(H, W, device=dev, dtype=dt)
    out_alpha = torch.zeros(H, W, device=dev, dtype=dt)
    result = {"rgb": out_rgb, "depth": out_depth, "alpha": out_alpha, "projected": proj,
              "visible": proj.visible, "means2d": means2d}
    if idx.numel() == 0:
        return result
    cam_pos = cam.position.to(dev, dt)
    dirs = F.normalize(g.means[idx] - cam_pos, dim=-1)
    sh = torch.cat([g.sh_dc[idx, None], g.sh_rest[idx]], 1)
    # colour, depth and 1 ride through the same matmul with the blending weights
    feats = torch.cat([eval_sh(deg, sh, dirs), proj.depth[idx, None], torch.ones_like(proj.depth[idx, None])], 1)
    uv, conic = means2d[idx], proj.conic[idx]
    log_opac = F.logsigmoid(g.opacity_logits[idx])
    # each Gaussian's footprint: where alpha >= alpha_min, i.e. d^T C^-1 d <= 2 log(o / alpha_min), capped
    # at 3 sigma as in the reference; its bounding box has half-sizes sqrt(q cov_xx), sqrt(q cov_yy)
    q_max = (2 * (log_opac.detach() - math.log(max(alpha_min, 1e-300)))).clamp(max=9.0)
    cov_d = torch.diagonal(proj.cov2d.detach()[idx], dim1=-2, dim2=-1)
    ext = torch.sqrt(q_max.clamp_min(0)[:, None] * cov_d)
    uvd = uv.detach()
    lo, hi = uvd - ext, uvd + ext
    lo = torch.where((q_max > 0)[:, None], lo, torch.full_like(lo, float("inf")))  # never reaches alpha_min
    log_amax = math.log(alpha_max)
    # a pixel gets a Gaussian when alpha >= alpha_min and it lies within 3 sigma (q <= 9), so the
    # image does not depend on the tiling
    log_thr = torch.maximum(torch.full_like(log_opac, math.log(max(alpha_min, 1e-300))), log_opac.detach() - 4.5)
    for y0 in range(0, H, tile):
        y1 = min(H, y0 + tile)
        in_rows = (lo[:, 1] < y1) & (hi[:, 1] > y0)
        for x0 in range(0, W, tile):
            x1 = min(W, x0 + tile)
            sel = torch.nonzero(in_rows & (lo[:, 0] < x1) & (hi[:, 0] > x0)).squeeze(1)
            if sel.numel() == 0:
                continue
            # log alpha = log o - 1/2 d^T C d is a quadratic in the pixel position: one matmul of
            # pixel monomials (P, 6) with per-Gaussian coefficients (6, M). Coordinates are taken
            # relative to the tile centre so the expansion loses no precision.
            xc, yc = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
            ys = torch.arange(y0, y1, device=dev, dtype=dt) + 0.5 - yc
            xs = torch.arange(x0, x1, device=dev, dtype=dt) + 0.5 - xc
            py, px = torch.meshgrid(ys, xs, indexing="ij")
            px, py = px.reshape(-1), py.reshape(-1)
            mono = torch.stack([px * px, px * py, py * py, px, py, torch.ones_like(px)], 1)
            a, b, c = conic[sel].unbind(1)
            u, v = uv[sel, 0] - xc, uv[sel, 1] - yc
            coef = torch.stack([-0.5 * a, -b, -0.5 * c, a * u + b * v, b * u + c * v,
                                -0.5 * (a * u * u + 2 * b * u * v + c * v * v) + log_opac[sel]], 0)
            log_alpha = (mono @ coef).clamp(max=log_amax)  # (P, M)
            alpha = torch.exp(log_alpha) * (log_alpha >= log_thr[sel])  # alpha_min / 3-sigma cut, per pixel
            log_t = torch.log1p(-alpha)
            w = alpha * torch.exp(torch.cumsum(log_t, 1) - log_t)  # alpha_i prod_{j<i} (1 - alpha_j)
            acc_f = w @ feats[sel]  # (P, 5): rgb, depth sum, opacity
            acc = acc_f[:, 4]
            h, wd = y1 - y0, x1 - x0
            out_rgb[y0:y1, x0:x1] = (acc_f[:, :3] + (1 - acc)[:, None] * bg).reshape(h, wd, 3)
            out_depth[y0:y1, x0:x1] = (acc_f[:, 3] / acc.clamp_min(1e-10)).reshape(h, wd)
            out_alpha[y0:y1, x0:x1] = acc.reshape(h, wd)
    return result


# -- densification ------------------------------------------------------------------------------
class DensifyStats:
    """Running view-space positional gradient norms per Gaussian (what 3DGS thresholds on) and the
    largest screen radius each reached."""

    def __init__(self, n: int, device: torch.device | str = "cpu") -> None:
        self.grad_accum = torch.zeros(n, device=device)
        self.count = torch.zeros(n, device=device)
        self.max_radius = torch.zeros(n, device=device)

    def update(self, out: dict[str, Tensor], cam: Camera) -> None:
        """After backward: add |dL/d(ndc)| of every visible Gaussian (pixels -> NDC: x W/2, H/2)."""
        grad = out["means2d"].grad
        if grad is None:
            return
        vis = out["visible"]
        g = grad.detach()[vis] * torch.tensor([cam.width / 2, cam.height / 2], device=grad.device, dtype=grad.dtype)
        self.grad_accum[vis] += g.norm(dim=-1).to(self.grad_accum.dtype)
        self.count[vis] += 1
        self.max_radius[vis] = torch.maximum(self.max_radius[vis],
                                             out["projected"].radius.detach()[vis].to(self.max_radius.dtype))

    def mean_grad(self) -> Tensor:
        return torch.where(self.count > 0, self.grad_accum / self.count.clamp_min(1), torch.zeros_like(self.count))


def densify_and_prune(g: Gaussians, stats: DensifyStats, *, grad_threshold: float = 2e-4, extent: float = 1.0,
                      percent_dense: float = 0.01, min_opacity: float = 0.005, max_screen_radius: float = 0.0,
                      max_world_scale: float = 0.0, max_count: int = 0, split_n: int = 2,
                      generator: torch.Generator | None = None) -> tuple[Gaussians, Tensor, Tensor]:
    """3DGS adaptive density control. Gaussians whose mean view-space gradient exceeds the
    threshold are cloned when small (max scale <= percent_dense * extent: under-reconstruction)
    or split into ``split_n`` samples from themselves with scales / (0.8 split_n) when large
    (over-reconstruction); then those with opacity < ``min_opacity`` (or too big on screen or in
    the world, when those limits are > 0) are pruned. ``max_count`` caps the total by keeping only
    the largest gradients for densification.

    Returns the new (detached) Gaussians, ``src`` (for each new Gaussian the index of the old one it
    came from) and ``fresh`` (True for newly created ones), so optimiser state can be carried over.
    """
    g = g.detach()
    n, dev = g.num, g.means.device
    grads = stats.mean_grad().to(dev)
    big = g.scales.max(1).values > percent_dense * extent
    cand = grads >= grad_threshold
    if max_count:
        room = max(0, max_count - n)
        # a split adds split_n - 1, a clone adds 1: keep the strongest candidates that fit
        cost = torch.where(big, split_n - 1, 1)
        order = torch.argsort(grads.masked_fill(~cand, -1.0), descending=True)
        fits = torch.cumsum(cost[order] * cand[order], 0) <= room
        keep = torch.zeros_like(cand)
        keep[order[fits]] = True
        cand = cand & keep
    clone, split = cand & ~big, cand & big
    parts, src, fresh = [g.subset(~split)], [torch.nonzero(~split).squeeze(1)], [torch.zeros(int((~split).sum()), dtype=torch.bool, device=dev)]
    ci = torch.nonzero(clone).squeeze(1)
    if ci.numel():
        parts.append(g.subset(ci))
        src.append(ci)
        fresh.append(torch.ones(ci.numel(), dtype=torch.bool, device=dev))
    si = torch.nonzero(split).squeeze(1)
    if si.numel():
        base = g.subset(si.repeat(split_n))
        noise = torch.randn(base.num, 3, generator=generator).to(dev) * base.scales
        base.means = base.means + (base.rotations @ noise[..., None]).squeeze(-1)
        base.log_scales = base.log_scales - math.log(0.8 * split_n)
        parts.append(base)
        src.append(si.repeat(split_n))
        fresh.append(torch.ones(base.num, dtype=torch.bool, device=dev))
    new, src_t, fresh_t = Gaussians.cat(parts), torch.cat(src), torch.cat(fresh)
    prune = new.opacities < min_opacity
    if max_screen_radius > 0:
        prune |= stats.max_radius.to(dev)[src_t] > max_screen_radius
    if max_world_scale > 0:
        prune |= new.scales.max(1).values > max_world_scale
    keep = ~prune
    if keep.sum() == 0:  # never leave an empty model
        keep[torch.argmax(new.opacities)] = True
    return new.subset(keep), src_t[keep], fresh_t[keep]


def reset_opacity(g: Gaussians, value: float = 0.01) -> Tensor:
    """Opacity logits clamped to at most logit(``value``) (3DGS's periodic reset, which lets
    densification find floaters again)."""
    cap = math.log(value / (1 - value))
    return torch.minimum(g.opacity_logits.detach(), torch.full_like(g.opacity_logits, cap))


def remap_adam(opt: torch.optim.Optimizer, new_params: dict[str, Tensor], src: Tensor, fresh: Tensor) -> None:
    """Swap each named param group's tensor for ``new_params[name]`` (rows reordered by ``src``),
    carrying Adam moments along ``src`` and zeroing them for ``fresh`` rows (as 3DGS does)."""
    for group in opt.param_groups:
        name = group.get("name")
        if name not in new_params:
            continue
        old = group["params"][0]
        new = torch.nn.Parameter(new_params[name].detach().clone())
        st = opt.state.pop(old, None)
        if st:
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    m = st[key][src].clone()
                    m[fresh] = 0
                    st[key] = m
            opt.state[new] = st
        group["params"][0] = new
