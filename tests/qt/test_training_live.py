"""Watching a run learn in the training monitor: the preview grows with its panel, the filmstrip
of every logged preview (step and loss under each, click to show it big, follows new previews,
lazy for hundreds), the time-lapse export, and the window's collapsible activity log."""

from __future__ import annotations

import time

import imageio.v2 as iio
import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QToolButton

from genstudio.core import events as ev
from genstudio.core.events import Event
from genstudio.core.imaging import image_grid, save_png
from genstudio.qt.panels.training import TrainingPanel
from tests.qt import test_panels
from tests.qt.test_main_window import TIMEOUT, configure, start
from tests.qt.test_panels import new_run

reg, ctx = test_panels.reg, test_panels.ctx  # fixtures: FakeCtx over the tiny test plugins


def digits_like(step: int, n: int = 16) -> np.ndarray:
    g = torch.Generator().manual_seed(step)
    return image_grid(torch.rand(n, 1, 8, 8, generator=g) * 2 - 1)  # 33 x 33 px: a small grid


def logged_run(ctx, steps=(100, 200, 300), losses=None):
    """A run with sample PNGs on disk and a loss logged every 50 steps."""
    run = new_run(ctx, dataset="digits")
    for s in steps:
        save_png(digits_like(s), run.sample_dir() / f"step_{s:08d}.png")
    last = max(steps)
    run.append_metrics([{"step": s, "time": s * 0.01, "loss": 1.0 / s} for s in range(50, last + 1, 50)])
    return run


def panel_for(qtbot, ctx, run, size=(900, 320)):
    panel = TrainingPanel(ctx)
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    panel.set_run(run)
    qtbot.waitExposed(panel)
    return panel


def shown_size(qtbot, panel, size):
    panel.resize(*size)
    qtbot.waitUntil(lambda: panel.sample_canvas.width() > 0)
    qtbot.wait(50)  # layouts and the view box settle
    return panel.preview_display_size()


def test_preview_grows_with_the_panel_keeps_aspect_and_stays_crisp(qtbot, ctx):
    panel = panel_for(qtbot, ctx, logged_run(ctx))
    w0, h0 = shown_size(qtbot, panel, (800, 300))
    w1, h1 = shown_size(qtbot, panel, (1700, 900))
    assert h1 > 2 * h0 and w1 > 2 * w0, ((w0, h0), (w1, h1))
    assert abs(w1 / h1 - 1.0) < 0.02  # a square grid stays square
    assert h1 > 500  # a big live preview, not ~100 px
    # a small grid is scaled nearest (crisp pixels); a big scatter plot smoothly
    assert not panel.sample_canvas.renderHints() & QPainter.SmoothPixmapTransform
    panel.on_events([Event(ev.SAMPLES, panel._run.id, {"step": 400, "x": torch.randn(200, 2), "path": None})])
    assert panel.sample_view.image.image.shape[:2] == (512, 512)  # a live 2-D cloud drawn big
    assert panel.sample_canvas.renderHints() & QPainter.SmoothPixmapTransform


def test_filmstrip_labels_click_and_follow(qtbot, ctx):
    run = logged_run(ctx, steps=(100, 200, 300))
    panel = panel_for(qtbot, ctx, run)
    assert panel.filmstrip_steps() == [100, 200, 300]
    assert panel.filmstrip_label(200) == f"step 200\nloss {1 / 200:.4g}"
    assert panel.filmstrip.currentIndex().row() == 2  # the newest is the one shown

    view = panel.filmstrip
    rect = view.visualRect(panel.filmstrip_model.index(0))
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=rect.center())
    assert panel.sample_label.text() == "step 100" and panel.sample_slider.value() == 0
    np.testing.assert_array_equal(panel.sample_view.image.image, digits_like(100))

    # a new preview while training: a thumbnail appears; the big view stays where the user put it
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    panel.on_events([Event(ev.METRICS, run.id, {"step": 400, "time": 4.0, "loss": 0.125}),
                     Event(ev.SAMPLES, run.id, {"step": 400, "x": x, "path": None})])
    assert panel.filmstrip_steps() == [100, 200, 300, 400]
    assert panel.filmstrip_label(400) == "step 400\nloss 0.125"
    assert panel.sample_label.text() == "step 100"
    panel.sample_slider.setValue(3)  # back at the newest: it follows again
    panel.on_events([Event(ev.SAMPLES, run.id, {"step": 500, "x": x, "path": None})])
    assert panel.sample_label.text() == "step 500" and panel.filmstrip.currentIndex().row() == 4

    # the preview is being drawn: the monitor says so until it arrives
    panel.on_events([Event(ev.STAGE, run.id, {"step": 600, "stage": "preview"})])
    assert "drawing the preview of step 600" in panel.sample_label.text()

    other = logged_run(ctx, steps=(100,))  # another run: its own thumbnails, none of the old ones
    panel.set_run(other)
    assert panel.filmstrip_steps() == [100]


