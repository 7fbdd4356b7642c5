"""Marginals tab of Compare / NFE (issue 4): side A's density at the slider's t, and forward noising
paths from a clicked point."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QPointF  # noqa: E402

from genstudio.core.diffusion.paths import marginal_histogram  # noqa: E402
from genstudio.core.diffusion.schedules import NoiseSchedule  # noqa: E402
from genstudio.core.imaging import heatmap_image  # noqa: E402
from genstudio.qt.panels.trajectory import MARGINAL_BINS, SLIDER_MAX, TrajectoryPanel  # noqa: E402
from tests.qt.test_trajectory_panel import ctx, gauss_run, store_root  # noqa: E402, F401


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
    assert np.array_equal(img0, heatmap_image(h0, 0.0, h0.max()))  # A's x_t at the slider, as a heat map
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
