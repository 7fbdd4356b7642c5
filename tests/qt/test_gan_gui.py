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
    qtbot.waitUntil(w.step_button.isEnabled, timeout=TIMEOUT)  # the window hears of the pause an event batch later
    click(qtbot, w.step_button)
    qtbot.waitUntil(lambda: status_of(run) == "paused" and run.info()["step"] == before + 2, timeout=TIMEOUT)
    rows, _ = run.read_metrics()
    players = [r["player"] for r in rows if r["step"] in (before + 1, before + 2) and "player" in r]
    assert sorted(players) == [1.0, 2.0]  # one critic move, one generator move
    assert (run.sample_dir() / f"view_decision_{before + 2:08d}.png").exists()  # each step is shown
    click(qtbot, w.stop_button)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    assert not w.errors


def test_sampler_steps_through_every_checkpoint(main_window, qtbot, tmp_path):
    """Issue 13's fixed-noise grid over checkpoints: a GAN run keeps every checkpoint (not the newest
    3), the Sampler's step slider samples the same seed from the one it points at, and the export
    writes one labelled frame per checkpoint."""
    from PIL import Image

    from genstudio.core import jobs

    w = main_window
    spec = jobs.TrainSpec("gan", "8gaussians", steps=40, log_every=5, sample_every=0, checkpoint_every=10,
                          config={"batch_size": 32, "hidden": 16, "depth": 1, "latent_dim": 4})
    run = jobs.create_run(w.store, spec)
    for _ in jobs.train(run):
        pass
    assert [s for s, _ in run.checkpoints()] == [10, 20, 30, 40]  # all kept (BasePlugin keeps 3)
    w.select_run(run)
    sp = w.panels["sampler"]
    qtbot.waitUntil(lambda: sp.checkpoint.count() == 4, timeout=TIMEOUT)
    assert sp.ckpt_slider.isEnabled() and sp.ckpt_slider.maximum() == 3 and sp.ckpt_slider.value() == 3
    sp.n.setValue(50)
    finals = {}
    for value, step in ((0, 10), (3, 40)):
        before = sp.states()[-1] if sp.states() else None
        sp.ckpt_slider.setValue(value)
        assert sp.checkpoint.currentText() == f"step {step}"
        qtbot.waitUntil(lambda before=before: sp._done and sp.states()[-1] is not before
                        and not w.job_running("sample"),
                        timeout=TIMEOUT)
        finals[step] = sp.states()[-1].x.clone()
        assert sp.ckpt_slider.value() == value
    assert finals[10].shape == (50, 2) and not bool((finals[10] - finals[40]).abs().max() < 1e-6)
    out = tmp_path / "evo.gif"
    assert sp.gif_ckpt_action.isEnabled()
    sp.export_checkpoints(str(out))
    qtbot.waitUntil(lambda: not w.job_running("export") and out.is_file(), timeout=TIMEOUT)
    with Image.open(out) as im:
        assert im.n_frames == 4
    assert not w.errors
