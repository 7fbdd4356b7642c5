"""Compare & NFE panel on a tiny DDPM trained in the test: A/B from the same x_T with one shared
slider, and the quality-vs-NFE chart."""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, replace

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from genstudio.core import jobs  # noqa: E402
from genstudio.core.plugin import SampleState  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.qt.panels.runs import short_name  # noqa: E402
from genstudio.qt.panels.sweeps import NFE_ROW, NfePanel  # noqa: E402
from genstudio.qt.panels.trajectory import SLIDER_MAX, TrajectoryPanel, index_at  # noqa: E402
from tests.qt.test_panels import FakeCtx  # noqa: E402

TINY = ["batch_size=32", "timesteps=50", "hidden=32", "depth=1", "channels=8", "sample_steps=5"]


def trained(ctx, dataset: str, steps: int = 20, extra: list[str] | None = None, plugin: str = "ddpm", **cfg):
    """A tiny run with a checkpoint: DDPM with TINY, other plugins with their tiny() config (+ ``cfg``)."""
    config = None if plugin == "ddpm" else asdict(replace(registry().get(plugin).info.config_cls.tiny(), **cfg))
    run = jobs.create_run(ctx.store, jobs.TrainSpec(
        plugin=plugin, dataset=dataset, steps=steps, device="cpu", config=config,
        overrides=(TINY if plugin == "ddpm" else []) + (extra or []), checkpoint_every=steps))
    for _ in jobs.train(run, device="cpu"):
        pass
    assert run.checkpoints()
    return run


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    return tmp_path_factory.mktemp("traj")


@pytest.fixture
def ctx(store_root):
    return FakeCtx(store_root, registry())


@pytest.fixture(scope="module")
def gauss_run(store_root):
    return trained(FakeCtx(store_root, registry()), "8gaussians")


@pytest.fixture(scope="module")
def flow_run(store_root):
    return trained(FakeCtx(store_root, registry()), "8gaussians", plugin="flow_matching")


@pytest.fixture(scope="module")
def ve_run(store_root):
    """Score SDE with the VE SDE: its prior is N(0, sigma_max^2), x_T = 10 eps."""
    return trained(FakeCtx(store_root, registry()), "8gaussians", plugin="score_sde", sde="ve", sigma_max=10.0)


def test_index_at_aligns_different_step_counts():
    mk = lambda k: [SampleState(i, k, 1 - i / k, torch.zeros(1, 2)) for i in range(k + 1)]  # noqa: E731
    a, b = mk(4), mk(10)
    assert [index_at(a, f) for f in (0, 0.5, 1)] == [0, 2, 4]
    assert [index_at(b, f) for f in (0, 0.5, 1)] == [0, 5, 10]


