"""Quality against the number of network evaluations (NFE) for any sampling plugin.

Each sampler of a trained model runs at budgets 1, 2, 4, ... NFE; the network calls are *counted*
(a forward hook on the sampling network), not inferred, so multi-evaluation steps (Heun, the
predictor-corrector, guidance batches) are charged what they really cost. Quality is what the
data's modality measures: the energy distance to the data for 2-D sets, the Fréchet distance in the
dataset classifier's features (FCD) for images. This is the curve that shows why DDIM, DPM-Solver,
reflow and distillation exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from genstudio.core.plugin import final_state

TWO_PER_STEP = ("heun", "ode_heun", "pc")  # samplers that call the net twice per step
ADAPTIVE = ("rk45",)  # step count does not set the NFE; run once at the solver's tolerance


def budgets(max_nfe: int) -> list[int]:
    """1, 2, 4, ... up to and including ``max_nfe``."""
    out, b = [], 1
    while b < max_nfe:
        out.append(b)
        b *= 2
    return [*out, int(max_nfe)]


def steps_for(sampler: str, nfe: int) -> int:
    """Sampler steps that spend at most ``nfe`` evaluations (at least one step)."""
    return max(1, nfe // 2) if sampler in TWO_PER_STEP else max(1, nfe)


def _sampling_net(model: Any) -> torch.nn.Module:
    for name in ("ema", "net"):
        m = getattr(model, name, None)
        if isinstance(m, torch.nn.Module):
            return m
    raise ValueError(f"{type(model).__name__} has no 'ema' or 'net' module to count evaluations on")


@contextmanager
def count_nfe(model: Any) -> Iterator[list[int]]:
    """Counts forward calls of the model's sampling network (its EMA copy when it has one) in a
    one-element list."""
    box = [0]
    handle = _sampling_net(model).register_forward_hook(lambda *_: box.__setitem__(0, box[0] + 1))
    try:
        yield box
    finally:
        handle.remove()


def quality_fn(dataset: Any, n: int, seed: int = 0, device: torch.device | str = "cpu",
               ) -> tuple[str, Callable[[torch.Tensor], float]]:
    """(metric name, samples -> value) comparing against ``n`` fixed reference points: the data's
    modality decides (:meth:`genstudio.core.modality.Modality.quality`)."""
    return dataset.spec.modality.quality(dataset, n, seed=seed, device=device)


def nfe_curve(model: Any, dataset: Any, samplers: Sequence[str] | None = None, max_nfe: int = 1000,
              n: int = 1000, seed: int = 0, quality: Callable[[torch.Tensor], float] | None = None,
              callback: Callable[[dict[str, Any]], None] | None = None,
              nfes: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Rows ``{sampler, steps, nfe, quality, seconds}`` for every sampler at every budget of
    :func:`budgets` (repeated step counts skipped; adaptive samplers once; a sampler stops once it
    has spent more than ``max_nfe`` or when more steps no longer change its NFE). ``quality`` maps a
    batch of samples to a number (lower is better); default :func:`quality_fn`. ``nfes`` replaces
    the doubling ladder with explicit budgets (e.g. a short ladder plus one 1000-step reference,
    without paying for 256 and 512 in between)."""
    samplers = list(samplers or model.info.samplers)
    unknown = [s for s in samplers if s not in model.info.samplers]
    if unknown:
        raise ValueError(f"unknown sampler(s) {', '.join(unknown)}; {model.info.id} offers "
                         f"{', '.join(model.info.samplers)}")
    if quality is None:
        quality = quality_fn(dataset, n, device=getattr(model, "device", "cpu"))[1]
    rows: list[dict[str, Any]] = []
    ladder = sorted(nfes) if nfes else budgets(max_nfe)
    for s in samplers:
        seen: set[int] = set()
        spent: set[int] = set()
        plan = [1] if s in ADAPTIVE else [steps_for(s, b) for b in ladder]
        for steps in plan:
            if steps in seen:
                continue
            if rows and rows[-1]["sampler"] == s and rows[-1]["nfe"] > ladder[-1]:
                break  # steps cost several evaluations each (annealed Langevin: one per level)
            seen.add(steps)
            t0 = time.perf_counter()
            with count_nfe(model) as calls, torch.no_grad():
                x = final_state(model.sample(n, seed=seed, steps=steps, sampler=s, every=10**9)).x
            if calls[0] in spent:  # the sampler ignores steps (e.g. one-step): nothing new
                break
            spent.add(calls[0])
            row = {"sampler": s, "steps": steps, "nfe": calls[0], "quality": quality(x),
                   "seconds": time.perf_counter() - t0}
            rows.append(row)
            if callback is not None:
                callback(row)
    return rows


def nfe_job(run: Any, samplers: Sequence[str] | None, max_nfe: int, n: int, control: Any,
            on_row: Callable[[dict[str, Any], str], None] | None = None) -> Iterator[int]:
    """The NFE sweep of a run's newest checkpoint as a job: ``on_row(row, metric)`` per row
    (``control.check()`` before it, so Stop ends the sweep); returns ``(rows, metric)``."""
    from genstudio.core import jobs

    model, ds, _ = jobs.load_model(run)
    metric, q = quality_fn(ds, n, device=getattr(model, "device", "cpu"))

    def row_cb(row: dict[str, Any]) -> None:
        control.check()
        if on_row is not None:
            on_row(row, metric)

    rows = nfe_curve(model, ds, samplers, max_nfe=max_nfe, n=n, quality=q, callback=row_cb)
    yield len(rows)
    return rows, metric
