"""Live steering from the GUI (issue 12): the Settings panel's "Steer the selected run" box sends
live settings to the training job (from the next step) or keeps them for when a paused/stopped run
resumes; the run records them, the Training monitor marks them on the chart, and the next-run form
is untouched."""

from __future__ import annotations

from tests.qt.test_main_window import TIMEOUT, click, configure, start, status_of


def test_steer_a_running_then_a_stopped_run(test_plugins, main_window, qtbot):
    w = main_window
    configure(w, steps=10**7, log_every=5, sample_every=0, checkpoint_every=0)
    run = start(qtbot, w)
    qtbot.waitUntil(lambda: status_of(run) == "running" and run.info().get("step", 0) >= 0, timeout=TIMEOUT)
    w.select_run(run)
    settings = w.panels["settings"]
    assert settings.steer_box.isVisibleTo(settings) and settings.steer_form is not None
    assert set(settings.steer_form.values()) >= {"lr", "sample_every"}  # live fields and run options only
    next_run_lr = settings.form.values()["lr"]
    settings.steer_form.set_values({"lr": 0.05, "sample_every": 7})
    assert settings.apply_steering() == "applies from the next step"
    qtbot.waitUntil(lambda: bool(run.info().get("steering")), timeout=TIMEOUT)
    entry = run.info()["steering"][0]
    assert entry["changes"]["lr"][1] == 0.05 and entry["changes"]["sample_every"] == [0, 7]
    assert run.info()["config"]["lr"] == 0.05 and run.info()["sample_every"] == 7
    qtbot.waitUntil(lambda: any("lr" in t for t in w.panels["training"].steering_labels()), timeout=TIMEOUT)
    assert settings.form.values()["lr"] == next_run_lr  # the next run's form did not take the edit

    click(qtbot, w.stop_button)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    assert status_of(run) == "stopped"
    w.select_run(run)
    settings.steer_form.set_values({"lr": 0.02})
    assert settings.apply_steering() == "applies when the run resumes"
    click(qtbot, w.resume_button)
    qtbot.waitUntil(lambda: len(run.info().get("steering") or []) >= 2, timeout=TIMEOUT)
    assert run.info()["config"]["lr"] == 0.02
    click(qtbot, w.stop_button)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    assert not w.errors
