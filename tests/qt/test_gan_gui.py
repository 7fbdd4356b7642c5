"""A GAN in the real window (issue 13): the training monitor shows the critic's decision surface
and the mode-coverage curve; Pause then Step moves one player per click (players = alternate)."""

from __future__ import annotations

from tests.qt.test_main_window import TIMEOUT, click, configure, start, status_of


def test_gan_step_mode_and_live_views(main_window, qtbot):
    w = main_window
    configure(w, plugin="gan", steps=10**6, config={"batch_size": 32, "hidden": 16, "depth": 1, "latent_dim": 4,
                                                    "players": "alternate"},
              log_every=1, sample_every=20, checkpoint_every=0)
    run = start(qtbot, w)
    qtbot.waitUntil(lambda: run.info().get("status") == "running", timeout=TIMEOUT)
    mon = w.panels["training"]
    qtbot.waitUntil(lambda: "decision" in mon.view_names(), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: "modes" in mon.metric_names(), timeout=TIMEOUT)
    click(qtbot, w.pause_button)
    qtbot.waitUntil(lambda: status_of(run) == "paused", timeout=TIMEOUT)
    assert w.step_button.isEnabled()
    before = run.info()["step"]
    click(qtbot, w.step_button)
    qtbot.waitUntil(lambda: status_of(run) == "paused" and run.info()["step"] == before + 1, timeout=TIMEOUT)
    click(qtbot, w.step_button)
    qtbot.waitUntil(lambda: status_of(run) == "paused" and run.info()["step"] == before + 2, timeout=TIMEOUT)
    rows, _ = run.read_metrics()
    players = [r["player"] for r in rows if r["step"] in (before + 1, before + 2) and "player" in r]
    assert sorted(players) == [1.0, 2.0]  # one critic move, one generator move
    assert (run.sample_dir() / f"view_decision_{before + 2:08d}.png").exists()  # each step is shown
    click(qtbot, w.stop_button)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    assert not w.errors
