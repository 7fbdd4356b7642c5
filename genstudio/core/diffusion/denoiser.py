"""DDIM and DDIM inversion for any :class:`~genstudio.core.faces.Denoiser`, in its (alpha, sigma)
coordinates, so one loop serves DDPM, score SDEs, NCSN and flow matching.

With x_t = alpha(t) x_0 + sigma(t) eps, the deterministic DDIM step from t to s keeps the predicted
noise: x_s = alpha(s) x0_hat + sigma(s) eps_hat. For a VP chain that is Song et al.'s eq. 12 with
eta = 0, for VE (alpha = 1) it is Euler in sigma, for flow matching's straight path (alpha = t,
sigma = 1 - t) it is Euler in t -- each family's own first-order sampler, which the tests check.
Inversion walks the same times backwards, evaluating the net at the point it starts from (and, on
the first step off clean data, at the smallest noise visited: the usual approximation).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

StepOut = tuple[int, float, Tensor, Tensor]  # (step, time reached, x there, x0_hat of this step)


def _b(v: Tensor, x: Tensor) -> Tensor:
    """A scalar coefficient broadcast against ``x``."""
    return v.to(device=x.device, dtype=x.dtype).reshape(*([1] * x.dim()))


def _coeffs(model: Any, t: float, x: Tensor) -> tuple[Tensor, Tensor]:
    a, s = model.alpha_sigma(torch.tensor([t], dtype=torch.float64))
    return _b(a, x), _b(s, x)


def _tvec(t: float, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.float64, device=x.device)


def ddim_steps(model: Any, x: Tensor, steps: int, cond: Any = None, guidance: float = 1.0) -> Iterator[StepOut]:
    """Deterministic DDIM from the prior (x: the prior draw) to data over ``denoise_times(steps)``."""
    ts = model.denoise_times(steps).tolist()
    for i in range(len(ts) - 1):
        with torch.no_grad():
            x0, eps = model.denoise(x, _tvec(ts[i], x), cond, guidance)
        a, s = _coeffs(model, ts[i + 1], x)
        x = a * x0 + s * eps
        yield i, ts[i + 1], x, x0


def ddim_invert_steps(model: Any, x0: Tensor, steps: int, cond: Any = None) -> Iterator[StepOut]:
    """DDIM run backwards, data -> prior noise, over the same times as :func:`ddim_steps`."""
    ts = model.denoise_times(steps).flip(0).tolist()  # clean first
    x = x0
    for i in range(1, len(ts)):
        with torch.no_grad():
            _, eps = model.denoise(x, _tvec(ts[max(i - 1, 1)], x), cond, 1.0)
        a_f, s_f = _coeffs(model, ts[i - 1], x)
        a_t, s_t = _coeffs(model, ts[i], x)
        x0_hat = (x - s_f * eps) / a_f
        x = a_t * x0_hat + s_t * eps
        yield i - 1, ts[i], x, x0_hat


def _last(it: Iterator[StepOut], x: Tensor) -> Tensor:
    for _, _, x, _ in it:  # noqa: B007
        pass
    return x


def ddim_sample(model: Any, x: Tensor, steps: int, cond: Any = None, guidance: float = 1.0) -> Tensor:
    """The data point :func:`ddim_steps` ends at."""
    return _last(ddim_steps(model, x, steps, cond, guidance), x)


def ddim_invert(model: Any, x0: Tensor, steps: int, cond: Any = None) -> Tensor:
    """The prior noise from which :func:`ddim_sample` (same steps, same cond) returns ~x0."""
    return _last(ddim_invert_steps(model, x0, steps, cond), x0)
