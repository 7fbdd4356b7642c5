"""Views of the forward process for 2-D runs (issue 4): the marginal density of particles at one
time, and forward noising paths from a chosen point, so a user can *see* q(x_t | x_0) spread out."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from genstudio.core.diffusion.schedules import NoiseSchedule
from genstudio.core.diffusion.sde import SDE


def marginal_histogram(x: Tensor | np.ndarray, bins: int = 64, lim: float = 3.0) -> np.ndarray:
    """Normalised 2-D histogram (bins, bins) of (N, 2) points over [-lim, lim]^2, indexed [ix, iy]
    (x first). Points outside the box are dropped, so the mass is the fraction inside (1 when all are)."""
    p = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, np.float64).reshape(-1, 2)
    h, _, _ = np.histogram2d(p[:, 0], p[:, 1], bins=bins, range=[[-lim, lim], [-lim, lim]])
    return h / max(len(p), 1)


def forward_paths(x0: Tensor | np.ndarray | tuple[float, ...], process: NoiseSchedule | SDE, n_paths: int = 16,
                  steps: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the forward noising process from one point ``x0`` (d,).

    ``process`` is a DDPM :class:`NoiseSchedule` (the exact discrete chain
    x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z over its first ``min(steps, T)`` entries, so the
    end matches q(x_t | x_0) exactly) or an :class:`SDE` (Euler-Maruyama from 0 to T in ``steps``).
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
    else:
        ts = torch.linspace(0.0, process.T, steps + 1, dtype=torch.float64)
        for i in range(steps):
            t, dt = ts[i].reshape(1).expand(n_paths), float(ts[i + 1] - ts[i])
            z = torch.randn(x.shape, generator=g, dtype=x.dtype)
            x = x + process.drift(x, t) * dt + process.diffusion(t).reshape(-1, 1) * math.sqrt(dt) * z
            out.append(x)
        times = (ts / process.T).numpy()
    return times, torch.stack(out).numpy()
