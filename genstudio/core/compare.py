"""A/B sampling without a GUI: one run's whole trajectory, x_T first, for the Compare panel.

Where the trajectory starts is asked of the model (its NoisePrior face), so two runs of any
families that start from data-shaped noise share one unit noise per seed."""

from __future__ import annotations

from typing import Any

import torch

from genstudio.core.faces import initial_noise
from genstudio.core.plugin import SampleState


def initial_state(model: Any, n: int, seed: int, total: int) -> SampleState | None:
    """x_T as the model's sampler draws it (:func:`faces.initial_noise`); None without a NoisePrior."""
    x = initial_noise(model, n, seed)
    return None if x is None else SampleState(0, total, 1.0, x.cpu(), None)


def run_trajectory(model: Any, n: int, seed: int, control: Any, **kw: Any) -> list[SampleState]:
    """All states of one sampling run (``control.check()`` between steps), x_T first when known."""
    states: list[SampleState] = []
    with torch.no_grad():
        for st in model.sample(n, seed=seed, every=1, **kw):
            control.check()
            states.append(SampleState(st.step, st.total, st.t, st.x.detach().cpu(),
                                      st.x0.detach().cpu() if st.x0 is not None else None, st.extras))
    if states:
        first = initial_state(model, n, seed, states[0].total)
        if first is not None and first.x.shape == states[0].x.shape:
            states.insert(0, first)
    return states
