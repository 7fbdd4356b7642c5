"""The latent explorer panel on a tiny VAE trained in the test: the map has one point per encoded
example, clicking decodes exactly that code, two clicks give lerp/slerp strips of the chosen
length, dragging decodes live (coalesced), and the panel is registered in the main window."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from genstudio.core import jobs  # noqa: E402
from genstudio.core import latent as L  # noqa: E402
from genstudio.core.events import Event, EventBus  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.core.runs import RunStore  # noqa: E402

N = 150


class Ctx:
    """The slice of the main window a panel uses; jobs run inline and events are handed over by hand."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.registry = registry()
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)

    def current_run(self):
        return None

    def start_job(self, name, run, job):
        control = jobs.Control()
        for _ in job(control):
            pass
        return control

    def job_running(self, name):
        return False

    def show_error(self, message, details=""):
        raise AssertionError(message)

    def status_message(self, text, ms=4000):
        pass

    def deliver(self, panel):
        batch, self.events[:] = list(self.events), []
        panel.on_events(batch)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("latent") / "data")
    spec = jobs.TrainSpec("vae", "digits", steps=60, overrides=["latent_dim=3", "hidden=32", "batch_size=64"],
                          log_every=20, sample_every=0, checkpoint_every=60)
    run = jobs.create_run(store, spec)
    for _ in jobs.train(run):
        pass
    return store, run


@pytest.fixture
def panel(qtbot, vae_run):
    from genstudio.qt.panels.latent import LatentPanel

    store, run = vae_run
    ctx = Ctx(store)
    p = LatentPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1200, 700)
    p.show()
    p.set_run(run)
    p.n.setValue(N)
    p.k.setValue(4)
    assert p.encode_button.isEnabled()
    p.encode()
    ctx.deliver(p)
    assert p.explorer is not None
    qtbot.wait(1)  # laid out and ranged, as on a screen a user points at
    return p


def test_map_has_one_point_per_code_and_clicking_decodes(panel):
    ex = panel.explorer
    assert len(panel.scatter.data) == N
    np.testing.assert_allclose(np.c_[panel.scatter.data["x"], panel.scatter.data["y"]], ex.embedding)
    assert panel.colour_by.count() == 2  # label, cluster
    out = panel.select_point(7)
    assert out.shape == (1, 1, 8, 8)
    torch.testing.assert_close(out, ex.model.decode(torch.as_tensor(ex.codes[7:8], dtype=torch.float32)))
    # the PC sliders moved to the point's PCA coordinates
    coords = ex.pca.transform(ex.codes[7]) / ex.pca.std
    assert panel.sliders[0].value() == pytest.approx(np.clip(coords[0] / 3, -1, 1) * 100, abs=1)


def test_two_clicks_give_interpolation_strips(panel):
    panel.frames.setValue(6)
    panel.select_point(3)
    assert panel.lerp_frames is None or len(panel.lerp_frames) != 6
    panel.select_point(11)
    ex = panel.explorer
    assert panel.lerp_frames.shape == (6, 1, 8, 8) and panel.slerp_frames.shape == (6, 1, 8, 8)
    ends = ex.decode(ex.codes[[3, 11]])
    torch.testing.assert_close(panel.lerp_frames[[0, -1]], ends)
    torch.testing.assert_close(panel.slerp_frames[[0, -1]], ends, atol=1e-5, rtol=0)
    panel.frames.setValue(9)  # changing the length redraws
    assert len(panel.slerp_frames) == 9
    img = panel.strips["interpolation"].image()  # what Export PNG writes: slerp and lerp rows of
    assert img.shape[0] > 2 * (64 + 2) + 2 and img.shape[1] > 9 * (64 + 2) + 2  # 64-px cells, labelled
    shown = panel.lerp_view.image.image  # the view: one row of nine, fitted to its size
    assert shown.shape[1] > 3 * shown.shape[0]


