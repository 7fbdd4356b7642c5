"""Training monitor and sampler panels, standalone, with a small fake AppContext.

Events are either synthetic or come from the real jobs (train / sample) driving the tiny test
plugin, delivered to ``on_events`` in one batch as the bridge would.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math  # noqa: E402
import threading  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import genstudio.core.registry as registry_mod  # noqa: E402
from genstudio.core import events as ev  # noqa: E402
from genstudio.core import jobs  # noqa: E402
from genstudio.core.events import Event, EventBus  # noqa: E402
from genstudio.core.imaging import samples_image, save_png  # noqa: E402
from genstudio.core.plugin import SampleState  # noqa: E402
from genstudio.core.registry import Registry  # noqa: E402
from genstudio.core.runs import RunStore  # noqa: E402
from genstudio.qt.panels.sampler import SamplerPanel, frame_indices  # noqa: E402
from genstudio.qt.panels.training import TrainingPanel, ema  # noqa: E402
from genstudio.qt.panels.views import trail_arrays  # noqa: E402
from tests.fakeplugins import GaussFit  # noqa: E402


class GatedFit(GaussFit):
    """GaussFit whose sampler waits on ``gate`` before every step (to catch a job mid-flight)."""

    info = GaussFit.info.__class__(**{**GaussFit.info.__dict__, "id": "gatedfit"})
    gate = threading.Event()


class FakeCtx:
    """What a panel needs from the main window; start_job runs the job inline or in a thread."""

    def __init__(self, root, reg: Registry, threaded: bool = False) -> None:
        self.store = RunStore(root)
        self.registry = reg
        self.bus = EventBus()
        self.pending: list[Event] = []
        self.bus.subscribe(self.pending.append)
        self.threaded = threaded
        self.threads: dict[str, threading.Thread] = {}
        self.errors: list[str] = []
        self.messages: list[str] = []

    def current_run(self):
        return None

    def start_job(self, name, run, job):
        control = jobs.Control()

        def drive() -> None:
            try:
                for _ in job(control):
                    pass
            except jobs.Cancelled:
                pass

        if self.threaded:
            t = self.threads[name] = threading.Thread(target=drive, daemon=True)
            t.start()
        else:
            drive()
        return control

    def job_running(self, name):
        t = self.threads.get(name)
        return t is not None and t.is_alive()

    def show_error(self, message, details=""):
        self.errors.append(message)

    def status_message(self, text, ms=4000):
        self.messages.append(text)

    def deliver(self, panel) -> int:
        """Hand every event since the last call to the panel in one batch (one screen tick)."""
        batch, self.pending[:] = list(self.pending), []
        panel.on_events(batch)
        return len(batch)


@pytest.fixture
def reg(monkeypatch):
    r = Registry()
    r.add_class(GaussFit, "tests", "gaussfit")
    r.add_class(GatedFit, "tests", "gatedfit")
    monkeypatch.setattr(registry_mod, "_cached", r)  # jobs.load_model looks plugins up here
    return r


@pytest.fixture
def ctx(tmp_path, reg):
    return FakeCtx(tmp_path / "store", reg)


def numpy_ema(y, w):
    """Independent reference: the debiased EMA written as a plain loop."""
    out, s = [], 0.0
    for t, v in enumerate(y, start=1):
        s = w * s + (1 - w) * v
        out.append(s / (1 - w**t))
    return np.array(out)


def metric_rows(steps, scale=1.0):
    return [{"step": s, "time": 0.05 * s, "steps_per_s": 20.0, "loss": scale * (1 + math.sin(s / 7) + 3 / s),
             "grad_norm": 0.5 + s / 1000} for s in steps]


def new_run(ctx, plugin="gaussfit", dataset="moons", steps=1000):
    return ctx.store.create(plugin=plugin, dataset=dataset, config={}, seed=0, device="cpu", steps=steps)


# -- pure helpers ---------------------------------------------------------------------------
def test_ema_matches_loop_and_limits():
    y = np.random.default_rng(0).normal(size=500).cumsum()
    for w in (0.0, 0.3, 0.9, 0.999):
        np.testing.assert_allclose(ema(y, w), numpy_ema(y, w) if w else y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ema(np.full(50, 3.0), 0.95), 3.0)  # debiased: no drag towards 0


def test_trail_arrays_break_between_particles():
    hist = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)  # 3 steps, 2 particles
    x, y, connect = trail_arrays(hist)
    np.testing.assert_array_equal(x, [0, 4, 8, 2, 6, 10])
    np.testing.assert_array_equal(y, [1, 5, 9, 3, 7, 11])
    np.testing.assert_array_equal(connect, [1, 1, 0, 1, 1, 0])


def test_frame_indices():
    assert frame_indices(5, 10) == [0, 1, 2, 3, 4]
    idx = frame_indices(1001, 120)
    assert idx[0] == 0 and idx[-1] == 1000 and len(idx) == 120 and idx == sorted(set(idx))


# -- training monitor ---------------------------------------------------------------------------
def test_training_curves_smoothing_and_axes(qtbot, ctx):
    run = new_run(ctx)
    panel = TrainingPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    rows = metric_rows(range(10, 510, 10))
    panel.on_events([Event(ev.METRICS, run.id, r) for r in rows[:20]])
    panel.on_events([Event(ev.METRICS, run.id, r) for r in rows[20:]])
    steps = np.array([r["step"] for r in rows], float)
    loss = np.array([r["loss"] for r in rows])
    x, y = panel.curve_points("loss")
    np.testing.assert_array_equal(x, steps)
    np.testing.assert_allclose(y, loss)
    assert set(panel.metric_names()) == {"loss", "grad_norm", "steps_per_s"}
    assert len(panel.plot_item.listDataItems()) == 2  # loss only (raw + smoothed) by default

    panel.smoothing.setValue(900)
    xs, ys = panel.curve_points("loss", smoothed=True)
    np.testing.assert_allclose(ys, numpy_ema(loss, 0.9), rtol=1e-10)
    assert panel.curve_points("loss")[1].std() > ys.std()  # smoothing really smooths

    panel.x_axis.setCurrentIndex(panel.x_axis.findData("time"))
    np.testing.assert_allclose(panel.curve_points("loss")[0], 0.05 * steps)

    panel.log_y.setChecked(True)
    assert panel.plot_item.getAxis("left").logMode
    assert all(item.opts["logMode"] == [False, True] for item in panel.plot_item.listDataItems())
    panel.log_y.setChecked(False)
    assert not panel.plot_item.getAxis("left").logMode

    panel.set_metric_checked("grad_norm")
    assert len(panel.plot_item.listDataItems()) == 4
    np.testing.assert_allclose(panel.curve_points("grad_norm")[1], [r["grad_norm"] for r in rows])
    assert "step 500 / 1,000" in panel.throughput.text() and "20.0 steps/s" in panel.throughput.text()


def test_training_loads_history_merges_live_rows_and_overlays(qtbot, ctx):
    a, b = new_run(ctx), new_run(ctx, dataset="digits")
    rows_a = metric_rows(range(10, 310, 10))
    a.append_metrics(rows_a[:10])  # the trainer flushes in batches: the rest only came as events
    b.append_metrics(metric_rows(range(5, 205, 5), scale=2.0))
    panel = TrainingPanel(ctx)
    qtbot.addWidget(panel)
    panel.on_events([Event(ev.METRICS, a.id, r) for r in rows_a[5:]])  # before a is selected
    panel.set_run(a)
    np.testing.assert_array_equal(panel.curve_points("loss")[0], [r["step"] for r in rows_a])

    panel.pin_run()
    panel.set_run(b)
    assert panel.displayed_runs() == [a.id, b.id]
    assert len(panel.plot_item.listDataItems()) == 4
    np.testing.assert_array_equal(panel.curve_points("loss", a.id)[0], [r["step"] for r in rows_a])
    np.testing.assert_array_equal(panel.curve_points("loss")[0], np.arange(5, 205, 5))
    pens = {tuple(item.opts["pen"].color().getRgb()) for item in panel.plot_item.listDataItems()}
    assert len(pens) == 4  # each run's curves in its own colour, raw ones fainter

    # a resume rewinds: rows at or after the restart step are replaced
    panel.on_events([Event(ev.METRICS, b.id, {"step": 100, "time": 1.0, "loss": 9.0})])
    x, y = panel.curve_points("loss")
    assert x[-1] == 100 and y[-1] == 9.0 and (np.diff(x) > 0).all()

    panel.unpin_all()
    assert panel.displayed_runs() == [b.id] and len(panel.plot_item.listDataItems()) == 2


def test_training_sample_grids_and_slider(qtbot, ctx):
    run = new_run(ctx, dataset="digits")
    g = torch.Generator().manual_seed(0)
    disk = {s: torch.rand(16, 1, 8, 8, generator=g) * 2 - 1 for s in (100, 200)}
    for s, x in disk.items():
        save_png(samples_image(x), run.sample_dir() / f"step_{s:08d}.png")
    save_png(samples_image(disk[100]), run.sample_dir() / "sample_default_n16_s0.png")  # not a grid log
    panel = TrainingPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    assert panel.sample_steps() == [100, 200]
    x300 = torch.rand(16, 1, 8, 8, generator=g) * 2 - 1
    panel.on_events([Event(ev.SAMPLES, run.id, {"step": 300, "x": x300, "path": None}),
                     Event(ev.SAMPLES, "another-run", {"step": 400, "x": x300, "path": None})])
    assert panel.sample_steps() == [100, 200, 300]
    assert panel.sample_slider.value() == 2  # follows the newest grid
    np.testing.assert_array_equal(panel.sample_view.image.image, samples_image(x300))
    panel.sample_slider.setValue(0)
    np.testing.assert_array_equal(panel.sample_view.image.image, samples_image(disk[100]))
    assert panel.sample_label.text() == "step 100"


def test_training_from_real_job(qtbot, ctx):
    """The train job's own events (fake plugin, 40 steps) drive the curve and the sample grid."""
    run = jobs.create_run(ctx.store, jobs.TrainSpec("gaussfit", "moons", steps=40, log_every=5,
                                                    sample_every=20, checkpoint_every=20))
    panel = TrainingPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    ctx.start_job("train", run, lambda c: jobs.train(run, control=c, bus=ctx.bus))
    ctx.deliver(panel)
    x, y = panel.curve_points("loss")
    np.testing.assert_array_equal(x, np.arange(5, 45, 5))
    np.testing.assert_allclose(y, [r["loss"] for r in run.metrics()])
    assert panel.sample_steps() == [20, 40]
    assert "completed" in panel.throughput.text()


