"""RunStore durability and the train/sample jobs (pause, resume, cancel, NaN, failure)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import torch

from genstudio.core import events as ev
from genstudio.core import jobs
from genstudio.core.registry import registry
from genstudio.core.runs import RunError, RunStore, atomic_write_text
from tests.fakeplugins import GaussFit, GaussRef


@pytest.fixture
def store(tmp_path):
    registry().add_class(GaussFit, "tests", "gaussfit")
    registry().add_class(GaussRef, "tests", "gaussref")
    return RunStore(tmp_path / "store")


def _spec(**kw):
    base = dict(plugin="gaussfit", dataset="8gaussians", steps=40, log_every=5, sample_every=20,
                checkpoint_every=10, n_preview=16, overrides=["lr=0.1"])
    base.update(kw)
    return jobs.TrainSpec(**base)


def _collect(bus):
    got = []
    bus.subscribe(got.append)
    return got


def test_train_writes_metrics_checkpoints_samples(store):
    run = jobs.create_run(store, _spec())
    bus = ev.EventBus()
    got = _collect(bus)
    steps = list(jobs.train(run, bus=bus))
    assert steps == list(range(1, 41))
    info = run.info()
    assert info["status"] == "completed" and info["step"] == 40
    rows = run.metrics()
    assert [r["step"] for r in rows] == list(range(5, 41, 5))
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert [s for s, _ in run.checkpoints()] == [20, 30, 40]  # keeps the newest 3
    assert sorted(p.name for p in run.sample_dir().glob("step_*.png")) == ["step_00000020.png", "step_00000040.png"]
    kinds = {e.kind for e in got}
    assert {ev.STATUS, ev.METRICS, ev.SAMPLES, ev.PROGRESS} <= kinds


def test_preview_steps_reach_the_sampler(store, monkeypatch):
    """preview_steps (GUI run options, `train --preview-steps`) sets the preview grid's sampling steps."""
    seen = []
    real = GaussFit.sample

    def spy(self, n, **kw):
        seen.append(kw.get("steps"))
        return real(self, n, **kw)

    monkeypatch.setattr(GaussFit, "sample", spy)
    for ps, want in ((0, None), (7, 7)):
        seen.clear()
        list(jobs.train(jobs.create_run(store, _spec(steps=20, preview_steps=ps))))
        assert seen == [want]


def test_initial_weights_follow_the_run_seed_not_the_global_rng(store):
    """Two runs of one spec start from the same weights whatever ran before; another seed differs."""
    torch.manual_seed(123)
    a, _, _ = jobs.load_model(jobs.create_run(store, _spec(seed=5)), checkpoint=False)
    torch.rand(1000)  # someone else used the global generator in between
    b, _, _ = jobs.load_model(jobs.create_run(store, _spec(seed=5)), checkpoint=False)
    c, _, _ = jobs.load_model(jobs.create_run(store, _spec(seed=6)), checkpoint=False)
    assert torch.equal(a.net.weight, b.net.weight) and not torch.equal(a.net.weight, c.net.weight)


def test_auto_preview_size_follows_the_data_kind(store):
    """n_preview = 0 (the default): 400 points for 2-D data (a cloud that shows its modes), 64 images."""
    assert jobs.preview_count(0, "points2d") == 400 and jobs.preview_count(0, "image") == 64
    assert jobs.preview_count(16, "points2d") == 16
    bus = ev.EventBus()
    got = _collect(bus)
    list(jobs.train(jobs.create_run(store, _spec(steps=20, n_preview=0)), bus=bus))
    assert [tuple(e.data["x"].shape) for e in got if e.kind == ev.SAMPLES] == [(400, 2)]


def test_cosine_lr_decay_follows_closed_form_and_survives_resume(store):
    """lr_decay_steps (every ModelConfig): the optimiser's lr at step s is lr0 * (1 + cos(pi (s-1)/S)) / 2,
    the base lr is kept across a resume from a checkpoint, and 0 means a constant lr."""
    import math

    from genstudio.core.plugin import cosine_lr_factor

    assert cosine_lr_factor(1, 10) == 1.0 and cosine_lr_factor(11, 10) == 0.0 and cosine_lr_factor(50, 0) == 1.0
    assert cosine_lr_factor(6, 10) == pytest.approx(0.5)
    seen = []
    real = GaussFit.train_step

    def spy(self, batch, labels, step):
        seen.append((step, self.opt.param_groups[0]["lr"]))
        return real(self, batch, labels, step)

    GaussFit.train_step = spy
    try:
        run = jobs.create_run(store, _spec(steps=20, overrides=["lr=0.1", "lr_decay_steps=30"]))
        list(jobs.train(run))
        assert [s for s, _ in seen] == list(range(1, 21))
        for s, lr in seen:
            assert lr == pytest.approx(0.05 * (1 + math.cos(math.pi * (s - 1) / 30)))
        seen.clear()
        list(jobs.train(run, extra_steps=5))  # resumes from the step-20 checkpoint
        assert [s for s, _ in seen] == list(range(21, 26))
        for s, lr in seen:
            assert lr == pytest.approx(0.05 * (1 + math.cos(math.pi * (s - 1) / 30)))
        seen.clear()
        list(jobs.train(jobs.create_run(store, _spec(steps=5))))
        assert {lr for _, lr in seen} == {0.1}
    finally:
        GaussFit.train_step = real


