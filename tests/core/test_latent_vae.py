"""VAE maths against closed forms: the reparameterisation gradient, the ELBO on a linear-Gaussian
model whose marginal log p(x) is known, and the plugins end to end."""

from __future__ import annotations

import math

import pytest
import torch
from genstudio_plugins.vae import (
    BetaVAEConfig,
    BetaVAEPlugin,
    VAEConfig,
    VAEPlugin,
    beta_at,
    elbo,
    gaussian_kl,
    gaussian_log_likelihood,
    iwae_bound,
    reparameterize,
)

from genstudio.core.data import get_dataset
from genstudio.core.plugin import LatentModel, LikelihoodModel, final_state


def test_reparameterisation_gradient_matches_analytic_on_linear_decoder():
    torch.manual_seed(0)
    d, D = 3, 5
    A, c, x = torch.randn(D, d), torch.randn(D), torch.randn(D)
    mu = torch.randn(d, requires_grad=True)
    logvar = torch.randn(d, requires_grad=True)
    eps = torch.randn(d)
    z = reparameterize(mu, logvar, eps)
    loss = 0.5 * ((A @ z + c - x) ** 2).sum()
    g_mu, g_lv = torch.autograd.grad(loss, [mu, logvar])
    # dL/dz = A^T (A z + c - x); z = mu + exp(logvar/2) eps
    dz = A.T @ (A @ z.detach() + c - x)
    assert torch.allclose(g_mu, dz, atol=1e-5)
    assert torch.allclose(g_lv, dz * eps * 0.5 * torch.exp(0.5 * logvar.detach()), atol=1e-5)
    assert (g_mu.abs() > 1e-6).all() and (g_lv.abs() > 1e-6).all()


def _linear_gaussian(seed: int = 0, d: int = 2, D: int = 4, sigma: float = 0.5):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, sigma^2 I) with orthogonal columns in W, so the exact
    posterior is diagonal and a diagonal q can match it."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(D, d, generator=g, dtype=torch.float64))
    W = q * torch.tensor([1.5, 0.7], dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    return W, b, sigma


def _log_marginal(x, W, b, sigma):
    cov = W @ W.T + sigma**2 * torch.eye(W.shape[0], dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def test_elbo_is_below_exact_log_marginal_and_tight_at_the_true_posterior():
    W, b, sigma = _linear_gaussian()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, W.shape[0], generator=g, dtype=torch.float64) * 1.5 + b
    log_p = _log_marginal(x, W, b, sigma)
    log_sigma = torch.full((W.shape[0],), math.log(sigma), dtype=torch.float64)

    def log_lik(z):
        return gaussian_log_likelihood(x, z @ W.T + b, log_sigma)

    # exact posterior: precision I + W^T W / s^2 (diagonal here), mean Sigma W^T (x - b) / s^2
    prec = torch.eye(2, dtype=torch.float64) + W.T @ W / sigma**2
    assert torch.allclose(prec, torch.diag(torch.diagonal(prec)), atol=1e-12)
    post_var = 1 / torch.diagonal(prec)
    post_mu = ((x - b) @ W) * post_var / sigma**2
    post_lv = post_var.log().expand_as(post_mu)

    def exact_elbo(mu, lv):  # E_q[log p(x|z)] in closed form for the linear decoder, minus KL
        resid = x - mu @ W.T - b
        exp_rec = (-0.5 * W.shape[0] * math.log(2 * math.pi * sigma**2)
                   - ((resid**2).sum(1) + (lv.exp() * (W**2).sum(0)).sum(1)) / (2 * sigma**2))
        return exp_rec - gaussian_kl(mu, lv)

    # at the true posterior the ELBO is exact, and every importance weight equals p(x)
    assert torch.allclose(exact_elbo(post_mu, post_lv), log_p, atol=1e-9)
    eps = torch.randn(1, *post_mu.shape, generator=g, dtype=torch.float64)
    assert torch.allclose(iwae_bound(post_mu, post_lv, log_lik, eps), log_p, atol=1e-9)

    # a wrong q: ELBO < log p; the one-sample estimator is unbiased (within 4 standard errors);
    # IWAE(K=50) climbs towards log p but stays below it
    q_mu, q_lv = post_mu + 0.7, post_lv + 0.8
    assert (exact_elbo(q_mu, q_lv) < log_p - 0.1).all()
    many = torch.randn(4000, *post_mu.shape, generator=g, dtype=torch.float64)
    draws = torch.stack([elbo(q_mu, q_lv, log_lik, e)[0] for e in many])
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - exact_elbo(q_mu, q_lv)).abs() < 4 * se).all()
    iw50 = torch.stack([iwae_bound(q_mu, q_lv, log_lik, many[i:i + 50]) for i in range(0, 4000, 50)]).mean(0)
    assert (iw50 > exact_elbo(q_mu, q_lv) + 0.05).all() and (iw50 <= log_p + 0.02).all()