# -- sampler ----------------------------------------------------------------------------------
def trained_run(ctx, dataset="moons", plugin="gaussfit"):
    run = jobs.create_run(ctx.store, jobs.TrainSpec(plugin, dataset, steps=20, sample_every=0,
                                                    checkpoint_every=10))
    for _ in jobs.train(run):
        pass
    assert [s for s, _ in run.checkpoints()] == [10, 20]
    return run


def test_sampler_points_trajectory_scrub_and_export(qtbot, ctx, tmp_path):
    run = trained_run(ctx)
    panel = SamplerPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    assert [panel.checkpoint.itemText(i) for i in range(panel.checkpoint.count())] == ["step 20", "step 10"]
    assert panel.sampler.currentData() == "walk"
    panel.n.setValue(50)
    panel.steps.setValue(12)
    panel.seed.setValue(3)
    panel.start_sampling()
    ctx.deliver(panel)
    assert panel.num_states() == 13
    assert panel.slider.maximum() == 12 and panel.slider.value() == 12
    assert panel.sample_button.text() == "Sample" and panel.png_button.isEnabled()

    # the panel shows exactly what an independent call of the job with the same arguments gives
    ref = list(jobs.sample(run, n=50, steps=12, seed=3, sampler="walk"))
    for i in (0, 5, 12):
        panel.show_step(i)
        np.testing.assert_allclose(panel.view_x.scatter.getData()[0], ref[i].x[:, 0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(panel.view_x0.scatter.getData()[1], ref[i].x0[:, 1].numpy(), rtol=1e-6)
    # trails: the last TRAIL positions of each particle, one polyline per particle
    tx, _ = panel.view_x.trails.getData()
    assert len(tx) == 50 * 8
    np.testing.assert_allclose(tx[:8], [s.x[0, 0].item() for s in ref[5:13]], rtol=1e-6)
    assert "step 12/12" in panel.step_label.text()
    # whole paths coloured by time: 12 steps x 50 particles as segment pairs, trail hidden
    panel.whole_paths.setChecked(True)
    bands = [b for b in panel.view_x.bands if b.isVisible()]
    assert sum(len(b.getData()[0]) for b in bands) == 12 * 50 * 2 and len(panel.view_x.trails.getData()[0]) == 0
    xs = np.concatenate([b.getData()[0] for b in bands])
    want = np.stack([r.x[:, 0].numpy() for r in ref]).astype(np.float64).ravel()
    np.testing.assert_allclose(np.unique(xs), np.unique(want), rtol=1e-6)  # the trajectory's own positions
    panel.whole_paths.setChecked(False)

    png = panel.export_png(tmp_path / "final.png")
    gif = panel.export_gif(tmp_path / "traj.gif")
    with Image.open(png) as im:
        assert im.size == (256, 256)
    with Image.open(gif) as im:
        assert im.n_frames == 13 and im.size == (2 * 512 + 4, 512 + 36)  # x_t | x0 under a label strip


def test_sampler_picks_older_checkpoint(qtbot, ctx):
    run = trained_run(ctx)
    panel = SamplerPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    panel.steps.setValue(4)
    finals = {}
    for idx in (0, 1):
        panel.checkpoint.setCurrentIndex(idx)
        panel.start_sampling()
        ctx.deliver(panel)
        finals[panel.checkpoint.currentText()] = panel.states()[-1].x0[0]
    model10, _, step = jobs.load_model(run, "cpu", checkpoint_path=run.checkpoints()[0][1])
    assert step == 10
    torch.testing.assert_close(finals["step 10"], model10.net.weight[:, 0].detach())
    assert not torch.allclose(finals["step 10"], finals["step 20"])


def test_sampler_follows_the_newest_checkpoint_unless_an_older_one_was_picked(qtbot, ctx):
    run = jobs.create_run(ctx.store, jobs.TrainSpec("gaussfit", "moons", steps=10, sample_every=0,
                                                    checkpoint_every=5, keep_checkpoints=-1))
    panel = SamplerPanel(ctx)
    qtbot.addWidget(panel)
    gen = jobs.train(run, bus=ctx.bus)
    for step in gen:
        if step == 5:
            break
    panel.set_run(run)  # selected while it trains: step 5 is the newest
    assert panel.checkpoint.currentText() == "step 5"
    for _ in gen:
        pass
    ctx.deliver(panel)
    assert panel.checkpoint.currentText() == "step 10"  # the newest followed the training
    run.update(steps=20)
    panel.checkpoint.setCurrentIndex(1)  # the user picks the older one
    for _ in jobs.train(run, bus=ctx.bus):
        pass
    ctx.deliver(panel)
    assert [panel.checkpoint.itemText(i) for i in range(panel.checkpoint.count())][:2] == ["step 20", "step 15"]
    assert panel.checkpoint.currentText() == "step 5"  # and keeps it
    run.update(steps=30, keep_checkpoints=2)  # until it is deleted: then the newest
    for _ in jobs.train(run, bus=ctx.bus):
        pass
    ctx.deliver(panel)
    assert panel.checkpoint.currentText() == "step 30"


def test_sampler_images_and_play(qtbot, ctx, tmp_path):
    run = trained_run(ctx, dataset="digits")
    panel = SamplerPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    panel.n.setValue(9)
    panel.steps.setValue(30)
    panel.start_sampling()
    ctx.deliver(panel)
    assert panel.num_states() == 31
    assert panel.view_x.mode == "image"
    grid_h = 3 * 9 + 1  # 3x3 digits of 8 px with 1 px padding
    assert panel.view_x.image.image.shape == (grid_h, grid_h, 3)
    panel.play_button.setChecked(True)  # starts from the beginning when at the end
    assert panel.slider.value() == 0
    qtbot.waitUntil(lambda: not panel.play_button.isChecked(), timeout=10_000)
    assert panel.slider.value() == 30
    with Image.open(panel.export_gif(tmp_path / "digits.gif")) as im:
        assert im.n_frames == 31 and im.size == (2 * 8 * grid_h + 4, 8 * grid_h + 36)  # 8 px digits x8: 64 px cells


def test_sampler_stop_while_running(qtbot, tmp_path, reg):
    ctx = FakeCtx(tmp_path / "store", reg, threaded=True)
    run = trained_run(ctx, plugin="gatedfit")
    panel = SamplerPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    GatedFit.gate.clear()
    orig = GatedFit.sample

    def gated(self, *a, **kw):
        for st in orig(self, *a, **kw):
            GatedFit.gate.wait(5)
            yield st

    GatedFit.sample = gated
    try:
        panel.start_sampling()
        assert panel.sample_button.text() == "Stop"
        panel.sample_button.click()  # cancels the job's Control
        GatedFit.gate.set()
        qtbot.waitUntil(lambda: panel.sample_button.text() == "Sample", timeout=5000)
    finally:
        GatedFit.sample = orig
    ctx.deliver(panel)
    assert panel.num_states() <= 1  # cancelled before the second step
    assert "ended" in panel.status.text()


def test_sampler_without_checkpoint_or_plugin(qtbot, ctx):
    panel = SamplerPanel(ctx)
    qtbot.addWidget(panel)
    assert not panel.sample_button.isEnabled()
    panel.set_run(new_run(ctx))
    assert not panel.sample_button.isEnabled() and "train first" in panel.status.text()
    panel.set_run(new_run(ctx, plugin="nosuchplugin"))
    assert not panel.sample_button.isEnabled() and "nosuchplugin" in panel.status.text()
    assert panel.start_sampling() is None
    # a trajectory for the selected run that some other code started is shown too; no x̂0 here
    rid = panel._run.id
    x = torch.zeros(4, 2)
    panel.on_events([Event(ev.SAMPLE_STATE, rid, {"state": SampleState(i, 2, 1 - i / 2, x + i, None)})
                     for i in range(3)])
    assert panel.num_states() == 3
    np.testing.assert_array_equal(panel.view_x.scatter.getData()[0], [2, 2, 2, 2])
    assert len(panel.view_x0.scatter.getData()[0]) == 0  # right view stays empty


def test_sampler_follows_training_and_outside_jobs(qtbot, ctx):
    run = jobs.create_run(ctx.store, jobs.TrainSpec("gaussfit", "moons", steps=10, sample_every=0))
    panel = SamplerPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    assert "train first" in panel.status.text() and not panel.sample_button.isEnabled()
    for _ in jobs.train(run, bus=ctx.bus):
        pass
    ctx.deliver(panel)  # the STATUS events make it look for checkpoints again
    assert panel.checkpoint.count() == 1 and panel.status.text() == "" and panel.sample_button.isEnabled()
    for _ in jobs.sample(run, n=5, steps=3, bus=ctx.bus):  # e.g. a menu action, not the panel's button
        pass
    ctx.deliver(panel)
    assert panel.num_states() == 4 and panel.status.text().startswith("done")
    for _ in jobs.sample(run, n=5, steps=5, bus=ctx.bus):  # the next trajectory replaces it
        pass
    ctx.deliver(panel)
    assert panel.num_states() == 6 and [s.step for s in panel.states()] == list(range(6))