def test_checkpoint_is_weights_only_and_resume_continues(store):
    run = jobs.create_run(store, _spec(steps=20))
    list(jobs.train(run))
    step, state = run.load_checkpoint()
    assert step == 20 and set(state) == {"net", "opt"}
    w20 = state["net"]["weight"].clone()
    run.update(steps=30)
    steps = list(jobs.train(run))
    assert steps[0] == 21 and steps[-1] == 30
    assert not torch.equal(run.load_checkpoint()[1]["net"]["weight"], w20)
    assert [r["step"] for r in run.metrics()] == [5, 10, 15, 20, 25, 30]


def test_killed_mid_write_keeps_previous_files(store, tmp_path):
    run = jobs.create_run(store, _spec(steps=10))
    list(jobs.train(run))
    before = run.info()
    ck = run.checkpoints()[-1][1].read_bytes()
    # a process killed while writing run.json and a checkpoint: simulated with os._exit mid-write
    code = f"""
import os, sys, tempfile, pathlib
import genstudio.core.runs as R
real = os.replace
def die(*a, **k):
    os._exit(9)          # killed after the temp file is written, before the rename
os.replace = die
run = R.Run(pathlib.Path({str(run.path)!r}))
run.update(step=999, status="running")
"""
    r = subprocess.run([sys.executable, "-c", code])
    assert r.returncode == 9
    assert run.info() == before  # old run.json intact
    code2 = f"""
import os, pathlib, torch
import genstudio.core.runs as R
os.replace = lambda *a: os._exit(9)
R.Run(pathlib.Path({str(run.path)!r})).save_checkpoint(10, {{"net": {{"weight": torch.zeros(2, 1)}}}})
"""
    assert subprocess.run([sys.executable, "-c", code2]).returncode == 9
    assert run.checkpoints()[-1][1].read_bytes() == ck
    # a torn metrics line (killed during append) is skipped
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 11, "loss": 0.')
    assert run.metrics()[-1]["step"] == 10
    # resume after the kill works
    run.update(steps=15)
    assert list(jobs.train(run))[-1] == 15


def test_corrupt_checkpoint_falls_back_and_reports(store):
    run = jobs.create_run(store, _spec(steps=20))
    list(jobs.train(run))
    newest = run.checkpoints()[-1][1]
    newest.write_bytes(b"garbage" * 10)
    step, _ = run.load_checkpoint()
    assert step == 10  # skipped the corrupt one
    for _, p in run.checkpoints():
        p.write_bytes(b"\x00")
    with pytest.raises(RunError, match="no readable checkpoint"):
        run.load_checkpoint()
    atomic_write_text(run.path / "run.json", "{broken")
    with pytest.raises(RunError, match="corrupt"):
        run.info()


def test_pause_resume_cancel_from_another_thread(store):
    run = jobs.create_run(store, _spec(steps=100000, sample_every=0, checkpoint_every=0))
    control = jobs.Control()
    bus = ev.EventBus()
    statuses = []
    bus.subscribe(lambda e: statuses.append(e.data["status"]), ev.STATUS)
    seen = []

    def drive():
        for s in jobs.train(run, control=control, bus=bus):
            seen.append(s)

    t = threading.Thread(target=drive)
    t.start()
    while len(seen) < 5:
        time.sleep(0.01)
    control.pause()
    time.sleep(0.3)
    n = len(seen)
    time.sleep(0.3)
    assert len(seen) == n and run.info()["status"] == "paused"
    control.resume()
    while len(seen) < n + 5:
        time.sleep(0.01)
    control.cancel()
    t.join(10)
    assert not t.is_alive()
    info = run.info()
    assert info["status"] == "stopped" and info["step"] == seen[-1]
    assert statuses[:3] == ["running", "paused", "running"] and statuses[-1] == "stopped"
    assert run.checkpoints()[-1][0] == seen[-1]


