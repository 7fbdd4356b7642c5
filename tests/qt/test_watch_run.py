"""The window watches a run another process trains: its curve grows as that process writes, and
Stop in the window stops that process (through the run's control file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genstudio.core import jobs
from genstudio.core.runs import RunStore

ROOT = Path(__file__).resolve().parents[2]


def test_window_follows_a_run_written_by_a_subprocess_and_stops_it(make_window, qtbot, tmp_path):
    w = make_window()
    spec = jobs.TrainSpec("ddpm", "moons", steps=100_000, overrides=["timesteps=20", "hidden=16", "depth=1"],
                          log_every=5, sample_every=0, checkpoint_every=0, preview_steps=2, n_preview=16,
                          device="cpu")
    run = jobs.create_run(w.store, spec)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENSTUDIO_DATA_DIR": str(w.store.root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "genstudio", "resume", run.id], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        w.watch_run(run)
        assert w.job_running("train") and w.current_run().id == run.id
        panel = w.panels["training"]

        def points() -> int:
            try:
                return len(panel.curve_points("loss")[0])
            except KeyError:
                return 0

        qtbot.waitUntil(lambda: points() >= 3, timeout=60_000)
        first = points()
        qtbot.waitUntil(lambda: points() > first + 2, timeout=30_000)  # growing as the files grow
        assert w.progress.isVisible() and w.stop_button.isEnabled()

        assert w.steer_run(run, {"lr": 5e-4}) == "applies from the next step"  # through the control file
        qtbot.waitUntil(lambda: bool(run.info().get("steering")), timeout=30_000)
        assert run.info()["steering"][-1]["changes"]["lr"][1] == 5e-4 and run.info()["config"]["lr"] == 5e-4
        w.stop_training()  # written to control.json; the other process checkpoints and stops
        assert proc.wait(timeout=60) == 0, proc.stderr.read()[-2000:]
        qtbot.waitUntil(lambda: not w.job_running("train"), timeout=15_000)
        info = run.info()
        assert info["status"] == "stopped" and run.checkpoints()
        assert panel._status == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_processes_setting_launches_torchrun_and_watches(main_window, monkeypatch):
    import genstudio.qt.watch as qwatch

    w = main_window
    launched = []
    monkeypatch.setattr(qwatch, "launch", lambda window, run, n: launched.append((window, run.id, n)))
    assert w.select_plugin("ddpm") and w.select_dataset("moons")
    settings = w.panels["settings"]
    settings.run_form.set_values({"processes": 2, "sharding": "fsdp"})
    run = w.start_training()
    assert launched == [(w, run.id, 2)] and not w.job_running("train")  # nothing trains in the window
    assert run.info()["status"] == "created" and run.info()["sharding"] == "fsdp"  # what the resume reads
    # the command it runs: torchrun on `genstudio resume RUN`, one process per --nproc-per-node
    cmd = qwatch.launch_command(["resume", str(run.path)], 2)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc-per-node=2" in cmd
    assert cmd[-3:] == ["genstudio", "resume", str(run.path)]
    w.select_run(run)
    assert settings.steer_form is None or not {"processes", "sharding"} & set(settings.steer_form.values())


def test_own_process_option_trains_outside_the_window_and_is_watched(main_window, qtbot):
    """Run option own_process: Start launches `genstudio resume RUN` as a process of its own (no
    torchrun for one process) and the window watches it; Stop reaches it."""
    import genstudio.qt.watch as qwatch

    w = main_window
    assert w.select_plugin("ddpm") and w.select_dataset("moons")
    settings = w.panels["settings"]
    settings.run_form.set_values({"own_process": True, "sample_every": 0, "checkpoint_every": 0})
    w.steps_spin.setValue(100_000)
    run = w.start_training()
    t = w._jobs["train"]
    assert isinstance(t, qwatch.WatchThread) and t.process is not None
    assert (t.wake is not None) == (os.name == "posix")  # a cold trainer gets a wake pipe too
    assert qwatch.trainer_command(run, 1)[-3:] == ["genstudio", "resume", str(run.path)]
    qtbot.waitUntil(lambda: run.info()["status"] == "running", timeout=60_000)
    qtbot.waitUntil(lambda: len(run.metrics()) >= 2, timeout=60_000)
    w.stop_training()
    assert t.process.wait(timeout=60) == 0
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=15_000)
    assert run.info()["status"] == "stopped"


SMALL = {"sample_every": 0, "checkpoint_every": 0, "preview_steps": 2, "n_preview": 16}


def _small_ddpm(w, steps: int) -> None:
    assert w.select_plugin("ddpm") and w.select_dataset("moons")
    w.panels["settings"].form.set_values({"timesteps": 20, "hidden": 16, "depth": 1})
    w.panels["settings"].run_form.set_values(SMALL)
    w.steps_spin.setValue(steps)


@pytest.mark.own_process
def test_by_default_start_hands_the_run_to_the_warm_trainer_and_resume_trains_on_in_one(make_window, qtbot):
    """The app's default: runs train in a process of their own; a warm standby (imports done while
    the window sat idle) takes the run at Start, and a new one is warmed once the run has ended.
    Resuming the completed run trains its extra steps in a trainer process as well."""
    w = make_window()
    assert w.own_process() and w.panels["settings"].run_form.values()["own_process"] is True
    w._warm_trainer()  # what the window does a few seconds after it opens
    qtbot.waitUntil(w.standby.warm, timeout=120_000)
    standby_pid = w.standby.process.pid
    _small_ddpm(w, 30)
    run = w.start_training()
    t = w._jobs["train"]
    assert t.process is not None and t.process.pid == standby_pid and w.standby.process is None
    assert (t.wake is not None) == (os.name == "posix") and w.standby.wake is None  # its wake pipe went with it
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=120_000)
    assert t.wake is None or t.wake.read_fd == -1  # closed with the watching
    assert run.info()["status"] == "completed" and run.info()["step"] == 30 and not w.errors
    assert "(completed)" in w.panels["settings"].steer_note.text()  # followed the run, not frozen at "created"
    monitor = w.panels["training"]
    assert monitor._preview_cost and "preview" in monitor.sample_label.text()  # the cost read from the folder
    qtbot.waitUntil(w.standby.warm, timeout=120_000)  # the next one, warmed after the run
    w.steps_spin.setValue(20)
    w.resume_run(run)
    t = w._jobs["train"]
    assert t.process is not None  # a trainer process again, not the window's worker thread
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=120_000)
    assert run.info()["status"] == "completed" and run.info()["step"] == 50 and not w.errors


@pytest.mark.own_process
def test_a_trainer_that_dies_is_reported_with_the_end_of_its_output(make_window, qtbot):
    w = make_window()
    _small_ddpm(w, 1_000_000)
    run = w.start_training()
    t = w._jobs["train"]
    qtbot.waitUntil(lambda: len(run.metrics()) >= 2, timeout=120_000)
    t.process.kill()
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=60_000)
    assert w.errors, "a dead trainer must be reported"
    message, details = w.errors[-1]
    assert "is gone" in message and "launch.log" in details and "ddpm" in details  # the trainer's last lines
    assert run.info()["status"] == "interrupted"  # and Resume continues it from its last checkpoint


@pytest.mark.own_process
def test_closing_the_window_stops_the_trainer_it_started_with_a_checkpoint(make_window, qtbot):
    w = make_window()
    _small_ddpm(w, 1_000_000)
    run = w.start_training()
    proc = w._jobs["train"].process
    qtbot.waitUntil(lambda: len(run.metrics()) >= 2, timeout=120_000)
    w.close()
    assert proc.poll() is not None  # not left training with no window
    info = run.info()
    assert info["status"] == "stopped" and run.checkpoints() and run.checkpoints()[-1][0] == info["step"]


@pytest.mark.own_process
def test_stop_pressed_while_the_trainer_starts_still_stops_it(make_window, qtbot):
    """The trainer removes a control file older than its job (an old stop must stop nothing), so a
    Stop pressed before it has started is said again until it is heard."""
    w = make_window()
    _small_ddpm(w, 1_000_000)
    run = w.start_training()  # no standby warmed: a cold process, seconds before its first step
    proc = w._jobs["train"].process
    w.stop_training()
    assert run.info()["status"] == "created"  # pressed before the trainer got anywhere
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=120_000)
    assert proc.wait(timeout=30) == 0 and run.info()["status"] == "stopped" and not w.errors


def test_trainer_commands_run_the_cli_or_the_frozen_app_itself(monkeypatch, tmp_path):
    import genstudio.qt.watch as qwatch

    assert qwatch.genstudio_command(["standby", "r"]) == [sys.executable, "-m", "genstudio", "standby", "r"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # a PyInstaller bundle: its binary is the CLI
    assert qwatch.genstudio_command(["resume", "R"]) == [sys.executable, "resume", "R"]
    run = jobs.create_run(RunStore(tmp_path), jobs.TrainSpec("ddpm", "moons", steps=5))
    assert qwatch.trainer_argv(run, 20, {"lr": 0.0005, "sampler": "ddim"}) == [
        "resume", str(run.path), "--steps", "20", "--set", "lr=0.0005", "--set", "sampler=ddim"]


@pytest.mark.own_process
def test_pause_pressed_while_the_trainer_starts_pauses_it_once_it_runs(make_window, qtbot):
    w = make_window()
    _small_ddpm(w, 1_000_000)
    run = w.start_training()  # a cold trainer process
    w.pause_training()
    assert run.info()["status"] == "created"
    qtbot.waitUntil(lambda: run.info()["status"] == "paused", timeout=120_000)
    assert w._jobs["train"].control.paused and w.resume_button.isEnabled()
    step = run.info()["step"]
    w.step_training()  # Step: one step in the trainer process, which then pauses again
    qtbot.waitUntil(lambda: run.info()["step"] == step + 1 and run.info()["status"] == "paused", timeout=60_000)
    step += 1
    w.resume_training()  # a resume after the pause was heard is not undone
    qtbot.waitUntil(lambda: run.info()["status"] == "running" and run.metrics()[-1]["step"] > step + 20,
                    timeout=60_000)
    w.stop_training()
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=60_000)
    assert run.info()["status"] == "stopped" and not w.errors