def test_dragging_decodes_live_once_per_frame(panel, qtbot):
    ex = panel.explorer
    calls = []
    real = ex.decode
    ex.decode = lambda z: calls.append(np.asarray(z)) or real(z)
    try:
        for t in np.linspace(0, 1, 20):  # 20 moves inside one frame -> one decode of the last position
            p = (1 - t) * ex.embedding[0] + t * ex.embedding[1]
            panel.cursor.setPos(float(p[0]), float(p[1]))
        qtbot.waitUntil(lambda: len(calls) >= 1, timeout=2000)
        qtbot.wait(50)
    finally:
        ex.decode = real
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0][0], ex.point_to_code(ex.embedding[1]), atol=1e-9)


def test_traversal_and_clusters_are_drawn(panel):
    ex = panel.explorer
    assert len(panel.traversal_dims) == 3
    strip = panel.strips["traversal"]
    assert strip.rows == 3 and strip.cols == 9 and strip.row_labels[0].startswith(f"z{panel.traversal_dims[0]}")
    img = strip.image()  # 3 rows of 64-px cells under a title and a header, row labels on the left
    assert img.shape[0] > 3 * (64 + 2) + 2 and img.shape[1] > 9 * (64 + 2) + 2
    assert panel.traversal_view.image.image is not None
    assert not panel.traversal_legend.isVisibleTo(panel)  # no legend under the grid
    assert panel.cluster_view.image.image.shape[0] == 4 * 9 + 1  # 4 clusters, one row each
    assert not panel.tabs.isTabEnabled(panel.density_tab)  # images: no density grid
    panel.sliders[0].setValue(100)  # +3 std along PC1
    panel._decode_pending()
    want = ex.decode(L.pca_direction_code(ex.pca, [3.0, 0, 0, 0])[None])
    torch.testing.assert_close(panel.last_decoded, want)


def test_points_runs_draw_decodes_over_the_data(qtbot, tmp_path):
    """A 2-D model (the CNF: its base-space code): decodes are points, strips are paths."""
    from genstudio.qt.panels.latent import LatentPanel

    store = RunStore(tmp_path / "data")
    run = jobs.create_run(store, jobs.TrainSpec("cnf", "8gaussians", steps=5, overrides=["hidden=8", "ode_steps=2"],
                                                sample_every=0, checkpoint_every=5))
    for _ in jobs.train(run):
        pass
    ctx = Ctx(store)
    p = LatentPanel(ctx)
    qtbot.addWidget(p)
    p.set_run(run)
    p.n.setValue(100)
    p.k.setValue(3)
    p.encode()
    ctx.deliver(p)
    assert len(p.scatter.data) == 100
    p.select_point(0)
    p.select_point(1)
    assert p.lerp_frames.shape == (8, 2)
    assert len(p.lerp_view.scatter.data) == 8 and len(p.lerp_view.trails.xData) == 8  # one path
    assert len(p.cluster_view.scatter.data) == 3  # decoded centres
    # a 2-D code: a click on empty space decodes exactly the clicked point, and moves with it
    p.resize(900, 600)
    p.show()
    qtbot.waitExposed(p)
    spots, _ = _empty_spots(p)
    outs = []
    for xy in spots:
        out = p.click_map(tuple(xy))
        assert "exact" in p._picks[-1].what
        np.testing.assert_allclose(p.explorer.project(p._picks[-1].code)[0], xy, atol=1e-9)
        outs.append(out)
        assert len(p._original_marks().data) == 1  # the nearest item's original, as a ring beside the decode
    assert (outs[0] - outs[1]).abs().max() > 0.05
    # hovering a dot of 2-D data: a mini map with the item marked
    assert p.hover_at(p.explorer.embedding[0]) is not None
    assert p.hover.image.pixmap().width() == 72
    assert len(p._refs[id(p.lerp_view)].data) == 100  # the data set behind them
    # a likelihood model on 2-D data also gets its density on a grid (a flow: mass ~ 1)
    assert p.tabs.isTabEnabled(p.density_tab)
    assert abs(p.explorer.density.mass - 1) < 0.05
    assert p.density_image.image.shape == p.explorer.density.p.shape


