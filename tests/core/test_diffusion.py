"""Noise schedules and DDPM/DDIM samplers against closed forms and exact scores (no Qt, no training)."""

from __future__ import annotations

import math

import pytest
import torch

from genstudio.core.data import get_dataset
from genstudio.core.diffusion import (
    cosine_schedule,
    ddim_step,
    ddpm_step,
    eps_from_score,
    invert_ddim,
    linear_schedule,
    predict_x0,
    q_sample,
    respace,
    sample_ddim,
    sample_ddpm,
    spaced_timesteps,
    vp_eps_from_data_score,
)
from genstudio.core.diffusion.samplers import ddim_steps, ddpm_steps

F64 = torch.float64


# -- schedules ------------------------------------------------------------------------------------

def test_linear_alpha_bar_closed_form():
    T, b0, b1 = 50, 1e-3, 0.2
    s = linear_schedule(T, b0, b1)
    for t in (0, 1, 17, T - 1):
        betas = [b0 + (b1 - b0) * i / (T - 1) for i in range(t + 1)]
        assert float(s.alphas_cumprod[t]) == pytest.approx(math.prod(1 - b for b in betas), rel=1e-12)
    assert s.betas.dtype == F64
    # default betas are Ho et al.'s 1e-4 .. 0.02 rescaled by 1000 / T
    d = linear_schedule(100)
    assert float(d.betas[0]) == pytest.approx(1e-3) and float(d.betas[-1]) == pytest.approx(0.2)


def test_cosine_alpha_bar_closed_form():
    T, s_ = 1000, 0.008
    s = cosine_schedule(T, s_, max_beta=0.999)

    def f(u):
        return math.cos((u + s_) / (1 + s_) * math.pi / 2) ** 2

    uncapped = (s.betas < 0.999).nonzero().flatten().tolist()
    assert len(uncapped) >= T - 1  # only the very last beta may hit the cap
    for t in (0, 10, 500, 900, uncapped[-1]):
        assert float(s.alphas_cumprod[t]) == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert float(s.betas.max()) <= 0.999


def test_posterior_by_gaussian_conditioning():
    """beta-tilde and the posterior mean coefficients, rederived as the conditional of the joint
    Gaussian (x_{t-1}, x_t) given x_0."""
    s = cosine_schedule(200)
    for t in (1, 5, 100, 199):
        a_prev, a_t, alpha = (float(v) for v in (s.alphas_cumprod[t - 1], s.alphas_cumprod[t], s.alphas[t]))
        cov = math.sqrt(alpha) * (1 - a_prev)  # Cov(x_{t-1}, x_t | x_0)
        var = (1 - a_prev) - cov**2 / (1 - a_t)
        c2 = cov / (1 - a_t)
        c1 = math.sqrt(a_prev) - c2 * math.sqrt(a_t)
        assert float(s.posterior_variance[t]) == pytest.approx(var, rel=1e-9)
        assert float(s.posterior_variance[t]) == pytest.approx((1 - a_prev) / (1 - a_t) * float(s.betas[t]), rel=1e-12)
        assert float(s.posterior_mean_coef1[t]) == pytest.approx(c1, rel=1e-9)
        assert float(s.posterior_mean_coef2[t]) == pytest.approx(c2, rel=1e-9)
    assert float(s.posterior_variance[0]) == 0.0


def test_spacing_and_respace():
    for spacing in ("trailing", "leading", "linspace"):
        ts = spaced_timesteps(1000, 10, spacing)
        assert len(ts) == 10 and bool((ts[:-1] > ts[1:]).all())
        assert 0 <= int(ts.min()) and int(ts.max()) <= 999
    assert spaced_timesteps(1000, 10)[0] == 999  # trailing starts from pure noise
    assert spaced_timesteps(20, 50).tolist() == list(range(19, -1, -1))
    s = linear_schedule(100)
    full = respace(s, range(100))
    assert torch.allclose(full.betas, s.betas, rtol=1e-12)
    sub = respace(s, [9, 49, 99])
    assert torch.allclose(sub.alphas_cumprod, s.alphas_cumprod[[9, 49, 99]], rtol=1e-12)
    assert sub.timesteps.tolist() == [9, 49, 99]


# -- single steps ---------------------------------------------------------------------------------

def _fixed(shape=(3, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=F64) for _ in range(3)]


