"""Issue #16 from the GUI: File → "Export report…" / "Export to TensorBoard…" for the selected run,
and the 3-D viewers' camera path (keyframes, "Export fly-through…"), without OpenGL and (marked
``gl``) from real vispy views."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import imageio.v2 as iio  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from genstudio.core import jobs  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.core.scene.gaussians import Gaussians  # noqa: E402
from genstudio.core.scene.io import save_scene  # noqa: E402
from genstudio.core.tboard import read_back  # noqa: E402
from genstudio.qt import share  # noqa: E402
from tests.qt.test_panels import FakeCtx  # noqa: E402


def test_file_menu_exports_the_selected_run(make_window, qtbot, tmp_path):
    w = make_window()
    titles = [a.text() for a in w.menuBar().actions()[0].menu().actions()]
    assert "Export report…" in titles and "Export to TensorBoard…" in titles
    assert not share.export_run(w, share.REPORT_JOB, str(tmp_path))  # no run selected: nothing starts
    run = jobs.create_run(w.store, jobs.TrainSpec("ddpm", "8gaussians", steps=10, log_every=5, sample_every=5,
                                                  checkpoint_every=0, n_preview=50, overrides=["timesteps=5"]))
    for _ in jobs.train(run):
        pass
    w.select_run(run)
    for kind in (share.REPORT_JOB, share.TB_JOB):
        with qtbot.waitSignal(w.job_finished, timeout=60_000, check_params_cb=lambda n, o, k=kind: n == k):
            assert share.export_run(w, kind, str(tmp_path / kind))
        assert "written" in w.statusBar().currentMessage()
    page = (tmp_path / "report" / "index.html").read_text("utf-8")
    assert "How a sample is made" in page and run.id in page
    assert read_back(tmp_path / "tensorboard")["samples"] == [5, 10]


def _gaussians(n: int = 60) -> Gaussians:
    g = torch.Generator().manual_seed(0)
    return Gaussians.create(torch.randn(n, 3, generator=g) * 0.5, torch.rand(n, 3, generator=g),
                            scales=torch.full((n, 3), 0.15), opacity=0.9)


def test_keyframes_list_clear_and_export_an_opened_scene(qtbot, tmp_path):
    """Without GL the view is a fixed camera; keyframes still list, clear, save, and an opened
    .splat (no run, no model) renders through the core rasteriser along the path."""
    from genstudio.core.scene import camera_path as cp
    from genstudio.qt.panels.camera_path import FLY_READY
    from genstudio.qt.panels.viewer3d import SplatViewerPanel

    ctx = FakeCtx(tmp_path / "runs", registry())
    p = SplatViewerPanel(ctx)
    qtbot.addWidget(p)
    bar = p.path_bar
    assert not bar.export_btn.isEnabled() and bar.list_box.itemText(0) == "no keyframes"
    assert not bar.export(str(tmp_path / "none.mp4"))  # nothing shown, no keyframes
    save_scene(tmp_path / "g.splat", _gaussians())
    assert p.open_file(str(tmp_path / "g.splat"))
    bar.add_keyframe()
    bar.keyframes.append(cp.Keyframe(cp.orbit_keyframes(4.0, n=4)[1].c2w, 50.0))  # a second view
    bar._update()
    assert bar.list_box.count() == 2 and bar.list_box.itemText(0) == "key 1 (3.0, -3.0, 2.0) 53°"
    assert bar.export_btn.isEnabled()
    assert len(cp.load_keyframes(bar.save_keyframes(str(tmp_path / "k.json")))) == 2
    bar.frames.setValue(6)
    assert bar.export(str(tmp_path / "fly.gif"), size=(48, 32))  # the job runs inline here
    assert [e.kind for e in ctx.pending].count(FLY_READY) == 1
    ctx.deliver(p)
    assert bar.state.text() == "wrote fly.gif (6 frames)"
    frames = np.stack(iio.mimread(tmp_path / "fly.gif"))
    assert frames.shape[:3] == (6, 32, 48) and np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1
    bar.clear_keyframes()
    assert bar.keyframes == [] and not bar.export_btn.isEnabled()


@pytest.mark.gl
def test_keyframes_come_from_the_vispy_view(qtbot, tmp_path):
    """Under GL a keyframe is the turntable's real pose: two azimuths give two cameras at the same
    distance; the exported MP4 has the asked frames and size."""
    from genstudio.qt.panels.viewer3d import SplatViewerPanel

    ctx = FakeCtx(tmp_path / "runs", registry())
    p = SplatViewerPanel(ctx)
    qtbot.addWidget(p)
    p.resize(700, 460)
    p.show()
    qtbot.waitExposed(p)
    assert p.canvas is not None, "no GL context: run under xvfb-run with QT_QPA_PLATFORM=xcb"
    p.set_scene(_gaussians())
    tt = p.cameras["turntable"]
    a = p.path_bar.add_keyframe()
    tt.azimuth += 90
    p.canvas.render()
    b = p.path_bar.add_keyframe()
    ea, eb = a.c2w[:3, 3], b.c2w[:3, 3]
    assert np.linalg.norm(ea - eb) > 1 and np.linalg.norm(ea - np.asarray(tt.center)) == pytest.approx(
        np.linalg.norm(eb - np.asarray(tt.center)), rel=1e-3)
    p.path_bar.frames.setValue(8)
    assert p.path_bar.export(str(tmp_path / "fly.mp4"), size=(64, 48))
    frames = np.stack(iio.mimread(tmp_path / "fly.mp4"))
    assert frames.shape == (8, 48, 64, 3)
