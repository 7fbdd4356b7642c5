"""The adversarial objectives against closed forms and independent formulas (scipy for KL/JS)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from genstudio.core.gan import losses as L

ALL = [*L.DIVERGENCES, "alpha"]


def _div(name: str, alpha: float = 0.5) -> L.FDivergence:
    return L.divergence(name, alpha)


def _pq() -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.tensor([0.1, 0.4, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.25, 0.25, 0.15, 0.35], dtype=torch.float64)
    return p, q


@pytest.mark.parametrize("name", ALL)
def test_fenchel_inequality_holds_on_the_activation_range(name):
    """f*(t) >= t u - f(u) for every u > 0 and every t the activation can output (Fenchel-Young)."""
    div = _div(name)
    u = torch.logspace(-3, 3, 200, dtype=torch.float64)
    t = div.activation(torch.linspace(-8, 8, 161, dtype=torch.float64))
    lhs = div.conjugate(t)[:, None]
    rhs = t[:, None] * u[None] - div.f(u)[None]
    assert torch.isfinite(lhs).all()
    assert (lhs >= rhs - 1e-9).all()


@pytest.mark.parametrize("name", [n for n in ALL if n != "tv"])
def test_the_optimal_critic_makes_the_bound_the_true_divergence(name):
    """With T = f'(p/q) the variational bound E_p T - E_q f*(T) equals D_f(P||Q) exactly."""
    div = _div(name)
    p, q = _pq()
    t = div.f_prime(p / q)
    bound = (p * t).sum() - (q * div.conjugate(t)).sum()
    torch.testing.assert_close(bound, L.true_f_divergence(div, p, q), atol=1e-10, rtol=1e-10)


def test_total_variation_bound_is_tight_at_the_sign_critic():
    """TV's f is not differentiable at 1; the optimal critic is 1/2 sign(p - q)."""
    div = _div("tv")
    p, q = _pq()
    t = 0.5 * torch.sign(p - q)
    bound = (p * t).sum() - (q * div.conjugate(t)).sum()
    torch.testing.assert_close(bound, 0.5 * (p - q).abs().sum())


def test_divergences_match_independent_formulas():
    p, q = _pq()
    kl = float(L.true_f_divergence(_div("kl"), p, q))
    assert kl == pytest.approx(entropy(p.numpy(), q.numpy()), abs=1e-12)
    rkl = float(L.true_f_divergence(_div("reverse_kl"), p, q))
    assert rkl == pytest.approx(entropy(q.numpy(), p.numpy()), abs=1e-12)
    js = float(L.true_f_divergence(_div("js"), p, q))
    assert js == pytest.approx(jensenshannon(p.numpy(), q.numpy()) ** 2, abs=1e-12)  # natural log
    pearson = float(L.true_f_divergence(_div("pearson"), p, q))
    assert pearson == pytest.approx(float(((p - q) ** 2 / q).sum()), abs=1e-12)
    hel = float(L.true_f_divergence(_div("hellinger"), p, q))
    assert hel == pytest.approx(float(((p.sqrt() - q.sqrt()) ** 2).sum()), abs=1e-12)
    a = 2.0  # alpha = 2 is half of Pearson chi^2
    assert float(L.true_f_divergence(_div("alpha", a), p, q)) == pytest.approx(pearson / 2, abs=1e-12)


def test_unknown_divergence_and_bad_alpha_are_clear_errors():
    with pytest.raises(ValueError, match="unknown f-divergence"):
        L.divergence("wasserstein")
    with pytest.raises(ValueError, match="alpha must not be 0 or 1"):
        L.divergence("alpha", 1.0)


def test_minimax_values_at_chance_and_at_a_perfect_critic():
    zero = torch.zeros(100)
    assert float(L.minimax_d_loss(zero, zero)) == pytest.approx(2 * math.log(2))  # D = 1/2 everywhere
    assert L.js_estimate(zero, zero) == pytest.approx(0.0, abs=1e-7)
    big = torch.full((100,), 30.0)
    assert L.js_estimate(big, -big) == pytest.approx(math.log(2), abs=1e-6)  # disjoint supports: JS = log 2
    # the saturating loss has (almost) no gradient where D confidently rejects fakes; the other one does
    logit = torch.full((10,), -8.0, requires_grad=True)
    (g_sat,) = torch.autograd.grad(L.minimax_g_loss(logit, saturating=True), logit)
    (g_ns,) = torch.autograd.grad(L.minimax_g_loss(logit, saturating=False), logit)
    assert g_sat.abs().max() < 1e-4 < g_ns.abs().min()


def test_gradient_penalty_of_a_linear_critic():
    """C(x) = w.x has gradient w everywhere: the penalty is (|w| - 1)^2 at every interpolate."""
    w = torch.tensor([3.0, -4.0])
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(64, 2), torch.randn(64, 2)
    gp = L.gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    assert gp.shape == () and float(gp) == pytest.approx((5.0 - 1.0) ** 2)
    images = torch.randn(8, 1, 4, 4)
    wi = torch.randn(16)
    gpi = L.gradient_penalty(lambda x: x.flatten(1) @ wi, images, torch.randn(8, 1, 4, 4))
    assert float(gpi) == pytest.approx((float(wi.norm()) - 1) ** 2, rel=1e-5)


def test_weight_clipping_bounds_every_parameter():
    net = torch.nn.Linear(5, 3)
    with torch.no_grad():
        net.weight.mul_(100)
    L.clip_weights(net, 0.01)
    assert max(float(p.detach().abs().max()) for p in net.parameters()) <= 0.01


def test_wasserstein_critic_loss_sign():
    real, fake = torch.ones(10), torch.zeros(10)
    assert float(L.wasserstein_critic_loss(real, fake)) == -1.0  # minimising it widens E_P C - E_Q C
    assert np.isfinite(float(L.wasserstein_critic_loss(real, fake)))
