"""k-diffusion samplers: step formulas, sigma schedules, and convergence on exact denoisers."""

from __future__ import annotations

import math

import pytest
import torch

from genstudio.core.data import get_dataset
from genstudio.core.diffusion import cosine_schedule, linear_schedule, vp_eps_from_data_score
from genstudio.core.diffusion.ksamplers import (
    KSAMPLERS,
    ancestral_step,
    denoiser_from_data_score,
    make_sigmas,
    sample_k,
    sigma_to_t,
    sigmas_exponential,
    sigmas_karras,
    sigmas_model,
    vp_denoiser,
)
from genstudio.core.metrics.functional import energy_distance

D64 = torch.float64
MU = torch.tensor([0.7, -0.4], dtype=D64)
S = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=D64)  # data covariance


def gauss_denoiser(x, sigma):
    """Exact E[y | y + sigma n = x] for y ~ N(MU, S): MU + S (S + sigma^2 I)^-1 (x - MU)."""
    s = float(torch.as_tensor(sigma).reshape(-1)[0])
    k = S @ torch.linalg.inv(S + s**2 * torch.eye(2, dtype=D64))
    return MU + (x - MU) @ k.T


X = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.2, -0.1]], dtype=D64)
SIG = torch.tensor([10.0, 3.0, 1.0, 0.0], dtype=D64)


def _first_steps(name, n=3, **kw):
    return [(x.clone(), d.clone()) for _, _, x, d in KSAMPLERS[name](gauss_denoiser, X, SIG[:n + 1], **kw)]


def test_euler_step_formula():
    (x1, d1), (x2, _), (x3, _) = _first_steps("euler")
    assert torch.allclose(d1, gauss_denoiser(X, 10.0))
    # x_next = D + (sigma_next / sigma) (x - D): Euler on dx/dsigma = (x - D)/sigma
    assert torch.allclose(x1, d1 + 0.3 * (X - d1), atol=1e-12)
    assert torch.allclose(x3, gauss_denoiser(x2, 1.0), atol=1e-12)  # the last step lands on D


def test_heun_step_formula():
    (x1, _), *_ = _first_steps("heun")
    d0 = (X - gauss_denoiser(X, 10.0)) / 10.0
    xe = X + d0 * (3.0 - 10.0)
    d1 = (xe - gauss_denoiser(xe, 3.0)) / 3.0
    assert torch.allclose(x1, X + 0.5 * (d0 + d1) * (3.0 - 10.0), atol=1e-12)


def test_euler_ancestral_step_formula():
    g = torch.Generator().manual_seed(0)
    out = list(KSAMPLERS["euler_a"](gauss_denoiser, X, SIG[:2], generator=g))
    noise = torch.randn(X.shape, generator=torch.Generator().manual_seed(0), dtype=D64)
    up = math.sqrt(9.0 * (100.0 - 9.0) / 100.0)
    down = math.sqrt(9.0 - up**2)
    assert ancestral_step(10.0, 3.0) == pytest.approx((down, up))
    d = gauss_denoiser(X, 10.0)
    assert torch.allclose(out[0][2], X + (X - d) / 10.0 * (down - 10.0) + up * noise, atol=1e-12)
    assert ancestral_step(10.0, 3.0, eta=0.0) == (3.0, 0.0)


def test_dpmpp_2m_step_formula():
    (x1, d1), (x2, d2), _ = _first_steps("dpmpp_2m")
    # first step = DDIM: x1 = (s1/s0) x0 + (1 - s1/s0) D0
    assert torch.allclose(x1, 0.3 * X + 0.7 * d1, atol=1e-12)
    h, h_last = math.log(3.0), math.log(10.0 / 3.0)
    r = h_last / h
    dd = (1 + 1 / (2 * r)) * d2 - 1 / (2 * r) * d1
    assert torch.allclose(x2, (1.0 / 3.0) * x1 + (1 - 1.0 / 3.0) * dd, atol=1e-12)


