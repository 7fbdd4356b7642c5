"""Shared check for plugins that train an inner model on the fly (ldm's VAE, dalle's VQ-VAE): a
checkpoint load must restore it, not train it again."""

from __future__ import annotations

from typing import Any

from genstudio.core import jobs
from genstudio.core.runs import Run


def trained_and_reloaded(run: Run, inner: type, monkeypatch: Any) -> tuple[Any, Any, int, list[int]]:
    """Train ``run``, load it, then load it again counting ``inner.train_step`` calls from then on:
    (first load, second load, its step, the calls list -- which a later load keeps counting into)."""
    list(jobs.train(run))
    trained, _, _ = jobs.load_model(run)
    calls: list[int] = []
    real = inner.train_step
    monkeypatch.setattr(inner, "train_step", lambda self, *a: calls.append(1) or real(self, *a))
    again, _, step = jobs.load_model(run)
    return trained, again, step, calls
