"""Score SDEs: marginals, PF-ODE likelihood against closed forms, sampler agreement."""

from __future__ import annotations

import math

import pytest
import torch

from genstudio.core.data import get_dataset
from genstudio.core.diffusion.sde import (
    SDE_SAMPLERS,
    VESDE,
    VPSDE,
    SubVPSDE,
    bits_per_dim,
    divergence,
    ode_log_prob,
    ode_rk45,
)
from genstudio.core.metrics.functional import energy_distance

D64 = torch.float64
MU = torch.tensor([0.5, -0.3], dtype=D64)
S = torch.tensor([[0.4, 0.15], [0.15, 0.9]], dtype=D64)


def gauss_score(sde):
    """Exact score of p_t = N(m MU, m^2 S + std^2 I) for data N(MU, S)."""

    def score(x, t):
        tt = t.reshape(-1)[:1].double()
        m, s = float(sde.mean_coeff(tt)), float(sde.std(tt))
        prec = torch.linalg.inv(m**2 * S + s**2 * torch.eye(2, dtype=D64))
        return -(x - m * MU) @ prec.T

    return score


def marginal(sde, t):
    tt = torch.tensor([t], dtype=D64)
    m, s = float(sde.mean_coeff(tt)), float(sde.std(tt))
    return torch.distributions.MultivariateNormal(m * MU, m**2 * S + s**2 * torch.eye(2, dtype=D64))


def gauss_logp(x):
    return torch.distributions.MultivariateNormal(MU, S).log_prob(x)


SDES = [VPSDE(), SubVPSDE(), VESDE()]


@pytest.mark.parametrize("sde", SDES, ids=["vp", "subvp", "ve"])
def test_marginals_solve_the_forward_sde(sde):
    """d/dt var = 2 f' var + g^2 for linear drift f = f' x: the closed-form std obeys the SDE."""
    t = torch.tensor([0.3, 0.7], dtype=D64)
    h = 1e-6
    m, s = sde.mean_coeff(t), sde.std(t)
    x = torch.ones(2, 1, dtype=D64)
    fprime = sde.drift(x, t).reshape(-1)  # drift at x = 1 is the coefficient
    dm = (sde.mean_coeff(t + h) - sde.mean_coeff(t - h)) / (2 * h)
    dv = (sde.std(t + h) ** 2 - sde.std(t - h) ** 2) / (2 * h)
    assert torch.allclose(dm, fprime * m, rtol=1e-5)
    assert torch.allclose(dv, 2 * fprime * s**2 + sde.diffusion(t) ** 2, rtol=1e-5)


@pytest.mark.parametrize("sde", SDES, ids=["vp", "subvp", "ve"])
def test_pf_ode_likelihood_of_gaussian_is_exact(sde):
    x = torch.tensor([[0.2, 0.1], [1.5, -2.0], [-0.7, 0.4]], dtype=D64)
    lp, z, nfe = ode_log_prob(sde, gauss_score(sde), x, rtol=1e-7, atol=1e-7)
    assert nfe > 0 and z.shape == x.shape
    # with the true p_T in place of the prior, the change of variables is exact up to the solver
    lp_true_prior = lp - sde.prior_logp(z) + marginal(sde, sde.T).log_prob(z)
    assert torch.allclose(lp_true_prior, marginal(sde, sde.eps).log_prob(x), atol=1e-4)
    # and the prior mismatch is small (VE's N(0, 50^2) ignores the data mean: ~0.03 nats here)
    assert torch.allclose(lp, gauss_logp(x), atol=2e-2 if isinstance(sde, VPSDE) else 5e-2), (lp, gauss_logp(x))
    bpd = bits_per_dim(lp, 2)
    assert torch.allclose(bpd, -lp / (2 * math.log(2)))
    assert torch.allclose(bits_per_dim(lp, 2, math.log(128)), bpd + 7)


def test_hutchinson_trace_is_unbiased():
    sde = VPSDE()
    score = gauss_score(sde)
    x = torch.tensor([[0.3, -0.2]], dtype=D64).repeat(4000, 1)
    t = torch.full((4000,), 0.4, dtype=D64)

    def fn(z):
        return sde.ode_drift(score, z, t)

    _, exact = divergence(fn, x)
    g = torch.Generator().manual_seed(0)
    v = torch.randint(0, 2, x.shape, generator=g).to(D64) * 2 - 1
    _, est = divergence(fn, x, v)
    assert not torch.allclose(est, exact)  # the single-probe estimates do vary (S is not diagonal)
    assert float(est.mean()) == pytest.approx(float(exact[0]), abs=0.05 * abs(float(exact[0])))


def test_reverse_sde_and_pf_ode_marginals_agree_on_mixture():
    ds = get_dataset("gmm2d")
    g = torch.Generator().manual_seed(0)
    ref = ds.batch(1500, g)[0].double()
    sde = VPSDE()
    score = sde.score_from_data_score(ds.score)
    x = sde.prior_sample((1500, 2), g, dtype=D64)
    outs = {}
    for name in ("em", "pc", "ode_heun"):
        steps = 100 if name == "ode_heun" else 400
        *_, (_, t, _, mean) = SDE_SAMPLERS[name](sde, score, x, steps, g)
        assert t == pytest.approx(sde.eps)
        outs[name] = mean
    outs["rk45"], nfe, _, _ = ode_rk45(sde, score, x)
    assert nfe < 400
    for name, y in outs.items():
        assert energy_distance(y, ref) < 0.02, name
    assert energy_distance(outs["em"], outs["rk45"]) < 0.02
    # the PF-ODE is deterministic: Heun and RK45 land on the same points
    assert float((outs["ode_heun"] - outs["rk45"]).norm(dim=1).median()) < 0.02


def test_ve_sampler_on_mixture():
    ds = get_dataset("8gaussians")
    g = torch.Generator().manual_seed(1)
    sde = VESDE(sigma_max=10.0)
    score = sde.score_from_data_score(ds.score)
    x = sde.prior_sample((1000, 2), g, dtype=D64)
    *_, (_, _, _, y) = SDE_SAMPLERS["pc"](sde, score, x, 300, g)
    assert energy_distance(y, ds.batch(1000, g)[0].double()) < 0.03