def test_ab_same_noise_and_shared_slider(qtbot, ctx, gauss_run, tmp_path):
    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1100, 500)
    p.set_run(gauss_run)
    p.a.sampler.setCurrentIndex(p.a.sampler.findData("ddpm"))
    p.b.sampler.setCurrentIndex(p.b.sampler.findData("ddim"))
    p.n.setValue(200)
    assert p.compare_button.isEnabled()
    p.start_compare()
    ctx.deliver(p)
    a, b = p.trajectories()
    assert torch.equal(a[0].x, b[0].x)  # identical x_T
    assert a[0].step == 0 and b[0].step == 0
    assert a[-1].total == 50 and b[-1].total == 5  # full ancestral chain vs 5 DDIM steps
    assert len(a) == 51 and len(b) == 6
    assert not torch.equal(a[-1].x, b[-1].x)
    # x_T really is the sampler's starting noise: one DDIM step from it matches the sampler's state 1
    model, _, _ = jobs.load_model(gauss_run)
    first = next(iter(model.sample(200, seed=0, sampler="ddim", every=1)))
    assert torch.allclose(first.x, b[1].x)
    # one slider moves both sides to the same normalised progress
    p.slider.setValue(SLIDER_MAX // 2)
    ia, ib = p.shown_indices()
    assert a[ia].step / 50 == pytest.approx(0.5, abs=0.02) and b[ib].step / 5 == pytest.approx(0.5, abs=0.11)
    assert np.allclose(p.a.view.scatter.getData()[0], a[ia].x[:, 0].numpy())
    assert np.allclose(p.b.view.scatter.getData()[0], b[ib].x[:, 0].numpy())
    p.slider.setValue(0)
    assert p.shown_indices() == (0, 0)
    p.slider.setValue(SLIDER_MAX)
    assert p.shown_indices() == (50, 5)
    assert p.export_ab_png(tmp_path / "ab.png").stat().st_size > 1000
    p.play_button.setChecked(True)  # play from the end restarts at x_T and runs to the end
    assert p.slider.value() == 0
    for _ in range(SLIDER_MAX):
        if not p.play_button.isChecked():
            break
        p._play_tick()
    assert p.slider.value() == SLIDER_MAX and not p.play_button.isChecked()
    # whole paths coloured by time: A's 51 states thin to at most 64, every particle's path drawn
    p.whole_paths.setChecked(True)
    bands = [bd for bd in p.a.view.bands if bd.isVisible()]
    assert len(bands) == 12 and sum(len(bd.getData()[0]) for bd in bands) == 50 * 200 * 2
    assert len(p.a.view.trails.getData()[0]) == 0
    if os.environ.get("GENSTUDIO_SHOTS"):
        p.grab().save(os.path.join(os.environ["GENSTUDIO_SHOTS"], "trajectory_ab_8gaussians.png"))
    p.whole_paths.setChecked(False)
    assert not any(bd.isVisible() for bd in p.a.view.bands) and len(p.a.view.trails.getData()[0]) > 0


def test_ab_same_sampler_two_seeds(qtbot, ctx, gauss_run):
    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.set_run(gauss_run)
    for side in (p.a, p.b):
        side.sampler.setCurrentIndex(side.sampler.findData("ddim"))
    p.n.setValue(50)
    p.b.seed.setValue(1)
    p.start_compare()
    ctx.deliver(p)
    a, b = p.trajectories()
    assert not torch.equal(a[0].x, b[0].x) and len(a) == len(b)
    p.b.seed.setValue(0)
    p.start_compare()
    for _ in range(3):  # the job is over (inline) but its result has not been delivered
        p._update_buttons()
    assert "without a result" in p.status.text() and p.compare_button.isEnabled()
    ctx.deliver(p)
    assert "same x_T" in p.status.text()  # seeds equal again
    p.set_run(None)  # another selection drops the old comparison
    assert p.trajectories() == ([], []) and not p.play_button.isEnabled() and not p.compare_button.isEnabled()
    a, b = p.trajectories()
    assert all(torch.equal(s.x, t.x) for s, t in zip(a, b, strict=True))  # same settings, same path


def test_nfe_chart_one_curve_per_sampler(qtbot, ctx, gauss_run, tmp_path):
    p = NfePanel(ctx)
    qtbot.addWidget(p)
    p.resize(900, 500)
    p.set_run(gauss_run)
    p.max_nfe.setValue(8)
    p.nfe_n.setValue(100)
    p.start_nfe(["ddim", "euler", "heun"])
    ctx.deliver(p)
    curves = p.curves()
    assert list(curves) == ["ddim", "euler", "heun"]
    for nfe, q in curves.values():
        assert len(nfe) >= 2 and np.all(np.diff(nfe) > 0) and np.all(np.isfinite(q)) and nfe.max() <= 8
    assert list(curves["ddim"][0]) == [1, 2, 4, 8]
    assert set(curves["heun"][0]) <= {1, 2, 3, 4, 5, 6, 7, 8}
    assert p.chart.getAxis("left").labelText.startswith("energy distance")  # 2-D data: energy distance
    assert p.chart.getPlotItem().ctrl.logXCheck.isChecked() and p.chart.getPlotItem().ctrl.logYCheck.isChecked()
    out = p.export_csv(tmp_path / "nfe.csv")
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(v[0]) for v in curves.values())
    assert p.export_chart_png(tmp_path / "nfe.png").stat().st_size > 1000
    if os.environ.get("GENSTUDIO_SHOTS"):
        p.grab().save(os.path.join(os.environ["GENSTUDIO_SHOTS"], "nfe_8gaussians.png"))