def test_sigma_schedules_closed_forms():
    k = sigmas_karras(5, 0.1, 80.0, rho=7.0)
    i = torch.arange(5, dtype=D64)
    want = (80.0 ** (1 / 7) + i / 4 * (0.1 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    assert torch.allclose(k[:-1], want) and k[-1] == 0
    assert k[0] == pytest.approx(80.0) and k[-2] == pytest.approx(0.1)
    e = sigmas_exponential(4, 0.1, 80.0)
    ratios = e[1:-1] / e[:-2]
    assert torch.allclose(ratios, torch.full_like(ratios, (0.1 / 80.0) ** (1 / 3)))
    sched = cosine_schedule(100)
    m = sigmas_model(sched, 4)
    abar = sched.alphas_cumprod[torch.tensor([99, 74, 49, 24])]
    assert torch.allclose(m[:-1], ((1 - abar) / abar).sqrt()) and m[-1] == 0
    for kind in ("model", "karras", "exponential"):
        s = make_sigmas(kind, 7, sched)
        assert len(s) == 8 and bool((s[:-1] > s[1:]).all())
        s = make_sigmas(kind, 256, sched)  # many steps: several model levels lie above the cap of 80
        assert float(s[0]) == pytest.approx(80.0) and bool((s[:-1] > s[1:]).all()) and s[-1] == 0
    # sigma_to_t inverts the schedule's own sigmas and interpolates between them
    t = sigma_to_t(sched.sigmas[[3, 50]], sched)
    assert torch.allclose(t, torch.tensor([3.0, 50.0], dtype=D64))
    mid = (sched.sigmas[10].log() + sched.sigmas[11].log()).div(2).exp()
    assert float(sigma_to_t(mid, sched)[0]) == pytest.approx(10.5)


def test_samplers_converge_to_exact_pf_ode_solution():
    """Gaussian data: the PF-ODE solution is x(s) = MU + (S + s^2)^{1/2} (S + s0^2)^{-1/2} (x0 - MU);
    Euler's error shrinks ~linearly in the step count, Heun's and DPM-Solver++'s faster."""
    ev, evec = torch.linalg.eigh(S)

    def mat_pow(s2, p):
        return evec @ torch.diag((ev + s2) ** p) @ evec.T

    s0 = 20.0
    exact = MU + (X - MU) @ (mat_pow(0.0, 0.5) @ mat_pow(s0**2, -0.5)).T
    errs = {}
    for name in ("euler", "heun", "dpmpp_2m"):
        errs[name] = [float((sample_k(name, gauss_denoiser, X, sigmas_karras(n, 0.002, s0)) - exact).abs().max())
                      for n in (10, 40)]
    assert errs["euler"][1] < errs["euler"][0] / 2.5
    assert errs["heun"][1] < errs["heun"][0] / 8 and errs["heun"][1] < 1e-3
    assert errs["dpmpp_2m"][1] < errs["dpmpp_2m"][0] / 8 and errs["dpmpp_2m"][1] < 1e-3


def test_euler_pf_ode_gaussian_moments():
    g = torch.Generator().manual_seed(0)
    n, s0 = 20000, 40.0
    chol = torch.linalg.cholesky(S + s0**2 * torch.eye(2, dtype=D64))
    x = MU + torch.randn(n, 2, generator=g, dtype=D64) @ chol.T  # exact marginal at sigma = s0
    y = sample_k("euler", gauss_denoiser, x, sigmas_karras(100, 0.002, s0))
    assert torch.allclose(y.mean(0), MU, atol=0.02)
    assert torch.allclose(torch.cov(y.T), S, atol=0.02)


def test_dpmpp_2m_20_steps_matches_mixture_moments():
    """Exact GMM score through the VP wrapper (eps on the model's own sigmas) and directly."""
    ds = get_dataset("gmm2d")
    g = torch.Generator().manual_seed(1)
    ref, _ = ds.batch(4000, g)
    ref = ref.double()
    m_true = (ds.weights[:, None] * ds.means).sum(0)
    d = ds.means - m_true
    cov_true = (ds.weights[:, None, None] * (d[:, :, None] * d[:, None, :])).sum(0) + ds.std**2 * torch.eye(2)
    sched = linear_schedule(1000)
    for den, sig in ((vp_denoiser(vp_eps_from_data_score(ds.score, sched), sched, quantize=True),
                      sigmas_model(sched, 20)),
                     (denoiser_from_data_score(ds.score), sigmas_karras(20, 0.01, 80.0))):
        x = torch.randn(10000, 2, generator=g, dtype=D64) * float((1 + sig[0] ** 2) ** 0.5)
        y = sample_k("dpmpp_2m", den, x, sig)
        assert torch.allclose(y.mean(0), m_true, atol=0.06)
        assert torch.allclose(torch.cov(y.T), cov_true, atol=0.12)  # Karras from 80: ~3% high
        assert energy_distance(y, ref) < 0.01


def test_vp_denoiser_matches_tweedie():
    """eps-model of the exact score on the VP schedule gives D = x + sigma^2 score_sigma(x)."""
    ds = get_dataset("8gaussians")
    sched = cosine_schedule(200)
    den = vp_denoiser(vp_eps_from_data_score(ds.score, sched), sched, quantize=True)
    x = torch.randn(5, 2, dtype=D64) * 3
    s = sched.sigmas[120]
    assert torch.allclose(den(x, s), x + s**2 * ds.score(x, float(s)), atol=1e-9)
    # between grid sigmas too: a fractional timestep is not truncated to the entry below
    frac = vp_denoiser(vp_eps_from_data_score(ds.score, sched), sched)
    for s in (0.37, 2.5, float(sched.sigmas[120] * 1.01)):
        assert torch.allclose(frac(x, torch.tensor(s, dtype=D64)), x + s**2 * ds.score(x, s), atol=1e-7)


def test_sigma_cap_keeps_heun_stable_on_cosine():
    """Cosine ends at sigma ~ 2e4; uncapped, Heun's 2e4 -> 5 trapezoid step explodes."""
    ds = get_dataset("8gaussians")
    sched = cosine_schedule(1000)
    assert float(sched.sigmas[-1]) > 1e4
    capped, raw = make_sigmas("model", 8, sched), make_sigmas("model", 8, sched, sigma_max=None)
    assert float(capped[0]) == 80.0 and torch.equal(capped[1:], raw[1:])
    assert float(make_sigmas("karras", 8, sched)[0]) == pytest.approx(80.0)
    den = denoiser_from_data_score(ds.score)
    g = torch.Generator().manual_seed(0)
    ref = ds.batch(1000, g)[0].double()
    out = {}
    for name, sig in (("capped", capped), ("raw", raw)):
        x = torch.randn(1000, 2, generator=g, dtype=D64) * float((1 + sig[0] ** 2) ** 0.5)
        out[name] = energy_distance(sample_k("heun", den, x, sig), ref)
    assert out["capped"] < 0.03 < 1.0 < out["raw"], out