def test_gaussian_kl_matches_torch_distributions():
    mu, lv = torch.randn(6, 3), torch.randn(6, 3)
    q = torch.distributions.Normal(mu, (0.5 * lv).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    assert torch.allclose(gaussian_kl(mu, lv), torch.distributions.kl_divergence(q, p).sum(1), atol=1e-5)


def test_beta_annealing_schedule():
    assert beta_at(0, 4.0, 0.0, 100) == 0.0
    assert beta_at(50, 4.0, 0.0, 100) == pytest.approx(2.0)
    assert beta_at(500, 4.0, 0.0, 100) == 4.0
    assert beta_at(7, 4.0, 0.0, 0) == 4.0


def test_vae_trains_on_digits_and_exposes_latent_and_likelihood_faces():
    torch.manual_seed(0)
    ds = get_dataset("digits")
    m = VAEPlugin(VAEConfig(batch_size=64, latent_dim=4, hidden=64, depth=1, lr=3e-3))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    xe, _ = ds.fixed(128)
    with torch.no_grad():
        before = float(m.log_prob(xe).mean())
    for step in range(1, 61):
        x, y = ds.batch(64, g)
        out = m.train_step(x, y, step)
    assert {"loss", "elbo", "recon", "kl", "beta", "bits_per_dim"} <= set(out)
    with torch.no_grad():
        after = float(m.log_prob(xe).mean())
    assert after > before + 5  # nats per image
    assert isinstance(m, LatentModel) and isinstance(m, LikelihoodModel)
    z = m.encode(xe[:10])
    assert z.shape == (10, 4) and m.decode(z).shape == (10, 1, 8, 8)
    # IWAE with more samples is a tighter (higher) bound on average
    m.config.iw_samples = 32
    with torch.no_grad():
        assert float(m.log_prob(xe).mean()) > after
    st = final_state(m.sample(9, seed=3))
    assert st.x.shape == (9, 1, 8, 8) and torch.equal(st.x, final_state(m.sample(9, seed=3)).x)
    # state round trip
    m2 = VAEPlugin(m.config)
    m2.setup(ds.spec)
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2.encode(xe[:4]), m.encode(xe[:4]))


def test_beta_vae_uses_conv_nets_on_sprites_and_anneals_beta():
    ds = get_dataset("sprites16")
    m = BetaVAEPlugin(BetaVAEConfig(batch_size=8, hidden=32, anneal_steps=10))
    m.setup(ds.spec)
    assert any(isinstance(mod, torch.nn.Conv2d) for mod in m.enc.modules())
    x, y = ds.batch(8, torch.Generator().manual_seed(0))
    b1 = m.train_step(x, y, 1)["beta"]
    b2 = m.train_step(x, y, 10)["beta"]
    assert b1 == pytest.approx(0.4) and b2 == pytest.approx(4.0)
    assert m.encode(x).shape == (8, 10) and m.decode(m.encode(x)).shape == x.shape
    assert m.kl_per_dim(x).shape == (10,)