def test_ab_images_digits_class_conditional(qtbot, ctx, tmp_path):
    run = trained(ctx, "digits", steps=4, extra=["class_cond=true"])
    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1100, 500)
    p.set_run(run)
    assert not p.cls.isHidden() and p.cls.count() == 11  # unconditional + 10 digits
    p.cls.setCurrentIndex(p.cls.findData(3))
    p.guidance.setValue(2.0)
    p.n.setValue(16)
    p.a.sampler.setCurrentIndex(p.a.sampler.findData("ddim"))
    p.b.sampler.setCurrentIndex(p.b.sampler.findData("euler"))
    p.start_compare()
    ctx.deliver(p)
    a, b = p.trajectories()
    assert torch.equal(a[0].x, b[0].x) and a[0].x.dim() == 4 and len(a[0].x) == 16
    assert p._sample_kwargs(p.a) == {"sampler": "ddim", "steps": None, "cond": 3, "guidance": 2.0}
    p.cls.setCurrentIndex(0)
    assert "cond" not in p._sample_kwargs(p.a)
    assert p.a.view.mode == "image" and p.b.view.mode == "image"
    if os.environ.get("GENSTUDIO_SHOTS"):
        p.grab().save(os.path.join(os.environ["GENSTUDIO_SHOTS"], "trajectory_ab_digits.png"))


def test_nfe_sweep_stops(qtbot, store_root, gauss_run, monkeypatch):
    """Stop ends a running sweep: the panel keeps that sweep's rows and says it ended without a
    result. The sweep is made slow (a row every 10 ms until cancelled) so the click always lands
    while it runs; nfe_curve itself is tested in tests/core/test_nfe.py."""
    import time

    import genstudio.core.tools.nfe as traj  # the job the panel starts calls nfe_curve there

    def slow_curve(model, ds, samplers, *, callback, **kw):
        rows = []
        for k in range(10_000):
            row = {"sampler": samplers[0], "steps": k + 1, "nfe": k + 1, "quality": 1 / (k + 1), "seconds": 0.0}
            callback(row)  # raises Cancelled once the job is stopped
            rows.append(row)
            time.sleep(0.01)
        return rows

    monkeypatch.setattr(traj, "nfe_curve", slow_curve)
    ctx = FakeCtx(store_root, registry(), threaded=True)
    p = NfePanel(ctx)
    qtbot.addWidget(p)
    p.set_run(gauss_run)
    p.nfe_n.setValue(50)
    p.start_nfe(["euler"])
    qtbot.waitUntil(lambda: sum(e.kind == NFE_ROW for e in list(ctx.pending)) >= 3, timeout=20000)
    assert p.nfe_button.text() == "Stop sweep" and p.nfe_button.isEnabled() and ctx.job_running("nfe")
    p.nfe_button.click()
    ctx.threads["nfe"].join(20)
    assert not ctx.job_running("nfe")
    ctx.deliver(p)
    euler = p.rows()
    assert {r["sampler"] for r in euler} == {"euler"}, euler  # this sweep's rows only (job tokens)
    assert 3 <= len(euler) < 10_000
    qtbot.waitUntil(lambda: "without a result" in p.status.text(), timeout=5000)
    assert p.nfe_button.text() == "Run NFE sweep"
    # a sweep that ends while the label still says "Stop sweep": that click stops, never restarts
    monkeypatch.setattr(traj, "nfe_curve", lambda model, ds, samplers, *, callback, **kw: [])
    p.start_nfe(["euler"])
    first = ctx.threads["nfe"]
    first.join(20)
    assert p.nfe_button.text() == "Stop sweep" and not ctx.job_running("nfe")
    p.nfe_button.click()
    assert ctx.threads["nfe"] is first and p.nfe_button.text() == "Run NFE sweep"


