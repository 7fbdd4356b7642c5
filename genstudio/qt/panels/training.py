"""Training monitor: live metric curves (EMA-smoothed over the faint raw curve, log axes, step or
wall-time x axis, several runs overlaid), throughput, and the sample grids logged during training
with a step slider; a combo switches the slider to a model view (a plugin's ``views()``: density
heat map, energy landscape, filters, reconstructions) logged at the same steps. The preview
fills its pane (aspect kept; small grids scaled nearest so pixels stay crisp), a filmstrip under
it holds a thumbnail of every logged preview with its step and loss (thumbnails made lazily, only
for the items in sight, and cached), and the previews export as a GIF/MP4 time-lapse.

Rows are kept in preallocated numpy columns that double when full, so a tick only appends and
hands views to ``setData`` (the pyqtgraph scrolling-plot pattern); long curves are peak-downsampled
and clipped to the view.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PIL import Image
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QSlider,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from genstudio.core import events as ev
from genstudio.core.events import Event
from genstudio.core.imaging import samples_image, scatter_image
from genstudio.core.runs import Run, RunError, adds_to
from genstudio.core.timelapse import (
    animation_path,
    frame_label,
    logged_previews,
    loss_at,
    read_rgb,
    write_timelapse,
)
from genstudio.qt.panels.base import AppContext, Panel
from genstudio.qt.panels.views import SampleView, colour
from genstudio.qt.throttle import Throttle

AXIS_COLUMNS = ("step", "time")  # x-axis choices; never offered as curves
THUMB = 60  # px: filmstrip thumbnails (the strip shares the dock's height with the curves)
LIVE_SCATTER = 512  # px: a live 2-D preview is drawn this big, so it stays sharp in a large pane
SMOOTH_FROM = 200  # px: previews at least this big scale smoothly; smaller grids nearest (crisp pixels)
REDRAW_HZ = 4.0  # live curve redraws a second at most (events come ~30/s; painting holds the GIL)
X_AHEAD = 0.5  # the step axis reaches this fraction of the data's span past the newest point
Y_PAD = 0.15  # slack above and below the curves, so a new low moves the y axis only now and then


def sticky_range(cur: tuple[float, float], lo: float, hi: float, before: float, after: float
                 ) -> tuple[float, float] | None:
    """A new view range for data in [lo, hi], or None to keep ``cur``: kept while the data lies
    inside it and fills at least half of it, so the axes are regenerated a few times a run, not
    at every redraw. A new range has ``before`` / ``after`` of the data's span as slack."""
    span = hi - lo
    if lo >= cur[0] and hi <= cur[1] and span >= 0.5 * (cur[1] - cur[0]):
        return None
    span = span or abs(hi) or 1.0
    return lo - before * span, hi + after * span


def ema(y: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing):
    s_t = w s_{t-1} + (1 - w) y_t with s_{-1} = 0, divided by 1 - w^(t+1) so early points are not
    dragged towards zero. Vectorised in chunks short enough that w^-k cannot overflow: numpy
    only, since importing scipy.signal for lfilter in the GUI thread while a run trains stalls it."""
    y = np.asarray(y, dtype=np.float64)
    if weight <= 0 or y.size == 0:
        return y.copy()
    w = min(float(weight), 1.0 - 1e-12)
    chunk = int(min(4096, max(1, 200.0 / -math.log(w))))  # w^-chunk < e^200: far from float64's limit
    out = np.empty_like(y)
    s = 0.0
    for c in range(0, y.size, chunk):
        seg = y[c:c + chunk]
        j = np.arange(seg.size)
        # s_{c+j} = w^(j+1) s_{c-1} + (1 - w) w^j sum_{i<=j} w^-i y_{c+i}
        out[c:c + seg.size] = w ** (j + 1) * s + (1.0 - w) * w ** j * np.cumsum(seg * w ** -j)
        s = out[c + seg.size - 1]
    return out / (1.0 - w ** np.arange(1, y.size + 1))


class History:
    """One run's metric rows as growing numpy columns (NaN where a row lacks a metric)."""

    def __init__(self, capacity: int = 256) -> None:
        self.n = 0
        self.cap = capacity
        self.cols: dict[str, np.ndarray] = {}
        self.version = 0  # bumps on every change, so redraws can skip untouched curves

    @classmethod
    def from_rows(cls, rows: list[dict]) -> History:
        h = cls(max(256, 2 * len(rows)))
        for r in rows:
            h.append(r)
        return h

    def append(self, row: dict) -> None:
        step = row.get("step")
        if self.n and self._adds_to_last(row):  # the same step's other measurements (Run.metrics does so too)
            for k, v in row.items():
                if isinstance(v, numbers.Real) and not isinstance(v, bool):
                    self.cols.setdefault(k, np.full(self.cap, np.nan))[self.n - 1] = float(v)
            self.version += 1
            return
        if isinstance(step, numbers.Real) and self.n and "step" in self.cols:
            steps = self.cols["step"][: self.n]
            if steps[-1] >= step:  # a resume rewound: its rows supersede the old ones (as Run.metrics)
                self.n = int(np.searchsorted(steps, step, side="left"))
        if self.n == self.cap:
            self.cap *= 2
            for k, col in self.cols.items():
                grown = np.full(self.cap, np.nan)
                grown[: self.n] = col[: self.n]
                self.cols[k] = grown
        for col in self.cols.values():
            col[self.n] = np.nan
        for k, v in row.items():
            if isinstance(v, numbers.Real) and not isinstance(v, bool):
                col = self.cols.get(k)
                if col is None:
                    col = self.cols[k] = np.full(self.cap, np.nan)
                col[self.n] = float(v)
        self.n += 1
        self.version += 1

    def _adds_to_last(self, row: dict) -> bool:
        last = {k: v[self.n - 1] for k, v in self.cols.items() if np.isfinite(v[self.n - 1])}
        return adds_to(last, row)

    def column(self, name: str) -> np.ndarray:
        col = self.cols.get(name)
        return col[: self.n] if col is not None else np.full(self.n, np.nan)

    def last(self, name: str) -> float | None:
        col = self.column(name)
        ok = np.isfinite(col)
        return float(col[ok][-1]) if ok.any() else None

    def names(self) -> list[str]:
        return [k for k in self.cols if k not in AXIS_COLUMNS]


