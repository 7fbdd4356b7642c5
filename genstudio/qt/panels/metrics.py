"""Metric dashboard: evaluate runs, compare them in a sortable table with intervals, follow a metric
over training checkpoints, and scatter any two metrics across runs (quality vs NFE, NLL vs time).

The panel only reads eval records from the run folders (``genstudio.core.eval.load_evals``) and
starts the eval job through the window; every number it shows names the feature extractor that
produced it, because an FCD on one classifier is not comparable with one on another (nor with FID).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from genstudio.core import events as ev
from genstudio.core.eval import (
    METRIC_INFO,
    METRIC_RANGE,
    clip_to_range,
    evaluate,
    evaluate_checkpoints,
    format_value,
    load_evals,
)
from genstudio.core.events import Event
from genstudio.core.runs import Run, RunError
from genstudio.qt.panels.base import AppContext, Panel
from genstudio.qt.panels.views import colour

FIXED_COLUMNS = ("Run", "Plugin", "Dataset", "Step", "n")
NOT_FEATURES = {"model", "timer", "plugin", ""}  # extractor tags that are not feature networks
SORT_ROLE = Qt.UserRole + 1


def short_id(run_id: str) -> str:
    """``20240101-120000-ddpm-digits-ab12`` -> ``ddpm-digits-ab12`` (the timestamp is in the tooltip)."""
    parts = run_id.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[0].isdigit() else run_id


def metric_header(name: str) -> str:
    better = METRIC_INFO.get(name, ("", ""))[1]
    return name + {"lower": " ↓", "higher": " ↑"}.get(better, "")


def ordered_metrics(names: set[str]) -> list[str]:
    known = [m for m in METRIC_INFO if m in names]
    return known + sorted(names - set(known))


def tick_label(v: float, spacing: float) -> str:
    """A tick label with the decimals the tick spacing needs, so neighbouring ticks always differ:
    ``1.076`` not ``1.0761389279996``, ``0.0012`` not ``1.2 ×0.001``, ``2.5e+05`` for big numbers."""
    if not math.isfinite(v):
        return ""
    if spacing > 0 and abs(v) < 0.5 * spacing:
        return "0"
    big = max(abs(v), spacing)
    if big >= 1e5 or big < 1e-3:
        return f"{v:.3g}"
    decimals = 3
    if spacing > 0:  # enough decimals to tell ticks apart (a spacing of 2.5 needs one)
        decimals = max(0, -math.floor(math.log10(spacing)))
        while decimals < 8 and abs(round(spacing, decimals) - spacing) > 1e-6 * spacing:
            decimals += 1
    return f"{v:.{decimals}f}"  # never fewer: a narrow range far from 0 (1499.6 … 1500.4) must not read 1500 1500


class ReadableAxis(pg.AxisItem):
    """An axis with plain tick numbers: no auto SI prefix (no "945 ×0.001"), ~4 significant digits."""

    def __init__(self, orientation: str, **kw: Any) -> None:
        super().__init__(orientation, **kw)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [tick_label(float(v) * scale, float(spacing) * scale) for v in values]


def _plot_widget() -> pg.PlotWidget:
    return pg.PlotWidget(axisItems={"left": ReadableAxis("left"), "bottom": ReadableAxis("bottom")})


def metric_range_text(name: str) -> str:
    lo, hi = METRIC_RANGE.get(name, (None, None))
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f"≥ {lo:g}"
    return f"in [{lo:g}, {hi:g}]"


def metric_reference(e: dict[str, Any]) -> float | None:
    """The real-vs-real floor stored with a distance (fcd, kid, energy, ...; None when the record has none)."""
    r = e.get("reference")
    return float(r) if isinstance(r, (int, float)) and math.isfinite(r) else None


def header_tooltip(name: str, refs: list[float] | None = None) -> str:
    """What a metric column means and what is good: direction, valid range, reference values."""
    label, better = METRIC_INFO.get(name, (name, ""))
    lines = [label]
    if better:
        lines.append(f"{better.capitalize()} is better" + {"lower": " (↓)", "higher": " (↑)"}[better] + ".")
    rng = metric_range_text(name)
    if rng:
        lines.append(f"Valid range {rng}: intervals are shown clipped to it (the stored record keeps the raw ones).")
    if refs:
        lo, hi = min(refs), max(refs)
        val = f"{lo:.3g}" if math.isclose(lo, hi, rel_tol=1e-3) else f"{lo:.3g}–{hi:.3g}"
        if better == "higher":  # a coverage-like score: the real data's own value is the ceiling
            lines.append(f"The real data's own value at this n: {val}. A perfect model scores about this.")
        else:
            lines.append("Real-vs-real floor (two disjoint draws of the data; each cell's tooltip says at which n): "
                         f"{val}. "
                         "A perfect model scores about this; values near it are at noise level.")
    elif name in ("fcd", "fid", "kid", "energy", "mmd", "w2", "w1", "sliced"):
        lines.append("0 = identical distributions; finite n keeps it above 0 even for a perfect model.")
    elif name in ("precision", "recall", "accuracy"):
        lines.append("1 = perfect.")
    return "\n".join(lines)


class _Item(QTableWidgetItem):
    """A cell that sorts by its numeric value (missing values last) instead of its text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if a is None or b is None:
            if a is None and b is None:
                return self.text() < other.text()
            return b is None  # values before blanks, whichever way the column sorts
        return a < b


