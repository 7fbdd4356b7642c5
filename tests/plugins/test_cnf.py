"""Continuous normalising flow: the density integrates to one on a grid, the integrated trace equals
the log-det of the (RK4) map's autograd Jacobian, Hutchinson is unbiased, the adjoint gradients
equal backprop through the solver, encode/decode invert each other, and training lowers the NLL."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from genstudio_plugins.cnf import CNF, CNFConfig, CNFPlugin, _AdjointIntegrate, _divergence, divergence, rk4

from genstudio.core.data import get_dataset
from genstudio.core.plugin import final_state


def _random_cnf(seed: int = 0, hidden: int = 16, depth: int = 2, scale: float = 0.6) -> CNF:
    torch.manual_seed(seed)
    m = CNF(2, hidden, depth).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn_like(p))
    return m.eval()


def test_density_integrates_to_one_on_a_grid():
    """Riemann sum over [-8, 8]^2 with spacing 0.05: |mass - 1| < 1e-2 (16 RK4 steps)."""
    m = _random_cnf()
    g = torch.linspace(-8, 8, 321, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    lp = torch.cat([m.log_prob(c, steps=16) for c in pts.split(40000)])
    mass = lp.exp().sum() * (g[1] - g[0]) ** 2
    assert abs(float(mass) - 1) < 1e-2
    base = -0.5 * (pts**2).sum(1) - math.log(2 * math.pi)
    assert (lp - base).abs().max() > 0.1  # not just the base Gaussian


def _flow_map(m: CNF, x: torch.Tensor, steps: int) -> torch.Tensor:
    """The RK4 map with gradients (transport() runs without them)."""
    return rk4(m.velocity, x, 0.0, 1.0, steps)


def test_integrated_trace_equals_logdet_of_the_flow_map():
    """log N(z(1)) + ∫ tr = log N(z(1)) + log|det ∂z(1)/∂x| up to RK4's O(h^4): the gap shrinks
    about 16x per halving of the step."""
    m = _random_cnf(1)
    x = torch.randn(4, 2, dtype=torch.float64)
    gaps = []
    for steps in (16, 32):
        lp = m.log_prob(x, steps=steps)
        want = []
        for i in range(4):
            jac = torch.autograd.functional.jacobian(lambda v: _flow_map(m, v[None], steps)[0], x[i])  # noqa: B023
            z = _flow_map(m, x[i:i + 1], steps).detach()
            want.append(-0.5 * (z**2).sum() - math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1])
        gaps.append(float((lp - torch.stack(want)).abs().max()))
    assert gaps[1] < 1e-4 and gaps[1] < gaps[0] / 8, gaps


def test_exact_divergence_and_unbiased_hutchinson():
    m = _random_cnf(2)
    z = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    f = m.field(z, 0.3)
    exact = divergence(f, z, None, create_graph=False)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: m.field(v[None], 0.3)[0], z[i].detach())
        assert abs(float(exact[i] - jac.trace())) < 1e-10
        frob = _divergence(m.field(z, 0.3), z, None, create_graph=False)[1][i]
        assert abs(float(frob - (jac**2).sum())) < 1e-10  # the Jacobian regulariser, exactly
    g = torch.Generator().manual_seed(0)
    k = 4000
    eps = torch.randint(0, 2, (k, *z.shape), generator=g).double() * 2 - 1
    est = torch.stack([divergence(m.field(z, 0.3), z, e, create_graph=False) for e in eps[:200]])
    # Rademacher probes in 2-D: εᵀJε = tr J + ε1ε2 (J12 + J21), so the mean of 200 probes is exact
    # up to the off-diagonal term's sample mean, which is small
    assert (est.mean(0) - exact).abs().max() < 0.25 * exact.abs().max() + 0.05
    assert ((est - exact).abs() > 1e-6).any()  # each single probe is noisy


def test_adjoint_gradients_match_backprop_through_the_solver():
    """Optimise-then-discretise (adjoint) vs discretise-then-optimise: the same value, and
    gradients that agree to RK4's order (about 16-20x closer per halving of the step)."""
    m = _random_cnf(3, hidden=8, depth=2)
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    eps = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(1)).double() * 2 - 1
    params = tuple(m.parameters())
    w = torch.tensor([0.0, 0.0, 1.0, 0.3, 0.2], dtype=torch.float64)  # a loss on every state column

    def loss(s1):
        return (m.log_prob_from(s1) + (s1 * w).sum(1)).sum()

    errs = []
    for steps in (16, 32):
        direct = loss(m.integrate(x, steps, eps, create_graph=True))
        gd = torch.autograd.grad(direct, [x, *params])
        adj = loss(_AdjointIntegrate.apply(x, eps, m, steps, *params))
        assert abs(float(adj.detach() - direct.detach())) < 1e-10
        ga = torch.autograd.grad(adj, [x, *params])
        errs.append(max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(ga, gd)))
    assert errs[1] < 1e-4 and errs[1] < errs[0] / 8, errs


def test_plugin_trains_samples_with_trajectories_and_inverts():
    torch.manual_seed(0)
    ds = get_dataset("8gaussians")
    for adjoint in (False, True):
        p = CNFPlugin(CNFConfig(batch_size=128, hidden=32, depth=2, ode_steps=4, adjoint=adjoint, lr=5e-3))
        p.setup(ds.spec)
        x_ref, _ = ds.fixed(256, seed=1)
        before = -p.log_prob(x_ref).mean().item()
        g = torch.Generator().manual_seed(0)
        for step in range(1, 41):
            m = p.train_step(ds.batch(128, g)[0], None, step)
        after = -p.log_prob(x_ref).mean().item()
        assert math.isfinite(m["loss"]) and after < before - 0.2, (adjoint, before, after)
        assert m["kinetic"] > 0 and m["jacobian"] > 0 and m["loss"] > m["nll"]
    states = list(p.sample(64, seed=0, steps=6, every=2))
    assert [s.step for s in states] == [0, 2, 4, 6] and states[0].t == 1.0 and states[-1].t == 0.0
    assert final_state(p.sample(64, seed=0, steps=6)).x.shape == (64, 2)
    z = p.encode(x_ref[:32])
    assert torch.allclose(p.decode(z), x_ref[:32], atol=2e-3)


@pytest.mark.parametrize("trace", ["hutchinson", "exact"])
def test_tiny_config_steps(trace):
    p = CNFPlugin(replace(CNFConfig.tiny(), trace=trace))
    p.setup(get_dataset("moons").spec)
    x, _ = get_dataset("moons").fixed(16)
    assert math.isfinite(p.train_step(x, None, 1)["loss"])
