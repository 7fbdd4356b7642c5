"""Issue 12: every panel follows the selected run and clears what belongs to another; each shows the
run it is about. And a wheel turn never edits an unfocused field of a form."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from genstudio.core import events as ev  # noqa: E402
from genstudio.core import jobs  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.core.scene.exports import VolumeScene  # noqa: E402
from genstudio.core.scene.gaussians import Gaussians  # noqa: E402
from genstudio.qt.forms import WheelGuard  # noqa: E402
from genstudio.qt.panels.runs import short_name  # noqa: E402
from tests.qt.test_panels import FakeCtx  # noqa: E402

TINY = ["batch_size=32", "timesteps=50", "hidden=32", "depth=1", "channels=8", "sample_steps=5"]


def _run(ctx, dataset="moons", steps=10, train=True, bus=None):
    run = jobs.create_run(ctx.store, jobs.TrainSpec(plugin="ddpm", dataset=dataset, steps=steps, device="cpu",
                                                    overrides=TINY, checkpoint_every=steps))
    if train:
        for _ in jobs.train(run, device="cpu", bus=bus):
            pass
    return run


@pytest.fixture
def ctx(tmp_path):
    return FakeCtx(tmp_path / "store", registry())


def _wheel(widget, dy=-120):
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    e = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, dy),
                    Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, e)


# 1 -------------------------------------------------------------------------------------------------
def test_wheel_changes_only_a_focused_field_of_the_settings_form(qtbot, main_window):
    w = main_window
    assert w.select_plugin("ddpm")
    form = w.panels["settings"].form
    spin = form.widget("grad_clip")
    combo = form.widget("schedule")
    other = form.widget("lr")
    # the guard is installed after the window's first paint
    qtbot.waitUntil(lambda: QApplication.instance().findChild(WheelGuard) is not None, timeout=5000)
    assert spin.focusPolicy() == Qt.StrongFocus  # the wheel alone never focuses it
    spin.setValue(1.0)
    w.activateWindow()
    other.setFocus()
    qtbot.waitUntil(other.hasFocus, timeout=2000)
    index = combo.currentIndex()
    _wheel(spin)
    _wheel(combo)
    assert spin.value() == 1.0 and combo.currentIndex() == index  # scrolling the form edits nothing
    assert not spin.hasFocus()
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    _wheel(spin)
    assert spin.value() < 1.0  # a focused spin box still takes the wheel


# 2 -------------------------------------------------------------------------------------------------
def test_sampler_clears_the_old_runs_trajectory_and_names_its_run(qtbot, ctx):
    from genstudio.qt.panels.sampler import SamplerPanel

    a, b = _run(ctx), _run(ctx)
    p = SamplerPanel(ctx)
    qtbot.addWidget(p)
    p.set_run(a)
    assert short_name(a.id) in p.run_label.text()
    p.start_sampling()
    ctx.deliver(p)
    assert p.num_states() > 1 and p.slider.maximum() > 0 and p.step_label.text()
    p.set_run(b)
    assert p.num_states() == 0 and p.slider.maximum() == 0 and p.step_label.text() == ""
    assert not p.status.text().startswith("done")
    assert short_name(b.id) in p.run_label.text() and short_name(a.id) not in p.run_label.text()
    p.set_run(None)
    assert "no run" in p.run_label.text()


# 3 -------------------------------------------------------------------------------------------------
def test_latent_explorer_drops_the_old_runs_title(qtbot, ctx):
    from genstudio.qt.panels.latent import LatentPanel

    runs = []
    for _ in range(2):
        run = jobs.create_run(ctx.store, jobs.TrainSpec("vae", "digits", steps=20, overrides=[
            "latent_dim=3", "hidden=32", "batch_size=64"], log_every=20, sample_every=0, checkpoint_every=20))
        for _ in jobs.train(run):
            pass
        runs.append(run)
    a, b = runs
    p = LatentPanel(ctx)
    qtbot.addWidget(p)
    p.set_run(a)
    p.n.setValue(50)
    p.encode()
    ctx.deliver(p)
    assert p.explorer is not None
    title = p.map.getPlotItem().titleLabel.text
    assert "codes" in title and short_name(a.id) in title
    p.set_run(b)
    title = p.map.getPlotItem().titleLabel.text
    assert "codes" not in title and short_name(a.id) not in title and short_name(b.id) in title
    assert p.explorer is None


# 4 -------------------------------------------------------------------------------------------------
def test_compare_nfe_and_guidance_see_a_checkpoint_once_it_is_written(qtbot, ctx):
    """The panels said "no checkpoint yet" for a run that had one: checkpoints are written mid-run
    with no STATUS event, and a status line from the previous run stayed. Now a trained step makes
    them look again, and a run change clears the old run's status line."""
    from genstudio.qt.panels.sweeps import GuidancePanel, NfePanel
    from genstudio.qt.panels.trajectory import TrajectoryPanel

    done = _run(ctx)
    fresh = _run(ctx, train=False)
    panels = [TrajectoryPanel(ctx), NfePanel(ctx), GuidancePanel(ctx)]
    for p in panels:
        qtbot.addWidget(p)
        p.set_run(done)
        p.status.setText("NFE sweep done: 12 points")  # a result about this run
        p.set_run(fresh)
        assert p.status.text().startswith("no checkpoint yet")
    ctx.pending.clear()
    for _ in jobs.train(fresh, device="cpu", bus=ctx.bus):
        pass
    assert fresh.checkpoints()
    mid_run = [e for e in ctx.pending if e.kind in (ev.PROGRESS, ev.CHECKPOINT)]  # no STATUS: it came mid-run
    for p in panels:
        p.on_events([e for e in mid_run if e.kind == ev.PROGRESS])  # progress alone lists no folder
        assert p.status.text().startswith("no checkpoint yet")
        p.on_events(mid_run)
    traj, nfe, guide = panels
    assert traj.status.text() == "" and traj.compare_button.isEnabled()
    assert nfe.status.text() == "" and nfe.nfe_button.isEnabled()
    assert "class-conditional" in guide.status.text()  # the reason that still holds
    for p in panels:
        p.set_run(done)
        assert "no checkpoint" not in p.status.text()