def test_q_sample_and_x0_inverse():
    s = linear_schedule(100)
    x0, noise, _ = _fixed()
    t = torch.tensor([0, 50, 99])
    xt = q_sample(x0, t, noise, s)
    a = s.alphas_cumprod[t][:, None]
    assert torch.allclose(xt, a.sqrt() * x0 + (1 - a).sqrt() * noise, atol=1e-14)
    assert torch.allclose(predict_x0(noise, t, xt, s), x0, atol=1e-10)


def test_ddpm_step_matches_ho_eq11():
    s = linear_schedule(100)
    x, eps, z = _fixed()
    for t in (1, 42, 99):
        beta, alpha, abar = (float(v[t]) for v in (s.betas, s.alphas, s.alphas_cumprod))
        sigma = math.sqrt((1 - float(s.alphas_cumprod[t - 1])) / (1 - abar) * beta)
        want = (x - beta / math.sqrt(1 - abar) * eps) / math.sqrt(alpha) + sigma * z
        got, x0 = ddpm_step(eps, t, x, s, z)
        assert torch.allclose(got, want, atol=1e-12)
        assert torch.allclose(x0, (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar), atol=1e-12)
    # t = 0 returns the clean prediction itself
    got, x0 = ddpm_step(eps, 0, x, s, z)
    assert torch.allclose(got, x0, atol=1e-12)


def test_ddim_step_matches_song_eq12():
    s = cosine_schedule(100)
    x, eps, z = _fixed()
    t, tp = 70, 40
    a_t, a_p = float(s.alphas_cumprod[t]), float(s.alphas_cumprod[tp])
    x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    for eta in (0.0, 0.7):
        sig = eta * math.sqrt((1 - a_p) / (1 - a_t)) * math.sqrt(1 - a_t / a_p)
        want = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p - sig**2) * eps + sig * z
        got, x0_hat = ddim_step(eps, t, tp, x, s, eta, z)
        assert torch.allclose(got, want, atol=1e-12)
        assert torch.allclose(x0_hat, x0, atol=1e-12)
    got, _ = ddim_step(eps, t, -1, x, s, 0.0)  # last step lands on x0_hat
    assert torch.allclose(got, x0, atol=1e-12)


def test_ddim_eta1_on_consecutive_steps_is_ddpm():
    s = linear_schedule(100)
    x, eps, z = _fixed()
    for t in (1, 30, 99):
        a, _ = ddim_step(eps, t, t - 1, x, s, 1.0, z)
        b, _ = ddpm_step(eps, t, x, s, z)
        assert torch.allclose(a, b, atol=1e-12)


def test_clipped_ddim_keeps_x0_and_eps_consistent():
    s = linear_schedule(100)
    x, eps, _ = _fixed()
    x = 50 * x
    out, x0 = ddim_step(eps, 99, -1, x, s, 0.0, clip=1.0)
    assert float(x0.abs().max()) <= 1.0 and torch.allclose(out, x0)


# -- loops ----------------------------------------------------------------------------------------

def _gmm_eps(name: str, sched):
    ds = get_dataset(name)
    return ds, vp_eps_from_data_score(ds.score, sched)


def test_per_sample_timesteps_in_exact_eps():
    s = linear_schedule(100)
    _, eps_fn = _gmm_eps("gmm2d", s)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.tensor([3, 50, 3, 99, 50, 0])
    mixed = eps_fn(x, t)
    for i in range(6):
        assert torch.allclose(mixed[i], eps_fn(x[i:i + 1], t[i:i + 1])[0], atol=1e-14)


def test_vp_score_from_data_score_matches_autograd():
    """eps from the helper equals -sqrt(1-abar) * grad log p_t with p_t built independently:
    p_t(x) = p_sigma(x / sqrt(abar)) / abar^(d/2), differentiated by autograd."""
    s = cosine_schedule(100)
    ds, eps_fn = _gmm_eps("gmm2d", s)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * 2
    for t in (0, 30, 90):
        abar = float(s.alphas_cumprod[t])
        sigma = math.sqrt((1 - abar) / abar)
        xr = x.clone().requires_grad_(True)
        logp = ds.log_prob(xr / math.sqrt(abar), sigma) - math.log(abar)  # d/2 * log(abar), d = 2
        (score,) = torch.autograd.grad(logp.sum(), xr)
        tt = torch.full((64,), t)
        assert torch.allclose(eps_fn(x, tt), eps_from_score(score, tt, s), atol=1e-9)


