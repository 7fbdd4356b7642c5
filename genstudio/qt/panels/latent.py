"""Latent explorer: a 2-D map of a run's latent codes (PCA, t-SNE or UMAP), coloured by label,
factor or k-means cluster. Click a point to decode it; the last two clicks give lerp and slerp
strips; drag the crosshair for a live decode; sliders walk the principal directions; a traversal
grid varies one dimension per row (with the factor it tracks on sprites); k-means clusters show
their most central members.

Encoding runs as a worker job (``ctx.start_job``) on a *separate* model instance loaded from the
newest checkpoint, never the one training. The finished :class:`~genstudio.core.latent.LatentExplorer`
comes back as a ``LATENT_READY`` event (diffusion models: codes are DDIM-inverted noises); after that, decoding one code is cheap and happens in the
GUI thread, coalesced to the screen rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from genstudio.core import events as ev
from genstudio.core import latent
from genstudio.core.events import Event
from genstudio.core.imaging import image_grid
from genstudio.core.runs import Run, RunError
from genstudio.qt.panels.base import AppContext, Panel
from genstudio.qt.panels.runs import short_name
from genstudio.qt.panels.views import PALETTE, SampleView

JOB = "latent"
N_SLIDERS = 4  # principal directions with a slider
SLIDER_STEPS = 100  # slider units per standard deviation / 100 * SLIDER_SPAN
SLIDER_SPAN = 3.0  # sliders reach ±3 std
FRAME_MS = 16  # live decodes at most this often (screen rate)
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def point_colours(values: np.ndarray | None, n: int) -> tuple[list[Any], str]:
    """Brushes for the map (the shared palette for <= 10 categories, viridis otherwise) and a
    rich-text legend for them."""
    if values is None:
        return [pg.mkBrush(*PALETTE[0], 170)] * n, ""
    uniq, inv = np.unique(values, return_inverse=True)
    if len(uniq) <= len(PALETTE):
        rgb = [PALETTE[i] for i in range(len(uniq))]
    else:
        cols = pg.colormap.get("viridis").map(np.linspace(0, 1, len(uniq)), mode="byte")
        rgb = [(int(c[0]), int(c[1]), int(c[2])) for c in cols]
    table = [pg.mkBrush(*c, 190) for c in rgb]
    def swatch(i: int) -> str:
        return f"<span style='color:rgb{rgb[i]}'>&#9679;</span>&nbsp;{uniq[i]}"

    if len(uniq) <= len(PALETTE):
        legend = " ".join(swatch(i) for i in range(len(uniq)))
    else:  # a continuous-looking factor: show the two ends of the scale
        legend = f"{swatch(0)} … {swatch(len(uniq) - 1)}"
    return [table[i] for i in inv], legend


class LatentPanel(Panel):
    panel_id = "latent"
    area = "tab:sampler"
    order = 60
    tools = ("explore",)
    title = "Latent explorer"

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._run: Run | None = None
        self.explorer: latent.LatentExplorer | None = None
        self._token = 0
        self._picks: list[int] = []  # indices of clicked points, oldest first (at most two)
        self._pending: np.ndarray | None = None  # the newest code waiting for a live decode
        self.last_decoded: torch.Tensor | None = None
        self.lerp_frames: torch.Tensor | None = None
        self.slerp_frames: torch.Tensor | None = None
        self.traversal_dims: list[int] = []
        self._refs: dict[int, pg.ScatterPlotItem] = {}  # view -> faint data behind 2-D decodes
        self._problem = ""
        self._control: Any = None
        self._build()
        self._frame = QTimer(self, singleShot=True, interval=FRAME_MS)
        self._frame.timeout.connect(self._decode_pending)
        self._poll = QTimer(self, interval=250)  # notices a job that ended without a result
        self._poll.timeout.connect(self._update_buttons)
        self.set_run(None)

    # -- UI -------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.method = QComboBox()
        for m in latent.available_methods():
            self.method.addItem(METHOD_NAMES[m], m)
        self.method.setToolTip("How the codes are laid out in 2-D (t-SNE/UMAP: no inverse map, so a "
                               "dragged position decodes as a blend of its nearest codes)")
        self.n = QSpinBox(minimum=10, maximum=20_000, value=1000, singleStep=100, prefix="n ")
        self.n.setToolTip("Examples of the dataset's fixed reference set to encode")
        self.k = QSpinBox(minimum=0, maximum=50, value=8, prefix="k-means ")
        self.k.setToolTip("Clusters (0 = no clustering)")
        self.encode_button = QPushButton("Encode")
        self.encode_button.setToolTip("Load the newest checkpoint into a separate model and encode")
        self.colour_by = QComboBox()
        self.colour_by.setToolTip("Colour the points by")
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.RichText)
        self.legend.setToolTip("Colours of the map's points")
        self.status = QLabel()
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 2)
        for w in (self.method, self.n, self.k, self.encode_button, QLabel("colour"), self.colour_by,
                  self.legend):
            top.addWidget(w)
        top.addWidget(self.status, 1)

        # map
        self.map = pg.PlotWidget()
        self.map.setMenuEnabled(False)
        self.map.showGrid(x=True, y=True, alpha=0.15)
        self.map.setTitle("latent map")
        self.scatter = pg.ScatterPlotItem(size=6, pen=None, hoverable=True, tip=None)
        self.map.addItem(self.scatter)
        self.pick_marks = pg.ScatterPlotItem(size=14, brush=None, pen=pg.mkPen("w", width=2))
        self.map.addItem(self.pick_marks)
        self.pick_labels = [pg.TextItem(t, color="w", anchor=(0, 1)) for t in ("A", "B")]
        for t in self.pick_labels:
            self.map.addItem(t)
            t.setVisible(False)
        self.cursor = pg.TargetItem(pos=(0, 0), size=14, pen=pg.mkPen(255, 214, 10, width=2), movable=True)
        self.cursor.setToolTip("Drag to decode live")
        self.map.addItem(self.cursor)
        self.cursor.setVisible(False)

        # right-hand tabs
        self.tabs = QTabWidget()
        self.decoded_view, w_dec = self._view("decoded")
        sliders = QGridLayout()
        self.sliders: list[QSlider] = []
        self.slider_labels: list[QLabel] = []
        for i in range(N_SLIDERS):
            s = QSlider(Qt.Horizontal)
            s.setRange(-SLIDER_STEPS, SLIDER_STEPS)
            s.valueChanged.connect(self._sliders_moved)
            lab = QLabel(f"PC{i + 1}")
            lab.setMinimumWidth(120)
            sliders.addWidget(lab, i, 0)
            sliders.addWidget(s, i, 1)
            self.sliders.append(s)
            self.slider_labels.append(lab)
        dec = QWidget()
        lay = QVBoxLayout(dec)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(w_dec, 1)
        lay.addLayout(sliders)
        self.tabs.addTab(dec, "Decode")

        interp = QWidget()
        lay = QVBoxLayout(interp)
        lay.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        self.frames = QSpinBox(minimum=2, maximum=32, value=8, prefix="frames ")
        self.frames.valueChanged.connect(self._update_interpolation)
        self.interp_hint = QLabel("click two points in the map (A, then B)")
        row.addWidget(self.frames)
        row.addWidget(self.interp_hint, 1)
        lay.addLayout(row)
        self.lerp_view, w = self._view("lerp (straight line)")
        lay.addWidget(w, 1)
        self.slerp_view, w = self._view("slerp (great circle, norm interpolated)")
        lay.addWidget(w, 1)
        self.tabs.addTab(interp, "Interpolate")

        trav = QWidget()
        lay = QVBoxLayout(trav)
        lay.setContentsMargins(2, 2, 2, 2)
        self.traversal_view, w = self._view("traversal (rows: dimensions, ±2.5 std)")
        lay.addWidget(w, 1)
        self.traversal_legend = QLabel()
        self.traversal_legend.setTextFormat(Qt.RichText)
        self.traversal_legend.setWordWrap(True)
        lay.addWidget(self.traversal_legend)
        self.tabs.addTab(trav, "Traversal")

        self.cluster_view, w = self._view("k-means: one cluster per row, most central members first")
        self.tabs.addTab(w, "Clusters")

        self.density_plot = pg.PlotWidget()
        self.density_plot.setMenuEnabled(False)
        self.density_plot.setAspectLocked(True)
        self.density_image = pg.ImageItem(axisOrder="row-major")
        self.density_image.setColorMap(pg.colormap.get("inferno"))
        self.density_plot.addItem(self.density_image)
        self.density_points = pg.ScatterPlotItem(size=2, pen=None, brush=pg.mkBrush(120, 200, 255, 90))
        self.density_plot.addItem(self.density_points)
        self.density_tab = self.tabs.addTab(self.density_plot, "Density")
        self.tabs.setTabEnabled(self.density_tab, False)
        self.tabs.setTabToolTip(self.density_tab, "2-D models with a likelihood: exp(log p) on a grid, with the data")

        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.map)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(top)
        outer.addWidget(split, 1)

        self.encode_button.clicked.connect(self._encode_clicked)
        self.colour_by.currentIndexChanged.connect(self._recolour)
        self.scatter.sigClicked.connect(self._points_clicked)
        self.cursor.sigPositionChanged.connect(self._cursor_moved)

    @staticmethod
    def _view(title: str) -> tuple[SampleView, pg.GraphicsLayoutWidget]:
        view = SampleView(title, PALETTE[1])
        canvas = pg.GraphicsLayoutWidget()
        canvas.addItem(view)
        return view, canvas

    # -- run selection ----------------------------------------------------------------------------
    def set_run(self, run: Run | None) -> None:
        changed = (run.id if run else None) != (self._run.id if self._run else None)
        self._run = run
        self._problem = ""
        if run is not None:
            try:
                cls = self.ctx.registry.get(run.info()["plugin"])
                # the Latent face, or a Denoiser (the explorer maps DDIM-inverted noises)
                if self.why_not("explore", run):
                    self._problem = f"{cls.info.name} has no latent space (no encode/decode, not a Denoiser)"
            except (KeyError, RunError) as e:
                self._problem = str(e).strip("'\"")
        if changed:
            self.clear()
        self._update_buttons()

    def _about(self) -> str:
        """' — <short run name>' for titles: the run the panel is about."""
        return f" — {short_name(self._run.id)}" if self._run is not None else ""

    def clear(self) -> None:
        """Forget the shown explorer (its map, decodes and titles belong to another run)."""
        self.explorer = None
        self.map.setTitle("latent map" + self._about())
        self.density_plot.setTitle(None)
        self._picks = []
        self.scatter.setData([])
        self.pick_marks.setData([])
        for t in self.pick_labels:
            t.setVisible(False)
        self.cursor.setVisible(False)
        for v in (self.decoded_view, self.lerp_view, self.slerp_view, self.traversal_view, self.cluster_view):
            v.clear_content()
        self.traversal_legend.clear()
        self.legend.clear()
        self.density_image.clear()
        self.density_points.setData([])
        self.tabs.setTabEnabled(self.density_tab, False)
        for ref in self._refs.values():
            ref.setData([])
            ref.explorer_id = None
        self.colour_by.blockSignals(True)
        self.colour_by.clear()
        self.colour_by.blockSignals(False)

    def _update_buttons(self) -> None:
        running = self.ctx.job_running(JOB)
        if not running and self._poll.isActive():
            self._poll.stop()
            if self.explorer is None and self.status.text().endswith("…"):
                self.status.setText("encoding ended without a result")
        self.encode_button.setText("Stop" if running else "Encode")
        has_ckpt = self._run is not None and bool(self._run.checkpoints())
        self.encode_button.setEnabled(running or (has_ckpt and not self._problem))
        if not running and self.explorer is None:
            hint = ("select a run" if self._run is None else self._problem
                    or ("" if has_ckpt else "no checkpoint yet: train first") or "press Encode")
            self.status.setText(hint)

    # -- encoding job -------------------------------------------------------------------------------
    def _encode_clicked(self) -> None:
        if self.ctx.job_running(JOB):
            if self._control is not None:
                self._control.cancel()
            return
        self.encode()

    def encode(self) -> Any:
        """Start the worker job that builds the explorer for the selected run (Encode button)."""
        run = self._run
        if run is None or self._problem or not run.checkpoints():
            return None
        self._token += 1
        token, bus = self._token, self.ctx.bus
        kw = dict(n=self.n.value(), method=self.method.currentData() or "pca", clusters=self.k.value())

        def job(control: Any) -> Any:
            gen = latent.explore_run(run, **kw)
            while True:
                try:
                    stage = next(gen)
                except StopIteration as stop:
                    ex = stop.value
                    break
                control.check()
                bus.emit(ev.LOG, run.id, message=f"latent explorer: {stage}")
                yield stage
            bus.emit(latent.LATENT_READY, run.id, explorer=ex, token=token)
            return ex

        self.status.setText(f"encoding {kw['n']} examples…")
        self._control = self.ctx.start_job(JOB, run, job)
        self._poll.start()
        self._update_buttons()
        return self._control

    def on_events(self, events: list[Event]) -> None:
        current = self._run.id if self._run is not None else None
        for e in events:
            if e.kind == latent.LATENT_READY and e.run_id == current and e.data.get("token") == self._token:
                self.set_explorer(e.data["explorer"])
            elif e.kind == ev.STATUS and e.run_id == current:
                self._update_buttons()  # training may have written the first checkpoint

    def set_explorer(self, ex: latent.LatentExplorer) -> None:
        """Show a finished explorer: map, colours, PCA sliders, traversal and clusters."""
        self.explorer = ex
        self._picks = []
        self.pick_marks.setData([])
        for t in self.pick_labels:
            t.setVisible(False)
        self.scatter.setData(pos=ex.embedding, data=np.arange(len(ex.embedding)))
        self.map.setTitle(f"{METHOD_NAMES.get(ex.method, ex.method)} of {len(ex.codes)} codes "
                          f"(d = {ex.dim}, step {ex.step:,}){self._about()}")
        self.map.setLabel("bottom", "PC1" if ex.method == "pca" else f"{ex.method} 1")
        self.map.setLabel("left", "PC2" if ex.method == "pca" else f"{ex.method} 2")
        self.colour_by.blockSignals(True)
        self.colour_by.clear()
        self.colour_by.addItems(ex.colour_keys() or ["none"])
        self.colour_by.blockSignals(False)
        self._recolour()
        self.map.getPlotItem().getViewBox().autoRange(padding=0.05)
        centre = ex.embedding.mean(0)
        self.cursor.blockSignals(True)
        self.cursor.setPos(float(centre[0]), float(centre[1]))
        self.cursor.blockSignals(False)
        self.cursor.setVisible(True)
        for i, (s, lab) in enumerate(zip(self.sliders, self.slider_labels)):
            ok = i < len(ex.pca.components)
            s.setEnabled(ok)
            lab.setText(f"PC{i + 1} ({100 * ex.pca.explained[i]:.0f}% var)" if ok else f"PC{i + 1}")
        self._update_traversal()
        self._update_clusters()
        self._update_density()
        self.status.setText(f"encoded {len(ex.codes)} examples; click a point to decode it, two for "
                            "interpolation; drag the crosshair")
        self.decode_code(ex.pca.mean)

    def _recolour(self) -> None:
        ex = self.explorer
        if ex is None:
            return
        brushes, legend = point_colours(ex.colour_values(self.colour_by.currentText()), len(ex.codes))
        self.scatter.setBrush(brushes)
        self.legend.setText(legend)

    # -- decoding -----------------------------------------------------------------------------------
    def decode_code(self, z: np.ndarray) -> torch.Tensor | None:
        """Decode one flattened code now and show it (the Decode tab)."""
        if self.explorer is None:
            return None
        out = self.explorer.decode(z[None])
        self.last_decoded = out
        self._show(self.decoded_view, out, ncol=1)
        return out

    def _show(self, view: SampleView, x: torch.Tensor, ncol: int | None = None) -> None:
        """Images as a grid with ``ncol`` columns; 2-D points over the data set (faint), each row
        of ``ncol`` joined as a path (interpolations and traversals read as curves)."""
        if x.dim() == 4:
            view.show_image(image_grid(x, ncol=ncol, pad=1))
        elif x.dim() == 2 and x.shape[1] == 2 and self.explorer is not None:
            self._show_reference(view)
            pts = x.numpy()
            ncol = ncol or len(pts)
            hist = pts.reshape(-1, ncol, 2).transpose(1, 0, 2) if len(pts) % ncol == 0 else None
            view.show_points(pts, hist, None)
            view.scatter.setSize(8)
        else:
            self.status.setText(f"cannot draw decodes of shape {tuple(x.shape)}")

    def _show_reference(self, view: SampleView) -> None:
        """The encoded 2-D data behind a view's decodes (set once per explorer)."""
        ex = self.explorer
        ref = self._refs.get(id(view))
        if ref is None:
            ref = self._refs[id(view)] = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(170, 170, 170, 60))
            ref.setZValue(-1)
            view.addItem(ref)
        if getattr(ref, "explorer_id", None) != id(ex):
            ref.setData(pos=ex.x.numpy().astype(np.float64))
            ref.explorer_id = id(ex)
            lim = float(np.nanpercentile(np.abs(ex.x.numpy()), 99.5)) * 1.1 if len(ex.x) else 3.0
            view.getViewBox().setRange(xRange=(-lim, lim), yRange=(-lim, lim), padding=0)

    def request_decode(self, z: np.ndarray) -> None:
        """Queue a live decode; several requests within one frame decode only the newest."""
        self._pending = np.asarray(z, np.float64)
        if not self._frame.isActive():
            self._frame.start()

    def _decode_pending(self) -> None:
        if self._pending is not None:
            z, self._pending = self._pending, None
            self.decode_code(z)

    def _cursor_moved(self) -> None:
        if self.explorer is None:
            return
        p = self.cursor.pos()
        z = self.explorer.point_to_code((p.x(), p.y()))
        self._set_sliders(z)
        self.request_decode(z)

    def _set_sliders(self, z: np.ndarray) -> None:
        ex = self.explorer
        coords = ex.pca.transform(z) / np.maximum(ex.pca.std, 1e-12)
        for i, s in enumerate(self.sliders):
            if i < len(coords):
                s.blockSignals(True)
                s.setValue(int(round(np.clip(coords[i] / SLIDER_SPAN, -1, 1) * SLIDER_STEPS)))
                s.blockSignals(False)

    def _sliders_moved(self) -> None:
        ex = self.explorer
        if ex is None:
            return
        coeffs = [s.value() / SLIDER_STEPS * SLIDER_SPAN for s in self.sliders]
        z = latent.pca_direction_code(ex.pca, coeffs)
        self.request_decode(z)

    # -- picking and interpolation ------------------------------------------------------------------
    def _points_clicked(self, _item: Any, points: Any, *_: Any) -> None:
        if len(points):
            self.select_point(int(points[0].data()))

    def select_point(self, i: int) -> torch.Tensor | None:
        """Click on point ``i``: decode it, make it the newest of the two picks, refresh the strips."""
        ex = self.explorer
        if ex is None:
            return None
        self._picks = (self._picks + [int(i)])[-2:]
        pos = ex.embedding[self._picks]
        self.pick_marks.setData(pos=pos)
        for j, t in enumerate(self.pick_labels):
            t.setVisible(j < len(pos))
            if j < len(pos):
                t.setPos(float(pos[j, 0]), float(pos[j, 1]))
        self._set_sliders(ex.codes[i])
        label = ""
        if ex.labels is not None:
            label = f", label {int(ex.labels[i])}"
        self.status.setText(f"point {i}{label}")
        out = self.decode_code(ex.codes[i])
        self._update_interpolation()
        return out

    def _update_interpolation(self) -> None:
        ex = self.explorer
        if ex is None or len(self._picks) < 2:
            return
        a, b = (torch.as_tensor(ex.codes[j]) for j in self._picks)
        n = self.frames.value()
        self.lerp_frames = ex.decode(latent.lerp(a, b, n).numpy())
        self.slerp_frames = ex.decode(latent.slerp(a, b, n).numpy())
        self._show(self.lerp_view, self.lerp_frames, ncol=n)
        self._show(self.slerp_view, self.slerp_frames, ncol=n)
        self.interp_hint.setText(f"A = point {self._picks[0]} → B = point {self._picks[1]}")

    # -- traversal and clusters ---------------------------------------------------------------------
    def _update_traversal(self) -> None:
        ex = self.explorer
        if ex is None:
            return
        n = 9
        dims, _, grid = ex.traversal(n=n)
        self.traversal_dims = dims
        self._show(self.traversal_view, grid, ncol=n)
        rows = []
        for r, d in enumerate(dims):
            tracks = f" → {ex.assignment.label(d)}" if ex.assignment is not None else ""
            rows.append(f"{r + 1}: z<sub>{d}</sub> (std {ex.codes[:, d].std():.2f}){tracks}")
        head = "Rows, widest spread first"
        if ex.assignment is not None:
            head += " (→ the factor with the largest MI / H(factor))"
        self.traversal_legend.setText(f"<b>{head}</b><br>" + " &nbsp;·&nbsp; ".join(rows))

    def _update_clusters(self) -> None:
        ex = self.explorer
        if ex is None or ex.clusters is None:
            self.cluster_view.clear_content()
            return
        if ex.x.dim() != 4:  # 2-D points: the decoded cluster centres over the data
            self._show(self.cluster_view, ex.decode(ex.centres), ncol=1)
            return
        per = 8
        groups = latent.cluster_exemplars(ex.codes, ex.clusters, ex.centres, per=per)
        blank = torch.full_like(ex.x[:1], -1.0)
        tiles = [torch.cat([ex.x[g], blank.repeat(per - len(g), 1, 1, 1)]) for g in groups]
        self._show(self.cluster_view, torch.cat(tiles), ncol=per)

    def _update_density(self) -> None:
        ex = self.explorer
        d = ex.density if ex is not None else None
        self.tabs.setTabEnabled(self.density_tab, d is not None)
        if d is None:
            return
        self.density_image.setImage(d.p, autoLevels=False, levels=(0.0, float(d.p.max()) or 1.0))
        dx, dy = d.xs[1] - d.xs[0], d.ys[1] - d.ys[0]
        self.density_image.setRect(QRectF(d.xs[0] - dx / 2, d.ys[0] - dy / 2, dx * len(d.xs), dy * len(d.ys)))
        self.density_points.setData(pos=ex.x.numpy().astype(np.float64))
        warn = " – over 1: not a density (solver error exploited?)" if d.mass > 1.05 else ""
        self.density_plot.setTitle(f"learned density (mass on the grid {d.mass:.3f}{warn})",
                                   color="#ff8c42" if warn else None)
        self.density_plot.getPlotItem().getViewBox().autoRange(padding=0.02)