# 5 -------------------------------------------------------------------------------------------------
def test_toolbar_pickers_follow_the_selected_run(main_window):
    w = main_window
    ddpm = w.store.create(plugin="ddpm", dataset="moons", config={}, seed=0, device="cpu", steps=10)
    flow = w.store.create(plugin="flow_matching", dataset="8gaussians", config={}, seed=0, device="cpu", steps=10)
    assert w.select_plugin("nerf")
    assert w.plugin_combo.currentText() == "NeRF"
    w.select_run(ddpm)
    assert w.current_plugin() == "ddpm" and w.plugin_combo.currentText() == "DDPM"
    assert w.current_dataset() == "moons"
    assert w.panels["settings"].plugin_id == "ddpm"  # Start trains this family
    w.select_run(flow)
    assert w.current_plugin() == "flow_matching" and w.current_dataset() == "8gaussians"
    assert not w.job_running("train") and w.store.get(flow.id).info()["status"] == "created"  # nothing started


# 6 -------------------------------------------------------------------------------------------------
def test_runs_step_column_shows_training_progress_only(qtbot, ctx):
    from genstudio.core.events import Event
    from genstudio.qt.panels.runs import RunsPanel

    run = ctx.store.create(plugin="ddpm", dataset="moons", config={}, seed=0, device="cpu", steps=100)
    p = RunsPanel(ctx)
    qtbot.addWidget(p)
    p.on_events([Event(ev.PROGRESS, run.id, {"done": 40, "total": 100})])
    assert p.row_text(run.id)["Step"] == "40/100"
    p.on_events([Event(ev.PROGRESS, run.id, {"done": 2, "total": 10, "rate": 0.0, "stage": "sampling",
                                            "job": "eval"}),
                 Event(ev.PROGRESS, run.id, {"done": 3, "total": 8, "stage": "features"})])
    assert p.row_text(run.id)["Step"] == "40/100"
    p.on_events([Event(ev.PROGRESS, run.id, {"done": 41, "total": 100})])
    assert p.row_text(run.id)["Step"] == "41/100"


