"""Volume rendering against closed forms, sampling, and the procedural scene."""

import math
import time

import pytest
import torch

from genstudio.core.scene.procedural import SPHERES, make_scene
from genstudio.core.scene.render import (
    importance_edges,
    positional_encoding,
    psnr,
    ray_aabb,
    sample_pdf,
    ssim,
    stratified_edges,
    volume_render,
)


def test_constant_density_is_beer_lambert_for_any_jitter():
    r, near, far, sigma = 64, 2.0, 5.0, 0.7
    edges = stratified_edges(torch.full((r,), near, dtype=torch.float64), torch.full((r,), far, dtype=torch.float64),
                             37, perturb=True, generator=torch.Generator().manual_seed(0))
    assert (edges[:, 1:] >= edges[:, :-1]).all()
    sig = torch.full((r, 37), sigma, dtype=torch.float64)
    rgb = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64).expand(r, 37, 3)
    out = volume_render(sig, rgb, edges, background=torch.ones(3, dtype=torch.float64))
    t = math.exp(-sigma * (far - near))
    torch.testing.assert_close(out["opacity"], torch.full((r,), 1 - t, dtype=torch.float64))
    torch.testing.assert_close(out["transmittance"], torch.full((r,), t, dtype=torch.float64))
    torch.testing.assert_close(out["rgb"][0], torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64) * (1 - t) + t)
    # transmittance before each interval is exp(-sigma (t_start - near))
    trans_before = out["weights"] / (1 - torch.exp(-sigma * (edges[:, 1:] - edges[:, :-1])))
    torch.testing.assert_close(trans_before, torch.exp(-sigma * (edges[:, :-1] - near)))


def test_slab_in_empty_space():
    """Density sigma only on [a, b] inside [near, far]: opacity 1 - exp(-sigma (b - a)); the
    expected depth is a + 1/sigma - (b - a) e^{-sigma(b-a)} / (1 - e^{-sigma(b-a)}) in the limit."""
    near, far, a, b, sigma, n = 0.0, 4.0, 1.0, 2.5, 1.3, 4000
    edges = torch.linspace(near, far, n + 1, dtype=torch.float64)[None]
    mids = 0.5 * (edges[:, 1:] + edges[:, :-1])
    sig = torch.where((mids >= a) & (mids <= b), sigma, 0.0)
    out = volume_render(sig, torch.ones(1, n, 3, dtype=torch.float64), edges)
    L = b - a
    assert out["opacity"].item() == pytest.approx(1 - math.exp(-sigma * L), rel=1e-6)
    depth = a + 1 / sigma - L * math.exp(-sigma * L) / (1 - math.exp(-sigma * L))
    assert abs(out["depth"].item() - depth) < 2e-3


def test_importance_samples_follow_the_weights():
    edges = torch.linspace(0, 1, 11)[None].expand(2, 11).contiguous()
    w = torch.zeros(2, 10)
    w[0, 3] = 1.0
    w[1] = 0.1
    s = sample_pdf(edges, w, 2000, generator=torch.Generator().manual_seed(0))
    inside = ((s[0] >= 0.3) & (s[0] <= 0.4)).float().mean()
    assert inside > 0.99
    assert abs(s[1].mean().item() - 0.5) < 0.02 and abs(s[1].std().item() - math.sqrt(1 / 12)) < 0.02
    fine = importance_edges(edges, w, 16, deterministic=True)
    assert fine.shape == (2, 27) and (fine[:, 1:] >= fine[:, :-1]).all()


def test_positional_encoding_values():
    x = torch.tensor([[0.25, -0.5, 1.0]])
    enc = positional_encoding(x, 2)
    assert enc.shape == (1, 3 + 2 * 2 * 3)
    torch.testing.assert_close(enc[0, :3], x[0])
    # frequency 2 pi for the second band: sin(2 pi 0.25) = 1
    torch.testing.assert_close(enc[0, 3 + 6], torch.tensor(1.0), atol=1e-6, rtol=0)


def test_ray_aabb():
    o = torch.tensor([[0.0, -5.0, 0.0], [3.0, -5.0, 0.0]])
    d = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    tn, tf, n = ray_aabb(o, d, torch.tensor([-1.0, -1, -1]), torch.tensor([1.0, 1, 1]))
    torch.testing.assert_close(tn, torch.tensor([4.0, tn[1].item()]))
    assert tf[0] == 6.0 and tn[1] == tf[1]  # the second ray misses
    torch.testing.assert_close(n[0], torch.tensor([0.0, -1.0, 0.0]))


def test_ssim_and_psnr():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert ssim(x, x).item() == pytest.approx(1.0, rel=1e-6)
    assert ssim(x, x.flip(-1)).item() < 0.5
    assert psnr(x, (x + 0.1).clamp(0, 1)) > 19.9


def test_procedural_scene():
    t = time.time()
    s = make_scene(n_train=12, n_test=4, size=48)
    assert time.time() - t < 20  # < 2 s for the full 48 + 8 views on an idle 2-core machine (see bench)
    assert s.images.shape == (12, 48, 48, 3) and s.test_images.shape == (4, 48, 48, 3)
    assert s.images.min() >= 0 and s.images.max() <= 1
    assert (s.images == 1).all(-1).any()  # some background
    for cam, img in zip(s.test_cameras, s.test_images):
        uv, _ = cam.project(torch.tensor([SPHERES[0].center]))
        u, v = uv[0].long().tolist()
        if 0 <= u < 48 and 0 <= v < 48:
            r, g, b = img[v, u].tolist()
            assert r > 2 * g and r > 2 * b  # the red sphere is where the camera says
    # held-out views are new viewpoints
    pos = torch.stack([c.position for c in s.cameras])
    for c in s.test_cameras:
        assert (pos - c.position).norm(dim=1).min() > 0.1
    rays = s.rays()
    assert rays.shape == (12 * 48 * 48, 9)