def test_panel_is_registered_encodes_in_the_worker_and_refuses_models_without_latents(
        main_window, qtbot, vae_run, test_plugins):
    from genstudio.qt.panels.latent import LatentPanel

    panel = main_window.panels.get("latent")
    assert isinstance(panel, LatentPanel)
    _, trained = vae_run
    main_window.select_run(trained)  # a run from another store: the panel reads only the Run
    panel.n.setValue(50)
    with qtbot.waitSignal(main_window.job_finished, timeout=20000,
                          check_params_cb=lambda name, outcome: name == "latent") as sig:  # other panels' jobs may end too
        panel.encode()
    assert sig.args == ["latent", "finished"]
    qtbot.waitUntil(lambda: panel.explorer is not None and panel.encode_button.text() == "Encode", timeout=5000)
    assert len(panel.scatter.data) == 50
    other = jobs.create_run(main_window.store, jobs.TrainSpec("gaussfit", "moons", steps=2))
    main_window.select_run(other)
    assert panel.explorer is None and not panel.encode_button.isEnabled()
    assert "latent" in panel.status.text()


# -- the map: click anywhere, hover, the A -> B path, export ---------------------------------------
def _widget_pos(panel, xy):
    """Map coordinates -> a pixel of the map widget's viewport (where a mouse event goes)."""
    from PySide6.QtCore import QPointF

    vb = panel.map.getPlotItem().getViewBox()
    return panel.map.mapFromScene(vb.mapViewToScene(QPointF(float(xy[0]), float(xy[1]))))


