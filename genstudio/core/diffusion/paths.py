"""Views of the forward process for 2-D runs (issue 4): the marginal density of particles at one
time, and forward noising paths from a chosen point, so a user can *see* q(x_t | x_0) spread out.

Which process a run trains against is asked of its model (the ForwardProcess face,
``model.forward_process()``), so the paths drawn are the run's own (a DDPM chain, a VP / sub-VP /
VE SDE, or flow matching's straight line)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genstudio.core.diffusion.schedules import NoiseSchedule
from genstudio.core.diffusion.sde import SDE, VESDE, VPSDE, SubVPSDE


@dataclass(frozen=True)
class StraightPath:
    """Flow matching's interpolation x_t = (1 - t) x_0 + t eps (t = 1 is noise), the path its
    velocity is trained on. Not an SDE: one eps per path, so every path is a straight line.
    (cfm's optional path noise sigma_min is left out: it blurs the line, not its marginal's scale.)"""

    T: float = 1.0  # noqa: N815 - same name as SDE.T, so both share forward_paths' time axis

    def mean_coeff(self, t: Tensor) -> Tensor:
        return 1.0 - torch.as_tensor(t, dtype=torch.float64)

    def std(self, t: Tensor) -> Tensor:
        return torch.as_tensor(t, dtype=torch.float64)


ForwardProcess = NoiseSchedule | SDE | StraightPath


def describe_process(process: ForwardProcess | None) -> str:
    """One line for a label: which process, its parameters, how the paths are simulated."""
    if isinstance(process, NoiseSchedule):
        return f"DDPM chain, T = {process.T} (exact)"
    if isinstance(process, VESDE):
        return f"VE SDE, σ {process.sigma_min:g} → {process.sigma_max:g} (Euler-Maruyama)"
    if isinstance(process, VPSDE):
        name = "sub-VP" if isinstance(process, SubVPSDE) else "VP"
        return f"{name} SDE, β {process.beta_min:g} → {process.beta_max:g} (Euler-Maruyama)"
    if isinstance(process, StraightPath):
        return "straight path x_t = (1-t) x_0 + t ε (not an SDE: one ε per path)"
    if isinstance(process, SDE):
        return f"{type(process).__name__} (Euler-Maruyama)"
    return "no forward process"


def forward_marginal(process: ForwardProcess, t: float) -> tuple[float, float]:
    """(m, s) of the simulated q(x_t | x_0) = N(m x_0, s^2 I) at normalised time ``t`` in [0, 1].
    For SDEs s is the variance actually added from t = 0 (VE: sqrt(sigma(t)^2 - sigma_min^2),
    since the paths start exactly at x_0); for the DDPM chain t = k / T."""
    if isinstance(process, NoiseSchedule):
        k = round(t * process.T)
        ab = float(process.alphas_cumprod[k - 1]) if k > 0 else 1.0
        return math.sqrt(ab), math.sqrt(1.0 - ab)
    tt = torch.tensor(t * process.T, dtype=torch.float64)
    m, s = float(process.mean_coeff(tt)), float(process.std(tt))
    if isinstance(process, SDE):  # subtract what std(0) would claim at the start (VE's sigma_min)
        z = torch.zeros((), dtype=torch.float64)
        m0, s0 = float(process.mean_coeff(z)), float(process.std(z))
        s = math.sqrt(max(s * s - (m / m0) ** 2 * s0 * s0, 0.0))
    return m, s


def marginal_histogram(x: Tensor | np.ndarray, bins: int = 64, lim: float = 3.0) -> np.ndarray:
    """Normalised 2-D histogram (bins, bins) of (N, 2) points over [-lim, lim]^2, indexed [ix, iy]
    (x first). Points outside the box are dropped, so the mass is the fraction inside (1 when all are)."""
    p = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, np.float64).reshape(-1, 2)
    h, _, _ = np.histogram2d(p[:, 0], p[:, 1], bins=bins, range=[[-lim, lim], [-lim, lim]])
    return h / max(len(p), 1)


def forward_paths(x0: Tensor | np.ndarray | tuple[float, ...], process: ForwardProcess, n_paths: int = 16,
                  steps: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the forward noising process from one point ``x0`` (d,).

    ``process`` is a DDPM :class:`NoiseSchedule` (the exact discrete chain
    x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z over its first ``min(steps, T)`` entries, so the
    end matches q(x_t | x_0) exactly), an :class:`SDE` (Euler-Maruyama from 0 to T in ``steps``) or
    a :class:`StraightPath` (one eps per path, points on its line at ``steps`` + 1 times).
    Returns (times in [0, 1] of shape (S+1,), paths (S+1, n_paths, d))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(np.asarray(x0, np.float64), dtype=torch.float64).reshape(1, -1).repeat(n_paths, 1)
    out = [x]
    if isinstance(process, NoiseSchedule):
        n = min(steps, process.T)
        for i in range(n):
            b = float(process.betas[i])
            x = math.sqrt(1.0 - b) * x + math.sqrt(b) * torch.randn(x.shape, generator=g, dtype=x.dtype)
            out.append(x)
        times = np.arange(n + 1) / process.T
    elif isinstance(process, StraightPath):
        eps = torch.randn(x.shape, generator=g, dtype=x.dtype)
        ts = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        out = [(1 - t) * x + t * eps for t in ts]
        times = ts.numpy()
    else:
        ts = torch.linspace(0.0, process.T, steps + 1, dtype=torch.float64)
        for i in range(steps):
            t, dt = ts[i].reshape(1).expand(n_paths), float(ts[i + 1] - ts[i])
            z = torch.randn(x.shape, generator=g, dtype=x.dtype)
            x = x + process.drift(x, t) * dt + process.diffusion(t).reshape(-1, 1) * math.sqrt(dt) * z
            out.append(x)
        times = (ts / process.T).numpy()
    return times, torch.stack(out).numpy()
