"""OT explorer, standalone with the fake AppContext (jobs run inline; their events are delivered
in one batch as the bridge would): plan lines, epsilon blurring the plan, the McCann slider, the
export, and samples of a run as one of the sets."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from genstudio.core import jobs  # noqa: E402
from genstudio.core import ot as core_ot  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.qt.panels import ot as ot_panel  # noqa: E402
from genstudio.qt.panels.ot import RUN_SAMPLES, OTPanel  # noqa: E402
from tests.qt.test_panels import FakeCtx  # noqa: E402

TOYS = ["8gaussians", "gmm2d", "moons", "swissroll", "checkerboard", "rings"]


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    monkeypatch.setattr(ot_panel, "point_datasets", lambda: TOYS)  # the app's list builds every dataset
    return FakeCtx(tmp_path / "store", registry())


@pytest.fixture
def panel(qtbot, ctx):
    p = OTPanel(ctx)
    qtbot.addWidget(p)
    p.n_spin.setValue(60)  # refreshes the points and solves (inline)
    ctx.deliver(p)
    return p


def solve(panel, ctx):
    panel.compute()
    assert ctx.deliver(panel) > 0
    return panel.plan()


def test_exact_plan_drawn_as_lines(panel, ctx):
    plan = panel.plan()
    assert plan is not None and plan.shape == (60, 60)
    assert panel.drawn_lines() == 60  # the exact uniform plan is a permutation: one line per point
    assert (plan > 1e-12).sum() == 60
    text = panel.costs.text()
    assert "W1" in text and "Sinkhorn" in text and "sliced" in text
    want = core_ot.w2(panel._points["a"], panel._points["b"])
    assert f"{want:.4f}" in text
    panel.lines_spin.setValue(10)
    assert panel.drawn_lines() == 10  # only the heaviest k


def test_epsilon_blurs_the_plan(panel, ctx):
    panel.method_box.setCurrentText("sinkhorn")
    panel.set_eps(0.003)
    sharp = solve(panel, ctx)
    sharp_lines = panel.drawn_lines()
    panel.set_eps(0.3)
    blur = solve(panel, ctx)
    assert core_ot.plan_entropy(blur) > core_ot.plan_entropy(sharp) + 1.0
    assert (blur > 1e-4 * blur.max()).sum() > 2 * (sharp > 1e-4 * sharp.max()).sum()
    assert panel.drawn_lines() > sharp_lines
    assert panel.eps() == pytest.approx(0.3, rel=0.06)  # the slider is log scale
    assert not panel.reg_m.isEnabled() and panel.eps_slider.isEnabled()


def test_unbalanced_method_moves_less_mass(panel, ctx):
    panel.method_box.setCurrentText("unbalanced")
    panel.set_eps(0.01)
    panel.reg_m.setValue(0.01)
    plan = solve(panel, ctx)
    assert plan.sum() < 0.95 and panel.reg_m.isEnabled()


def test_interpolation_slider_moves_points(panel, ctx):
    x, y = panel._points["a"], panel._points["b"]
    assert len(panel.moving_points()) == 0  # t = 0: the sets alone
    panel.set_t(0.5)
    mid = panel.moving_points()
    perm = core_ot.assignment(x, y)
    assert np.allclose(np.sort(mid, 0), np.sort((x + y[perm]) / 2, 0))
    panel.set_t(1.0)
    assert np.allclose(np.sort(panel.moving_points(), 0), np.sort(y, 0))
    assert panel.t_label.text() == "t = 1.00"
    panel.set_t(0.0)
    panel.toggle_play()
    for _ in range(5):
        panel._tick()
    assert panel.t() == pytest.approx(0.10) and len(panel.moving_points()) == 60
    panel.toggle_play()
    assert panel.play_button.text() == "Play"


def test_export_writes_the_frames(panel, tmp_path):
    out = panel.export_animation(tmp_path / "ot.gif", frames=7)
    with Image.open(out) as im:
        assert im.n_frames == 7


def test_samples_of_the_selected_run(qtbot, ctx, test_plugins):
    run = jobs.create_run(ctx.store, jobs.TrainSpec(plugin="gaussfit", dataset="moons", steps=5, device="cpu",
                                                    checkpoint_every=5))
    for _ in jobs.train(run, device="cpu"):
        pass
    p = OTPanel(ctx)
    qtbot.addWidget(p)
    p.n_spin.setValue(40)
    ctx.deliver(p)
    p.a_box.setCurrentText(RUN_SAMPLES)  # no run selected: says so, draws nothing for A
    assert "select a run" in p.status.text() and p._points["a"] is None
    p.set_run(run)  # the sampling job runs inline; its points arrive as an event, then the plan
    ctx.deliver(p)
    ctx.deliver(p)
    assert p._points["a"].shape == (40, 2) and p.plan() is not None and p.drawn_lines() == 40
