"""Adversarial objectives as plain functions of critic outputs, shared by every GAN family.

- Minimax (Goodfellow et al. 2014): D maximises E_P log D + E_Q log(1 - D), D = sigmoid(logit).
  The generator either minimises E_Q log(1 - D) ("minimax", saturating: its gradient vanishes
  when D is confident) or maximises E_Q log D ("non_saturating", the paper's practical variant).
- f-GAN (Nowozin et al. 2016): for a convex f with f(1) = 0, D_f(P||Q) >= E_P[T] - E_Q[f*(T)]
  for every T; the critic V gives T = g_f(V) through an output activation that keeps T in the
  domain of the conjugate f*. :data:`DIVERGENCES` holds f, f* and g_f for each divergence.
- Wasserstein (Arjovsky et al. 2017; Gulrajani et al. 2017): a 1-Lipschitz critic C gives
  W1(P, Q) >= E_P C - E_Q C; Lipschitz by weight clipping or by a gradient penalty on interpolates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# -- minimax --------------------------------------------------------------------------------------


def minimax_d_loss(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    """-(E_P log D + E_Q log(1 - D)): binary cross-entropy with real = 1, fake = 0."""
    return F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()


def minimax_g_loss(fake_logit: Tensor, saturating: bool = False) -> Tensor:
    """Saturating: E_Q log(1 - D) = -E softplus(logit). Non-saturating: -E_Q log D = E softplus(-logit)."""
    return -F.softplus(fake_logit).mean() if saturating else F.softplus(-fake_logit).mean()


def js_estimate(real_logit: Tensor, fake_logit: Tensor) -> float:
    """The critic's Jensen-Shannon estimate: at the optimal D, E_P log D + E_Q log(1 - D) = 2 JS - log 4,
    so (value + log 4) / 2, in nats (0 when D cannot tell the two apart, log 2 when it always can)."""
    value = -(F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean())
    return float((value + math.log(4.0)) / 2)


# -- f-divergences ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FDivergence:
    """One f-divergence: the generator f (on likelihood ratios u = p/q > 0), its convex conjugate f*
    (on the domain the activation maps into), the output activation g_f, and f' (the optimal
    T(x) = f'(p(x)/q(x)), used by the tests to check the bound is tight)."""

    name: str
    label: str
    f: Callable[[Tensor], Tensor]
    conjugate: Callable[[Tensor], Tensor]
    activation: Callable[[Tensor], Tensor]
    f_prime: Callable[[Tensor], Tensor]


def _alpha(a: float) -> FDivergence:
    """Amari's alpha-divergence, f(u) = (u^a - 1 - a (u - 1)) / (a (a - 1)), a not in {0, 1}; the
    conjugate follows from u = f'^{-1}(t) = (1 + (a - 1) t)^(1 / (a - 1)), defined for 1 + (a - 1) t > 0."""
    if a in (0.0, 1.0):
        raise ValueError("alpha must not be 0 or 1 (those limits are the two KL divergences)")

    def f(u: Tensor) -> Tensor:
        return (u.pow(a) - 1 - a * (u - 1)) / (a * (a - 1))

    def f_prime(u: Tensor) -> Tensor:
        return (u.pow(a - 1) - 1) / (a - 1)

    def conjugate(t: Tensor) -> Tensor:
        u = (1 + (a - 1) * t).pow(1 / (a - 1))
        return t * u - f(u)

    bound = 1 / abs(a - 1)  # 1 + (a - 1) t > 0  <=>  t > -1/(a-1) for a > 1, t < 1/(1-a) for a < 1
    def activation(v: Tensor) -> Tensor:
        return -bound + F.softplus(v) if a > 1 else bound - F.softplus(-v)

    return FDivergence(f"alpha={a:g}", f"α-divergence (α={a:g})", f, conjugate, activation, f_prime)


def _log(u: Tensor) -> Tensor:
    return torch.log(u)


DIVERGENCES: dict[str, FDivergence] = {d.name: d for d in (
    FDivergence("kl", "KL(P||Q)", lambda u: u * _log(u), lambda t: torch.exp(t - 1), lambda v: v,
                lambda u: 1 + _log(u)),
    FDivergence("reverse_kl", "KL(Q||P)", lambda u: -_log(u), lambda t: -1 - torch.log(-t),
                lambda v: -torch.exp(-v), lambda u: -1 / u),
    FDivergence("js", "Jensen-Shannon", lambda u: 0.5 * (u * _log(u) - (u + 1) * _log((u + 1) / 2)),
                # Nowozin et al. Table 2 with the 1/2 that makes it JS itself (bounded by log 2)
                lambda t: -0.5 * torch.log(2 - torch.exp(2 * t)),
                lambda v: 0.5 * (math.log(2.0) - F.softplus(-v)),
                lambda u: 0.5 * _log(2 * u / (u + 1))),
    FDivergence("tv", "Total variation", lambda u: 0.5 * (u - 1).abs(), lambda t: t,
                lambda v: 0.5 * torch.tanh(v), lambda u: 0.5 * torch.sign(u - 1)),
    FDivergence("pearson", "Pearson χ²", lambda u: (u - 1) ** 2, lambda t: t * t / 4 + t, lambda v: v,
                lambda u: 2 * (u - 1)),
    FDivergence("hellinger", "Squared Hellinger", lambda u: (u.sqrt() - 1) ** 2, lambda t: t / (1 - t),
                lambda v: 1 - torch.exp(-v), lambda u: 1 - 1 / u.sqrt()),
)}


def divergence(name: str, alpha: float = 0.5) -> FDivergence:
    """The f-divergence called ``name`` (one of :data:`DIVERGENCES`, or "alpha" with ``alpha``)."""
    if name == "alpha":
        return _alpha(float(alpha))
    if name not in DIVERGENCES:
        raise ValueError(f"unknown f-divergence {name!r}; choose from {', '.join([*DIVERGENCES, 'alpha'])}")
    return DIVERGENCES[name]


def f_bound(div: FDivergence, real_out: Tensor, fake_out: Tensor) -> Tensor:
    """The variational (Fenchel) lower bound E_P[g_f(V)] - E_Q[f*(g_f(V))] on D_f(P||Q): the
    critic maximises it, and its value is the run's live divergence estimate."""
    return div.activation(real_out).mean() - div.conjugate(div.activation(fake_out)).mean()


def f_g_loss(div: FDivergence, fake_out: Tensor) -> Tensor:
    """The f-GAN generator's non-saturating loss -E_Q[g_f(V(G(z)))] (Nowozin et al., section 3.2)."""
    return -div.activation(fake_out).mean()


def true_f_divergence(div: FDivergence, p: Tensor, q: Tensor) -> Tensor:
    """D_f(P||Q) = sum_x q(x) f(p(x)/q(x)) for discrete distributions with q > 0 (a test oracle)."""
    return (q * div.f(p / q)).sum()


# -- Wasserstein --------------------------------------------------------------------------------------


def wasserstein_critic_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """E_Q C - E_P C: minimising it maximises the Kantorovich-Rubinstein estimate of W1."""
    return fake_out.mean() - real_out.mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP: E[(||grad_x C(x_hat)||_2 - 1)^2] at x_hat = e x + (1 - e) x_fake, e ~ U[0, 1] per
    sample; differentiable (create_graph) so the critic's step includes it."""
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator,
                     device=real.device if generator is None else generator.device).to(real)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def clip_weights(module: torch.nn.Module, c: float) -> None:
    """WGAN's weight clipping: every parameter into [-c, c] after each critic step."""
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)
