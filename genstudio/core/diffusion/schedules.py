"""Discrete variance-preserving noise schedules (Ho et al. 2020; Nichol & Dhariwal 2021).

A :class:`NoiseSchedule` is parameter-free maths held in float64 on the CPU, so the same object
serves any device and rounding never drifts between float32 and float64 runs; coefficients are
gathered per timestep and cast to the tensor they multiply (:func:`gather`).

Index ``i`` of a schedule is "x_i has been noised ``i + 1`` times": ``x_i = sqrt(abar_i) x_0 +
sqrt(1 - abar_i) eps``. Index ``-1`` means clean data (abar = 1). A *respaced* schedule (a subset
of the training timesteps, :func:`respace`) keeps in ``timesteps`` the training timestep each of
its entries stands for; the network is always called with those.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

F64 = torch.float64


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """betas and everything derived from them (names follow diffusers / improved-diffusion)."""

    betas: Tensor
    timesteps: Tensor | None = None  # training timestep of each entry (identity when None)
    alphas: Tensor = field(init=False)
    alphas_cumprod: Tensor = field(init=False)
    alphas_cumprod_prev: Tensor = field(init=False)
    sqrt_alphas_cumprod: Tensor = field(init=False)
    sqrt_one_minus_alphas_cumprod: Tensor = field(init=False)
    posterior_variance: Tensor = field(init=False)  # beta-tilde of q(x_{t-1} | x_t, x_0)
    posterior_log_variance_clipped: Tensor = field(init=False)
    posterior_mean_coef1: Tensor = field(init=False)  # multiplies x_0
    posterior_mean_coef2: Tensor = field(init=False)  # multiplies x_t

    def __post_init__(self) -> None:
        b = torch.as_tensor(self.betas, dtype=F64).detach().cpu().reshape(-1)
        if len(b) == 0 or not bool(((b > 0) & (b <= 1)).all()):
            raise ValueError("betas must be a non-empty sequence in (0, 1]")
        ts = (torch.arange(len(b)) if self.timesteps is None
              else torch.as_tensor(self.timesteps, dtype=torch.long).cpu().reshape(-1))
        if len(ts) != len(b):
            raise ValueError(f"{len(ts)} timesteps for {len(b)} betas")
        a = 1.0 - b
        ac = torch.cumprod(a, 0)
        ac_prev = torch.cat([torch.ones(1, dtype=F64), ac[:-1]])
        post_var = b * (1.0 - ac_prev) / (1.0 - ac)
        # log of beta-tilde with the t=0 entry (which is 0) replaced by t=1's, as in improved-diffusion
        post_logvar = torch.log(torch.cat([post_var[1:2], post_var[1:]])) if len(b) > 1 else torch.log(b)
        s = object.__setattr__
        s(self, "betas", b)
        s(self, "timesteps", ts)
        s(self, "alphas", a)
        s(self, "alphas_cumprod", ac)
        s(self, "alphas_cumprod_prev", ac_prev)
        s(self, "sqrt_alphas_cumprod", ac.sqrt())
        s(self, "sqrt_one_minus_alphas_cumprod", (1.0 - ac).sqrt())
        s(self, "posterior_variance", post_var)
        s(self, "posterior_log_variance_clipped", post_logvar)
        s(self, "posterior_mean_coef1", b * ac_prev.sqrt() / (1.0 - ac))
        s(self, "posterior_mean_coef2", (1.0 - ac_prev) * a.sqrt() / (1.0 - ac))

    @property
    def T(self) -> int:  # noqa: N802 - the paper's name
        return len(self.betas)

    @property
    def sigmas(self) -> Tensor:
        """Noise level in the data scale, sqrt((1 - abar) / abar): the VE/EDM view of each entry
        (k-diffusion's ``sigmas``), so VE-style samplers can run on a VP schedule."""
        return ((1.0 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()

    def abar(self, t: int | Tensor) -> Tensor:
        """alpha-bar at index ``t`` (float64), with abar(-1) = 1 for clean data."""
        t = torch.as_tensor(t, dtype=torch.long)
        out = self.alphas_cumprod[t.clamp(min=0)]
        return torch.where(t < 0, torch.ones_like(out), out)

    def denoise_times(self, steps: int) -> Tensor:
        """The Denoiser face's times on this chain: ``steps`` spaced indices (as DDIM visits them),
        then -1 (clean), float64."""
        ks = spaced_timesteps(self.T, int(steps)).to(torch.float64)
        return torch.cat([ks, torch.tensor([-1.0], dtype=torch.float64)])

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """The Denoiser face's coefficients at (float) indices ``t``: (sqrt(abar), sqrt(1 - abar))."""
        a = self.abar(torch.as_tensor(t).round().long().cpu()).double()
        return a.sqrt(), (1 - a).clamp(min=0).sqrt()


def gather(a: Tensor, t: int | Tensor, like: Tensor) -> Tensor:
    """``a[t]`` shaped to broadcast against ``like`` (batch first), on its device and dtype.

    ``t`` is an int or a (B,) integer tensor; the result is (B, 1, ..., 1) or a 0-d tensor.
    A negative ``t`` is refused: Python's wrap-around would read a[-1], the *noisiest* entry,
    where the convention says -1 is clean data (use :meth:`NoiseSchedule.abar` / :func:`coeffs`).
    """
    t = torch.as_tensor(t, dtype=torch.long).cpu()
    if bool((t < 0).any()):
        raise IndexError(f"timestep {int(t.min())} < 0: index -1 (clean data) has no entry in a schedule table")
    v = a[t]
    if v.dim() == 1:
        v = v.reshape(-1, *([1] * (like.dim() - 1)))
    return v.to(like.dtype).to(like.device)  # cast on the CPU first: MPS has no float64


def coeffs(sched: NoiseSchedule, t: int | Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """(sqrt(abar_t), sqrt(1 - abar_t)) shaped like :func:`gather`'s result, with t = -1 clean
    data (abar = 1), so x_t = a x_0 + s eps holds at every index the samplers use."""
    abar = sched.abar(torch.as_tensor(t, dtype=torch.long).cpu()).double()
    if abar.dim() == 1:
        abar = abar.reshape(-1, *([1] * (like.dim() - 1)))
    abar = abar.to(like.dtype).to(like.device)
    return abar.sqrt(), (1 - abar).clamp(min=0).sqrt()


def linear_schedule(T: int, beta_start: float | None = None, beta_end: float | None = None) -> NoiseSchedule:  # noqa: N803
    """Ho et al.'s linear betas. Defaults are 1e-4 .. 0.02 scaled by 1000 / T (improved-diffusion's
    rule), so a short schedule still ends near pure noise (abar_T ~ 4e-5 for every T)."""
    scale = 1000.0 / T
    b0 = 1e-4 * scale if beta_start is None else beta_start
    b1 = 0.02 * scale if beta_end is None else beta_end
    return NoiseSchedule(torch.linspace(b0, b1, T, dtype=F64).clamp(max=0.999))


def cosine_abar(u: Tensor | float, s: float = 0.008) -> Tensor:
    """Nichol & Dhariwal's f(u) = cos^2(((u + s) / (1 + s)) pi / 2) for u in [0, 1] (unnormalised)."""
    u = torch.as_tensor(u, dtype=F64)
    return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2


def cosine_schedule(T: int, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:  # noqa: N803
    """"squaredcos_cap_v2": beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta), so abar_i = f((i+1)/T)/f(0)
    wherever the cap is not hit. Adds noise more evenly than the linear schedule on small images."""
    i = torch.arange(T, dtype=F64)
    betas = (1.0 - cosine_abar((i + 1) / T, s) / cosine_abar(i / T, s)).clamp(max=max_beta)
    return NoiseSchedule(betas)


SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}


def make_schedule(name: str, T: int) -> NoiseSchedule:  # noqa: N803
    """A schedule by name ("linear" | "cosine") with its default parameters."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; known: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](T)


def spaced_timesteps(T: int, steps: int, spacing: str = "trailing") -> Tensor:  # noqa: N803
    """``steps`` distinct timesteps in [0, T), descending: the ones a few-step sampler visits.

    "trailing" (Lin et al. 2024) always starts at T-1, i.e. from pure noise; "leading" (DDIM paper,
    diffusers' old default) ends at 0 but starts below T-1; "linspace" hits both ends.
    """
    steps = max(1, min(int(steps), T))
    if spacing == "trailing":
        ts = torch.round(torch.arange(T, 0, -T / steps, dtype=F64)).long() - 1
    elif spacing == "leading":
        ts = (torch.arange(steps) * (T // steps)).flip(0)
    elif spacing == "linspace":
        ts = torch.linspace(0, T - 1, steps, dtype=F64).round().long().flip(0)
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r} (trailing | leading | linspace)")
    ts = torch.unique(ts.clamp(0, T - 1)).flip(0)  # unique() sorts ascending
    return ts


def respace(sched: NoiseSchedule, use: Sequence[int] | Tensor) -> NoiseSchedule:
    """A schedule over a subset of ``sched``'s entries with the same alpha-bars there
    (Nichol & Dhariwal sec. 4): beta'_k = 1 - abar[s_k] / abar[s_{k-1}]. Ancestral sampling on it is
    DDPM with fewer steps (and equals DDIM with eta=1 on the same timesteps)."""
    idx = torch.unique(torch.as_tensor(use, dtype=torch.long).cpu())  # ascending
    if len(idx) == 0 or idx[0] < 0 or idx[-1] >= sched.T:
        raise ValueError("respaced timesteps must lie in [0, T)")
    ac = sched.alphas_cumprod[idx]
    prev = torch.cat([torch.ones(1, dtype=F64), ac[:-1]])
    return NoiseSchedule(1.0 - ac / prev, timesteps=sched.timesteps[idx])
