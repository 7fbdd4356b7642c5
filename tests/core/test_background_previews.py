"""Training previews drawn beside the training (genstudio.core.background, issue #18): the
training does not wait for them, they show the model as it was at their step, the training's
numbers are the same as without them, and Stop and errors behave as for an inline preview."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from genstudio.core import events as ev
from genstudio.core.jobs import Control, TrainSpec, create_run, load_model, train
from genstudio.core.plugin import final_state
from genstudio.core.registry import registry
from genstudio.core.runs import RunStore


def _run(tmp_path, name: str, **opts):
    spec = TrainSpec(plugin="ddpm", dataset="8gaussians", steps=opts.pop("steps", 120), seed=3, log_every=10,
                     **opts)
    return create_run(RunStore(tmp_path / name), spec)


def _events(run, control: Control | None = None, on=None) -> list[ev.Event]:
    bus = ev.EventBus()
    seen: list[ev.Event] = []
    bus.subscribe(lambda e: (seen.append(e), on and on(e)))
    for _ in train(run, control=control, bus=bus):
        pass
    return seen


def test_training_goes_on_while_a_preview_is_drawn_and_the_preview_is_the_model_at_its_step(tmp_path):
    run = _run(tmp_path, "a", sample_every=60, checkpoint_every=60)
    seen = _events(run)
    order = [(e.kind, e.data.get("step", e.data.get("done"))) for e in seen if e.kind in (ev.SAMPLES, ev.PROGRESS)]
    at = order.index((ev.SAMPLES, 60))
    assert (ev.PROGRESS, 61) in order[:at]  # step 61 was trained before the step-60 preview was out
    assert [s for k, s in order if k == ev.SAMPLES] == [6, 60, 120]  # all of them, in order
    assert run.info()["status"] == "completed" and (run.path / "samples" / "step_00000120.png").exists()
    # the step-60 preview is what the step-60 checkpoint samples
    shown = next(e.data["x"] for e in seen if e.kind == ev.SAMPLES and e.data["step"] == 60)
    model, _, _ = load_model(run, checkpoint_path=run.checkpoint_path(60))
    info = run.info()
    with torch.no_grad():
        again = final_state(model.sample(len(shown), seed=info["seed"], steps=model.preview_steps)).x
    torch.testing.assert_close(again, shown, rtol=0, atol=1e-6)


def test_the_training_is_the_same_with_previews_beside_it_and_its_rows_stay_in_step_order(tmp_path):
    with_previews = _run(tmp_path, "a", sample_every=30)
    without = _run(tmp_path, "b", sample_every=0)
    _events(with_previews), _events(without)
    rows, plain = with_previews.metrics(), without.metrics()
    loss = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    assert loss == [(r["step"], r["loss"]) for r in plain if "loss" in r]  # bit for bit: no RNG shared
    assert [s for s, _ in loss] == list(range(10, 121, 10))  # none read as a resume's rewind and dropped
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps) == [6, *range(10, 121, 10)]  # the first look (step 6) has a row of its own
    assert all("modes" in r for r in rows if r["step"] in (6, 30, 60, 90, 120))  # coverage joined its step's row
    raw, _ = with_previews.read_metrics()  # and on disk too, in order
    assert [r["step"] for r in raw] == sorted(r["step"] for r in raw)


def _slow_sampling(monkeypatch, delay: float, fail_at: int | None = None):
    cls = registry().get("ddpm")
    sample = cls.sample

    def slow(self, *a, **k):
        for i, st in enumerate(sample(self, *a, **k)):
            if fail_at is not None and i == fail_at:
                raise RuntimeError("the sampler broke")
            time.sleep(delay)
            yield st

    monkeypatch.setattr(cls, "sample", slow)


def test_stop_does_not_wait_for_a_long_preview_beside_the_training(tmp_path, monkeypatch):
    _slow_sampling(monkeypatch, 0.2)  # ~10 s a preview
    run = _run(tmp_path, "a", steps=5000, sample_every=50)
    control = Control()
    began: list[float] = []

    def on(e: ev.Event) -> None:
        if e.kind == ev.STAGE and e.data.get("stage") == "preview" and not began:
            began.append(time.monotonic())
        if began and e.kind == ev.PROGRESS and e.data["done"] >= 80:
            control.cancel()

    _events(run, control, on)
    assert time.monotonic() - began[0] < 5  # not the ~10 s the preview would take
    info = run.info()
    assert info["status"] == "stopped" and info["step"] >= 80
    assert not any(t.name == "genstudio-preview" and t.is_alive() for t in threading.enumerate())
    rows = run.metrics()  # the rows logged while the dropped preview was drawn are kept
    assert rows[-1]["step"] >= 80


def test_a_preview_that_fails_beside_the_training_fails_the_run_with_its_error(tmp_path, monkeypatch):
    _slow_sampling(monkeypatch, 0.0, fail_at=3)
    run = _run(tmp_path, "a", sample_every=50)
    with pytest.raises(RuntimeError, match="the sampler broke"):
        _events(run)
    info = run.info()
    assert info["status"] == "failed" and "the sampler broke" in info["message"]


def test_a_model_that_cannot_be_copied_draws_its_previews_inline(tmp_path, monkeypatch):
    import genstudio.core.background as background

    def no_copy(model):
        raise TypeError("cannot pickle '_thread.lock' object")

    monkeypatch.setattr(background, "snapshot", no_copy)
    run = _run(tmp_path, "a", sample_every=60)
    seen = _events(run)
    assert [e.data["step"] for e in seen if e.kind == ev.SAMPLES] == [6, 60, 120]
    assert "previews drawn inline: the model could not be copied" in run.read_log()
    assert run.read_log().count("previews drawn inline") == 1  # said once, then inline for the run


def test_a_snapshot_shares_no_tensor_with_the_model_and_leaves_its_optimiser_out():
    from genstudio.core.background import snapshot
    from genstudio.core.data import get_dataset

    cls = registry().get("ddpm")
    model = cls(cls.info.config_cls(), torch.device("cpu"))
    model.setup(get_dataset("8gaussians").spec)
    copy = snapshot(model)
    assert copy.opt is None and isinstance(model.opt, torch.optim.Optimizer)
    mine = {p.data_ptr() for p in model.net.parameters()}
    assert not mine & {p.data_ptr() for p in copy.net.parameters()}
    with torch.no_grad():
        next(model.net.parameters()).add_(1.0)  # training the model moves nothing in the copy
    assert not torch.equal(next(model.net.parameters()), next(copy.net.parameters()))
