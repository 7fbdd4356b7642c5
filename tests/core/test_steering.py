"""Live steering (issue 12): live settings take effect from the next step of a running or paused
run, are written to the run with that step, and anything else is refused as 'applies to a new run'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genstudio.cli import main
from genstudio.core import events as ev
from genstudio.core import jobs
from genstudio.core.config import ConfigError, live_fields
from genstudio.core.events import EventBus
from genstudio.core.registry import registry
from genstudio.core.runs import RunStore

TINY = ["timesteps=20", "hidden=16", "depth=1", "batch_size=32"]


def _run(tmp_path, steps=12, **kw):
    store = RunStore(tmp_path / "store")
    spec = jobs.TrainSpec(plugin="ddpm", dataset="8gaussians", steps=steps, log_every=1, sample_every=0,
                          checkpoint_every=steps, overrides=TINY, **kw)
    return jobs.create_run(store, spec)


def test_live_fields_are_declared_in_the_config():
    cfg = registry().get("ddpm").info.config_cls
    assert {"lr", "ema_decay", "grad_clip", "cond_drop"} <= live_fields(cfg)
    assert "timesteps" not in live_fields(cfg) and "hidden" not in live_fields(cfg)


def test_a_running_run_takes_live_settings_from_the_next_step(tmp_path):
    run = _run(tmp_path)
    control, bus, seen = jobs.Control(), EventBus(), []
    bus.subscribe(lambda e: seen.append(e) if e.kind == ev.STEERED else None)
    gen = jobs.train(run, control=control, bus=bus)
    for step in gen:
        if step == 5:
            control.steer(lr=5e-4, grad_clip=0.5, sample_every=4)
            break
    for step in gen:  # noqa: B007
        pass
    info = run.info()
    assert info["status"] == "completed"
    assert info["config"]["lr"] == 5e-4 and info["config"]["grad_clip"] == 0.5 and info["sample_every"] == 4
    (entry,) = info["steering"]
    assert entry["step"] == 6 and entry["changes"]["lr"] == [1e-3, 5e-4]
    assert [e.data["step"] for e in seen] == [6]
    assert "[steer] " in (run.path / "log.txt").read_text() and "@ 6" in (run.path / "log.txt").read_text()
    samples = sorted(p.name for p in run.sample_dir().glob("step_*.png"))
    assert "step_00000008.png" in samples and "step_00000012.png" in samples  # the new cadence
    model, _, _ = jobs.load_model(run, "cpu")  # a resumed run keeps the new value
    assert model.config.lr == 5e-4
    assert model.opt.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_settings_that_shape_the_model_are_refused_while_it_trains(tmp_path):
    cfg = registry().get("ddpm").info.config_cls()
    with pytest.raises(ConfigError, match="applies to a new run"):
        jobs.check_steering(cfg, {"hidden": 64})
    with pytest.raises(ConfigError, match="outside"):
        jobs.check_steering(cfg, {"lr": 5.0})
    run = _run(tmp_path, steps=4)
    control = jobs.Control()
    control.steer(hidden=64)
    list(jobs.train(run, control=control))
    assert run.info()["config"]["hidden"] == 16 and not run.info().get("steering")
    assert "refused" in (run.path / "log.txt").read_text()


def test_edits_while_paused_apply_on_resume(tmp_path):
    run = _run(tmp_path)
    control = jobs.Control()
    gen = jobs.train(run, control=control)
    next(gen)
    control.pause()
    control.steer(lr=2e-4)  # made while paused: taken when the run resumes, never lost
    control.resume()
    list(gen)
    assert run.info()["config"]["lr"] == 2e-4 and run.info()["steering"][0]["step"] == 2


def test_cli_resume_set_uses_the_same_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(tmp_path / "data"))
    assert main(["train", "ddpm", "--data", "8gaussians", "--steps", "6", "--sample-every", "0",
                 *sum((["--set", t] for t in TINY), [])]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["resume", path.name, "--steps", "4", "--set", "lr=3e-4", "--set", "ema_decay=0.99"]) == 0
    info = json.loads((path / "run.json").read_text())
    assert info["config"]["lr"] == 3e-4 and info["steering"][0]["step"] == 7
    assert main(["resume", path.name, "--steps", "2", "--set", "timesteps=50"]) == 2
    assert "applies to a new run" in capsys.readouterr().err


def test_first_preview_comes_within_the_first_5_percent(tmp_path):
    run = _run(tmp_path, steps=120)
    run.update(sample_every=100)
    list(jobs.train(run))
    steps = sorted(int(p.stem.split("_")[1]) for p in run.sample_dir().glob("step_*.png"))
    assert steps == [6, 100, 120]  # ceil(5 % of 120), the cadence, the end
    short = _run(tmp_path, steps=40)
    short.update(sample_every=30)
    list(jobs.train(short))
    assert sorted(p.name for p in short.sample_dir().glob("step_*.png")) == [  # short runs: just the cadence
        "step_00000030.png", "step_00000040.png"]
