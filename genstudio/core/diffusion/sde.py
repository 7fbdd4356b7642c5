"""Score SDEs (Song et al. 2021): VP, sub-VP and VE forward SDEs on t in [0, 1], their reverse-time
samplers (Euler-Maruyama, predictor-corrector), the probability-flow ODE (Euler, Heun, RK45) and
the exact PF-ODE log-likelihood.

Everything takes a ``score_fn(x, t) -> grad_x log p_t(x)`` with ``t`` a (B,) float tensor, so a
learned score net and an exact score (:meth:`SDE.score_from_data_score`) drive the same samplers.
Generators (``*_steps``) yield ``(i, t_next, x, x_mean)`` after each step; x_mean is the noise-free
part of the step (the usual final output of an SDE sampler).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

ScoreFn = Callable[[Tensor, Tensor], Tensor]
SDEStep = tuple[int, float, Tensor, Tensor]


def _bc(v: Tensor, x: Tensor) -> Tensor:
    """(B,) -> (B, 1, ..., 1) on x's dtype/device."""
    v = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    return v.reshape(-1, *([1] * (x.dim() - 1))) if v.dim() else v


@dataclass(frozen=True)
class SDE:
    """dx = f(x, t) dt + g(t) dw. Subclasses give f, g and the Gaussian marginal q(x_t | x_0) =
    N(mean_coeff(t) x_0, std(t)^2 I)."""

    T: float = 1.0  # noqa: N815 - the paper's name
    eps: float = 1e-5  # smallest time the samplers and the likelihood integrate to (numerics at t=0)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError

    def diffusion(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def mean_coeff(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def std(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def prior_std(self) -> float:
        return 1.0

    def marginal_prob(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of q(x_t | x_0)."""
        return _bc(self.mean_coeff(t), x0) * x0, self.std(t)

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
        return self.prior_std() * torch.randn(shape, generator=generator, dtype=dtype, device=device)

    def prior_logp(self, z: Tensor) -> Tensor:
        """log N(z; 0, prior_std^2 I) per sample (nats)."""
        d = z[0].numel()
        s2 = self.prior_std() ** 2
        return -0.5 * d * math.log(2 * math.pi * s2) - z.flatten(1).pow(2).sum(1) / (2 * s2)

    def score_from_data_score(self, data_score: Callable[[Tensor, float], Tensor]) -> ScoreFn:
        """Exact score of p_t from the score of the data smoothed by N(0, s^2 I) (e.g.
        ``GaussianMixture2D.score``): x_t / m = x_0 + (std / m) n, so
        grad log p_t(x) = score_{std/m}(x / m) / m. The batch must share one t."""

        def score(x: Tensor, t: Tensor) -> Tensor:
            tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1)[:1]
            m, s = float(self.mean_coeff(tt)), float(self.std(tt))
            return data_score(x / m, s / m) / m

        return score

    def ode_drift(self, score_fn: ScoreFn, x: Tensor, t: Tensor) -> Tensor:
        """Probability-flow ODE: dx/dt = f(x, t) - g(t)^2 / 2 * score."""
        return self.drift(x, t) - 0.5 * _bc(self.diffusion(t) ** 2, x) * score_fn(x, t)

    def reverse_drift(self, score_fn: ScoreFn, x: Tensor, t: Tensor) -> Tensor:
        """Reverse-time SDE drift f - g^2 score (Anderson 1982), integrated with dt < 0."""
        return self.drift(x, t) - _bc(self.diffusion(t) ** 2, x) * score_fn(x, t)


@dataclass(frozen=True)
class VPSDE(SDE):
    """Variance preserving: beta(t) = beta_min + t (beta_max - beta_min); DDPM's continuous limit."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t: Tensor) -> Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return -0.5 * _bc(self.beta(t), x) * x

    def diffusion(self, t: Tensor) -> Tensor:
        return self.beta(t).sqrt()

    def mean_coeff(self, t: Tensor) -> Tensor:
        return self.log_mean_coeff(t).exp()

    def std(self, t: Tensor) -> Tensor:
        return (-torch.expm1(2 * self.log_mean_coeff(t))).sqrt()


@dataclass(frozen=True)
class SubVPSDE(VPSDE):
    """sub-VP: same drift, g(t)^2 = beta(t) (1 - exp(-2 int beta)); std = 1 - exp(2 log m) is
    below VP's everywhere (better likelihoods in the paper)."""

    def diffusion(self, t: Tensor) -> Tensor:
        return (self.beta(t) * -torch.expm1(4 * self.log_mean_coeff(t))).sqrt()

    def std(self, t: Tensor) -> Tensor:
        return -torch.expm1(2 * self.log_mean_coeff(t))


@dataclass(frozen=True)
class VESDE(SDE):
    """Variance exploding: sigma(t) = sigma_min (sigma_max / sigma_min)^t, no drift (NCSN's limit)."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: Tensor) -> Tensor:
        return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def mean_coeff(self, t: Tensor) -> Tensor:
        return torch.ones_like(torch.as_tensor(t, dtype=torch.float64))

    def std(self, t: Tensor) -> Tensor:
        return self.sigma(t)

    def prior_std(self) -> float:
        return self.sigma_max


SDES: dict[str, type[SDE]] = {"vp": VPSDE, "subvp": SubVPSDE, "ve": VESDE}


def make_sde(name: str, **kw: float) -> SDE:
    if name not in SDES:
        raise ValueError(f"unknown SDE {name!r}; known: {', '.join(SDES)}")
    return SDES[name](**kw)


# -- samplers -----------------------------------------------------------------------------------

def _times(sde: SDE, steps: int) -> Tensor:
    return torch.linspace(sde.T, sde.eps, steps + 1, dtype=torch.float64)


def _tv(x: Tensor, t: float) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def _randn(x: Tensor, g: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)


def em_steps(sde: SDE, score_fn: ScoreFn, x: Tensor, steps: int = 500, generator: torch.Generator | None = None,
             ) -> Iterator[SDEStep]:
    """Reverse-SDE Euler-Maruyama from t = T to eps: x += -(f - g^2 s) dt + g sqrt(dt) z (dt > 0)."""
    ts = _times(sde, steps)
    for i in range(steps):
        t, dt = float(ts[i]), float(ts[i] - ts[i + 1])
        tv = _tv(x, t)
        mean = x - sde.reverse_drift(score_fn, x, tv) * dt
        x = mean + _bc(sde.diffusion(tv), x) * math.sqrt(dt) * _randn(x, generator)
        yield i, float(ts[i + 1]), x, mean


def langevin_correct(score_fn: ScoreFn, x: Tensor, t: Tensor, snr: float, generator: torch.Generator | None,
                     n: int = 1) -> tuple[Tensor, Tensor]:
    """Song et al.'s Langevin corrector: step size 2 (snr ||z|| / ||s||)^2 with both norms averaged
    over the batch (per-sample ratios explode where a sample sits on a mode, grad ~ 0)."""
    mean = x
    for _ in range(n):
        grad = score_fn(x, t)
        z = _randn(x, generator)
        gn = grad.flatten(1).norm(dim=1).mean().clamp(min=1e-12)
        zn = z.flatten(1).norm(dim=1).mean()
        step = 2 * (snr * zn / gn) ** 2
        mean = x + step * grad
        x = mean + (2 * step).sqrt() * z
    return x, mean


def pc_steps(sde: SDE, score_fn: ScoreFn, x: Tensor, steps: int = 500, generator: torch.Generator | None = None,
             snr: float = 0.16, corrector_steps: int = 1) -> Iterator[SDEStep]:
    """Predictor-corrector: Langevin corrector at t, then a reverse-SDE Euler-Maruyama predictor."""
    ts = _times(sde, steps)
    for i in range(steps):
        t, dt = float(ts[i]), float(ts[i] - ts[i + 1])
        tv = _tv(x, t)
        x, _ = langevin_correct(score_fn, x, tv, snr, generator, corrector_steps)
        mean = x - sde.reverse_drift(score_fn, x, tv) * dt
        x = mean + _bc(sde.diffusion(tv), x) * math.sqrt(dt) * _randn(x, generator)
        yield i, float(ts[i + 1]), x, mean


def ode_euler_steps(sde: SDE, score_fn: ScoreFn, x: Tensor, steps: int = 100,
                    generator: torch.Generator | None = None) -> Iterator[SDEStep]:
    """Euler on the probability-flow ODE from T to eps (deterministic)."""
    ts = _times(sde, steps)
    for i in range(steps):
        t, dt = float(ts[i]), float(ts[i + 1] - ts[i])
        x = x + sde.ode_drift(score_fn, x, _tv(x, t)) * dt
        yield i, float(ts[i + 1]), x, x


def ode_heun_steps(sde: SDE, score_fn: ScoreFn, x: Tensor, steps: int = 50,
                   generator: torch.Generator | None = None) -> Iterator[SDEStep]:
    """Heun (explicit trapezoid) on the probability-flow ODE: 2 score calls per step."""
    ts = _times(sde, steps)
    for i in range(steps):
        t, tn = float(ts[i]), float(ts[i + 1])
        d = sde.ode_drift(score_fn, x, _tv(x, t))
        xe = x + d * (tn - t)
        x = x + 0.5 * (d + sde.ode_drift(score_fn, xe, _tv(x, tn))) * (tn - t)
        yield i, tn, x, x


def ode_rk45(sde: SDE, score_fn: ScoreFn, x: Tensor, rtol: float = 1e-5, atol: float = 1e-5,
             t_eval: np.ndarray | None = None) -> tuple[Tensor, int, np.ndarray, np.ndarray]:
    """Adaptive RK45 (scipy) on the PF-ODE from T to eps over the flattened batch.
    Returns (x at eps, number of score evaluations, visited times, states at ``t_eval``)."""
    shape, dtype, device = x.shape, x.dtype, x.device

    def f(t: float, y: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(y, dtype=dtype, device=device).reshape(shape)
        with torch.no_grad():
            return sde.ode_drift(score_fn, xt, _tv(xt, t)).double().cpu().numpy().reshape(-1)

    from scipy.integrate import solve_ivp  # at first use: scipy.integrate costs every importer ~0.1 s

    sol = solve_ivp(f, (sde.T, sde.eps), x.double().cpu().numpy().reshape(-1), method="RK45", rtol=rtol,
                    atol=atol, t_eval=t_eval)
    out = torch.as_tensor(sol.y[:, -1], dtype=dtype, device=device).reshape(shape)
    return out, int(sol.nfev), sol.t, sol.y


SDE_SAMPLERS = {"em": em_steps, "pc": pc_steps, "ode_euler": ode_euler_steps, "ode_heun": ode_heun_steps}


def rk45_steps(sde: SDE, score_fn: ScoreFn, x: Tensor, steps: int = 20, generator: torch.Generator | None = None,
               rtol: float = 1e-5, atol: float = 1e-5) -> Iterator[SDEStep]:
    """RK45 as a generator: the adaptive solve runs once; its dense states at ``steps`` equally
    spaced times are yielded so a viewer can scrub them like the fixed-step samplers."""
    ts = _times(sde, steps).numpy()
    _, _, tv, ys = ode_rk45(sde, score_fn, x, rtol, atol, t_eval=ts[1:])
    for i in range(len(tv)):
        xi = torch.as_tensor(ys[:, i], dtype=x.dtype, device=x.device).reshape(x.shape)
        yield i, float(tv[i]), xi, xi


SDE_SAMPLERS["rk45"] = rk45_steps


# -- likelihood ---------------------------------------------------------------------------------

def divergence(fn: Callable[[Tensor], Tensor], x: Tensor, probes: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(fn(x), div_x fn(x)) per sample: the exact trace of the Jacobian, one backward pass per
    dimension, or the Hutchinson estimate E[v^T J v] with the given ``probes`` (same shape as x)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = fn(x)
        if probes is not None:
            (g,) = torch.autograd.grad((y * probes).sum(), x)
            return y.detach(), (g * probes).flatten(1).sum(1)
        yf = y.flatten(1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for j in range(yf.shape[1]):
            (g,) = torch.autograd.grad(yf[:, j].sum(), x, retain_graph=j + 1 < yf.shape[1])
            div = div + g.flatten(1)[:, j]
    return y.detach(), div


def ode_log_prob(sde: SDE, score_fn: ScoreFn, x: Tensor, hutchinson: bool | None = None,
                 generator: torch.Generator | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                 ) -> tuple[Tensor, Tensor, int]:
    """Exact log-likelihood of x under the PF-ODE model (Song et al. 2021, app. D.2), in nats:
    log p_0(x) = log p_T(x_T) + int_eps^T div f_ode(x_t, t) dt, integrating x and the divergence
    forward with RK45. ``hutchinson`` None means exact trace up to 16 dimensions, Rademacher
    probes (fixed along the path) above. Returns (log p per sample, x_T, score evaluations)."""
    shape, n = x.shape, x.shape[0]
    d = x[0].numel()
    use_h = d > 16 if hutchinson is None else hutchinson
    probes = None
    if use_h:
        probes = torch.randint(0, 2, shape, generator=generator, dtype=torch.int64).to(x.dtype).mul(2).sub(1)
        probes = probes.to(x.device)

    def f(t: float, y: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(y[:-n], dtype=x.dtype, device=x.device).reshape(shape)
        drift, div = divergence(lambda z: sde.ode_drift(score_fn, z, _tv(z, t)), xt, probes)
        return np.concatenate([drift.double().cpu().numpy().reshape(-1), div.double().cpu().numpy()])

    y0 = np.concatenate([x.double().cpu().numpy().reshape(-1), np.zeros(n)])
    from scipy.integrate import solve_ivp

    sol = solve_ivp(f, (sde.eps, sde.T), y0, method="RK45", rtol=rtol, atol=atol)
    z = torch.as_tensor(sol.y[:-n, -1], dtype=torch.float64).reshape(shape)
    delta = torch.as_tensor(sol.y[-n:, -1], dtype=torch.float64)
    return sde.prior_logp(z) + delta, z, int(sol.nfev)


def bits_per_dim(log_prob: Tensor, dims: int, offset_nats: float = 0.0) -> Tensor:
    """-log p / (D ln 2); ``offset_nats`` adds a per-dimension dequantisation term (e.g. ln 128
    for data in [-1, 1] from 8-bit pixels: log p(pixels) = log p(x) - D ln(256 / 2))."""
    return -(log_prob - dims * offset_nats) / (dims * math.log(2))