def test_x_t_of_flow_matching_is_its_ode_start(store_root):
    """The prepended x_T is the noise the plugin's own ODE starts from: one Euler step from it is
    x_T + v(x_T, 0) (independent of how the plugin draws its noise)."""
    from dataclasses import asdict

    from genstudio.core.jobs import Control
    from genstudio.core.tools.compare import run_trajectory

    cfg = registry().get("flow_matching").info.config_cls.tiny()
    run = jobs.create_run(FakeCtx(store_root, registry()).store, jobs.TrainSpec(
        plugin="flow_matching", dataset="8gaussians", steps=3, device="cpu", config=asdict(cfg)))
    for _ in jobs.train(run, device="cpu"):
        pass
    model, _, _ = jobs.load_model(run)
    st = run_trajectory(model, 64, 5, Control(), sampler="euler", steps=1)
    assert [s.step for s in st] == [0, 1]
    x_t = st[0].x
    assert torch.allclose(st[1].x, x_t + model.velocity(x_t, torch.zeros(64)), atol=1e-5)


def test_nfe_chart_labels_a_narrow_log_range(qtbot, ctx):
    """Values within one decade get explicit y ticks (pyqtgraph's log axis would show none)."""
    p = NfePanel(ctx)
    qtbot.addWidget(p)
    row = lambda s, n, q: {"sampler": s, "steps": n, "nfe": n, "quality": q, "seconds": 0.0}  # noqa: E731
    p.set_rows([row("ddim", 1, 300.0), row("ddim", 2, 298.0), row("euler", 1, 299.0)], metric="fcd")
    (level,) = p.chart.getAxis("left")._tickLevels
    vals = [10 ** v for v, _ in level]
    assert min(vals) == pytest.approx(298.0) and max(vals) == pytest.approx(300.0)
    assert p.chart.getAxis("left").labelText.startswith("FCD")
    p.set_rows([row("ddim", 1, 1.0), row("ddim", 4, 0.01)], metric="energy")
    assert p.chart.getAxis("left")._tickLevels is None


