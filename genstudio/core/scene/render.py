"""Volume rendering for NeRF-style fields, as plain functions on tensors.

Samples along a ray are contiguous intervals given by their *edges* (R, S+1) (as nerfacc and
nerfstudio's ``RaySamples``): the field is evaluated at interval midpoints and each interval's
length is its delta, so the deltas always add up to far - near. With constant density the
rendered opacity is exactly 1 - exp(-sigma (far - near)) whatever the jitter (Beer-Lambert).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def positional_encoding(x: Tensor, n_freqs: int, include_input: bool = True) -> Tensor:
    """NeRF's gamma(x) = [x, sin(2^k pi x), cos(2^k pi x)] for k < n_freqs; (..., D) -> (..., D')."""
    if n_freqs <= 0:
        return x
    freqs = (2.0 ** torch.arange(n_freqs, device=x.device, dtype=x.dtype)) * math.pi
    xb = x[..., None, :] * freqs[:, None]  # (..., F, D)
    enc = torch.cat([xb.sin(), xb.cos()], -1).flatten(-2)
    return torch.cat([x, enc], -1) if include_input else enc


def encoding_dim(d: int, n_freqs: int, include_input: bool = True) -> int:
    return (d if include_input or n_freqs <= 0 else 0) + 2 * d * max(n_freqs, 0)


def ray_aabb(origins: Tensor, dirs: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Slab test: entry and exit distances (clamped to >= 0) of rays against an axis-aligned box,
    the normal (unit axis vector) at the entry point, all per ray. Rays that miss get t_near = t_far.
    Works for any leading shape (..., 3)."""
    lo = torch.as_tensor(lo, dtype=origins.dtype, device=origins.device)
    hi = torch.as_tensor(hi, dtype=origins.dtype, device=origins.device)
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0, t1 = (lo - origins) * inv, (hi - origins) * inv
    tmin, tmax = torch.minimum(t0, t1), torch.maximum(t0, t1)
    t_near, axis = tmin.max(-1)
    t_far = tmax.min(-1).values
    t_near = t_near.clamp_min(0.0)
    miss = t_far <= t_near
    t_far = torch.where(miss, t_near, t_far)
    normal = F.one_hot(axis, 3).to(origins.dtype) * -torch.sign(dirs.gather(-1, axis[..., None]))
    return t_near, t_far, normal


def stratified_edges(near: Tensor, far: Tensor, n: int, *, perturb: bool = True,
                     generator: torch.Generator | None = None) -> Tensor:
    """(R,) near/far -> (R, n+1) interval edges: n equal bins whose inner edges are jittered
    uniformly within half a bin either way (so the intervals stay ordered and contiguous)."""
    u = torch.linspace(0.0, 1.0, n + 1, device=near.device, dtype=near.dtype)
    if perturb and n > 1:
        jitter = torch.rand(near.shape[0], n - 1, device=near.device, dtype=near.dtype, generator=generator)
        inner = u[1:-1] + (jitter - 0.5) / n
        u = torch.cat([u[:1].expand(near.shape[0], 1), inner, u[-1:].expand(near.shape[0], 1)], 1)
    return near[:, None] + (far - near)[:, None] * u


def midpoints(edges: Tensor) -> Tensor:
    return 0.5 * (edges[..., 1:] + edges[..., :-1])


def sample_pdf(edges: Tensor, weights: Tensor, n: int, *, deterministic: bool = False,
               generator: torch.Generator | None = None, eps: float = 1e-5) -> Tensor:
    """Hierarchical (importance) sampling: ``n`` positions per ray drawn from the piecewise-constant
    density over the coarse intervals ``edges`` (R, S+1) with mass ``weights`` (R, S), by inverting
    the CDF. Gradients do not flow into the positions."""
    edges, weights = edges.detach(), weights.detach()
    w = weights + eps  # no zero-mass rays
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), pdf.cumsum(-1)], -1).clamp(max=1.0)  # (R, S+1)
    if deterministic:
        u = torch.linspace(0.0, 1.0, n + 2, device=edges.device, dtype=edges.dtype)[1:-1].expand(len(edges), n)
    else:
        u = torch.rand(len(edges), n, device=edges.device, dtype=edges.dtype, generator=generator)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[-1] - 1)
    c0, c1 = cdf.gather(1, idx - 1), cdf.gather(1, idx)
    e0, e1 = edges.gather(1, idx - 1), edges.gather(1, idx)
    frac = ((u - c0) / (c1 - c0).clamp_min(1e-12)).clamp(0.0, 1.0)
    return e0 + frac * (e1 - e0)


def importance_edges(edges: Tensor, weights: Tensor, n: int, **kw) -> Tensor:
    """Coarse edges plus ``n`` importance samples, sorted: the fine pass's intervals (R, S+n+1)."""
    extra = sample_pdf(edges, weights, n, **kw)
    return torch.sort(torch.cat([edges.detach(), extra], -1), -1).values


def volume_render(sigma: Tensor, rgb: Tensor, edges: Tensor, background: Tensor | float | None = None
                  ) -> dict[str, Tensor]:
    """Composite densities ``sigma`` (R, S) >= 0 and colours ``rgb`` (R, S, C) over intervals
    ``edges`` (R, S+1): alpha_i = 1 - exp(-sigma_i delta_i), T_i = prod_{j<i} (1 - alpha_j),
    w_i = T_i alpha_i. Returns rgb (R, C) (background composited behind), depth (expected
    distance of the visible surface, normalised by opacity), opacity (R,), weights (R, S) and the
    transmittance left after the last interval (R,)."""
    deltas = (edges[..., 1:] - edges[..., :-1]).clamp_min(0.0)
    tau = sigma * deltas
    # exclusive cumulative sum in log space: stable and has a clean gradient (no cumprod of zeros)
    acc = torch.cumsum(tau, -1)
    trans = torch.exp(-torch.cat([torch.zeros_like(acc[..., :1]), acc[..., :-1]], -1))
    alpha = 1.0 - torch.exp(-tau)
    w = trans * alpha
    opacity = w.sum(-1)
    color = (w[..., None] * rgb).sum(-2)
    if background is not None:
        bg = torch.as_tensor(background, dtype=color.dtype, device=color.device)
        color = color + (1.0 - opacity)[..., None] * bg
    depth = (w * midpoints(edges)).sum(-1) / opacity.clamp_min(1e-10)
    return {"rgb": color, "depth": depth, "opacity": opacity, "weights": w,
            "transmittance": torch.exp(-acc[..., -1])}


def psnr(pred: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    mse = F.mse_loss(pred.detach().float(), target.detach().float()).item()
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity of two (B, C, H, W) images in [0, 1] (Gaussian window, as the
    3DGS loss uses); differentiable."""
    c = x.shape[1]
    k = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    g = torch.exp(-k**2 / (2 * sigma**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, w, padding=window // 2, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.mean()