def test_filmstrip_of_hundreds_of_previews_stays_light(qtbot, ctx, tmp_path):
    steps = list(range(10, 3010, 10))  # 300 previews
    run = new_run(ctx, dataset="digits")
    img = digits_like(0, n=64)
    for s in steps:
        save_png(img, run.sample_dir() / f"step_{s:08d}.png")
    t = time.perf_counter()
    panel = panel_for(qtbot, ctx, run)
    qtbot.wait(100)
    assert time.perf_counter() - t < 3.0
    assert panel.filmstrip_steps() == steps
    made = panel.filmstrip_model.made
    assert 0 < made < 40, made  # only the thumbnails in sight (the newest end) were made
    panel.filmstrip.scrollToTop()
    qtbot.wait(50)
    assert panel.filmstrip_model.made < 80  # scrolling makes a few more; cached ones are not remade


def test_time_lapse_export_from_the_panel(qtbot, ctx, tmp_path):
    run = logged_run(ctx, steps=(100, 200, 300))
    panel = panel_for(qtbot, ctx, run)
    assert panel.export_button.isEnabled()
    with pytest.raises(ValueError, match=".gif or .mp4"):
        panel.export_timelapse(tmp_path / "tl.avi")
    panel.export_timelapse(tmp_path / "tl.gif")  # FakeCtx runs the job inline
    ctx.deliver(panel)
    frames = iio.mimread(tmp_path / "tl.gif")
    assert len(frames) == 3 and min(frames[0].shape[:2]) >= 512
    assert ctx.messages[-1] == f"wrote {tmp_path / 'tl.gif'}"
    assert panel.export_button.isEnabled()


def test_activity_log_collapses_and_gives_its_height_to_the_panels(make_window, qtbot):
    w = make_window()
    w.resize(1600, 1000)
    qtbot.waitUntil(lambda: w.docks["training"].height() > 0)
    qtbot.wait(100)
    assert w.activity_action.isChecked() and w.activity.isVisible()
    assert w.activity.height() < 160  # compact by default (it used to take ~40 % of the window)
    before = w.docks["training"].height() + w.docks["sampler"].height()
    toggle = w.findChild(QToolButton, "activity_toggle")
    qtbot.mouseClick(toggle, Qt.LeftButton)
    qtbot.wait(100)
    assert not w.activity_action.isChecked() and not w.activity.isVisible()
    after = w.docks["training"].height() + w.docks["sampler"].height()
    assert after >= before + w.activity.maximumHeight() * 0.5, (before, after)
    assert "Activity log" in [a.text() for a in w.menuBar().actions()[2].menu().actions()]
    w.close()
    w2 = make_window()  # remembered
    assert not w2.activity_action.isChecked() and not w2.activity.isVisible()


def test_gui_run_fills_the_filmstrip_live(test_plugins, main_window, qtbot):
    """A real training from the Start button: every logged preview lands in the filmstrip with
    the loss at its step; the first one comes early (5 % of the run)."""
    w = main_window
    configure(w, plugin="gaussfit", dataset="8gaussians", steps=200, sample_every=50)
    run = start(qtbot, w)
    training = w.panels["training"]
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: training.filmstrip_steps() == [10, 50, 100, 150, 200], timeout=5000)
    rows = {r["step"]: r["loss"] for r in run.metrics() if "loss" in r}  # mode-coverage rows have no loss
    assert training.filmstrip_label(150) == f"step 150\nloss {rows[150]:.4g}"
    # the preview takes the dock's height beside the curves (the filmstrip sits under the curves)
    assert training.preview_display_size()[1] > 0.4 * w.docks["training"].height()