class MetricsPanel(Panel):
    panel_id = "metrics"
    area = "tab:sampler"
    order = 50
    tools = ("eval",)
    title = "Metrics"

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._run: Run | None = None
        self._records: dict[str, list[dict[str, Any]]] = {}  # run id -> its evals by (step, time)
        self._runs: dict[str, Run] = {}
        self._metrics: list[str] = []

        # -- controls ------------------------------------------------------------------------
        self.eval_button = QPushButton("Evaluate")
        self.eval_button.setToolTip("Sample from the selected run and compute the metrics (in the worker)")
        self.eval_button.clicked.connect(self.evaluate_selected)
        self.metrics_edit = QLineEdit()
        self.metrics_edit.setPlaceholderText("metrics: default (images fcd,kid,is,pr · 2-D energy,mmd,w2,pr)")
        self.metrics_edit.setToolTip("Comma-separated: fcd, fid (needs Inception weights), kid, is, pr, accuracy, nll "
                                     "for images; energy, mmd, w2, pr, nll for 2-D data")
        self.n_spin = QSpinBox()
        self.n_spin.setRange(16, 50_000)
        self.n_spin.setValue(1000)
        self.n_spin.setPrefix("n = ")
        self.n_spin.setToolTip("Samples compared with as many reference points (Fréchet distances are only "
                               "comparable at equal n)")
        self.all_checkpoints = QCheckBox("all checkpoints")
        self.all_checkpoints.setToolTip("Evaluate every stored checkpoint (the chart over training)")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.clicked.connect(self._ask_csv)
        self.png_button = QPushButton("Export PNG…")
        self.png_button.clicked.connect(self._ask_png)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        top = QHBoxLayout()
        for w in (self.eval_button, self.metrics_edit, self.n_spin, self.all_checkpoints, self.progress):
            top.addWidget(w)
        top.setStretch(1, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.csv_button)
        top.addWidget(self.png_button)

        # -- table ---------------------------------------------------------------------------
        self.table = QTableWidget(0, len(FIXED_COLUMNS))
        self.table.setObjectName("metrics_table")
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setMinimumHeight(110)  # header + two rows of value/extractor text at the least
        self.table.setSortingEnabled(True)
        self.table.itemSelectionChanged.connect(self._row_selected)

        # -- charts --------------------------------------------------------------------------
        self.curve_combo = QComboBox()
        self.curve_combo.setToolTip("Metric to follow over training checkpoints")
        self.curve_combo.currentIndexChanged.connect(self._draw_curve)
        self.curve_plot = _plot_widget()
        self.curve_plot.showGrid(x=True, y=True, alpha=0.2)
        self.curve_plot.setLabel("bottom", "training step")
        self.curve_legend = self.curve_plot.addLegend(offset=(-10, 10), labelTextColor=(200, 200, 200))
        self.x_combo, self.y_combo = QComboBox(), QComboBox()
        self.x_combo.setToolTip("x axis: metric across runs (latest eval of each)")
        self.y_combo.setToolTip("y axis: metric across runs (latest eval of each)")
        self.x_combo.currentIndexChanged.connect(self._draw_scatter)
        self.y_combo.currentIndexChanged.connect(self._draw_scatter)
        self.scatter_plot = _plot_widget()
        self.scatter_plot.showGrid(x=True, y=True, alpha=0.2)
        self.scatter_plot.getPlotItem().getViewBox().setDefaultPadding(0.08)
        self.scatter_legend = self.scatter_plot.addLegend(offset=(-10, 10), labelTextColor=(200, 200, 200))
        self.scatter_note = QLabel()
        self.scatter_note.setWordWrap(True)
        self.scatter_note.setStyleSheet("color: #e0a040")

        left = QVBoxLayout()
        row = QHBoxLayout()
        row.addWidget(QLabel("Over checkpoints:"))
        row.addWidget(self.curve_combo, 1)
        left.addLayout(row)
        left.addWidget(self.curve_plot, 1)
        right = QVBoxLayout()
        row = QHBoxLayout()
        row.addWidget(QLabel("Across runs: x"))
        row.addWidget(self.x_combo, 1)
        row.addWidget(QLabel("y"))
        row.addWidget(self.y_combo, 1)
        right.addLayout(row)
        right.addWidget(self.scatter_plot, 1)
        right.addWidget(self.scatter_note)
        self.charts = QWidget()
        self.charts.setObjectName("metrics_charts")
        charts_layout = QHBoxLayout(self.charts)
        charts_layout.setContentsMargins(0, 0, 0, 0)
        charts_layout.addLayout(left, 1)
        charts_layout.addLayout(right, 1)

        self.info_label = QLabel("No evaluations yet: select a run and press Evaluate.")
        self.info_label.setWordWrap(True)
        self.charts.setMinimumHeight(120)  # small enough that its tabbed dock lets the Training monitor grow
        split = self.split = QSplitter(Qt.Vertical)  # drag the handle to trade table rows for chart height
        split.setObjectName("metrics_split")
        split.setChildrenCollapsible(False)
        split.addWidget(self.table)
        split.addWidget(self.charts)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        self._user_split = False  # once the handle is dragged, new rows no longer re-fit the table
        split.splitterMoved.connect(self._split_dragged)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.info_label)
        layout.addWidget(split, 1)

        self._poll = QTimer(self)  # notices the end of a job (also a failed one) to re-enable Evaluate
        self._poll.setInterval(400)
        self._poll.timeout.connect(self._check_job)
        self.refresh()

    # == data =================================================================================
    def refresh(self) -> None:
        """Re-read every run's eval records and redraw everything."""
        self._records.clear()
        self._runs.clear()
        try:
            runs = self.ctx.store.list()
        except OSError:
            runs = []
        for run in runs:
            recs = load_evals(run)
            if recs:
                self._records[run.id] = recs
                self._runs[run.id] = run
        self._rebuild()

    def _reload_run(self, run_id: str) -> None:
        run = self._runs.get(run_id)
        if run is None:
            try:
                run = self.ctx.store.get(run_id)
            except RunError:
                return
        recs = load_evals(run)
        if recs:
            self._records[run_id] = recs
            self._runs[run_id] = run
        self._rebuild()

    def latest(self) -> dict[str, dict[str, Any]]:
        """Run id -> its newest eval record (by step, then time): one table row per run."""
        return {rid: recs[-1] for rid, recs in self._records.items()}

    # == Panel contract ============================================================================
    def set_run(self, run: Run | None) -> None:
        self._run = run
        self._select_row(run.id if run else None)
        self._draw_curve()
        self._update_buttons()

    def on_events(self, events: list[Event]) -> None:
        changed: set[str] = set()
        for e in events:
            if e.data.get("job") != "eval":
                continue
            if e.kind == ev.PROGRESS:
                total = int(e.data.get("total") or 1)
                self.progress.setVisible(True)
                self.progress.setRange(0, total)
                self.progress.setValue(int(e.data.get("done", 0)))
                self.progress.setFormat(str(e.data.get("stage", "%p%")))
            elif e.kind == ev.RESULT:
                changed.add(e.run_id)
        for rid in changed:
            self._reload_run(rid)

    # == evaluate ===================================================================================
    def selected_run(self) -> Run | None:
        return self._run or self.ctx.current_run()

    def evaluate_selected(self) -> None:
        run = self.selected_run()
        if run is None:
            self.ctx.status_message("Select a run to evaluate")
            return
        if self.ctx.job_running("eval"):
            self.ctx.status_message("An evaluation is already running")
            return
        if not run.checkpoints():
            self.ctx.status_message(f"{run.id} has no checkpoint yet")
            return
        metrics = self.metrics_edit.text().strip() or None
        n = self.n_spin.value()
        job = evaluate_checkpoints if self.all_checkpoints.isChecked() else evaluate
        bus = self.ctx.bus
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)  # busy until the first PROGRESS event
        self.ctx.start_job("eval", run, lambda control: job(run, metrics, n=n, control=control, bus=bus))
        self._poll.start()
        self._update_buttons()

    def _check_job(self) -> None:
        if not self.ctx.job_running("eval"):
            self._poll.stop()
            self.progress.setVisible(False)
            self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.ctx.job_running("eval")
        self.eval_button.setEnabled(self.selected_run() is not None and not running)

    # == table ========================================================================================
    def _rebuild(self) -> None:
        latest = self.latest()
        names: set[str] = set()
        for recs in self._records.values():
            for r in recs:
                names.update(r["metrics"])
        self._metrics = ordered_metrics(names)
        self._fill_table(latest)
        for combo, prefer in ((self.curve_combo, 0), (self.x_combo, "sampling_time"), (self.y_combo, 0)):
            self._set_choices(combo, prefer)
        if self._records:
            exts = sorted({r["extractor"]["name"] for r in latest.values() if r.get("extractor")})
            self.info_label.setText(f"{len(latest)} evaluated run(s); extractors: {', '.join(exts) or '—'}. "
                                    "FCD = Fréchet distance on a small classifier trained on the dataset "
                                    "(not FID); compare numbers only at equal n and the same extractor.")
        self._select_row(self._run.id if self._run else None)
        self._draw_curve()
        self._draw_scatter()
        self._update_buttons()

    def _fill_table(self, latest: dict[str, dict[str, Any]]) -> None:
        t = self.table
        t.setSortingEnabled(False)
        cols = list(FIXED_COLUMNS) + [metric_header(m) for m in self._metrics]
        t.clear()
        t.setColumnCount(len(cols))
        t.setHorizontalHeaderLabels(cols)
        for c, m in enumerate(self._metrics, start=len(FIXED_COLUMNS)):
            refs = [r for rec in latest.values() if (r := metric_reference(rec["metrics"].get(m) or {})) is not None]
            t.horizontalHeaderItem(c).setToolTip(header_tooltip(m, refs))
        t.setRowCount(len(latest))
        for row, (rid, rec) in enumerate(sorted(latest.items())):
            fixed = (short_id(rid), rec.get("plugin", ""), rec.get("dataset", ""), rec.get("step"), rec.get("n"))
            for c, v in enumerate(fixed):
                it = _Item("" if v is None else str(v))
                it.setData(SORT_ROLE, v if isinstance(v, (int, float)) else None)
                it.setData(Qt.UserRole, rid)
                if c == 0:
                    it.setToolTip(f"{rid}\ncheckpoint {rec.get('checkpoint')}, seed {rec.get('seed')}, "
                                  f"{len(self._records[rid])} eval(s)")
                t.setItem(row, c, it)
            for c, m in enumerate(self._metrics, start=len(FIXED_COLUMNS)):
                e = rec["metrics"].get(m)
                it = _Item(cell_text(e, m) if e else ("skipped" if m in rec.get("skipped", {}) else ""))
                it.setData(SORT_ROLE, e.get("value") if e else None)
                it.setData(Qt.UserRole, rid)
                it.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                tip = rec.get("skipped", {}).get(m, "") if not e else cell_tooltip(m, e, rec)
                it.setToolTip(tip)
                t.setItem(row, c, it)
        t.setSortingEnabled(True)
        t.resizeRowsToContents()
        self._fit_table()

    def table_content_height(self) -> int:
        """Pixels the table needs to show its header and every row without scrolling."""
        t = self.table
        h = t.horizontalHeader().height() + 2 * t.frameWidth()
        h += sum(t.rowHeight(r) for r in range(t.rowCount()))
        if t.horizontalScrollBar().isVisible() or t.horizontalHeader().length() > t.viewport().width():
            h += t.horizontalScrollBar().sizeHint().height()
        return h + 2

    def _split_dragged(self, *_: Any) -> None:
        self._user_split = True

    def _fit_table(self) -> None:
        """Give the table the height of all its rows (up to 60 % of the split; the rest scrolls and the
        handle still resizes): the charts keep the remainder. A size the user dragged to is kept."""
        if self._user_split:
            return
        total = sum(self.split.sizes())
        if total <= 0:
            total = max(self.split.height(), 400)
        want = self.table_content_height()
        table_h = max(self.table.minimumHeight(), min(want, int(0.6 * total)))
        self.split.setSizes([table_h, max(total - table_h, self.charts.minimumHeight())])

    def showEvent(self, event: Any) -> None:  # noqa: N802 -- sizes are only known once shown
        super().showEvent(event)
        QTimer.singleShot(0, self._fit_table)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        if not getattr(self, "_fitted_once", False) and self.isVisible():
            self._fitted_once = True
            QTimer.singleShot(0, self._fit_table)

    def _select_row(self, run_id: str | None) -> None:
        self.table.blockSignals(True)
        self.table.clearSelection()
        for row in range(self.table.rowCount()):
            it = self.table.item(row, 0)
            if it is not None and it.data(Qt.UserRole) == run_id:
                self.table.selectRow(row)
                break
        self.table.blockSignals(False)

    def _row_selected(self) -> None:
        """Clicking a row follows that run in the checkpoint chart (and Evaluate targets it)."""
        rows = self.table.selectionModel().selectedRows()
        if rows:
            rid = self.table.item(rows[0].row(), 0).data(Qt.UserRole)
            if rid in self._runs and (self._run is None or self._run.id != rid):
                self._run = self._runs[rid]
                self._draw_curve()
                self._update_buttons()

    def table_rows(self) -> list[str]:
        """Run ids in the table's current (possibly sorted) order."""
        return [self.table.item(r, 0).data(Qt.UserRole) for r in range(self.table.rowCount())]

    # == charts ========================================================================================
    def _set_choices(self, combo: QComboBox, prefer: int | str) -> None:
        cur = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(self._metrics)
        if cur in self._metrics:
            combo.setCurrentText(cur)
        elif isinstance(prefer, str) and prefer in self._metrics:
            combo.setCurrentText(prefer)
        elif self._metrics:
            quality = [m for m in self._metrics if m not in ("sampling_time", "nfe", "sample_steps")]
            combo.setCurrentText(quality[0] if quality else self._metrics[0])
        combo.blockSignals(False)

    def _draw_curve(self) -> None:
        p = self.curve_plot
        p.clear()
        self.curve_legend.clear()
        self.reference_lines: list[pg.InfiniteLine] = []
        m = self.curve_combo.currentText()
        if not m:
            return
        sel = self._run.id if self._run else None
        shown = [sel] if sel in self._records else list(self._records)
        exts: set[str] = set()
        refs: list[tuple[float, tuple[int, ...], Any]] = []
        real_data: list[tuple[float, tuple[int, ...], Any]] = []
        for i, rid in enumerate(shown):
            by_step: dict[int, dict[str, Any]] = {}
            for r in self._records[rid]:  # sorted by (step, time): the latest eval per step wins
                if r["metrics"].get(m, {}).get("value") is not None:
                    by_step[int(r["step"])] = r["metrics"][m]
            if not by_step:
                continue
            steps = np.array(sorted(by_step), dtype=float)
            ents = [by_step[int(s)] for s in steps]
            y = np.array([e["value"] for e in ents], dtype=float)
            exts.update(e.get("extractor", "") for e in ents)
            col = colour(i)
            p.plot(steps, y, pen=pg.mkPen(*col[:3], width=2), symbol="o", symbolSize=7,
                   symbolBrush=pg.mkBrush(*col[:3]), name=short_id(rid))
            _error_bars(p, steps, y, ents, None, col, m)
            ref = metric_reference(ents[-1])
            if ref is not None:
                refs.append((ref, col, ents[-1].get("reference_n") or self._records[rid][-1].get("n")))
            elif m == "is" and isinstance(ents[-1].get("ref"), (int, float)):  # what real images score
                real_data.append((float(ents[-1]["ref"]), col, None))
        self._draw_references(p, m, refs)
        self._draw_references(p, m, real_data, "real data", "the score of the reference images themselves")
        label, better = METRIC_INFO.get(m, (m, ""))
        ext = ", ".join(sorted(exts - NOT_FEATURES))
        arrow = {"lower": " ↓ better", "higher": " ↑ better"}.get(better, "")
        p.setLabel("left", f"{m}" + (f" ({ext})" if ext else "") + arrow)
        p.setTitle(f"{label} over training" + (f" — {short_id(sel)}" if sel in self._records else ""), size="9pt")

    def _draw_references(self, p: pg.PlotWidget, m: str, refs: list[tuple[float, tuple[int, ...], Any]],
                         label: str = "real vs real", what: str = "") -> None:
        """One dashed horizontal line per distinct real-vs-real floor (runs on the same data at the same n
        share one, drawn grey; a floor of one run only takes that run's colour)."""
        groups: list[list[tuple[float, tuple[int, ...], Any]]] = []
        for r in refs:
            for g in groups:
                if math.isclose(g[0][0], r[0], rel_tol=1e-6, abs_tol=1e-12):
                    g.append(r)
                    break
            else:
                groups.append([r])
        for g in groups:
            ref, col, n = g[0]
            rgb = tuple(col[:3]) if len(g) == 1 and len(refs) > 1 else (190, 190, 190)
            line = pg.InfiniteLine(pos=ref, angle=0, movable=False,
                                   pen=pg.mkPen(*rgb, 200, width=1.5, style=Qt.DashLine),
                                   label=label, labelOpts={"position": 0.08, "color": rgb,
                                                                    "anchors": [(0, 1), (0, 1)]})
            line.setToolTip(f"{m}, {what}: {ref:.4g}" if what else
                            f"{m} between two disjoint draws of the data (n={n}): {ref:.4g} -- "
                            "the floor a perfect model reaches")
            p.addItem(line)
            self.reference_lines.append(line)

    def _draw_scatter(self) -> None:
        p = self.scatter_plot
        p.clear()
        self.scatter_legend.clear()
        mx, my = self.x_combo.currentText(), self.y_combo.currentText()
        self.scatter_note.setText("")
        if not mx or not my:
            return
        pts = []
        for rid, rec in sorted(self.latest().items()):
            ex, ey = rec["metrics"].get(mx), rec["metrics"].get(my)
            if ex and ey and ex.get("value") is not None and ey.get("value") is not None:
                pts.append((rid, rec, ex, ey))
        families = sorted({rec.get("plugin", "?") for _, rec, _, _ in pts})
        xs_all = [q[2]["value"] for q in pts]
        mid = (min(xs_all) + max(xs_all)) / 2 if xs_all else 0.0
        for fi, fam in enumerate(families):
            sub = [q for q in pts if q[1].get("plugin", "?") == fam]
            x = np.array([q[2]["value"] for q in sub], float)
            y = np.array([q[3]["value"] for q in sub], float)
            col = colour(fi)
            p.plot(x, y, pen=None, symbol="o", symbolSize=10, symbolBrush=pg.mkBrush(*col[:3]),
                   symbolPen=pg.mkPen(20, 20, 20), name=fam)
            _error_bars(p, x, y, [q[3] for q in sub], [q[2] for q in sub], col, my, mx)
            for (rid, rec, _, _), xi, yi in zip(sub, x, y):
                right_half = xi > mid  # labels point inwards so none runs off the plot
                txt = pg.TextItem(f"{short_id(rid)}@{rec.get('step')}", color=(200, 200, 200),
                                  anchor=(1.05, 1) if right_half else (-0.05, 1))
                txt.setPos(float(xi), float(yi))
                p.addItem(txt)
        for axis, m in (("bottom", mx), ("left", my)):
            exts = sorted({q[2 if axis == "bottom" else 3].get("extractor", "") for q in pts} - NOT_FEATURES)
            p.setLabel(axis, m + (f" ({', '.join(exts)})" if exts else ""))
            if len(exts) > 1:
                self.scatter_note.setText(f"{m} mixes extractors ({', '.join(exts)}): those numbers are not "
                                          "comparable with each other.")
        p.setTitle(f"{len(pts)} run(s), latest eval each", size="9pt")

    # == export ========================================================================================
    def export_csv(self, path: str | Path) -> Path:
        """The table as CSV: value, interval and extractor per metric, rows in the table's order."""
        path = Path(path)
        latest = self.latest()
        header = ["run", "plugin", "dataset", "step", "checkpoint", "n"]
        for m in self._metrics:
            header += [m, f"{m}_ci_low", f"{m}_ci_high", f"{m}_extractor"]
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            for rid in self.table_rows():
                rec = latest[rid]
                row = [rid, rec.get("plugin"), rec.get("dataset"), rec.get("step"), rec.get("checkpoint"), rec.get("n")]
                for m in self._metrics:
                    e = rec["metrics"].get(m) or {}
                    row += [_csv(e.get("value")), _csv(e.get("ci_low")), _csv(e.get("ci_high")), e.get("extractor", "")]
                w.writerow(row)
        return path

    def export_png(self, path: str | Path) -> Path:
        """Both charts (checkpoint curve and scatter) as one PNG."""
        path = Path(path)
        if not self.charts.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return path

    def _ask_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics table", "metrics.csv", "CSV (*.csv)")
        if path:
            self.ctx.status_message(f"Saved {self.export_csv(path)}")

    def _ask_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metric charts", "metrics.png", "PNG (*.png)")
        if path:
            self.ctx.status_message(f"Saved {self.export_png(path)}")