def short_id(run_id: str) -> str:
    """Run ids start with a timestamp; the legend only needs the rest."""
    m = re.match(r"^\d{8}-\d{6}-(.+)$", run_id)
    return m.group(1) if m else run_id


def _fmt_duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def thumbnail(img: np.ndarray | Path, size: int = THUMB) -> QPixmap:
    """A ``size`` px thumbnail of a preview (an array or its PNG): nearest when it is small (an
    8x8-digit grid), area-averaged when big (a scatter plot), aspect kept."""
    im = Image.fromarray(np.ascontiguousarray(img[..., :3])) if isinstance(img, np.ndarray) else \
        Image.open(img).convert("RGB")
    s = size / max(im.size)
    im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))),
                   Image.NEAREST if s >= 1 else Image.BOX)
    a = np.ascontiguousarray(np.asarray(im))
    return QPixmap.fromImage(QImage(a.data, a.shape[1], a.shape[0], 3 * a.shape[1], QImage.Format_RGB888).copy())


class Filmstrip(QAbstractListModel):
    """Every logged preview of what the monitor shows, one row per step. Thumbnails are made
    only when the view asks for a row it draws (uniform item sizes: rows out of sight cost
    nothing) and cached per (view, step), so hundreds of previews never stall the GUI."""

    def __init__(self, loss: Callable[[int], float | None]) -> None:
        super().__init__()
        self._loss = loss
        self._frames: dict[int, np.ndarray | Path] = {}
        self._steps: list[int] = []
        self._key: str | None = None
        self._cache: dict[tuple[str | None, int], QPixmap] = {}
        self.made = 0  # thumbnails made so far (a test checks that off-screen rows make none)
        self.item_size = QSize(THUMB + 34, THUMB + 40)  # the view's grid; set by the panel

    def set_frames(self, key: str | None, frames: dict[int, np.ndarray | Path]) -> None:
        """Show ``frames`` (step -> image) of view ``key``; new steps at the end are appended."""
        steps = sorted(frames)
        n = len(self._steps)
        if key == self._key and steps[:n] == self._steps and len(steps) > n:
            self.beginInsertRows(QModelIndex(), n, len(steps) - 1)
            self._frames, self._steps = frames, steps
            self.endInsertRows()
        elif key != self._key or steps != self._steps:
            self.beginResetModel()
            self._key, self._frames, self._steps = key, frames, steps
            self.endResetModel()
        self._frames = frames

    def clear_cache(self) -> None:
        self._cache.clear()

    def steps(self) -> list[int]:
        return list(self._steps)

    def labels_changed(self) -> None:
        """The run's metrics grew: captions of previews without a loss may now have one."""
        if self._steps:
            self.dataChanged.emit(self.index(0), self.index(len(self._steps) - 1), [Qt.DisplayRole])

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._steps)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.DisplayRole) -> object:
        if not index.isValid() or index.row() >= len(self._steps):
            return None
        step = self._steps[index.row()]
        if role == Qt.DisplayRole:
            loss = self._loss(step)
            return f"step {step:,}\nloss {loss:.4g}" if loss is not None else f"step {step:,}"
        if role == Qt.ToolTipRole:
            return frame_label(step, self._loss(step)) + " (click to show it big)"
        if role == Qt.DecorationRole:
            key = (self._key, step)
            pix = self._cache.get(key)
            if pix is None:
                try:
                    pix = thumbnail(self._frames[step])
                except (OSError, ValueError):
                    pix = QPixmap(THUMB, THUMB)
                    pix.fill(Qt.darkGray)
                self._cache[key] = pix
                self.made += 1
            return pix
        if role == Qt.SizeHintRole:  # one size for all: a first caption without a loss must not narrow the rest
            return self.item_size
        if role == Qt.UserRole:
            return step
        return None