def test_ab_two_runs_start_from_the_same_unit_noise(qtbot, ctx, gauss_run, flow_run, ve_run, tmp_path):
    """Side B from another run: same seed -> the same unit noise eps; x_T = prior scale * eps."""
    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1100, 500)
    p.set_run(gauss_run)
    ids = [p.b_run.itemData(i) for i in range(p.b_run.count())]
    assert ids[0] is None and {flow_run.id, ve_run.id} <= set(ids) and gauss_run.id not in ids
    assert p.b.sampler.currentData() == p.a.sampler.itemData(1)  # same run: B differs from A by default
    p.b_run.setCurrentIndex(p.b_run.findData(flow_run.id))
    fm = registry().get("flow_matching").info.samplers
    assert [p.b.sampler.itemData(i) for i in range(p.b.sampler.count())] == list(fm)  # B's plugin's samplers
    p.a.sampler.setCurrentIndex(p.a.sampler.findData("ddim"))
    p.n.setValue(64)
    p.start_compare()
    ctx.deliver(p)
    a, b = p.trajectories()
    eps = torch.randn((64, 2), generator=torch.Generator().manual_seed(0))  # the first randn of generator(0)
    assert torch.equal(a[0].x, eps) and torch.equal(b[0].x, eps)
    assert "two runs" in p.status.text() and "same x_T" in p.status.text()
    assert p.a.label.startswith(f"A: {short_name(gauss_run.id)} · ddim")
    assert p.b.label.startswith(f"B: {short_name(flow_run.id)} · ")
    model, _, _ = jobs.load_model(flow_run)
    first = next(iter(model.sample(64, seed=0, every=1, sampler=p.b.sampler.currentData())))
    assert torch.allclose(first.x, b[1].x)  # B's sampler really started from that x_T

    p.b_run.setCurrentIndex(p.b_run.findData(ve_run.id))
    p.b.sampler.setCurrentIndex(p.b.sampler.findData("ode_euler"))
    p.start_compare()
    ctx.deliver(p)
    a, b = p.trajectories()
    assert torch.equal(a[0].x, eps) and torch.allclose(b[0].x, 10.0 * eps)  # VE prior: sigma_max * eps
    assert "same unit noise" in p.status.text() and "10ε on B" in p.status.text()
    assert p.b.label.endswith("x_T = 10ε") and "x_T" not in p.a.label
    model, _, _ = jobs.load_model(ve_run)
    first = next(iter(model.sample(64, seed=0, every=1, sampler="ode_euler")))
    assert torch.allclose(first.x, b[1].x)
    assert p.b.lim > 5 * p.a.lim  # each side its own range when the priors' scales differ this much
    if os.environ.get("GENSTUDIO_SHOTS"):
        p.slider.setValue(SLIDER_MAX // 4)
        p.grab().save(os.path.join(os.environ["GENSTUDIO_SHOTS"], "trajectory_ab_two_runs.png"))

    # an older comparison's result arriving after a newer one started is dropped
    p.b.seed.setValue(3)
    p.start_compare()
    late = list(ctx.pending)
    ctx.pending.clear()
    p.b.seed.setValue(0)
    p.start_compare()
    p.on_events(late)
    assert torch.equal(p.trajectories()[1][0].x, b[0].x)  # still the previous (seed 0) comparison
    ctx.deliver(p)
    assert torch.allclose(p.trajectories()[1][0].x, 10.0 * eps)


def test_ab_rejects_a_run_of_another_shape(qtbot, ctx, gauss_run):
    digits = trained(ctx, "digits", steps=2)
    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.set_run(gauss_run)
    i = p.b_run.findData(digits.id)
    assert i > 0 and not p.b_run.model().item(i).isEnabled()  # listed, greyed out, with the reason
    from PySide6.QtCore import Qt

    assert "(1, 8, 8)" in p.b_run.itemData(i, Qt.ToolTipRole)
    p.b_run.setCurrentIndex(i)  # (code can still pick it)
    before = len(ctx.pending)
    assert p.start_compare() is None
    assert "(1, 8, 8)" in p.status.text() and "(2,)" in p.status.text()
    assert len(ctx.pending) == before and p.trajectories() == ([], []) and not ctx.errors
    p.set_run(gauss_run)  # the same run again keeps B's choice; another run resets B to "same run"
    assert p.b_run.currentData() == digits.id
    p.set_run(digits)
    assert p.b_run.currentData() is None and p.b_run.findData(gauss_run.id) > 0


def test_nfe_rows_of_an_older_sweep_are_ignored(qtbot, ctx, gauss_run):
    """Rows of an earlier sweep of the same run that arrive after a new sweep started (a stopped
    sweep's last rows, say) are not mixed into the new sweep's chart."""
    p = NfePanel(ctx)
    qtbot.addWidget(p)
    p.set_run(gauss_run)
    p.max_nfe.setValue(2)
    p.nfe_n.setValue(50)
    p.start_nfe(["ddpm"])
    old = list(ctx.pending)
    ctx.pending.clear()
    assert any(e.kind == NFE_ROW and e.data["row"]["sampler"] == "ddpm" for e in old)
    p.start_nfe(["euler"])
    p.on_events(old)  # the old sweep's events are late
    assert p.rows() == []
    ctx.deliver(p)
    assert {r["sampler"] for r in p.rows()} == {"euler"} and list(p.curves()) == ["euler"]
    ctx.bus.emit(NFE_ROW, gauss_run.id, row={"sampler": "ddpm", "steps": 1, "nfe": 1, "quality": 1.0,
                                             "seconds": 0.0}, metric="energy")  # no token: not this sweep's
    ctx.deliver(p)
    assert {r["sampler"] for r in p.rows()} == {"euler"}
