"""Marginals tab of Compare / NFE (issue 4): side A's density at the slider's t, and forward noising
paths from a clicked point."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QPointF  # noqa: E402

from genstudio.core.diffusion.paths import StraightPath, marginal_histogram  # noqa: E402
from genstudio.core.diffusion.schedules import NoiseSchedule  # noqa: E402
from genstudio.core.diffusion.sde import VESDE  # noqa: E402
from genstudio.core.imaging import heatmap_image  # noqa: E402
from genstudio.qt.panels.trajectory import MARGINAL_BINS, SLIDER_MAX, TrajectoryPanel  # noqa: E402
from tests.qt.test_trajectory_panel import ctx, flow_run, gauss_run, store_root, ve_run  # noqa: E402, F401


class _Click:
    def __init__(self, pos: QPointF) -> None:
        self._pos = pos

    def scenePos(self) -> QPointF:  # noqa: N802 - pyqtgraph's name
        return self._pos


def test_marginal_follows_slider_and_click_draws_paths(qtbot, ctx, gauss_run, tmp_path):  # noqa: F811
    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.resize(900, 600)
    p.set_run(gauss_run)
    assert isinstance(p._fwd, NoiseSchedule) and p._fwd.T == 50  # the run's own DDPM chain
    p.a.sampler.setCurrentIndex(p.a.sampler.findData("ddpm"))
    p.n.setValue(300)
    p.start_compare()
    ctx.deliver(p)
    a, _ = p.trajectories()
    p.tabs.setCurrentIndex(p.tabs.count() - 1)
    p.slider.setValue(0)
    ia, _ = p.shown_indices()
    img0 = p.marg_img.image.copy()
    h0 = marginal_histogram(a[ia].x, MARGINAL_BINS, p._lim)
    _, sb = p.marginal_states()
    hi = max(h0.max(), marginal_histogram(sb.x, MARGINAL_BINS, p._lim).max())  # A and B share a colour scale
    assert np.array_equal(img0, heatmap_image(h0, 0.0, hi))  # A's x_t at the slider, as a heat map
    p.slider.setValue(SLIDER_MAX)
    ia, _ = p.shown_indices()
    assert not np.array_equal(p.marg_img.image, img0)
    assert np.allclose(p.marg_hist, marginal_histogram(a[ia].x, MARGINAL_BINS, p._lim))
    # a click at a data point (a mode of 8 gaussians) on side A's plot draws n_paths curves from it
    vb = p.a.view.vb
    x0 = a[-1].x[0].numpy()
    p._clicked(vb, _Click(vb.mapViewToScene(QPointF(float(x0[0]), float(x0[1])))))
    assert len(p.path_curves) == p.n_paths.value() == 16
    xs, ys = p.path_curves[0].getData()
    assert len(xs) == 51 and np.allclose([xs[0], ys[0]], x0, atol=0.05)
    p.n_paths.setValue(4)
    p.pick_point((0.0, 1.0))
    assert len(p.path_curves) == 4
    assert sum(isinstance(i, type(p.path_curves[0])) for i in p.marg_plot.getPlotItem().items) == 4
    shot = os.environ.get("GENSTUDIO_SHOTS") or str(tmp_path)
    p.pick_point(tuple(x0))
    p.slider.setValue(SLIDER_MAX // 2)
    p.grab().save(os.path.join(shot, "trajectory_marginals_8gaussians.png"))
    # a new comparison clears the paths and the heat map (until its result arrives)
    p.start_compare()
    assert p.path_curves == [] and p.path_dots.data.size == 0 and p.marg_img.image is None
    p.slider.setValue(SLIDER_MAX // 3)  # the old trajectories are still shown, their heat map is not
    assert p.marg_img.image is None
    ctx.deliver(p)
    assert p.marg_img.image is not None
    p.pick_point((0.0, 0.0))
    p.set_run(None)  # another run: cleared too
    assert p.path_curves == [] and p.marg_img.image is None


def _straight(xs: np.ndarray, ys: np.ndarray) -> bool:
    d = np.stack([xs - xs[0], ys - ys[0]], 1)
    return bool(np.allclose(d[:, 0] * d[-1, 1] - d[:, 1] * d[-1, 0], 0.0, atol=1e-9))


def test_paths_of_the_runs_own_process(qtbot, ctx, ve_run, flow_run, tmp_path):  # noqa: F811
    """score_sde VE -> its VE SDE (spread ~ sigma_max); flow matching -> straight lines, labelled."""
    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.resize(900, 600)
    p.set_run(ve_run)
    assert isinstance(p._fwd, VESDE) and (p._fwd.sigma_min, p._fwd.sigma_max) == (0.01, 10.0)
    assert "VE SDE" in p.marg_note.text()
    p.n.setValue(300)
    p.a.sampler.setCurrentIndex(p.a.sampler.findData("em"))
    p.start_compare()
    ctx.deliver(p)
    p.tabs.setCurrentIndex(p.tabs.count() - 1)
    p.n_paths.setValue(200)
    p.pick_point((1.0, -1.0))
    ends = np.array([c.getData() for c in p.path_curves])[:, :, -1]  # (paths, xy) at t = 1
    assert np.allclose(ends.mean(0), [1.0, -1.0], atol=2.0) and 8.0 < ends.std() < 12.0  # sqrt(10^2 - 0.01^2)
    assert "N(1 x_0" in p.status.text()
    p.n_paths.setValue(16)
    p.slider.setValue(SLIDER_MAX // 5)
    p.pick_point((1.0, -1.0))
    shot = os.environ.get("GENSTUDIO_SHOTS") or str(tmp_path)
    p.grab().save(os.path.join(shot, "trajectory_marginals_ve.png"))
    p.set_run(flow_run)
    assert isinstance(p._fwd, StraightPath) and "not an SDE" in p.marg_note.text()
    assert p.path_curves == []
    p.pick_point((0.5, 0.5))
    assert len(p.path_curves) == 16 and all(_straight(*c.getData()) for c in p.path_curves)


def test_marginals_compare_reverse_sde_and_pf_ode_at_the_same_t(qtbot, ctx, gauss_run):  # noqa: F811
    """A = DDPM ancestral (reverse SDE), B = DDIM (its PF-ODE) from the same x_T: B's heat map is
    taken at A's t, and the energy distance of the two clouds there is
    shown. (That the two agree for a true score is tested with the exact mixture score in
    tests/core/test_score_views.py; this tiny 20-step model's do not.)"""
    from genstudio.core.metrics.functional import energy_distance

    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.set_run(gauss_run)
    p.a.sampler.setCurrentIndex(p.a.sampler.findData("ddpm"))
    p.b.sampler.setCurrentIndex(p.b.sampler.findData("ddim"))
    p.b.steps.setValue(25)  # another grid than A's 50 steps: B's state is matched by t, not by index
    p.n.setValue(600)
    p.start_compare()
    ctx.deliver(p)
    a, b = p.trajectories()
    p.tabs.setCurrentIndex(p.tabs.count() - 1)
    p.slider.setValue(SLIDER_MAX * 6 // 10)
    sa, sb = p.marginal_states()
    assert abs(sa.t - sb.t) <= 0.5 / 25 + 1e-9 and p.marg_img_b.image is not None
    assert p.marg_distance == pytest.approx(float(energy_distance(sa.x.double(), sb.x.double())))
    assert "energy distance" in p.marg_dist.text()
    p.clear_paths()
    assert p.marg_distance is None and p.marg_img_b.image is None