def test_nan_pauses_then_rolls_back(store):
    run = jobs.create_run(store, _spec(steps=30, overrides=["lr=0.1", "nan_at=15"]))
    control = jobs.Control()
    bus = ev.EventBus()
    msgs = []
    bus.subscribe(lambda e: msgs.append((e.data["status"], e.data["message"])), ev.STATUS)
    gen = jobs.train(run, control=control, bus=bus)
    out = []
    t = threading.Thread(target=lambda: out.extend(gen))
    t.start()
    while not control.paused:
        time.sleep(0.01)
    assert msgs[-1][0] == "diverged" and "step 15" in msgs[-1][1]
    assert run.info()["status"] == "diverged"
    control.resume()
    t.join(10)
    assert any("resumed from checkpoint step 10" in m for _, m in msgs)
    assert run.info()["status"] == "completed"


def test_nan_then_stop_keeps_good_checkpoint(store):
    run = jobs.create_run(store, _spec(steps=30, overrides=["lr=0.1", "nan_at=15"]))
    control = jobs.Control()
    bus = ev.EventBus()
    bus.subscribe(lambda e: control.cancel() if e.data["status"] == "diverged" else None, ev.STATUS)
    list(jobs.train(run, control=control, bus=bus))
    assert run.info()["status"] == "diverged"
    assert run.checkpoints()[-1][0] == 10


def test_plugin_exception_marks_failed(store):
    run = jobs.create_run(store, _spec(overrides=["raise_at=3"]))
    bus = ev.EventBus()
    errors = []
    bus.subscribe(errors.append, ev.ERROR)
    with pytest.raises(RuntimeError, match="deliberate"):
        list(jobs.train(run, bus=bus))
    assert run.info()["status"] == "failed"
    assert "deliberate failure" in errors[0].data["message"]
    assert "Traceback" in run.read_log()


def test_sample_job_writes_png_npz_with_trajectory(store):
    run = jobs.create_run(store, _spec(steps=10))
    list(jobs.train(run))
    gen = jobs.sample(run, n=8, steps=4, seed=3)
    states = []
    try:
        while True:
            states.append(next(gen))
    except StopIteration as stop:
        res = stop.value
    assert [s.step for s in states] == [0, 1, 2, 3, 4]
    import numpy as np

    z = np.load(res.npz)
    assert z["x"].shape == (8, 2) and z["traj_x"].shape == (5, 8, 2)
    assert res.png.endswith(".png")
    # the same seed gives the same samples
    again = list(jobs.sample(run, n=8, steps=4, seed=3))
    assert torch.equal(again[-1].x, states[-1].x)


def test_store_lookup_and_delete(store):
    run = jobs.create_run(store, _spec(steps=1))
    assert store.get(run.id).path == run.path
    assert store.get(run.id[:-1]).path == run.path  # prefix
    assert store.get(str(run.path)).path == run.path
    json.loads((run.path / "run.json").read_text())
    store.delete(run)
    with pytest.raises(RunError):
        store.get(run.id)


def test_unknown_plugin_and_incompatible_data(store):
    with pytest.raises(KeyError, match="unknown plugin"):
        jobs.create_run(store, _spec(plugin="nope"))


def test_train_records_the_faces_of_the_runs_model(store):
    """run.json says what the run's model can do (asked of the set-up model), so panels and later
    tools can read it without building a model: a class_cond DDPM is Conditional with 8 classes."""
    for cond, classes in ((False, 0), (True, 8)):
        spec = jobs.TrainSpec(plugin="ddpm", dataset="8gaussians", steps=1, log_every=1, sample_every=0,
                              checkpoint_every=1, config={"timesteps": 10, "hidden": 16, "depth": 1,
                                                          "class_cond": cond})
        run = jobs.create_run(store, spec)
        for _ in jobs.train(run):
            pass
        info = run.info()
        assert {"NoisePrior", "ForwardProcessFace", "Sampling"} <= set(info["faces"])
        assert ("Conditional" in info["faces"]) is cond and info["classes"] == classes


def _trained_base(store):
    base = jobs.create_run(store, _spec(steps=20))
    list(jobs.train(base))
    return base


