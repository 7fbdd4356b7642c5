"""Diffusion step functions and sampling loops for epsilon-prediction models.

Everything here is a pure function of tensors and a :class:`NoiseSchedule` (as in k-diffusion):
the model is a callable ``eps_fn(x_t, t) -> eps`` where ``t`` is a (B,) long tensor of *training*
timesteps. Each loop exists twice: a generator (``*_steps``) that yields ``(i, t, x_t, x0_hat)``
after every step, which plugins turn into live ``SampleState``s, and a ``sample_*`` wrapper with
a ``callback(i, t, x_t, x0_hat)``. In both, ``x_t`` is the state *after* step ``i`` and ``t`` its
training timestep (-1 once it is clean); ``x0_hat`` is the clean-sample prediction made in step i.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from genstudio.core.diffusion.schedules import NoiseSchedule, coeffs, gather, spaced_timesteps

EpsFn = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[int, int, Tensor, Tensor], None]
StepOut = tuple[int, int, Tensor, Tensor]


# -- forward process and conversions ------------------------------------------------------------

def q_sample(x0: Tensor, t: int | Tensor, noise: Tensor, sched: NoiseSchedule) -> Tensor:
    """Draw x_t ~ q(x_t | x_0): sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise (t = -1: x_0 itself)."""
    a, s = coeffs(sched, t, x0)
    return a * x0 + s * noise


def predict_x0(eps: Tensor, t: int | Tensor, x_t: Tensor, sched: NoiseSchedule) -> Tensor:
    """Invert q_sample for x_0 given the noise: (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    a, s = coeffs(sched, t, x_t)
    return (x_t - s * eps) / a


def predict_eps(x0: Tensor, t: int | Tensor, x_t: Tensor, sched: NoiseSchedule) -> Tensor:
    """Invert q_sample for the noise given x_0 (used after clipping x0_hat)."""
    a, s = coeffs(sched, t, x_t)
    return (x_t - a * x0) / s


def eps_from_score(score: Tensor, t: int | Tensor, sched: NoiseSchedule) -> Tensor:
    """eps = -sqrt(1 - abar_t) * grad log p_t(x_t) (Tweedie), so an exact or learned score drives
    the epsilon samplers."""
    return -coeffs(sched, t, score)[1] * score


def score_from_eps(eps: Tensor, t: int | Tensor, sched: NoiseSchedule) -> Tensor:
    return -eps / coeffs(sched, t, eps)[1]


def vp_eps_from_data_score(data_score: Callable[[Tensor, float], Tensor], sched: NoiseSchedule) -> EpsFn:
    """An ``eps_fn`` from the score of the *data* distribution smoothed by N(0, sigma^2 I), e.g.
    ``GaussianMixture2D.score(y, sigma)``.

    Under the VP process x_t = sqrt(abar) y + sqrt(1 - abar) n, so x_t / sqrt(abar) = y + sigma n with
    sigma^2 = (1 - abar) / abar, and p_t(x) = p_sigma(x / sqrt(abar)) / abar^(d/2). Hence
    grad log p_t(x) = score_sigma(x / sqrt(abar)) / sqrt(abar) and eps = -sigma * score_sigma(x / sqrt(abar)).
    ``sched`` must be the training schedule (timesteps index it directly). A fractional t (the
    k-samplers' ``vp_denoiser``) interpolates log sigma between entries, the inverse of
    ``ksamplers.sigma_to_t``, so the exact model is exact at every sigma, not just the grid's.
    """
    log_s = sched.sigmas.double().log()

    def one(x: Tensor, tv: float) -> Tensor:
        lo = min(max(int(math.floor(tv)), 0), sched.T - 1)
        hi, w = min(lo + 1, sched.T - 1), tv - lo
        sigma = math.exp(float(log_s[lo] + w * (log_s[hi] - log_s[lo])))
        abar = 1.0 / (1.0 + sigma**2)
        return -sigma * data_score(x / abar**0.5, sigma)

    def eps_fn(x: Tensor, t: Tensor) -> Tensor:
        if bool((t == t[0]).all()):  # samplers step the whole batch together
            return one(x, float(t[0]))
        out = torch.empty_like(x)
        for tv in torch.unique(t):
            m = t == tv
            out[m] = one(x[m], float(tv))
        return out

    return eps_fn


# -- single steps -----------------------------------------------------------------------------

def _clip(x0: Tensor, clip: float | None) -> Tensor:
    return x0 if clip is None else x0.clamp(-clip, clip)


def ddpm_step(eps: Tensor, t: int | Tensor, x_t: Tensor, sched: NoiseSchedule, noise: Tensor | None = None,
              clip: float | None = None) -> tuple[Tensor, Tensor]:
    """One ancestral step x_t -> x_{t-1} ~ q(x_{t-1} | x_t, x0_hat) with variance beta-tilde_t
    (Ho et al. eq. 6-7). ``noise`` None gives the posterior mean; at t = 0 the variance is 0 anyway.
    ``clip`` clamps x0_hat to [-clip, clip] (images in [-1, 1]). Returns (x_{t-1}, x0_hat)."""
    if bool((torch.as_tensor(t) < 0).any()):
        raise ValueError("ddpm_step from t = -1: that is clean data, there is no step below it")
    x0 = _clip(predict_x0(eps, t, x_t, sched), clip)
    mean = gather(sched.posterior_mean_coef1, t, x_t) * x0 + gather(sched.posterior_mean_coef2, t, x_t) * x_t
    if noise is None:
        return mean, x0
    return mean + gather(sched.posterior_variance, t, x_t).sqrt() * noise, x0


def _abar_ext(sched: NoiseSchedule) -> Tensor:
    """alpha-bar with a leading 1 so index t + 1 works for t = -1 (clean)."""
    return torch.cat([torch.ones(1, dtype=sched.alphas_cumprod.dtype), sched.alphas_cumprod])


def ddim_step(eps: Tensor, t: int | Tensor, t_prev: int | Tensor, x_t: Tensor, sched: NoiseSchedule,
              eta: float = 0.0, noise: Tensor | None = None, clip: float | None = None) -> tuple[Tensor, Tensor]:
    """One DDIM step from index t to t_prev (Song et al. 2021, eq. 12); t_prev = -1 is clean data.

    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps + s noise, with
    s = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev). eta = 0 is the
    deterministic ODE-like sampler; eta = 1 on consecutive steps is DDPM. With eta = 0 it also steps
    *up* in noise (t_prev > t), which is DDIM inversion. Returns (x_prev, x0_hat).
    """
    ext = _abar_ext(sched)
    t1 = torch.as_tensor(t, dtype=torch.long) + 1
    tp1 = torch.as_tensor(t_prev, dtype=torch.long) + 1
    a_t, a_p = gather(ext, t1, x_t), gather(ext, tp1, x_t)
    x0 = predict_x0(eps, t, x_t, sched)
    if clip is not None:
        x0 = _clip(x0, clip)
        eps = predict_eps(x0, t, x_t, sched)  # keep x0 and eps consistent after clipping
    var = eta**2 * (1 - a_p) / (1 - a_t) * (1 - a_t / a_p) if eta > 0 else torch.zeros_like(a_p)
    out = a_p.sqrt() * x0 + (1 - a_p - var).clamp(min=0).sqrt() * eps
    if noise is not None and eta > 0:
        out = out + var.sqrt() * noise
    return out, x0


# -- loops --------------------------------------------------------------------------------------

def _randn(like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def _tvec(sched: NoiseSchedule, k: int, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), int(sched.timesteps[k]), dtype=torch.long, device=x.device)


def _train_t(sched: NoiseSchedule, k: int) -> int:
    return int(sched.timesteps[k]) if k >= 0 else -1


def ddpm_steps(eps_fn: EpsFn, x_T: Tensor, sched: NoiseSchedule, generator: torch.Generator | None = None,  # noqa: N803
               clip: float | None = None) -> Iterator[StepOut]:
    """Ancestral sampling through every entry of ``sched`` (respace it for fewer steps)."""
    x = x_T
    for i, k in enumerate(range(sched.T - 1, -1, -1)):
        eps = eps_fn(x, _tvec(sched, k, x))
        x, x0 = ddpm_step(eps, k, x, sched, _randn(x, generator) if k > 0 else None, clip)
        yield i, _train_t(sched, k - 1), x, x0


def ddim_timesteps(sched: NoiseSchedule, steps: int | Sequence[int] | Tensor, spacing: str = "trailing") -> Tensor:
    """Descending schedule indices a DDIM run visits: ``steps`` spaced ones, or the given ones."""
    if isinstance(steps, int):
        return spaced_timesteps(sched.T, steps, spacing)
    ks = torch.as_tensor(steps, dtype=torch.long).cpu()
    return torch.unique(ks).flip(0)


def ddim_steps(eps_fn: EpsFn, x_T: Tensor, sched: NoiseSchedule, steps: int | Sequence[int] | Tensor = 50,  # noqa: N803
               eta: float = 0.0, generator: torch.Generator | None = None, clip: float | None = None,
               spacing: str = "trailing") -> Iterator[StepOut]:
    """DDIM from the noisiest visited index down to clean data."""
    ks = ddim_timesteps(sched, steps, spacing).tolist()
    x = x_T
    for i, k in enumerate(ks):
        kp = ks[i + 1] if i + 1 < len(ks) else -1
        eps = eps_fn(x, _tvec(sched, k, x))
        noise = _randn(x, generator) if eta > 0 and kp >= 0 else None
        x, x0 = ddim_step(eps, k, kp, x, sched, eta, noise, clip)
        yield i, _train_t(sched, kp), x, x0


def ddim_invert_steps(eps_fn: EpsFn, x0: Tensor, sched: NoiseSchedule, steps: int | Sequence[int] | Tensor = 50,
                      spacing: str = "trailing") -> Iterator[StepOut]:
    """Deterministic DDIM run backwards (clean -> noise), e.g. to find the latent of a data point.
    The first step evaluates eps at the clean point with the smallest visited timestep (the usual
    approximation); the rest mirror :func:`ddim_steps` with eta = 0."""
    ks = ddim_timesteps(sched, steps, spacing).flip(0).tolist()  # ascending
    ext = _abar_ext(sched)
    x = x0
    for i, k in enumerate(ks):
        k_from = ks[i - 1] if i > 0 else -1
        eps = eps_fn(x, _tvec(sched, ks[max(i - 1, 0)], x))
        a_f, a_k = gather(ext, k_from + 1, x), gather(ext, k + 1, x)
        x0_hat = (x - (1 - a_f).sqrt() * eps) / a_f.sqrt()
        x = a_k.sqrt() * x0_hat + (1 - a_k).sqrt() * eps
        yield i, _train_t(sched, k), x, x0_hat


def _drain(it: Iterator[StepOut], x: Tensor, callback: Callback | None) -> Tensor:
    for i, t, x, x0 in it:
        if callback is not None:
            callback(i, t, x, x0)
    return x


def sample_ddpm(eps_fn: EpsFn, x_T: Tensor, sched: NoiseSchedule, generator: torch.Generator | None = None,  # noqa: N803
                callback: Callback | None = None, clip: float | None = None) -> Tensor:
    """Ancestral DDPM sampling; returns x_0."""
    return _drain(ddpm_steps(eps_fn, x_T, sched, generator, clip), x_T, callback)


def sample_ddim(eps_fn: EpsFn, x_T: Tensor, sched: NoiseSchedule, steps: int | Sequence[int] | Tensor = 50,  # noqa: N803
                eta: float = 0.0, generator: torch.Generator | None = None, callback: Callback | None = None,
                clip: float | None = None, spacing: str = "trailing") -> Tensor:
    """DDIM sampling (eta = 0: deterministic); returns x_0."""
    return _drain(ddim_steps(eps_fn, x_T, sched, steps, eta, generator, clip, spacing), x_T, callback)


def invert_ddim(eps_fn: EpsFn, x0: Tensor, sched: NoiseSchedule, steps: int | Sequence[int] | Tensor = 50,
                callback: Callback | None = None, spacing: str = "trailing") -> Tensor:
    """DDIM inversion: the x_T from which :func:`sample_ddim` (eta = 0, same steps) returns ~x0."""
    return _drain(ddim_invert_steps(eps_fn, x0, sched, steps, spacing), x0, callback)
