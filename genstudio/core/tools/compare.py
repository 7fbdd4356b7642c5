"""A/B sampling without a GUI: one run's whole trajectory, x_T first, for the Compare panel.

Where the trajectory starts is asked of the model (its NoisePrior face), so two runs of any
families that start from data-shaped noise share one unit noise per seed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from genstudio.core.faces import NoisePrior, has_face, initial_noise
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


def compare_runs(run: Any, b_run: Any | None, n: int, sides: Sequence[tuple[int, dict[str, Any], str]],
                 control: Any) -> Iterator[int]:
    """The A/B job: sample side A from ``run`` and side B from ``b_run`` (None = the same run, one
    model load), each ``(seed, sample keywords, label)``, from their newest checkpoints; B's model
    on A's device so one seed draws the same unit noise on both sides. Yields after each side and
    returns ``{a, b, labels, step, steps, scales, two_runs}``; a label says when x_T is scaled."""
    from genstudio.core import jobs

    model, _, step = jobs.load_model(run)
    models, steps = [model, model], [step, step]
    if b_run is not None:
        models[1], _, steps[1] = jobs.load_model(b_run, device=getattr(model, "device", None))
    out, labels, scales = [], [], []
    for m, (seed, kw, label) in zip(models, sides, strict=True):
        out.append(run_trajectory(m, n, seed, control, **kw))
        noise = has_face(m, NoisePrior)
        scales.append(m.prior_scale() if noise else None)
        labels.append(label + (f" · x_T = {scales[-1]:g}ε" if noise and scales[-1] != 1.0 else ""))
        yield len(out)
    return {"a": out[0], "b": out[1], "labels": tuple(labels), "step": step, "steps": tuple(steps),
            "scales": tuple(scales), "two_runs": b_run is not None}