def _csv(v: Any) -> str:
    return "" if v is None else repr(float(v))


def cell_text(e: dict[str, Any], name: str = "") -> str:
    """Value, interval (clipped to the metric's range) and, on a second line, the extractor (for
    feature-based metrics) and the real-vs-real floor (where the record has one)."""
    s = format_value(e, name=name)
    ext = e.get("extractor", "")
    ref = metric_reference(e)
    second = [ext] if ext not in NOT_FEATURES else []
    if ref is not None:
        second.append(f"floor {ref:.3g}")
    return s + ("\n" + " · ".join(second) if second else "")


def cell_tooltip(m: str, e: dict[str, Any], rec: dict[str, Any]) -> str:
    label, better = METRIC_INFO.get(m, (m, ""))
    lines = [f"{label}" + (f" — {better} is better" if better else ""), format_value(e, 6, name=m)]
    lo, hi = e.get("ci_low"), e.get("ci_high")
    if (lo is not None and clip_to_range(m, lo) != lo) or (hi is not None and clip_to_range(m, hi) != hi):
        lines.append(f"interval clipped to the valid range {metric_range_text(m)} (raw bootstrap interval "
                     f"[{lo:.4g}, {hi:.4g}])")
    ref = metric_reference(e)
    if ref is not None:
        lines.append(f"real-vs-real floor at n={e.get('reference_n') or rec.get('n')}: {ref:.4g} (two disjoint "
                     "draws of the data; a perfect model scores about this)")
    elif isinstance(e.get("ref"), (int, float)):
        lines.append(f"real data scores {e['ref']:.4g}")
    if e.get("note"):
        lines.append(e["note"])
    ext = e.get("extractor", "")
    info = rec.get("extractors", {}).get(ext)
    if info:
        extra = f", held-out accuracy {info['val_acc']:.1%}" if info.get("val_acc") is not None else ""
        lines.append(f"extractor {ext} (hash {info.get('hash', '?')}, {info.get('dim')}-d{extra})")
    lines.append(f"step {rec.get('step')}, n={rec.get('n')}, seed {rec.get('seed')}")
    return "\n".join(lines)


