"""The window watches a run another process trains: its curve grows as that process writes, and
Stop in the window stops that process (through the run's control file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from genstudio.core import jobs

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
    assert qwatch.trainer_command(run, 1)[-3:] == ["genstudio", "resume", str(run.path)]
    qtbot.waitUntil(lambda: run.info()["status"] == "running", timeout=60_000)
    qtbot.waitUntil(lambda: len(run.metrics()) >= 2, timeout=60_000)
    w.stop_training()
    assert t.process.wait(timeout=60) == 0
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=15_000)
    assert run.info()["status"] == "stopped"
