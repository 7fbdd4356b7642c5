"""NCSN: score-matching objectives (exact trace, sliced estimator) and annealed Langevin sampling."""

from __future__ import annotations

import pytest
import torch
from genstudio_plugins.ncsn import NCSNConfig, NCSNPlugin, _exact_trace

from genstudio.core.data import get_dataset
from genstudio.core.diffusion.sde import divergence
from genstudio.core.metrics.functional import energy_distance


def _model(**kw):
    torch.manual_seed(0)
    ds = get_dataset("8gaussians")
    m = NCSNPlugin(NCSNConfig(hidden=64, depth=1, batch_size=128, lr=2e-3, ema_decay=0.99, **kw), torch.device("cpu"))
    m.setup(ds.spec)
    return m, ds


def test_exact_trace_and_sliced_estimator():
    m, _ = _model()
    x = torch.randn(3, 2, requires_grad=True)
    sigma = torch.full((3,), 0.5)
    s = m.score(m.net, x, sigma)
    tr = _exact_trace(s, x).detach()
    _, div = divergence(lambda z: m.score(m.net, z, sigma), x.detach())
    assert torch.allclose(tr, div, atol=1e-5)
    # sliced: E_v[v^T (ds/dx) v] = tr(ds/dx) for v ~ N(0, I)
    xr = x.detach().repeat(20000, 1).requires_grad_(True)
    sr = m.score(m.net, xr, sigma.repeat(20000))
    v = torch.randn_like(xr)
    (g,) = torch.autograd.grad((v * sr).sum(), xr)
    est = (v * g).sum(1).reshape(20000, 3).mean(0)
    assert torch.allclose(est, tr, atol=0.05 * float(tr.abs().max()) + 0.02)


@pytest.mark.parametrize("objective", ["ssm", "exact"])
def test_other_objectives_train(objective):
    m, ds = _model(objective=objective)
    g = torch.Generator().manual_seed(0)
    losses = [m.train_step(ds.batch(128, g)[0], None, s)["loss"] for s in range(1, 31)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) < sum(losses[:5])  # the objective goes down (it is unbounded below by design)


def test_dsm_then_annealed_langevin_and_ode():
    m, ds = _model(levels=8)
    g = torch.Generator().manual_seed(0)
    for s in range(1, 401):
        m.train_step(ds.batch(128, g)[0], None, s)
    ref = ds.batch(800, g)[0]
    als = list(m.sample(800, seed=1, steps=30))
    assert als[-1].step == als[-1].total == 8 * 30 + 1
    assert energy_distance(als[-1].x, ref) < 0.05
    assert energy_distance(list(m.sample(800, seed=1, sampler="heun", steps=10))[-1].x, ref) < 0.05
