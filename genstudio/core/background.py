"""Training previews drawn beside the training, not in its way.

A preview is a whole sampling run (50 steps of the net for a 2-D DDPM, a grid of images for
others). Drawn inline, it stops the training for its duration: 5 % of a short run's wall time
(issue #18). :class:`BackgroundSample` draws it from a *snapshot* of the model in a thread of its
own. The training thread goes on with the next steps, and the other core (a trainer uses one
torch thread) or the GPU does the sampling; torch releases the GIL inside its ops.

This is safe because a snapshot shares no tensors with the model being trained, and a plugin's
``sample(seed=...)`` draws from its own generator, never from torch's global RNG, which the
training's next steps draw from (the plugin contract test checks that for every plugin). Grad
mode is per thread in torch, so the thread sets its own.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

import torch


def snapshot(model: Any) -> Any:
    """A deep copy of ``model`` for sampling: its optimisers (Adam keeps two tensors per
    weight) are left out, as ``None``."""
    memo: dict[int, Any] = {}
    for value in vars(model).values():  # an attribute, or a list / dict of them (a GAN's two)
        items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        memo.update({id(v): None for v in items if isinstance(v, torch.optim.Optimizer)})
    return copy.deepcopy(model, memo)


class BackgroundSample:
    """``model.sample(n, seed=seed, steps=steps)`` run to its last state on a snapshot, in a
    daemon thread; ``cancelled()`` is checked at every sampling step (Stop does not wait for a
    long preview). :meth:`result` waits and returns (last state, seconds) or raises what the
    sampling raised."""

    def __init__(self, model: Any, n: int, *, seed: int, steps: int | None,
                 cancelled: Callable[[], bool], stop: type[Exception]) -> None:
        self.model = snapshot(model)
        self._args = (n, seed, steps)
        self._cancelled = cancelled
        self._stop = stop
        self._last: Any = None
        self._error: BaseException | None = None
        self._halt = False
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="genstudio-preview", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n, seed, steps = self._args
        began = time.perf_counter()
        try:
            with torch.no_grad():
                for state in self.model.sample(n, seed=seed, steps=steps):
                    self._last = state
                    if self._halt or self._cancelled():
                        raise self._stop()
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread by result()
            self._error = exc
        self.seconds = time.perf_counter() - began

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> tuple[Any, float]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._last is None:
            raise RuntimeError("sample() yielded nothing")
        return self._last, self.seconds

    def drop(self) -> None:
        """Stop at the next sampling step and wait for the thread (a run that ends otherwise
        than by completing drops the preview it was drawing)."""
        self._halt = True
        self._thread.join()
