"""3D Gaussian maths against independent formulas: EWA projection, the rasteriser's image and
gradients, SH orthonormality, densify / prune bookkeeping."""

import math

import torch

from genstudio.core.scene.cameras import Camera, look_at
from genstudio.core.scene.gaussians import (
    DensifyStats,
    Gaussians,
    covariance_3d,
    densify_and_prune,
    eval_sh,
    project_gaussians,
    rasterize,
    remap_adam,
    sh_basis,
)


def _cam(w=32, h=24, eye=(0.3, -3.0, 1.2), dtype=torch.float64) -> Camera:
    return Camera(look_at(eye, (0.0, 0.0, 0.1)), 30.0, 28.0, w / 2 + 0.7, h / 2 - 0.4, w, h)


def _gauss(n=1, seed=0, dtype=torch.float64, sh_degree=0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 0.6
    log_s = torch.log(0.05 + 0.15 * torch.rand(n, 3, generator=g, dtype=dtype))
    q = torch.randn(n, 4, generator=g, dtype=dtype)
    k = (sh_degree + 1) ** 2
    return Gaussians(means, log_s, q / q.norm(dim=1, keepdim=True),
                     torch.randn(n, generator=g, dtype=dtype) * 0.5,
                     torch.randn(n, 3, generator=g, dtype=dtype) * 0.5,
                     torch.randn(n, k - 1, 3, generator=g, dtype=dtype) * 0.2)


def _project_f64(cam, p):
    pc = p @ cam.w2c.double()[:3, :3].T + cam.w2c.double()[:3, 3]
    z = -pc[..., 2]
    return torch.stack([cam.cx + cam.fl_x * pc[..., 0] / z, cam.cy - cam.fl_y * pc[..., 1] / z], -1)


def test_covariance_projection_matches_jacobian_formula():
    cam = _cam()
    g = _gauss(5, seed=1)
    proj = project_gaussians(g, cam, dilation=0.0)
    cov3 = covariance_3d(g.log_scales, g.quats)
    for i in range(g.num):
        jw = torch.autograd.functional.jacobian(lambda p: _project_f64(cam, p), g.means[i])  # = J W, (2, 3)
        expect = jw @ cov3[i] @ jw.T
        torch.testing.assert_close(proj.cov2d[i], expect, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(proj.means2d[i], _project_f64(cam, g.means[i]), rtol=1e-9, atol=1e-9)


def test_covariance_is_rotation_scale_product():
    g = _gauss(4, seed=2)
    cov = covariance_3d(g.log_scales, g.quats)
    evals = torch.linalg.eigvalsh(cov)
    torch.testing.assert_close(evals, torch.sort(torch.exp(2 * g.log_scales), 1).values)


def test_one_gaussian_renders_the_analytic_2d_gaussian():
    cam = _cam(40, 30)
    g = _gauss(1, seed=3)
    g.opacity_logits[:] = math.log(0.8 / 0.2)
    g.log_scales[:] = torch.log(torch.tensor([0.3, 0.15, 0.4], dtype=torch.float64))
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    out = rasterize(g, cam, background=bg, dilation=0.0, alpha_min=0.0, tile=16)
    jw = torch.autograd.functional.jacobian(lambda p: _project_f64(cam, p), g.means[0])
    cov2 = jw @ covariance_3d(g.log_scales, g.quats)[0] @ jw.T
    mu = _project_f64(cam, g.means[0])
    ys, xs = torch.meshgrid(torch.arange(30, dtype=torch.float64) + 0.5, torch.arange(40, dtype=torch.float64) + 0.5,
                            indexing="ij")
    d = torch.stack([xs - mu[0], ys - mu[1]], -1)
    q = torch.einsum("hwi,ij,hwj->hw", d, torch.linalg.inv(cov2), d)
    alpha = 0.8 * torch.exp(-0.5 * q)
    # the rasteriser evaluates a Gaussian within 3 sigma (Mahalanobis), as the reference does
    inside = q <= 9.0
    outside_box = ((d[..., 0].abs() > 3 * cov2[0, 0].sqrt() + 1) | (d[..., 1].abs() > 3 * cov2[1, 1].sqrt() + 1))
    color = eval_sh(0, g.sh[:1], torch.zeros(1, 3, dtype=torch.float64))[0]
    expect = bg + alpha[..., None] * (color - bg)
    assert inside.sum() > 50 and outside_box.sum() > 50
    torch.testing.assert_close(out["rgb"][outside_box], bg.expand(int(outside_box.sum()), 3))
    torch.testing.assert_close(out["rgb"][inside], expect[inside], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out["alpha"][inside], alpha[inside], rtol=1e-9, atol=1e-9)
    assert out["rgb"].shape == (30, 40, 3)


def test_rasteriser_gradients_match_finite_differences():
    cam = _cam(12, 10, eye=(0.4, -2.5, 0.9))
    g0 = _gauss(3, seed=4, sh_degree=1)
    names = ["means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest"]
    bg = torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64)
    weights = torch.randn(10, 12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def f(*ts):
        g = Gaussians(**dict(zip(names, ts)))
        return (rasterize(g, cam, background=bg, alpha_min=0.0, tile=8)["rgb"] * weights).sum()

    inputs = tuple(getattr(g0, n).clone().requires_grad_(True) for n in names)
    assert f(*inputs).item() != 0
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_sh_basis_is_orthonormal_on_the_sphere():
    n = 40000
    k = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * k / n
    r = torch.sqrt(1 - z * z)
    a = math.pi * (3 - math.sqrt(5)) * k
    dirs = torch.stack([r * torch.cos(a), r * torch.sin(a), z], 1)
    y = sh_basis(3, dirs)
    gram = 4 * math.pi * (y.T @ y) / n
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=2e-3, rtol=0)


def test_eval_sh_degree0_is_dc_colour():
    sh = torch.randn(7, 16, 3, dtype=torch.float64) * 0.3
    dirs = torch.nn.functional.normalize(torch.randn(7, 3, dtype=torch.float64), dim=1)
    torch.testing.assert_close(eval_sh(0, sh, dirs), (0.28209479177387814 * sh[:, 0] + 0.5).clamp_min(0))
    # higher degrees add view dependence: two opposite directions differ
    assert not torch.allclose(eval_sh(1, sh, dirs), eval_sh(1, sh, -dirs))


def test_densify_clones_small_splits_large_prunes_transparent():
    g = Gaussians.create(torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]),
                         scales=torch.tensor([0.001, 0.5, 0.001, 0.5]), opacity=0.5)
    g.opacity_logits[3] = -10.0  # transparent: pruned
    stats = DensifyStats(4)
    stats.grad_accum[:] = torch.tensor([1.0, 1.0, 0.0, 0.0])
    stats.count[:] = 1
    new, src, fresh = densify_and_prune(g, stats, grad_threshold=0.5, extent=1.0, percent_dense=0.01,
                                        generator=torch.Generator().manual_seed(0))
    # kept: 0 (+ its clone), 2; gone: 1 (split into 2 smaller), 3 (pruned)
    assert sorted(src.tolist()) == [0, 0, 1, 1, 2]
    assert fresh.sum() == 3
    split = new.subset(src == 1)
    torch.testing.assert_close(split.scales, torch.full((2, 3), 0.5 / 1.6))
    clone = new.subset((src == 0) & fresh)
    torch.testing.assert_close(clone.means, g.means[:1])