def _error_bars(p: pg.PlotWidget, x: np.ndarray, y: np.ndarray, ey: list[dict[str, Any]],
                ex: list[dict[str, Any]] | None, col: tuple[int, ...], my: str = "", mx: str = "") -> None:
    """Interval whiskers (asymmetric) for the entries that have one, clipped to each metric's range."""

    def halves(ents: list[dict[str, Any]], v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        def bound(e: dict[str, Any], k: str) -> float:
            b = clip_to_range(name, e.get(k))
            return np.nan if b is None else b

        lo = np.array([bound(e, "ci_low") for e in ents], float)
        hi = np.array([bound(e, "ci_high") for e in ents], float)
        return np.nan_to_num(np.clip(v - lo, 0, None)), np.nan_to_num(np.clip(hi - v, 0, None))

    kw: dict[str, Any] = {}
    bottom, top = halves(ey, y, my)
    if np.any(bottom + top > 0):
        kw.update(top=top, bottom=bottom)
    if ex is not None:
        left, right = halves(ex, x, mx)
        if np.any(left + right > 0):
            kw.update(left=left, right=right)
    if kw:
        p.addItem(pg.ErrorBarItem(x=x, y=y, pen=pg.mkPen(*col[:3], 160, width=1.2), beam=0, **kw))