# 7 -------------------------------------------------------------------------------------------------
@pytest.mark.gl
def test_splat_viewer_ignores_the_nerf_viewers_scenes_and_renders(qtbot, ctx):
    from genstudio.core.events import Event
    from genstudio.qt.panels.viewer3d import SCENE_READY, VIEW_READY, NerfViewerPanel, SplatViewerPanel

    nerf_run = ctx.store.create(plugin="nerf", dataset="scene:primitives", config={}, seed=0, device="cpu", steps=4)
    splat_run = ctx.store.create(plugin="splat", dataset="scene:primitives", config={}, seed=0, device="cpu",
                                 steps=4)
    splats, volume = SplatViewerPanel(ctx), NerfViewerPanel(ctx)
    for p in (splats, volume):
        qtbot.addWidget(p)
        p.resize(640, 420)
        p.show()
        qtbot.waitExposed(p)
    assert splats.canvas is not None, "no GL context: run under xvfb-run with QT_QPA_PLATFORM=xcb"
    r = 16
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, r)] * 3, indexing="ij")
    dens = (np.sqrt(x * x + y * y + z * z) < 0.6).astype(np.float32) * 20
    vol = VolumeScene(dens, -np.ones(3), np.ones(3), np.zeros((r, r, r, 3), np.float32), suggested_level=10.0)
    assert splats.set_scene(vol) is False and splats.scene_item is None  # no TypeError: not its items
    assert "not drawn here" in splats.status.text()
    splats._run = nerf_run  # both viewers got the NeRF run selected; tokens of the two viewers may agree
    volume._run = nerf_run
    img = np.full((8, 8, 3), 0.5, np.float32)
    events = [Event(SCENE_READY, nerf_run.id, {"scene": vol, "step": 4, "token": splats._token, "viewer": "volume"}),
              Event(VIEW_READY, nerf_run.id, {"image": img, "caption": "NeRF rgb", "viewer": "volume"}),
              Event(SCENE_READY, nerf_run.id, {"scene": vol, "step": 4, "token": splats._token})]  # untagged
    splats.on_events(events)
    assert splats.scene_item is None and splats.side_image.pixmap().isNull() and splats.side_caption.text() == ""
    volume._token = splats._token
    volume.on_events(events[:2])
    assert volume.scene_item is vol and volume.side_caption.text() == "NeRF rgb"
    # a run's scene is dropped when another run is selected
    g = Gaussians.create(torch.zeros(1, 3), torch.ones(1, 3), scales=torch.full((1, 3), 0.3), opacity=0.9)
    splats._run = splat_run
    splats.on_events([Event(SCENE_READY, splat_run.id, {"scene": g, "step": 4, "token": splats._token,
                                                        "viewer": "splats"})])
    assert splats.scene_item is g
    splats.set_run(nerf_run)
    assert splats.scene_item is None and splats.status.text() == splats.hint


def test_compare_and_sweep_panels_name_their_run(qtbot, tmp_path):
    """Compare A/B, Quality vs NFE and Guidance say which run they are about, and follow it."""
    from genstudio.core import jobs
    from genstudio.core.registry import registry
    from genstudio.qt.panels.runs import short_name
    from genstudio.qt.panels.sweeps import GuidancePanel, NfePanel
    from genstudio.qt.panels.trajectory import TrajectoryPanel
    from tests.qt.test_panels import FakeCtx

    ctx = FakeCtx(tmp_path, registry())
    a = jobs.create_run(ctx.store, jobs.TrainSpec(plugin="ddpm", dataset="8gaussians", steps=2))
    b = jobs.create_run(ctx.store, jobs.TrainSpec(plugin="flow_matching", dataset="moons", steps=2))
    for cls in (TrajectoryPanel, NfePanel, GuidancePanel):
        p = cls(ctx)
        qtbot.addWidget(p)
        p.set_run(a)
        assert short_name(a.id) in p.run_label.text()
        p.set_run(b)
        assert short_name(b.id) in p.run_label.text() and short_name(a.id) not in p.run_label.text()
        p.set_run(None)
        assert "no run" in p.run_label.text()


def test_the_window_fits_a_1400_px_screen_with_a_ddpm_run(main_window, tmp_path):
    """The Sampler's declared options sit on their own line, so a plugin with several (DDPM: eta,
    guidance, sigma schedule) never forces the window wider than a laptop screen (it was 1899 px)."""
    from genstudio.core import jobs

    w = main_window
    run = jobs.create_run(w.store, jobs.TrainSpec(plugin="ddpm", dataset="8gaussians", steps=2, sample_every=0,
                                                  overrides=["timesteps=20", "hidden=16", "depth=1",
                                                             "class_cond=true"]))
    list(jobs.train(run))
    w.select_run(run)
    assert set(w.panels["sampler"].options) == {"eta", "guidance", "sigma_schedule"}
    assert w.minimumSizeHint().width() <= 1400, {p: x.minimumSizeHint().width() for p, x in w.panels.items()}