def test_densify_respects_max_count():
    g = Gaussians.create(torch.rand(10, 3), scales=0.001)
    stats = DensifyStats(10)
    stats.grad_accum[:] = torch.arange(10.0)
    stats.count[:] = 1
    new, src, _ = densify_and_prune(g, stats, grad_threshold=0.5, max_count=13)
    assert new.num == 13
    assert sorted(src[10:].tolist()) == [7, 8, 9]  # the largest gradients won


def test_remap_adam_carries_moments():
    p = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.Adam([{"params": [p], "name": "means"}], lr=0.1)
    p.sum().backward()
    opt.step()
    old = opt.state[p]["exp_avg"].clone()
    src, fresh = torch.tensor([2, 0, 0]), torch.tensor([False, False, True])
    remap_adam(opt, {"means": p.detach()[src]}, src, fresh)
    newp = opt.param_groups[0]["params"][0]
    st = opt.state[newp]
    torch.testing.assert_close(st["exp_avg"][0], old[2])
    torch.testing.assert_close(st["exp_avg"][1], old[0])
    assert st["exp_avg"][2].abs().sum() == 0
    newp.sum().backward()
    opt.step()  # still a working optimiser


def test_rasteriser_runs_on_the_tensors_device(device):
    g = _gauss(20, seed=5, dtype=torch.float32).to(device)
    out = rasterize(g, _cam(16, 16), background=1.0)
    assert out["rgb"].device.type == device.type and torch.isfinite(out["rgb"]).all()


def test_image_does_not_depend_on_the_tiling():
    g = _gauss(40, seed=6)
    cam = _cam(40, 30)
    outs = [rasterize(g, cam, background=0.5, tile=t)["rgb"] for t in (5, 16, 64)]
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(outs[0], outs[2])