def test_job_hands_the_referenced_runs_model_to_the_plugin_before_setup(store):
    """A run-reference field (param(runs_of=...)) is resolved by the job, not the plugin: the
    referenced run's model, set up with its newest checkpoint on the same device, reaches use_run
    before setup, for training and for loading alike."""
    base = _trained_base(store)
    base_model, _, _ = jobs.load_model(base)
    run = jobs.create_run(store, _spec(plugin="gaussref", steps=2, config={"base_run": base.id[:-3]}))  # a prefix
    model, _, step = jobs.load_model(run)
    handed = model.runs["base_run"]
    assert step == 0 and type(handed) is GaussFit and handed.device == model.device
    assert torch.equal(handed.net.weight, base_model.net.weight)  # newest checkpoint, not fresh weights
    assert torch.equal(model.net.weight, base_model.net.weight)  # handed over before setup read it
    list(jobs.train(run))
    assert run.info()["status"] == "completed"
    again, _, step = jobs.load_model(run)  # from its own checkpoint: the reference is handed over again
    assert step == 2 and torch.equal(again.runs["base_run"].net.weight, base_model.net.weight)


def test_bad_run_references_are_clear_errors(store):
    """A missing, untrained, broken or self-referencing run names the field and the run id."""
    with pytest.raises(jobs.RunRefError, match=r"base_run = 'no-such-run'.*no run 'no-such-run'"):
        jobs.create_run(store, _spec(plugin="gaussref", config={"base_run": "no-such-run"}))
    fresh = jobs.create_run(store, _spec())
    with pytest.raises(jobs.RunRefError, match=f"base_run = '{fresh.id}'.*no checkpoint"):
        jobs.create_run(store, _spec(plugin="gaussref", config={"base_run": fresh.id}))
    base = _trained_base(store)
    run = jobs.create_run(store, _spec(plugin="gaussref", config={"base_run": base.id}))
    for _, p in base.checkpoints():  # the base run broke after this run was made
        p.write_bytes(b"not a checkpoint")
    with pytest.raises(jobs.RunRefError, match=f"base_run = '{base.id}': cannot load run {base.id}"):
        jobs.load_model(run)
    with pytest.raises(jobs.RunRefError, match="base_run"):  # the train job fails with it too
        list(jobs.train(run))
    assert run.info()["status"] == "failed" and "base_run" in run.info()["message"]
    loop = jobs.create_run(store, _spec(plugin="gaussref", steps=1, config={"base_run": _trained_base(store).id}))
    list(jobs.train(loop))
    info = loop.info()
    info["config"]["base_run"] = loop.id  # a run that references itself
    atomic_write_text(loop.path / "run.json", json.dumps(info))
    with pytest.raises(jobs.RunRefError, match=f"loop.*{loop.id} -> {loop.id}"):
        jobs.load_model(loop)


def test_plugin_built_outside_a_job_says_what_is_missing():
    """A set reference field with nothing handed over is a clear error; use_run fills it."""
    from genstudio.core.data import get_dataset
    from tests.fakeplugins import RefConfig

    m = GaussRef(RefConfig(base_run="some-run"))
    with pytest.raises(RuntimeError, match="base_run = 'some-run'.*use_run"):
        m.setup(get_dataset("8gaussians").spec)


def test_a_rows_same_step_measurements_merge_but_a_rewind_supersedes(store):
    """Mode coverage is logged after its step's losses, as a second row at that step: the two read
    as one row. A row that repeats a measurement at or before the last step is a resume's rewind."""
    run = jobs.create_run(store, _spec())
    run.append_metrics([{"step": 10, "loss": 1.0, "time": 1.0}, {"step": 10, "modes": 3.0, "hq": 0.5},
                        {"step": 20, "loss": 0.5}, {"step": 20, "loss": 0.4}, {"step": 15, "loss": 0.7}])
    assert run.metrics() == [{"step": 10, "loss": 1.0, "time": 1.0, "modes": 3.0, "hq": 0.5},
                             {"step": 15, "loss": 0.7}]


def test_compile_option_compiles_the_trained_nets_and_keeps_checkpoint_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "COMPILE_BACKEND", "eager")  # the same path, without minutes of C++ builds
    store = RunStore(tmp_path)
    run = jobs.create_run(store, jobs.TrainSpec("ddpm", "moons", steps=3, sample_every=0, checkpoint_every=3,
                                                device="cpu", compile=True, overrides=["hidden=16", "depth=1"]))
    list(jobs.train(run))
    assert run.info()["compile"] is True and "torch.compile (eager): net" in run.read_log()
    _, state = run.load_checkpoint()
    assert not [k for k in state["net"] if "_orig_mod" in k]
    model, _, step = jobs.load_model(run)  # an uncompiled model takes the checkpoint as is
    assert step == 3