def _move(panel, xy):
    """A real mouse-move event over map position ``xy`` (QTest's moves without a button do not
    reach an offscreen window)."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    vp = panel.map.viewport()
    pos = QPointF(_widget_pos(panel, xy))
    ev = QMouseEvent(QEvent.MouseMove, pos, QPointF(vp.mapToGlobal(pos.toPoint())), Qt.NoButton, Qt.NoButton,
                     Qt.NoModifier)
    QApplication.sendEvent(vp, ev)


def _empty_spots(panel, k=2):
    """``k`` map positions inside the view, each as far from every dot as the grid allows."""
    ex = panel.explorer
    (x0, x1), (y0, y1) = panel.map.getPlotItem().getViewBox().viewRange()
    gx, gy = np.meshgrid(np.linspace(x0, x1, 40)[3:-3], np.linspace(y0, y1, 40)[3:-3])
    cand = np.c_[gx.ravel(), gy.ravel()]
    px = panel._pixel()
    far = np.array([ex.nearest(c, px)[1] for c in cand])
    order = [int(j) for j in np.argsort(-far)]
    chosen = [order[0]]
    for j in order:  # the next emptiest places, far apart (a third of the view) from those chosen
        if len(chosen) < k and all(np.abs((cand[j] - cand[c]) / [x1 - x0, y1 - y0]).max() > 0.33 for c in chosen):
            chosen.append(j)
    return cand[chosen], far[chosen]


def test_clicking_empty_space_decodes_the_clicked_point(panel, qtbot):
    from PySide6.QtCore import Qt

    ex = panel.explorer
    spots, far = _empty_spots(panel)
    assert (far > 10).all()  # really empty: over 10 px from every dot
    decodes = []
    for xy in spots:
        qtbot.mouseClick(panel.map.viewport(), Qt.LeftButton, pos=_widget_pos(panel, xy))
        pick = panel._picks[-1]
        assert not pick.hit and "clicked point" in pick.what
        np.testing.assert_allclose(ex.project(pick.code)[0], xy, atol=3 * panel._pixel().max())  # within pixels
        torch.testing.assert_close(panel.last_decoded, ex.decode(pick.code[None]))
        decodes.append(pick.code)
        view, strip = panel._shown[id(panel.decoded_view)]
        assert strip.col_labels == [f"nearest #{pick.index}", "decode here"]  # the nearest original beside it
        torch.testing.assert_close(strip.decoded[0], ex.x[pick.index].float())
        assert "clicked point" in panel.decode_caption.text()
    # another place, another code (a third of the view apart on the map; 60 VAE steps barely use
    # the code, so the 2-D test below shows the decode itself moving with the click)
    assert np.abs(decodes[0] - decodes[1]).max() > 0.2 * ex.embedding.std()
    # a click on a dot decodes that item's own code, its original beside its reconstruction
    qtbot.mouseClick(panel.map.viewport(), Qt.LeftButton, pos=_widget_pos(panel, ex.embedding[9]))
    pick = panel._picks[-1]
    assert pick.hit and np.array_equal(pick.code, ex.codes[pick.index])
    assert panel._shown[id(panel.decoded_view)][1].col_labels == [f"original #{pick.index}", "reconstruction"]


def test_hovering_a_dot_shows_its_thumbnail(panel, qtbot):
    ex = panel.explorer
    i = 12
    _move(panel, ex.embedding[i])
    qtbot.waitUntil(lambda: panel.hover.isVisible(), timeout=2000)
    assert panel.hover.index in (i, *np.flatnonzero((np.abs(ex.embedding - ex.embedding[i]) < 1e-9).all(1)))
    pix = panel.hover.image.pixmap()
    assert (pix.width(), pix.height()) == (72, 72)  # an 8-px digit, 9x
    assert panel.hover.caption.text().startswith(f"#{panel.hover.index} · label")
    cached = panel._thumbs[panel.hover.index]
    spots, _ = _empty_spots(panel, 1)
    _move(panel, spots[0])
    qtbot.waitUntil(lambda: not panel.hover.isVisible(), timeout=2000)
    assert panel.hover_at(ex.embedding[i]) is not None  # again: the cached pixmap, not a new one
    assert panel._thumbs[panel.hover.index] is cached


def test_the_tip_follows_where_the_mouse_stopped_however_fast_it_moved(panel, qtbot):
    # moves a millisecond apart: the last one (off every dot) decides, none are lost on the way
    ex = panel.explorer
    spots, _ = _empty_spots(panel, 1)
    for _ in range(3):
        _move(panel, ex.embedding[5])
        _move(panel, spots[0])
        qtbot.wait(20)
        assert not panel.hover.isVisible()
        _move(panel, spots[0])
        _move(panel, ex.embedding[5])
        qtbot.waitUntil(lambda: panel.hover.isVisible(), timeout=2000)


def test_the_a_to_b_path_is_drawn_on_the_map(panel):
    panel.frames.setValue(7)
    panel.select_point(2)
    spots, _ = _empty_spots(panel, 1)
    panel.click_map(tuple(spots[0]))
    a, b = panel._picks
    for m in ("slerp", "lerp"):
        x, y = panel.paths[m].getData()
        assert len(x) == 7
        np.testing.assert_allclose([x[0], y[0]], a.xy, atol=1e-6)
        np.testing.assert_allclose([x[-1], y[-1]], b.xy, atol=1e-6)
    x, y = panel.paths["lerp"].getData()  # a PCA map is linear: the straight line stays straight
    d = np.c_[x - x[0], y - y[0]]
    assert np.abs(d[:, 0] * d[-1, 1] - d[:, 1] * d[-1, 0]).max() < 1e-6
    assert [t.isVisible() for t in panel.pick_labels] == [True, True]
    panel.set_run(None)  # another run: no path left behind
    assert len(panel.paths["slerp"].getData()[0] or []) == 0


def test_export_strips_and_traversals(panel, tmp_path):
    from PIL import Image

    panel.frames.setValue(5)
    panel.select_point(1)
    panel.select_point(4)
    assert all(b.isEnabled() for b in panel.export_buttons["interpolation"])
    png = panel.export_png("interpolation", tmp_path / "strip.png")
    want = panel.strips["interpolation"].image()
    with Image.open(png) as im:
        assert im.size == (want.shape[1], want.shape[0]) and im.size[0] > 5 * 64  # 5 frames, 64-px cells
    gif = panel.export_animation("traversal", tmp_path / "walk.gif")
    with Image.open(gif) as im:
        assert im.n_frames == 9  # one frame per traversal value
        assert im.size[1] > 3 * 64  # the three dimensions stacked, each labelled on its left
    assert panel.export_animation("interpolation", tmp_path / "ab.mp4").stat().st_size > 0