class TrainingPanel(Panel):
    panel_id = "training"
    area = "top"
    order = 10
    tools = ("views",)
    title = "Training monitor"

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._run: Run | None = None
        self._histories: dict[str, History] = {}
        self._live: set[str] = set()  # runs whose history came (partly) from events: keep them
        self._pinned: list[str] = []
        self._checked: set[str] = {"loss"}
        self._curves: dict[tuple[str, str], tuple[pg.PlotDataItem, pg.PlotDataItem, tuple]] = {}
        self._drawn: dict[tuple[str, str], tuple] = {}
        self._samples: dict[int, np.ndarray | Path] = {}
        self._preview_cost: dict[int, tuple[float, int | None]] = {}  # step -> (seconds, sampling steps)
        self._views: dict[str, dict[int, np.ndarray | Path]] = {}  # view name -> step -> image
        self._total_steps: int | None = None
        self._status = ""
        self._follow = True  # the view fits the curves until the user pans or zooms ("A" fits again)
        self._extent: list[tuple[np.ndarray, np.ndarray]] = []  # what the last redraw plotted
        self.redraws = Throttle(self._live_redraw, REDRAW_HZ, lambda: self.on_screen, self)
        self._build()

    # -- UI ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.smoothing = QSlider(Qt.Horizontal)
        self.smoothing.setRange(0, 999)
        self.smoothing.setValue(600)
        self.smoothing.setPageStep(50)
        self.smoothing.setFixedWidth(110)
        self.smoothing.setToolTip("EMA weight; the raw curve stays faint behind the smoothed one")
        self.smoothing_label = QLabel()
        self.smoothing_label.setMinimumWidth(32)
        self.log_x = QCheckBox("log x")
        self.log_y = QCheckBox("log y")
        self.x_axis = QComboBox()
        self.x_axis.addItem("step", "step")
        self.x_axis.addItem("wall time", "time")
        self.pin = QToolButton(text="Pin run", checkable=True)
        self.pin.setToolTip("Keep this run's curves on the plot (in other colours) when another run is selected")
        self.unpin = QToolButton(text="Unpin all")
        self.throughput = QLabel("no run")
        self.throughput.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.throughput.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.throughput.setAlignment(Qt.AlignRight | Qt.AlignVCenter)

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addWidget(QLabel("Smoothing"))
        bar.addWidget(self.smoothing)
        bar.addWidget(self.smoothing_label)
        bar.addSpacing(8)
        bar.addWidget(self.log_x)
        bar.addWidget(self.log_y)
        bar.addSpacing(8)
        bar.addWidget(QLabel("x axis"))
        bar.addWidget(self.x_axis)
        bar.addSpacing(8)
        bar.addWidget(self.pin)
        bar.addWidget(self.unpin)
        bar.addWidget(self.throughput, 1)

        self.metric_list = QListWidget()
        self.metric_list.setToolTip("Metrics to plot")
        self.metric_list.setMaximumWidth(180)
        self.plot = pg.PlotWidget()
        self.plot_item: pg.PlotItem = self.plot.getPlotItem()
        self.plot_item.showGrid(x=True, y=True, alpha=0.2)
        self.plot_item.setLabel("bottom", "step")
        self.legend = self.plot_item.addLegend(offset=(-10, 10))
        self.plot_item.setMenuEnabled(True)
        vb = self.plot_item.getViewBox()
        vb.disableAutoRange()  # pyqtgraph's auto-range re-fits (and re-ticks the axes) at every setData
        for side in ("left", "bottom"):  # an axis (its grid spans the plot) repaints from a pixmap until
            # its ticks change: its labels were ~2 ms of each 4-per-second redraw while a run trains
            self.plot_item.getAxis(side).setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        vb.sigRangeChangedManually.connect(self._user_moved_view)
        self.plot_item.autoBtn.clicked.connect(self._fit_again)

        samples = QWidget()
        sl = QVBoxLayout(samples)
        sl.setContentsMargins(0, 0, 0, 0)
        self.sample_canvas = pg.GraphicsLayoutWidget()
        self.sample_canvas.setMinimumSize(160, 120)
        self.sample_canvas.ci.setContentsMargins(2, 2, 2, 2)  # every pixel of the pane for the preview
        self.sample_view = SampleView("Samples")
        self.sample_canvas.addItem(self.sample_view)
        self.sample_slider = QSlider(Qt.Horizontal)
        self.sample_slider.setEnabled(False)
        self.sample_label = QLabel("no samples yet")
        self.view_combo = QComboBox()
        self.view_combo.setToolTip("Show the logged samples or one of the model's own views")
        self.view_combo.addItem("Samples", None)
        self.view_combo.setEnabled(False)
        self.export_button = QToolButton(text="Time-lapse…")
        self.export_button.setToolTip("Export every logged preview of what is shown as a GIF or MP4, each "
                                      "frame labelled with its step and loss")
        self.export_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.view_combo)
        row.addWidget(self.sample_slider, 1)
        row.addWidget(self.sample_label)
        row.addWidget(self.export_button)
        sl.addWidget(self.sample_canvas, 1)
        sl.addLayout(row)

        self.filmstrip_model = Filmstrip(self._loss_at)
        self.filmstrip = QListView()
        self.filmstrip.setObjectName("filmstrip")
        self.filmstrip.setModel(self.filmstrip_model)
        self.filmstrip.setViewMode(QListView.IconMode)
        self.filmstrip.setFlow(QListView.LeftToRight)
        self.filmstrip.setWrapping(False)
        self.filmstrip.setWordWrap(True)  # two caption lines: step, loss
        self.filmstrip.setMovement(QListView.Static)
        self.filmstrip.setUniformItemSizes(True)  # rows out of sight are never asked for their thumbnail
        self.filmstrip.setIconSize(QSize(THUMB, THUMB))
        font = self.filmstrip.font()
        font.setPointSizeF(font.pointSizeF() * 0.85)
        self.filmstrip.setFont(font)
        caption = 2 * self.filmstrip.fontMetrics().lineSpacing() + 14
        self.filmstrip_model.item_size = QSize(THUMB + 34, THUMB + caption)
        self.filmstrip.setGridSize(self.filmstrip_model.item_size)
        self.filmstrip.setHorizontalScrollMode(QListView.ScrollPerPixel)
        self.filmstrip.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.filmstrip.setFixedHeight(THUMB + caption + 18)  # whole thumbnails, captions and a scroll bar
        self.filmstrip.setToolTip("Every logged preview with its step and loss; click one to show it big")

        curves = QWidget()  # the filmstrip under the curves: the preview keeps the dock's full height
        cl = QVBoxLayout(curves)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(2)
        self.plot.setMinimumHeight(40)  # with the filmstrip under it the dock must still fit a 880 px window
        cl.addWidget(self.plot, 1)
        cl.addWidget(self.filmstrip)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.metric_list)
        split.addWidget(curves)
        split.addWidget(samples)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 1)  # the preview grows with the dock as much as the curves
        split.setSizes([120, 560, 480])
        split.setCollapsible(2, False)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(bar)
        lay.addWidget(split, 1)

        self.smoothing.valueChanged.connect(self._settings_changed)
        self.x_axis.currentIndexChanged.connect(self._settings_changed)
        self.log_x.toggled.connect(self._log_changed)
        self.log_y.toggled.connect(self._log_changed)
        self.metric_list.itemChanged.connect(self._metric_toggled)
        self.pin.toggled.connect(self._pin_toggled)
        self.unpin.clicked.connect(self.unpin_all)
        self.sample_slider.valueChanged.connect(self._show_sample_index)
        self.view_combo.currentIndexChanged.connect(self._view_changed)
        self.filmstrip.clicked.connect(self._filmstrip_clicked)
        self.export_button.clicked.connect(self._export_clicked)
        self._settings_changed()

    @property
    def smoothing_weight(self) -> float:
        return self.smoothing.value() / 1000.0

    def _settings_changed(self, *_: object) -> None:
        self.smoothing_label.setText(f"{self.smoothing_weight:.2f}")
        self.plot_item.setLabel("bottom", "step" if self.x_axis.currentData() == "step" else "wall time (s)")
        self._redraw()
        self._fit_view(force=True)

    def _log_changed(self, *_: object) -> None:
        self.plot_item.setLogMode(x=self.log_x.isChecked(), y=self.log_y.isChecked())
        self._fit_view(force=True)

    def _user_moved_view(self, *_: object) -> None:
        self._follow = False

    def _fit_again(self) -> None:
        """The plot's "A" button: follow the curves again (with our slack, not pyqtgraph's re-fit)."""
        self._follow = True
        self.plot_item.getViewBox().disableAutoRange()
        self._fit_view(force=True)

    def _fit_view(self, force: bool = False) -> None:
        """Fit the view to the plotted curves (in view units: log10 on log axes) with slack."""
        if not self._follow or not self._extent:
            return
        logs = (self.log_x.isChecked(), self.log_y.isChecked())
        vb = self.plot_item.getViewBox()
        cur = vb.viewRange()
        new: dict[str, tuple[float, float]] = {}
        for ax, (name, before, after) in enumerate((("xRange", 0.02, X_AHEAD), ("yRange", Y_PAD, Y_PAD))):
            vals = [v[ax] for v in self._extent if v[ax].size]
            if not vals:
                continue
            v = np.concatenate(vals)
            if logs[ax]:
                v = np.log10(v[v > 0])
            if not v.size:
                continue
            keep = (np.inf, -np.inf) if force else tuple(cur[ax])  # an empty range: always refit
            r = sticky_range(keep, float(v.min()), float(v.max()), before, after)
            if r is not None:
                new[name] = r
        if new:
            vb.setRange(**new, padding=0)

    def screen_changed(self, visible: bool) -> None:
        if visible:
            self.redraws.flush()  # what arrived while it was out of sight, drawn once

    def _metric_toggled(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.UserRole)
        if item.checkState() == Qt.Checked:
            self._checked.add(name)
        else:
            self._checked.discard(name)
        self._redraw()

    def _pin_toggled(self, on: bool) -> None:
        if self._run is None:
            return
        if on and self._run.id not in self._pinned:
            self._pinned.append(self._run.id)
        elif not on and self._run.id in self._pinned:
            self._pinned.remove(self._run.id)
        self._redraw()

    # -- public API -------------------------------------------------------------------------
    def set_run(self, run: Run | None) -> None:
        self._run = run
        self._steering: list[dict] = []  # the run's live-setting changes: markers on the chart
        if run is not None:
            try:
                self._steering = list(run.info().get("steering") or [])
            except RunError:
                pass
        self._samples = {}
        self._views = {}
        self._preview_cost = {}
        self._total_steps = None
        self._status = ""
        self.filmstrip_model.clear_cache()  # thumbnails are keyed by step: another run's must go
        self.filmstrip_model.set_frames(None, {})
        if run is not None:
            self._load_history(run)
            self._load_samples(run)
        keep = set(self._pinned) | self._live | ({run.id} if run else set())
        self._histories = {k: v for k, v in self._histories.items() if k in keep}
        self.pin.blockSignals(True)
        self.pin.setChecked(run is not None and run.id in self._pinned)
        self.pin.setEnabled(run is not None)
        self.pin.blockSignals(False)
        self._refresh_samples(follow=True)
        self._follow = True  # another run: fit its curves
        self._redraw()
        self._fit_view(force=True)

    def pin_run(self, run_id: str | None = None) -> None:
        """Keep ``run_id`` (default: the current run) overlaid when the selection changes."""
        rid = run_id or (self._run.id if self._run else None)
        if rid and rid not in self._pinned:
            self._pinned.append(rid)
            if self._run and rid == self._run.id:
                self.pin.setChecked(True)
            self._redraw()

    def unpin_all(self) -> None:
        self._pinned.clear()
        self.pin.blockSignals(True)
        self.pin.setChecked(False)
        self.pin.blockSignals(False)
        self._redraw()

    def set_metric_checked(self, name: str, on: bool = True) -> None:
        self._sync_metric_list()
        for i in range(self.metric_list.count()):
            item = self.metric_list.item(i)
            if item.data(Qt.UserRole) == name:
                item.setCheckState(Qt.Checked if on else Qt.Unchecked)
                return
        raise KeyError(f"no metric {name!r}")

    def metric_names(self) -> list[str]:
        return [self.metric_list.item(i).data(Qt.UserRole) for i in range(self.metric_list.count())]

    def displayed_runs(self) -> list[str]:
        """Pinned runs first (stable colours), then the current run."""
        out = list(self._pinned)
        if self._run is not None and self._run.id not in out:
            out.append(self._run.id)
        return out

    def curve_points(self, name: str, run_id: str | None = None, smoothed: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) of a curve as drawn (raw or EMA), in data units (before any log mapping);
        a redraw the throttle holds back is drawn first."""
        self.redraws.flush()
        rid = run_id or (self._run.id if self._run else None)
        entry = self._curves.get((rid, name))
        if entry is not None:
            item = entry[1] if smoothed else entry[0]
            x, y = item.xData, item.yData
            if x is None:
                return np.empty(0), np.empty(0)
            return np.asarray(x), np.asarray(y)
        if rid not in self._histories:
            raise KeyError(f"no history for run {rid!r}")
        x, y = self._xy(self._histories[rid], name)
        return x, (ema(y, self.smoothing_weight) if smoothed else y)

    def preview_cost_text(self, step: int) -> str:
        """" · preview 0.12 s (50 steps)" for a preview logged live, '' otherwise: what it cost the run."""
        cost = self._preview_cost.get(step)
        if cost is None:
            return ""
        return f" · preview {cost[0]:.2f} s" + (f" ({cost[1]} steps)" if cost[1] else "")

    def sample_steps(self) -> list[int]:
        return sorted(self._samples)

    def show_sample_step(self, step: int) -> None:
        """Move the slider to ``step`` of what is shown (samples or the current view)."""
        self.sample_slider.setValue(sorted(self._frames()).index(step))

    def view_names(self) -> list[str]:
        """Model views logged for the current run (the combo's entries after "Samples")."""
        return sorted(self._views)

    def show_view(self, name: str | None) -> None:
        """Show view ``name`` under the step slider; None shows the samples."""
        i = self.view_combo.findData(name)
        if i < 0:
            raise KeyError(f"no view {name!r}")
        self.view_combo.setCurrentIndex(i)

    # -- events -----------------------------------------------------------------------------
    def on_events(self, events: list[Event]) -> None:
        changed = samples_changed = False
        current = self._run.id if self._run else None
        for e in events:
            if e.kind == ev.METRICS:
                self._histories.setdefault(e.run_id, History()).append(e.data)
                self._live.add(e.run_id)
                changed = True
            elif e.run_id != current:
                continue
            elif e.kind == ev.SAMPLES:
                x = e.data.get("x")
                path = e.data.get("path")
                if x is not None:
                    try:
                        self._samples[int(e.data["step"])] = (
                            scatter_image(x, size=LIVE_SCATTER) if x.dim() == 2 and x.shape[1] == 2
                            else samples_image(x))
                    except ValueError:  # a shape we cannot draw; the PNG may still exist
                        if path:
                            self._samples[int(e.data["step"])] = Path(path)
                elif path:
                    self._samples[int(e.data["step"])] = Path(path)
                for name, img in (e.data.get("views") or {}).items():
                    self._views.setdefault(str(name), {})[int(e.data["step"])] = np.asarray(img)
                if isinstance(e.data.get("seconds"), (int, float)):
                    self._preview_cost[int(e.data["step"])] = (float(e.data["seconds"]), e.data.get("sample_steps"))
                samples_changed = True
            elif e.kind == ev.STATUS:
                self._status = str(e.data.get("status", ""))
                changed = True
            elif e.kind == ev.STAGE and "preview" in str(e.data.get("stage", "")):
                self._drawing = int(e.data.get("step", 0))  # the job samples a preview now: say so
            elif e.kind == ev.RESULT and "timelapse" in e.data:
                self.export_button.setEnabled(bool(self._frames()))
                if e.data["timelapse"]:
                    self.ctx.status_message(f"wrote {e.data['timelapse']}")
            elif e.kind == ev.STEERED:
                self._steering.append({"step": int(e.data["step"]), "changes": dict(e.data["changes"])})
                changed = True
        if samples_changed:
            self._drawing = None
            self._refresh_samples(follow=self.sample_slider.value() >= self.sample_slider.maximum())
        if changed:
            self.redraws.request()  # a few times a second at most, never while out of sight
        if getattr(self, "_drawing", None) is not None:
            self.sample_label.setText(f"drawing the preview of step {self._drawing:,}…")

    # -- loading ----------------------------------------------------------------------------
    def _load_history(self, run: Run) -> None:
        """Disk rows, then any rows that only arrived as events (the trainer flushes in batches)."""
        try:
            rows = run.metrics()
            info = run.info()
            self._total_steps = int(info.get("steps", 0)) or None
            self._status = str(info.get("status", ""))
        except RunError:
            rows = []
        live = self._histories.get(run.id)
        h = History.from_rows(rows)
        if live is not None and live.n:
            last = h.last("step")
            steps = live.column("step")
            for i in range(live.n):
                if last is None or steps[i] > last:
                    h.append({k: float(c[i]) for k, c in live.cols.items() if np.isfinite(c[i])})
        self._histories[run.id] = h

    def _load_samples(self, run: Run) -> None:
        samples, views = logged_previews(run.sample_dir())
        self._samples.update(samples)
        for name, frames in views.items():
            self._views.setdefault(name, {}).update(frames)

    def _loss_at(self, step: int) -> float | None:
        """The selected run's loss logged at (or last before) ``step``: the filmstrip's captions."""
        h = self._histories.get(self._run.id) if self._run else None
        return loss_at(h.column("step"), h.column("loss"), step) if h is not None and "loss" in h.cols else None

    # -- drawing ----------------------------------------------------------------------------
    def _xy(self, h: History, name: str) -> tuple[np.ndarray, np.ndarray]:
        x = h.column(self.x_axis.currentData() or "step")
        y = h.column(name)
        ok = np.isfinite(x) & np.isfinite(y)
        return x[ok], y[ok]

    def _sync_metric_list(self) -> None:
        names: list[str] = []
        for rid in self.displayed_runs():
            h = self._histories.get(rid)
            for k in h.names() if h else ():
                if k not in names:
                    names.append(k)
        names.sort(key=lambda k: (k != "loss", k == "steps_per_s"))  # loss first, throughput last
        if names == self.metric_names():
            return
        self.metric_list.blockSignals(True)
        self.metric_list.clear()
        for k in names:
            item = QListWidgetItem(k)
            item.setData(Qt.UserRole, k)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if k in self._checked else Qt.Unchecked)
            self.metric_list.addItem(item)
        self.metric_list.blockSignals(False)

    def _redraw(self) -> None:
        self._sync_metric_list()
        runs = self.displayed_runs()
        metrics = [k for k in self.metric_names() if k in self._checked]
        want: dict[tuple[str, str], tuple] = {}
        for rid in runs:
            h = self._histories.get(rid)
            for name in metrics:
                if h is not None and name in h.cols:
                    label = name if len(runs) == 1 else f"{name} · {short_id(rid)}"
                    dashed = self._run is None or rid != self._run.id  # overlaid runs: dashed
                    want[(rid, name)] = (label, len(want), dashed)
        for key in list(self._curves):
            if key not in want or self._curves[key][2] != want[key]:
                raw, smooth, _ = self._curves.pop(key)
                self.plot_item.removeItem(raw)
                self.plot_item.removeItem(smooth)
                self._drawn.pop(key, None)
        w = self.smoothing_weight
        xmode = self.x_axis.currentData()
        for key, (label, idx, dashed) in want.items():
            if key not in self._curves:
                style = Qt.DashLine if dashed else Qt.SolidLine
                raw = self._new_curve(pg.mkPen(colour(idx, 80), width=1), None)
                smooth = self._new_curve(pg.mkPen(colour(idx), width=2, style=style), label)
                self._curves[key] = (raw, smooth, want[key])
            raw, smooth, _ = self._curves[key]
            h = self._histories[key[0]]
            stamp = (h.version, w, xmode)
            if self._drawn.get(key) == stamp:
                continue
            x, y = self._xy(h, key[1])
            raw.setData(x, y, skipFiniteCheck=True)
            smooth.setData(x, ema(y, w), skipFiniteCheck=True)
            raw.setVisible(w > 0)  # without smoothing the "smoothed" curve is the raw one
            self._drawn[key] = stamp
        self._extent = [(c[0].xData, c[0].yData) for c in self._curves.values() if c[0].xData is not None]
        self._fit_view()
        self._draw_steering()
        self._update_throughput()

    def _live_redraw(self) -> None:
        """What new events change: curves, axes (only when the data leaves the view), captions."""
        self._redraw()
        self.filmstrip_model.labels_changed()

    def steering_labels(self) -> list[str]:
        """The markers' texts, e.g. "lr 0.001 → 0.0005 @ 600" (tests and screenshots read them)."""
        return [", ".join(f"{k} {a:g} → {b:g}" if isinstance(a, (int, float)) and isinstance(b, (int, float))
                          else f"{k} {a} → {b}" for k, (a, b) in m["changes"].items()) + f" @ {m['step']}"
                for m in getattr(self, "_steering", [])]

    def _draw_steering(self) -> None:
        """A dashed vertical line per live-setting change of the selected run, labelled with it
        (at its step; on the wall-time axis the markers are left out: no time is recorded)."""
        for line in getattr(self, "_steer_lines", []):
            self.plot_item.removeItem(line)
        self._steer_lines = []
        if self.x_axis.currentData() != "step":
            return
        for m, text in zip(getattr(self, "_steering", []), self.steering_labels(), strict=True):
            x = float(m["step"])
            line = pg.InfiniteLine(pos=np.log10(x) if self.log_x.isChecked() and x > 0 else x, angle=90,
                                   pen=pg.mkPen("#e0a030", width=1, style=Qt.DashLine), label=text,
                                   labelOpts={"position": 0.95, "color": "#e0a030", "anchors": [(0, 0), (0, 0)],
                                              "fill": (20, 22, 28, 200)})
            self.plot_item.addItem(line, ignoreBounds=True)
            self._steer_lines.append(line)

    def _new_curve(self, pen: object, name: str | None) -> pg.PlotDataItem:
        item = pg.PlotDataItem(pen=pen, name=name)
        item.setDownsampling(auto=True, method="peak")
        item.setClipToView(True)
        item.setLogMode(self.log_x.isChecked(), self.log_y.isChecked())
        self.plot_item.addItem(item)
        return item

    def _update_throughput(self) -> None:
        h = self._histories.get(self._run.id) if self._run else None
        if self._run is None:
            self.throughput.setText("no run selected")
            return
        if h is None or not h.n:
            self.throughput.setText(f"{self._status or 'no metrics yet'}")
            return
        step = h.last("step")
        rate = h.last("steps_per_s")
        parts = [f"step {int(step):,}" + (f" / {self._total_steps:,}" if self._total_steps else "")]
        if rate:
            parts.append(f"{rate:.1f} steps/s")
            if self._total_steps and self._status == "running" and step < self._total_steps:
                parts.append(f"ETA {_fmt_duration((self._total_steps - step) / rate)}")
        if self._status and self._status != "running":
            parts.append(self._status)
        self.throughput.setText(" · ".join(parts))

    # -- sample grids -------------------------------------------------------------------------
    def _frames(self) -> dict[int, np.ndarray | Path]:
        """step -> image of what the combo selects (the samples, or one model view)."""
        name = self.view_combo.currentData()
        return self._samples if name is None else self._views.get(name, {})

    def _sync_view_combo(self) -> None:
        names = self.view_names()
        have = [self.view_combo.itemData(i) for i in range(1, self.view_combo.count())]
        if names != have:
            current = self.view_combo.currentData()
            self.view_combo.blockSignals(True)
            while self.view_combo.count() > 1:
                self.view_combo.removeItem(1)
            for n in names:
                self.view_combo.addItem(n.replace("_", " ").capitalize(), n)
            self.view_combo.setCurrentIndex(max(0, self.view_combo.findData(current)))
            self.view_combo.blockSignals(False)
        self.view_combo.setEnabled(bool(names))

    def _view_changed(self, *_: object) -> None:
        self._refresh_samples(follow=True)

    def _refresh_samples(self, follow: bool) -> None:
        self._sync_view_combo()
        self.sample_view.setTitle(self.view_combo.currentText())
        frames = self._frames()
        steps = sorted(frames)
        self.filmstrip_model.set_frames(self.view_combo.currentData(), frames)
        self.export_button.setEnabled(bool(steps) and not self.ctx.job_running("timelapse"))
        self.sample_slider.blockSignals(True)
        self.sample_slider.setEnabled(len(steps) > 1)
        self.sample_slider.setRange(0, max(0, len(steps) - 1))
        if follow:
            self.sample_slider.setValue(len(steps) - 1)
        self.sample_slider.blockSignals(False)
        if steps:
            self._show_sample_index(self.sample_slider.value())
        else:
            self.sample_view.clear_content()
            self.sample_label.setText("no samples yet" if self.view_combo.currentData() is None else "no views yet")

    def _show_sample_index(self, i: int) -> None:
        frames = self._frames()
        steps = sorted(frames)
        if not steps:
            return
        i = max(0, min(i, len(steps) - 1))
        step = steps[i]
        img = frames[step]
        if isinstance(img, Path):
            try:
                img = read_rgb(img)
            except OSError:
                self.sample_label.setText(f"step {step:,}: unreadable image")
                return
            frames[step] = img
        # big previews (scatter plots) scale smoothly; small grids nearest, each pixel a crisp block
        self.sample_canvas.setRenderHint(QPainter.SmoothPixmapTransform, min(img.shape[:2]) >= SMOOTH_FROM)
        self.sample_view.show_image(img)
        self.sample_label.setText(f"step {step:,}" + self.preview_cost_text(step))
        index = self.filmstrip_model.index(i)
        if self.filmstrip.currentIndex() != index:
            self.filmstrip.setCurrentIndex(index)
            self.filmstrip.scrollTo(index)

    def _filmstrip_clicked(self, index: QModelIndex) -> None:
        self.sample_slider.setValue(index.row())

    # -- big preview, filmstrip, time-lapse -------------------------------------------------------
    def preview_display_size(self) -> tuple[float, float]:
        """(width, height) in screen px of the preview as drawn now (0, 0 with none)."""
        item = self.sample_view.image
        if item.image is None or not item.isVisible():
            return 0.0, 0.0
        vb = self.sample_view.getViewBox()
        rect = vb.mapViewToDevice(item.mapRectToView(QRectF(item.boundingRect()))).boundingRect()
        return float(rect.width()), float(rect.height())

    def filmstrip_steps(self) -> list[int]:
        return self.filmstrip_model.steps()

    def filmstrip_label(self, step: int) -> str:
        return str(self.filmstrip_model.data(self.filmstrip_model.index(self.filmstrip_steps().index(step))))

    def export_timelapse(self, path: str | Path, fps: float = 4.0):
        """Write what the monitor shows (samples or the selected view), every logged preview, as a
        GIF/MP4 time-lapse in a worker job (a RESULT event says when it is written)."""
        run, view = self._run, self.view_combo.currentData()
        if run is None:
            raise RuntimeError("select a run first")
        path = animation_path(path)  # a bad suffix is said here, not by a failed job
        bus = self.ctx.bus

        def job(control):
            out = None
            try:
                out = write_timelapse(run.sample_dir(), run.metrics(), path, fps=fps, view=view,
                                      progress=lambda *_: control.check())
                yield out
            finally:  # written or not, the button comes back (a failure is the window's error dialog)
                bus.emit(ev.RESULT, run.id, timelapse=str(out) if out else None)

        self.export_button.setEnabled(False)
        return self.ctx.start_job("timelapse", run, job)

    def _export_clicked(self) -> None:
        if self._run is None:
            return
        default = str(self._run.sample_dir() / f"timelapse_{self.view_combo.currentData() or 'samples'}.gif")
        path, chosen = QFileDialog.getSaveFileName(self, "Export time-lapse", default, "GIF (*.gif);;MP4 (*.mp4)")
        if path and not Path(path).suffix:
            path += ".mp4" if "mp4" in chosen else ".gif"
        if path:
            try:
                self.export_timelapse(path)
            except (RuntimeError, ValueError) as e:
                self.export_button.setEnabled(True)
                self.ctx.show_error(f"Time-lapse failed: {e}")
