"""RBM and EBM maths: free energy and partition function against brute-force enumeration, the
CD gradient against its closed form, Langevin's stationary law on a Gaussian energy, and the
plugins' training and Gibbs / Langevin samplers."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from genstudio_plugins.ebm import EBMConfig, EBMPlugin, langevin
from genstudio_plugins.rbm import RBM, RBMConfig, RBMPlugin

from genstudio.core.data import get_dataset


def _tiny_rbm(nv: int = 6, nh: int = 4) -> RBM:
    torch.manual_seed(0)
    rbm = RBM(nv, nh).double()
    with torch.no_grad():
        rbm.W.normal_(0, 1.0)
        rbm.b.normal_()
        rbm.c.normal_()
    return rbm


def _bits(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=torch.float64)


def test_rbm_free_energy_and_partition_match_brute_force():
    rbm = _tiny_rbm()
    vs, hs = _bits(6), _bits(4)
    with torch.no_grad():
        # E(v, h) for all 64 x 16 pairs
        e = torch.stack([rbm.energy(vs, h.expand(len(vs), -1)) for h in hs], 1)
        brute_f = -torch.logsumexp(-e, 1)
        assert torch.allclose(rbm.free_energy(vs), brute_f, atol=1e-12)
        log_z = torch.logsumexp(-e.flatten(), 0)
        assert torch.allclose(rbm.log_partition_exact(), log_z, atol=1e-12)  # enumerates h (4 < 6)
        wide = RBM(4, 6).double()  # the other branch: enumerate v
        wide.load_state_dict({"W": rbm.W.T.clone(), "b": rbm.c.clone(), "c": rbm.b.clone()})
        assert torch.allclose(wide.log_partition_exact(), log_z, atol=1e-12)
        assert abs(float(torch.exp(-rbm.free_energy(vs) - log_z).sum()) - 1) < 1e-12


def test_rbm_cd_loss_gradient_is_the_cd_statistic():
    rbm = _tiny_rbm()
    g = torch.Generator().manual_seed(0)
    v0 = torch.bernoulli(torch.full((32, 6), 0.5, dtype=torch.float64), generator=g)
    vk = torch.bernoulli(torch.full((32, 6), 0.5, dtype=torch.float64), generator=g)
    loss = rbm.free_energy(v0).mean() - rbm.free_energy(vk).mean()
    gw, gb, gc = torch.autograd.grad(loss, [rbm.W, rbm.b, rbm.c])
    with torch.no_grad():
        pos, neg = rbm.p_h(v0), rbm.p_h(vk)
        assert torch.allclose(gw, -(v0.T @ pos - vk.T @ neg) / 32, atol=1e-12)
        assert torch.allclose(gb, -(v0 - vk).mean(0), atol=1e-12)
        assert torch.allclose(gc, -(pos - neg).mean(0), atol=1e-12)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_rbm_plugin_learns_digits_and_runs_a_gibbs_chain(method):
    ds = get_dataset("digits")
    torch.manual_seed(0)
    m = RBMPlugin(RBMConfig(n_hidden=32, method=method, lr=0.1, sample_steps=20))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    first = None
    for step in range(1, 301):
        x, y = ds.batch(64, g)
        out = m.train_step(x, y, step)
        first = first or out["recon_error"]
    assert out["recon_error"] < 0.8 * first
    states = list(m.sample(5, seed=0, every=5))
    assert [s.step for s in states] == [0, 5, 10, 15, 20]
    assert set(states[-1].x.unique().tolist()) <= {-1.0, 1.0}
    assert m.filters().shape == (32, 1, 8, 8)
    xe, _ = ds.fixed(64)
    noise = torch.rand(64, 1, 8, 8) * 2 - 1
    assert m.free_energy(xe).mean() < m.free_energy(noise).mean()  # data is more probable than noise


def test_langevin_reaches_the_discretised_gaussian_stationary_law():
    """For E = |x - m|^2 / (2 s^2), unadjusted Langevin with step eps is an AR(1) process with
    stationary N(m, s^2 / (1 - eps / (2 s^2))): checked to a few standard errors."""
    m, s, eps = torch.tensor([1.0, -2.0]), 0.5, 0.05
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(20000, 2, generator=g)
    x = langevin(lambda x: ((x - m) ** 2).sum(1) / (2 * s**2), x0, 300, eps, generator=g)
    var = s**2 / (1 - eps / (2 * s**2))
    n = len(x)
    assert (x.mean(0) - m).abs().max() < 4 * math.sqrt(var / n)
    assert (x.var(0) - var).abs().max() < 4 * var * math.sqrt(2 / n)
    assert abs(var - s**2) > 8 * var * math.sqrt(2 / n)  # noqa: E501  # the test can tell the O(eps) bias apart


def test_ebm_plugin_trains_and_yields_a_langevin_chain():
    ds = get_dataset("8gaussians")
    torch.manual_seed(0)
    m = EBMPlugin(EBMConfig(hidden=32, depth=2, langevin_steps=10, buffer_size=512, sample_steps=12, lr=3e-3))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 41):
        x, y = ds.batch(128, g)
        out = m.train_step(x, y, step)
    assert {"loss", "cd", "energy_data", "energy_model"} <= set(out)
    xe, _ = ds.fixed(256)
    far = torch.rand(256, 2) * 6 - 3
    far = far[far.norm(dim=1) > 2.6]
    with torch.no_grad():
        assert m.energy(xe).mean() < m.energy(far).mean()  # data sits lower than the far-out box
    states = list(m.sample(7, seed=1, every=4))
    assert [s.step for s in states] == [0, 4, 8, 12]
    assert states[-1].x.shape == (7, 2)
    sd = m.state_dict()
    assert sd["buffer"].shape == (512, 2)
