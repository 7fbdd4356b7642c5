"""Latent explorer: a 2-D map of a run's latent codes (PCA, t-SNE or UMAP), coloured by label,
factor or k-means cluster. Click anywhere to decode: on a dot, that item's code (its original
beside its reconstruction); on empty space of a PCA map, the clicked point itself (t-SNE/UMAP have
no inverse: the nearest code). Hovering a dot shows its thumbnail. The last two clicks are A and B:
lerp and slerp strips between them, their paths drawn on the map. Drag the crosshair for a live
decode; sliders walk the principal directions; a traversal grid varies one dimension per row
(labelled on its left, with the factor it tracks on sprites); k-means clusters show their most
central members. Strips and traversals export as labelled PNGs and GIF/MP4 animations.

Encoding runs as a worker job (``ctx.start_job``) on a *separate* model instance loaded from the
newest checkpoint, never the one training. The finished :class:`~genstudio.core.latent.LatentExplorer`
comes back as a ``LATENT_READY`` event (diffusion models: codes are DDIM-inverted noises); after that, decoding one code is cheap and happens in the
GUI thread, coalesced to the screen rate.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
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
from genstudio.core.imaging import ANIMATION_SUFFIXES, image_grid, save_animation, save_png
from genstudio.core.latent import METHOD_NAMES, MapPick, Strip, interpolation_labels
from genstudio.core.runs import Run, RunError
from genstudio.qt.panels.base import AppContext, Panel
from genstudio.qt.panels.runs import short_name
from genstudio.qt.panels.views import PALETTE, SampleView

JOB = "latent"
N_SLIDERS = 4  # principal directions with a slider
SLIDER_STEPS = 100  # slider units per standard deviation / 100 * SLIDER_SPAN
SLIDER_SPAN = 3.0  # sliders reach ±3 std
FRAME_MS = 16  # live decodes at most this often (screen rate)
HIT_PX = 5  # a click or hover within this many pixels of a dot is on it
EXPORT_FPS = 6.0
PATH_COLOURS = {"slerp": (255, 140, 66), "lerp": (77, 166, 255)}


def qpixmap(img: np.ndarray) -> QPixmap:
    """(H, W, 3) uint8 -> QPixmap (copied, so the array may go)."""
    a = np.ascontiguousarray(img[..., :3])
    return QPixmap.fromImage(QImage(a.data, a.shape[1], a.shape[0], 3 * a.shape[1], QImage.Format_RGB888).copy())


class HoverTip(QFrame):
    """A small thumbnail with a caption that follows the cursor over the map (ignores the mouse)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setStyleSheet("HoverTip { background: rgb(20, 22, 28); border: 1px solid rgb(120, 120, 130); }"
                           "QLabel { color: rgb(230, 230, 235); }")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(3, 3, 3, 3)
        lay.setSpacing(1)
        self.image = QLabel()
        self.caption = QLabel()
        lay.addWidget(self.image, 0, Qt.AlignHCenter)
        lay.addWidget(self.caption, 0, Qt.AlignHCenter)
        self.index: int | None = None
        self.hide()

    def show_at(self, index: int, pixmap: QPixmap, caption: str, at: QPoint) -> None:
        if index != self.index:
            self.index = index
            self.image.setPixmap(pixmap)
            self.caption.setText(caption)
            self.adjustSize()
        area = self.parentWidget().rect()
        x, y = at.x() + 16, at.y() + 16
        if x + self.width() > area.right():
            x = at.x() - 16 - self.width()
        if y + self.height() > area.bottom():
            y = at.y() - 16 - self.height()
        self.move(max(0, x), max(0, y))
        self.show()
        self.raise_()

    def hide_tip(self) -> None:
        self.index = None
        self.hide()


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
        self._picks: list[MapPick] = []  # the clicks, oldest first (at most two: A and B)
        self._pending: np.ndarray | None = None  # the newest code waiting for a live decode
        self._pending_what = ""  # and what it is
        self.last_decoded: torch.Tensor | None = None
        self.lerp_frames: torch.Tensor | None = None
        self.slerp_frames: torch.Tensor | None = None
        self.traversal_dims: list[int] = []
        self.strips: dict[str, Strip] = {}  # "interpolation" / "traversal": what the export buttons write
        self._thumbs: dict[int, QPixmap] = {}  # hover thumbnails, per item (cleared with the explorer)
        self._canvases: dict[int, pg.GraphicsLayoutWidget] = {}  # id(view) -> its widget
        self._shown: dict[int, tuple[SampleView, Strip]] = {}  # id(view) -> the labelled strip it shows
        self._refit = QTimer(self, singleShot=True, interval=120)
        self._refit.timeout.connect(self._refit_strips)
        self._refs: dict[int, pg.ScatterPlotItem] = {}  # view -> faint data behind 2-D decodes
        # the hover follows the *latest* mouse move: pyqtgraph's scene drops moves under 10 ms
        # apart, so its last one (where the mouse stopped) could be lost and the tip stay up
        self._hover_pos: QPointF | None = None
        self._hover_timer = QTimer(self, singleShot=True, interval=0)
        self._hover_timer.timeout.connect(self._hover_pending)
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
        self.map = pg.PlotWidget(enableMenu=False)  # its view's menu is never built
        self.map.showGrid(x=True, y=True, alpha=0.15)
        self.map.setTitle("latent map")
        self.scatter = pg.ScatterPlotItem(size=6, pen=None, tip=None)
        self.map.addItem(self.scatter)
        self.paths = {m: pg.PlotDataItem(pen=pg.mkPen(*c, 230, width=2, style=Qt.SolidLine if m == "slerp" else Qt.DashLine),
                                         symbol="o", symbolSize=5, symbolPen=None, symbolBrush=pg.mkBrush(*c, 230))
                      for m, c in PATH_COLOURS.items()}
        for item in self.paths.values():
            self.map.addItem(item)
        self.hover = HoverTip(self.map)
        self.map.installEventFilter(self)
        self.map.viewport().installEventFilter(self)  # every mouse move, for the hover tip
        self.pick_marks = pg.ScatterPlotItem(size=14, brush=None, pen=pg.mkPen("w", width=2))
        self.map.addItem(self.pick_marks)
        self.pick_labels = [pg.TextItem(t, color="w", anchor=(0, 1)) for t in ("A", "B")]
        for t in self.pick_labels:
            self.map.addItem(t)
            t.setVisible(False)
        self.cursor = pg.TargetItem(pos=(0, 0), size=14, pen=pg.mkPen(255, 214, 10, width=2), movable=True)
        self.cursor.setToolTip("Drag to decode live (PCA: the code on the plane of PC1/PC2 through the mean code)")
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
        self.decode_caption = QLabel()
        self.decode_caption.setWordWrap(True)
        self.decode_caption.setToolTip("What the view shows decoded")
        lay.addWidget(self.decode_caption)
        lay.addLayout(sliders)
        self.tabs.addTab(dec, "Decode")

        interp = QWidget()
        lay = QVBoxLayout(interp)
        lay.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        self.frames = QSpinBox(minimum=2, maximum=32, value=8, prefix="frames ")
        self.frames.valueChanged.connect(self._update_interpolation)
        self.interp_hint = QLabel("click two places in the map (A, then B)")
        self.interp_hint.setWordWrap(True)
        row.addWidget(self.frames)
        row.addStretch(1)
        row.addLayout(self._export_buttons("interpolation"))
        lay.addLayout(row)
        lay.addWidget(self.interp_hint)
        self.lerp_view, w = self._view("lerp (straight line)")
        lay.addWidget(w, 1)
        self.slerp_view, w = self._view("slerp (great circle, norm interpolated)")
        lay.addWidget(w, 1)
        self.tabs.addTab(interp, "Interpolate")

        trav = QWidget()
        lay = QVBoxLayout(trav)
        lay.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addLayout(self._export_buttons("traversal"))
        lay.addLayout(row)
        self.traversal_view, w = self._view("traversal (rows: dimensions, ±2.5 std)")
        lay.addWidget(w, 1)
        self.traversal_legend = QLabel()
        self.traversal_legend.setTextFormat(Qt.RichText)
        self.traversal_legend.setWordWrap(True)
        lay.addWidget(self.traversal_legend)
        self.tabs.addTab(trav, "Traversal")

        self.cluster_view, w = self._view("k-means: one cluster per row, most central members first")
        self.tabs.addTab(w, "Clusters")

        self.density_plot = pg.PlotWidget(enableMenu=False)
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
        self.map.scene().sigMouseClicked.connect(self._scene_clicked)
        self.cursor.sigPositionChanged.connect(self._cursor_moved)
        self._update_export_buttons()

    def _export_buttons(self, what: str) -> QHBoxLayout:
        row = QHBoxLayout()
        png, anim = QPushButton("PNG…"), QPushButton("GIF/MP4…")
        png.setToolTip(f"Save the {what} as a labelled PNG")
        anim.setToolTip(f"Save the {what} as an animation over its columns (.gif or .mp4)")
        png.clicked.connect(lambda: self._export_dialog(what, ".png"))
        anim.clicked.connect(lambda: self._export_dialog(what, ".gif"))
        self.export_buttons = getattr(self, "export_buttons", {})
        self.export_buttons[what] = (png, anim)
        row.addWidget(png)
        row.addWidget(anim)
        return row

    def _view(self, title: str) -> tuple[SampleView, pg.GraphicsLayoutWidget]:
        view = SampleView(title, PALETTE[1])
        canvas = pg.GraphicsLayoutWidget()
        canvas.addItem(view)
        canvas.installEventFilter(self)  # a resize re-fits its labelled strip
        self._canvases[id(view)] = canvas
        return view, canvas

    def show_strip(self, view: SampleView, strip: Strip) -> None:
        """Show a labelled strip fitted to the view's size (shown about 1:1: labels stay readable)."""
        self._shown[id(view)] = (view, strip)
        canvas = self._canvases[id(view)]
        shown = replace(strip, title="")  # the view's own title says what it is
        view.show_image(shown.fit(max(canvas.width() - 30, 120), max(canvas.height() - 56, 80)).image())

    def _refit_strips(self) -> None:
        for view, strip in list(self._shown.values()):
            if view.mode == "image":
                self.show_strip(view, strip)

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
        self.scatter.setData([])
        self._clear_picks()
        self.cursor.setVisible(False)
        self.hover.hide_tip()
        self._thumbs.clear()
        self.strips.clear()
        self._update_export_buttons()
        for v in (self.decoded_view, self.lerp_view, self.slerp_view, self.traversal_view, self.cluster_view):
            v.clear_content()
        self._shown.clear()
        self.traversal_legend.clear()
        self.decode_caption.clear()
        if getattr(self, "_orig_item", None) is not None:
            self._orig_item.setData([])
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
        self._clear_picks()
        self._thumbs.clear()
        self.hover.hide_tip()
        self.strips.pop("interpolation", None)
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
        self.status.setText(f"encoded {len(ex.codes)} examples; click anywhere to decode, twice for an "
                            "A→B interpolation; hover a dot to see it; drag the crosshair")
        self.decode_code(ex.pca.mean, what="Decoded the mean code. Click anywhere in the map to decode there.")
        self._update_export_buttons()

    def _recolour(self) -> None:
        ex = self.explorer
        if ex is None:
            return
        brushes, legend = point_colours(ex.colour_values(self.colour_by.currentText()), len(ex.codes))
        self.scatter.setBrush(brushes)
        self.legend.setText(legend)

    # -- decoding -----------------------------------------------------------------------------------
    def decode_code(self, z: np.ndarray, pick: MapPick | None = None, what: str = "") -> torch.Tensor | None:
        """Decode one flattened code now and show it big (the Decode tab); with a ``pick``, its
        original (the item clicked, or the one nearest the click) beside it. ``what`` (without a
        pick) says what the code is, under the view."""
        ex = self.explorer
        if ex is None:
            return None
        out = ex.decode(np.asarray(z)[None])
        self.last_decoded = out
        if pick is None:
            self.decode_caption.setText(what)
        if out.dim() == 4:
            tiles, cols = out, ["decode"]
            if pick is not None:
                tiles = torch.cat([ex.x[pick.index:pick.index + 1].float(), out])
                cols = ([f"original #{pick.index}", "reconstruction"] if pick.hit
                        else [f"nearest #{pick.index}", "decode here"])
            self.show_strip(self.decoded_view, Strip(tiles, len(tiles), col_labels=cols))
            return out
        self._show(self.decoded_view, out, ncol=1)
        orig = ex.x[pick.index:pick.index + 1].numpy() if pick is not None else np.zeros((0, 2))
        self._original_marks().setData(pos=orig.astype(np.float64))
        if pick is None:
            self.decoded_view.set_note("")
        else:
            ring = "original" if pick.hit else f"nearest item #{pick.index}"
            self.decoded_view.set_note(f"ring: {ring} · dot: decode")
        return out

    def _original_marks(self) -> pg.ScatterPlotItem:
        """2-D data: a ring at the picked item's original in the Decode view."""
        item = getattr(self, "_orig_item", None)
        if item is None:
            item = self._orig_item = pg.ScatterPlotItem(size=16, brush=None, pen=pg.mkPen(*PATH_COLOURS["lerp"], width=2))
            self.decoded_view.addItem(item)
        return item

    def _show(self, view: SampleView, x: torch.Tensor, ncol: int | None = None) -> None:
        """Images as a grid with ``ncol`` columns; 2-D points over the data set (faint), each row
        of ``ncol`` joined as a path (interpolations and traversals read as curves)."""
        self._shown.pop(id(view), None)  # no labelled strip to re-fit here any more
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
            view.getViewBox().setRange(xRange=(-ex.lim, ex.lim), yRange=(-ex.lim, ex.lim), padding=0)

    def request_decode(self, z: np.ndarray, what: str = "") -> None:
        """Queue a live decode; several requests within one frame decode only the newest."""
        self._pending = np.asarray(z, np.float64)
        self._pending_what = what
        if not self._frame.isActive():
            self._frame.start()

    def _decode_pending(self) -> None:
        if self._pending is not None:
            z, self._pending = self._pending, None
            self.decode_code(z, what=self._pending_what)

    def _cursor_moved(self) -> None:
        if self.explorer is None:
            return
        p = self.cursor.pos()
        z = self.explorer.point_to_code((p.x(), p.y()))
        self._set_sliders(z)
        how = ("on the PC1/PC2 plane through the mean code" if self.explorer.invertible
               else "a blend of its nearest codes (no inverse map)")
        self.request_decode(z, f"Decoded the crosshair at ({p.x():.2f}, {p.y():.2f}): {how}.")

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
        sd = ", ".join(f"PC{i + 1} {c:+.1f}" for i, c in enumerate(coeffs[:len(ex.pca.components)]))
        self.request_decode(z, f"Decoded the mean code + ({sd}) standard deviations along the principal directions.")

    # -- clicking, hovering and interpolation -------------------------------------------------------
    def _pixel(self) -> np.ndarray:
        """The size of one screen pixel in map units, per axis."""
        px = self.map.getPlotItem().getViewBox().viewPixelSize()
        return np.array([px[0] or 1.0, px[1] or 1.0])

    def _map_pos(self, scene_pos: QPointF) -> tuple[float, float] | None:
        vb = self.map.getPlotItem().getViewBox()
        if self.explorer is None or not vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = vb.mapSceneToView(scene_pos)
        return p.x(), p.y()

    def _scene_clicked(self, ev: Any) -> None:
        xy = self._map_pos(ev.scenePos())
        if xy is not None and ev.button() == Qt.LeftButton and not ev.double():
            self.click_map(xy)

    def click_map(self, xy: tuple[float, float]) -> torch.Tensor | None:
        """A click at map position ``xy``: decode what :meth:`LatentExplorer.pick` finds there."""
        ex = self.explorer
        return None if ex is None else self._pick(ex.pick(xy, hit=HIT_PX, scale=self._pixel()))

    def select_point(self, i: int) -> torch.Tensor | None:
        """Pick item ``i`` (a click on its dot): decode its code beside its original."""
        ex = self.explorer
        return None if ex is None else self._pick(ex.item_pick(int(i)))

    def _pick(self, pick: MapPick) -> torch.Tensor | None:
        """Make ``pick`` the newest of A and B, decode it, refresh the strips and the path."""
        ex = self.explorer
        self._picks = (self._picks + [pick])[-2:]
        pos = np.array([p.xy for p in self._picks])
        self.pick_marks.setData(pos=pos)
        for j, t in enumerate(self.pick_labels):
            t.setVisible(j < len(pos))
            if j < len(pos):
                t.setPos(float(pos[j, 0]), float(pos[j, 1]))
        self._set_sliders(pick.code)
        label = "" if ex.labels is None else (f" (label {int(ex.labels[pick.index])})" if pick.hit
                                              else f" (the nearest item's label: {int(ex.labels[pick.index])})")
        out = self.decode_code(pick.code, pick)
        self.decode_caption.setText(f"Decoded {pick.what}{label}; map position ({pick.xy[0]:.2f}, {pick.xy[1]:.2f}).")
        self.status.setText(f"picked {self._pick_name(pick)}")
        self._update_interpolation()
        return out

    def _clear_picks(self) -> None:
        self._picks = []
        self.pick_marks.setData([])
        for t in self.pick_labels:
            t.setVisible(False)
        for item in self.paths.values():
            item.setData([], [])
        self.lerp_frames = self.slerp_frames = None
        for view in (self.lerp_view, self.slerp_view):
            view.clear_content()
            self._shown.pop(id(view), None)
        self.strips.pop("interpolation", None)
        self.interp_hint.setText("click two places in the map (A, then B)")

    @staticmethod
    def _pick_name(p: MapPick) -> str:
        return f"item #{p.index}" if p.hit else f"({p.xy[0]:.2f}, {p.xy[1]:.2f})"

    def _update_interpolation(self) -> None:
        ex = self.explorer
        if ex is None or len(self._picks) < 2:
            return
        a, b = self._picks
        n = self.frames.value()
        codes = ex.interpolation_codes(a.code, b.code, n)
        self.slerp_frames, self.lerp_frames = ex.decode(codes["slerp"]), ex.decode(codes["lerp"])
        cols = interpolation_labels(n)
        for view, frames in ((self.lerp_view, self.lerp_frames), (self.slerp_view, self.slerp_frames)):
            if frames.dim() == 4:
                self.show_strip(view, Strip(frames, n, col_labels=cols))
            else:
                self._show(view, frames, ncol=n)
        ends = f"A = {self._pick_name(a)} → B = {self._pick_name(b)}"
        self.strips["interpolation"] = Strip(torch.cat([self.slerp_frames, self.lerp_frames]), n,
                                             ["slerp", "lerp"], cols, f"{ends}, step {ex.step:,}", ex)
        for m, item in self.paths.items():  # the frames' codes, placed on the map
            xy = ex.project(codes[m])
            item.setData(xy[:, 0], xy[:, 1])
        where = "" if ex.invertible else " (placed approximately: no inverse map)"
        self.interp_hint.setText(f"{ends}; on the map: slerp solid orange, lerp dashed blue{where}")
        self._update_export_buttons()

    def _hover_pending(self) -> None:
        if self._hover_pos is not None:
            self._mouse_moved(self.map.mapToScene(self._hover_pos.toPoint()))

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        xy = self._map_pos(scene_pos)
        if xy is None:
            self.hover.hide_tip()
        else:
            self.hover_at(xy, self.map.mapFromScene(scene_pos))

    def hover_at(self, xy: tuple[float, float], at: QPoint | None = None) -> int | None:
        """Show the thumbnail of the dot under map position ``xy`` near ``at`` (widget pixels;
        default: the dot); None and no tip when no dot is within HIT_PX pixels."""
        ex = self.explorer
        i, dist = ex.nearest(xy, self._pixel()) if ex is not None else (0, np.inf)
        if dist > HIT_PX:
            self.hover.hide_tip()
            return None
        pix = self._thumbs.get(i)
        if pix is None:  # drawn once per item
            pix = self._thumbs[i] = qpixmap(ex.thumbnail(i))
        caption = f"#{i}" + (f" · label {int(ex.labels[i])}" if ex.labels is not None else "")
        if at is None:
            vb = self.map.getPlotItem().getViewBox()
            at = self.map.mapFromScene(vb.mapViewToScene(QPointF(*map(float, ex.embedding[i]))))
        self.hover.show_at(i, pix, caption, at)
        return i

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.map and event.type() == QEvent.Leave:
            self._hover_pos = None
            self.hover.hide_tip()
        elif event.type() == QEvent.MouseMove and obj is self.map.viewport():
            self._hover_pos = event.position()  # a burst of moves costs one lookup, at the last
            self._hover_timer.start()
        elif event.type() == QEvent.Resize and self._shown:
            self._refit.start()
        return super().eventFilter(obj, event)

    # -- export -------------------------------------------------------------------------------------
    def _update_export_buttons(self) -> None:
        for what, buttons in getattr(self, "export_buttons", {}).items():
            for b in buttons:
                b.setEnabled(what in self.strips)

    def _strip(self, what: str) -> Strip:
        if what not in self.strips:
            raise RuntimeError(f"no {what} yet")
        return self.strips[what]

    def export_png(self, what: str, path: str | Path) -> Path:
        """The ``what`` strip ("interpolation" or "traversal") as the labelled PNG the panel shows."""
        return save_png(self._strip(what).image(), path)

    def export_animation(self, what: str, path: str | Path, fps: float = EXPORT_FPS) -> Path:
        """The ``what`` strip as a GIF/MP4 (by suffix), one frame per column."""
        return save_animation(self._strip(what).frames(), path, fps=fps)

    def _export_dialog(self, what: str, suffix: str) -> None:
        folder = self._run.sample_dir() if self._run is not None else Path.home()
        step = self.explorer.step if self.explorer is not None else 0
        default = str(folder / f"latent_{what}_s{step}{suffix}")
        if suffix == ".png":
            path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", default, "PNG image (*.png)")
            fn = self.export_png
        else:
            path, chosen = QFileDialog.getSaveFileName(self, f"Export {what} animation", default,
                                                       "GIF animation (*.gif);;MP4 video (*.mp4)")
            if path and Path(path).suffix.lower() not in ANIMATION_SUFFIXES:
                path += ".mp4" if "mp4" in chosen else ".gif"
            fn = self.export_animation
        if not path:
            return
        try:
            out = fn(what, path)
        except (OSError, ValueError, RuntimeError) as e:
            self.ctx.show_error(f"Export failed: {e}")
            return
        self.ctx.status_message(f"wrote {out}")

    # -- traversal and clusters ---------------------------------------------------------------------
    def _update_traversal(self) -> None:
        ex = self.explorer
        if ex is None:
            return
        dims, strip = ex.traversal_strip(n=9)
        self.traversal_dims = dims
        self.strips["traversal"] = strip
        images = strip.decoded.dim() == 4
        self.traversal_legend.setVisible(not images)  # images: each row's label is on its left
        if images:
            self.show_strip(self.traversal_view, strip)
            return
        self._show(self.traversal_view, strip.decoded, ncol=strip.cols)
        rows = [f"{r + 1}: {lab}".replace("\n", " ") for r, lab in enumerate(strip.row_labels)]
        self.traversal_legend.setText("<b>Paths, widest spread first</b><br>" + " &nbsp;·&nbsp; ".join(rows))


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