def _mixture_moments(ds):
    w, mu = ds.weights, ds.means
    mean = (w[:, None] * mu).sum(0)
    cov = (w[:, None, None] * mu[:, :, None] * mu[:, None, :]).sum(0) - torch.outer(mean, mean)
    return mean, cov + ds.std**2 * torch.eye(2, dtype=F64)


def _check_samples(x, ds):
    mean, cov = _mixture_moments(ds)
    assert torch.isfinite(x).all()
    assert torch.allclose(x.mean(0), mean, atol=0.08), (x.mean(0), mean)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.12), (torch.cov(x.T), cov)
    comp = torch.cdist(x, ds.means).argmin(1)
    frac = torch.bincount(comp, minlength=len(ds.weights)).double() / len(x)
    assert torch.allclose(frac, ds.weights, atol=0.03), (frac, ds.weights)
    # spread inside a component is the component's own std (0.35), not blurred
    within = (x - ds.means[comp]).std()
    assert abs(float(within) - ds.std) < 0.05


def test_exact_score_ddpm_and_ddim_sample_the_mixture():
    ds = get_dataset("gmm2d")
    g = torch.Generator().manual_seed(0)
    xT = torch.randn(2000, 2, generator=g, dtype=F64)
    lin, cos = linear_schedule(1000), cosine_schedule(1000)
    eps_lin, eps_cos = vp_eps_from_data_score(ds.score, lin), vp_eps_from_data_score(ds.score, cos)
    _check_samples(sample_ddpm(eps_lin, xT, lin, g), ds)  # all 1000 ancestral steps
    _check_samples(sample_ddim(eps_lin, xT, lin, 100), ds)
    _check_samples(sample_ddim(eps_cos, xT, cos, 100), ds)
    _check_samples(sample_ddim(eps_cos, xT, cos, 50, eta=1.0, generator=g), ds)
    # DDPM on a respaced schedule (fewer ancestral steps) still samples the mixture
    _check_samples(sample_ddpm(eps_cos, xT, respace(cos, spaced_timesteps(1000, 100)), g), ds)


def test_respaced_ddpm_equals_ddim_eta1():
    s = linear_schedule(200)
    _, eps_fn = _gmm_eps("8gaussians", s)
    xT = torch.randn(100, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    ts = spaced_timesteps(200, 12)
    a = sample_ddpm(eps_fn, xT, respace(s, ts), torch.Generator().manual_seed(9))
    b = sample_ddim(eps_fn, xT, s, ts, eta=1.0, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(a, b, atol=1e-9)


def test_ddim_eta0_is_deterministic_and_invertible():
    s = cosine_schedule(1000)
    ds, eps_fn = _gmm_eps("gmm2d", s)
    xT = torch.randn(300, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    a = sample_ddim(eps_fn, xT, s, 100, generator=torch.Generator().manual_seed(1))
    b = sample_ddim(eps_fn, xT, s, 100, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    back = invert_ddim(eps_fn, a, s, 100)
    again = sample_ddim(eps_fn, back, s, 100)
    assert float((again - a).norm(dim=1).median()) < 0.05
    assert float((back - xT).norm(dim=1).median()) < 0.1


def test_callbacks_and_generators_report_every_step():
    s = linear_schedule(30)
    _, eps_fn = _gmm_eps("8gaussians", s)
    xT = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    seen = []
    out = sample_ddpm(eps_fn, xT, s, torch.Generator().manual_seed(0),
                      callback=lambda i, t, x, x0: seen.append((i, t, x.dtype, x0.shape)))
    assert [i for i, *_ in seen] == list(range(30))
    assert [t for _, t, *_ in seen] == list(range(28, -2, -1))  # state after each step; -1 = clean
    assert seen[0][2] == torch.float32 and out.dtype == torch.float32
    steps = list(ddim_steps(eps_fn, xT, s, 5))
    assert [t for _, t, _, _ in steps] == [23, 17, 11, 5, -1]
    assert torch.equal(steps[-1][2], sample_ddim(eps_fn, xT, s, 5))
    rs = respace(s, [4, 14, 29])
    assert [t for _, t, _, _ in ddpm_steps(eps_fn, xT, rs, torch.Generator().manual_seed(0))] == [14, 4, -1]
