"""The two sweep panels of a run: quality against network evaluations for every sampler (the NFE
sweep, ``genstudio nfe``) and class accuracy / diversity against the classifier-free guidance
scale (``genstudio guidance``). Each starts its core job (``nfe_job``, ``guidance_job``) in the
worker; rows stream back as this panel's own events and the chart grows while it runs."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from genstudio.core.events import Event
from genstudio.core.jobs import Control
from genstudio.core.runs import Run, RunError
from genstudio.core.tools.guidance import guidance_job
from genstudio.core.tools.nfe import nfe_job
from genstudio.qt.panels.base import AppContext
from genstudio.qt.panels.jobpanel import JobPanel
from genstudio.qt.panels.views import colour

# every event's data also has "token": the job that sent it (JobPanel._tokens)
NFE_ROW = "nfe_row"  # data: {"row": {sampler, steps, nfe, quality, seconds}, "metric"}
NFE_RESULT = "nfe_result"  # data: {"rows": [...], "metric": str}
GUIDE_ROW = "guidance_row"  # data: {"row": {scale, accuracy, diversity, ...}}
GUIDE_RESULT = "guidance_result"  # data: {"rows": [...]}


class _SweepPanel(JobPanel):
    """A run, a row of settings with a start/Stop button, a chart below, the status line last."""

    def _layout(self, controls: list[QWidget], chart: pg.PlotWidget) -> None:
        row = QHBoxLayout()
        row.setContentsMargins(4, 2, 4, 2)
        row.addWidget(self.run_label)
        for w in controls:
            row.addWidget(w)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(chart, 1)
        lay.addWidget(self.status)

    def set_run(self, run: Run | None) -> None:
        self._name_run(run)
        if (run.id if run else None) != (self._run.id if self._run else None):
            self._clear()
            self._run_switched()
        self._run = run
        self._problem = ""
        if run is not None:
            try:
                self.ctx.registry.get(run.info()["plugin"])
            except (KeyError, RunError) as e:
                self._problem = str(e).strip("'\"")
        self._update_buttons()

    def _clear(self) -> None: ...

    def on_events(self, events: list[Event]) -> None:
        for e in events:
            if e.kind == "status" and self._run is not None and e.run_id == self._run.id:
                self._update_buttons()
                return
        if self._checkpoint_may_have_come(events):
            self._update_buttons()


class NfePanel(_SweepPanel):
    panel_id = "nfe"
    title = "Quality vs NFE"
    order = 75
    tools = ("nfe",)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._rows: list[dict[str, Any]] = []
        self._metric = "quality"
        self._nfe_run: str | None = None
        self.max_nfe = QSpinBox(minimum=1, maximum=4000, value=64, prefix="max NFE ")
        self.nfe_n = QSpinBox(minimum=16, maximum=100_000, value=500, prefix="n ")
        self.nfe_n.setToolTip("Samples per point (quality is measured on this many)")
        self.nfe_button = QPushButton("Run NFE sweep")
        self.png_button = QPushButton("Export PNG…")
        self.csv_button = QPushButton("Export CSV…")
        self.chart = pg.PlotWidget()
        self.chart.setLogMode(x=True, y=True)
        self.chart.showGrid(x=True, y=True, alpha=0.2)
        for axis in ("left", "bottom"):
            self.chart.getAxis(axis).enableAutoSIPrefix(False)  # "(x0.001)" on a log axis only confuses
        self.chart.setLabel("bottom", "network evaluations (NFE)")
        self.chart.setLabel("left", "quality (lower is better)")
        self.legend = self.chart.addLegend(offset=(-10, 10))
        self._layout([self.max_nfe, self.nfe_n, self.nfe_button, self.png_button, self.csv_button], self.chart)
        self.nfe_button.clicked.connect(lambda: self._toggle("nfe", self.nfe_button, self.start_nfe))
        self.png_button.clicked.connect(self._png_dialog)
        self.csv_button.clicked.connect(self._csv_dialog)
        self.set_run(None)

    def _clear(self) -> None:
        self.set_rows([])

    def _update_buttons(self) -> None:
        why = self._can_sample() or self.why_not("nfe", self._run)
        self._job_button(self.nfe_button, "nfe", "Run NFE sweep", "Stop sweep", why)
        self.png_button.setEnabled(bool(self._rows))
        self.csv_button.setEnabled(bool(self._rows))
        self._show_why(why)
        self._poll_jobs()

    def start_nfe(self, samplers: list[str] | None = None) -> Control | None:
        """Sweep every sampler of the run over NFE budgets 1, 2, 4, ... in a worker job."""
        run = self._run
        if run is None or self._can_sample():
            return None
        max_nfe, n, bus, token = self.max_nfe.value(), self.nfe_n.value(), self.ctx.bus, self._new_token("nfe")

        def job(control: Control):
            rows, metric = yield from nfe_job(
                run, samplers, max_nfe, n, control,
                lambda row, metric: bus.emit(NFE_ROW, run.id, row=row, metric=metric, token=token))
            bus.emit(NFE_RESULT, run.id, rows=rows, metric=metric, token=token)

        self._nfe_run = run.id
        self._rows = []
        self._metric = "quality"
        self._redraw_chart()
        return self._launch("nfe", run, job, "NFE sweep running…")

    def set_rows(self, rows: list[dict[str, Any]], metric: str | None = None) -> None:
        self._rows = list(rows)
        if metric:
            self._metric = metric
        self._redraw_chart()
        self._update_buttons()

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """sampler -> (nfe, quality) as plotted."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for s in dict.fromkeys(r["sampler"] for r in self._rows):
            rs = [r for r in self._rows if r["sampler"] == s]
            out[s] = (np.array([r["nfe"] for r in rs], float), np.array([r["quality"] for r in rs], float))
        return out

    def _redraw_chart(self) -> None:
        self.chart.clear()
        self.legend.clear()
        for i, (s, (x, y)) in enumerate(self.curves().items()):
            y = np.maximum(y, 1e-6)  # log-y: energy distance can touch 0 by noise
            self.chart.plot(x, y, pen=pg.mkPen(colour(i), width=2), symbol="o", symbolSize=6,
                            symbolBrush=colour(i), name=s)
        ys = np.concatenate([np.maximum(y, 1e-6) for _, y in self.curves().values()]) if self._rows else None
        ticks = None  # pyqtgraph's own log ticks, unless the values span less than a decade (no labels then)
        if ys is not None and ys.max() < 10 * ys.min():
            vals = np.unique(np.geomspace(ys.min(), ys.max(), 5) if ys.max() > ys.min() else ys[:1])
            ticks = [[(float(np.log10(v)), f"{v:.4g}") for v in vals]]
        self.chart.getAxis("left").setTicks(ticks)
        self.chart.setLabel("left", {"energy": "energy distance", "fcd": "FCD"}.get(self._metric, self._metric)
                            + " (lower is better)")

    def export_csv(self, path: str | Path) -> Path:
        if not self._rows:
            raise RuntimeError("no NFE sweep yet")
        path = Path(path)
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["sampler", "steps", "nfe", "quality", "seconds"],
                               extrasaction="ignore")
            w.writeheader()
            w.writerows(self._rows)
        return path

    def export_chart_png(self, path: str | Path) -> Path:
        if not self._rows:
            raise RuntimeError("no NFE sweep yet")
        path = Path(path)
        if not self.chart.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        return path

    def _default_path(self, suffix: str) -> str:
        folder = self._run.sample_dir() if self._run is not None else Path.home()
        return str(folder / f"nfe{suffix}")

    def _png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export chart", self._default_path(".png"), "PNG (*.png)")
        if path:
            self._export(self.export_chart_png, path)

    def _csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export rows", self._default_path(".csv"), "CSV (*.csv)")
        if path:
            self._export(self.export_csv, path)

    def on_events(self, events: list[Event]) -> None:
        redraw = False
        for e in events:
            if e.kind == NFE_ROW and e.run_id == self._nfe_run and self._current(e, "nfe"):
                self._rows.append(e.data["row"])
                self._metric = e.data.get("metric", self._metric)
                redraw = True
            elif e.kind == NFE_RESULT and e.run_id == self._nfe_run and self._current(e, "nfe"):
                self._done("nfe")
                self._rows = list(e.data["rows"])
                self._metric = e.data.get("metric", self._metric)
                self.status.setText(f"NFE sweep done: {len(self._rows)} points")
                redraw = True
        if redraw:
            self._redraw_chart()
            self._update_buttons()
        super().on_events(events)


class GuidancePanel(_SweepPanel):
    panel_id = "guidance"
    title = "Guidance"
    order = 78
    tools = ("guidance",)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._guide_rows: list[dict[str, Any]] = []
        self._guide_run: str | None = None
        self.guide_scales = QLineEdit("0,1,2,4,8")
        self.guide_scales.setToolTip("Comma-separated guidance scales (0 = unconditional, 1 = conditional)")
        self.guide_n = QSpinBox(minimum=2, maximum=10_000, value=100, prefix="n/class ")
        self.guide_button = QPushButton("Run guidance sweep")
        self.guide_chart = pg.PlotWidget()
        self.guide_chart.showGrid(x=True, y=True, alpha=0.2)
        self.guide_chart.setLabel("bottom", "guidance scale")
        self.guide_chart.setLabel("left", "accuracy / diversity (1 = the data's)")
        self.guide_legend = self.guide_chart.addLegend(offset=(-10, 10))
        # saturation (text runs: fraction of pixel values at the range limits) joins the legend only
        # when the rows have it
        self.guide_curves = {k: self.guide_chart.plot([], [], pen=pg.mkPen(colour(i), width=2), symbol="o",
                                                      symbolSize=6, symbolBrush=colour(i),
                                                      name=None if k == "saturation" else k)
                             for i, k in enumerate(("accuracy", "diversity", "saturation"))}
        self._layout([QLabel("scales"), self.guide_scales, self.guide_n, self.guide_button], self.guide_chart)
        self.guide_button.clicked.connect(
            lambda: self._toggle("guidance", self.guide_button, self.start_guidance))
        self.set_run(None)

    def _clear(self) -> None:
        self.set_guidance_rows([])

    def _update_buttons(self) -> None:
        why = self._can_sample() or self.why_not("guidance", self._run)
        self._job_button(self.guide_button, "guidance", "Run guidance sweep", "Stop sweep", why)
        self._show_why(why)
        self._poll_jobs()

    def start_guidance(self) -> Control | None:
        """Sweep the guidance scales in a worker job; rows stream back as GUIDE_ROW events."""
        run = self._run
        if run is None or self._can_sample() or self.why_not("guidance", run):
            return None
        try:
            scales = [float(v) for v in self.guide_scales.text().split(",") if v.strip()]
        except ValueError:
            self.status.setText("scales: give comma-separated numbers, e.g. 0,1,2,4")
            return None
        n, bus, token = self.guide_n.value(), self.ctx.bus, self._new_token("guidance")

        def job(control: Control):
            rows = yield from guidance_job(run, scales, n, control,
                                           lambda row: bus.emit(GUIDE_ROW, run.id, row=row, token=token))
            bus.emit(GUIDE_RESULT, run.id, rows=rows, token=token)

        self._guide_run = run.id
        self.set_guidance_rows([])
        return self._launch("guidance", run, job, "guidance sweep running…")

    def set_guidance_rows(self, rows: list[dict[str, Any]]) -> None:
        self._guide_rows = list(rows)
        for k, item in self.guide_curves.items():
            have = [r for r in self._guide_rows if k in r]
            item.setData([r["scale"] for r in have], [r[k] for r in have])
        sat = self.guide_curves["saturation"]
        shown = any(sample.item is sat for sample, _ in self.guide_legend.items)
        if bool(self._guide_rows) and "saturation" in self._guide_rows[0]:
            if not shown:
                self.guide_legend.addItem(sat, "saturation")
        elif shown:
            self.guide_legend.removeItem(sat)

    def guidance_rows(self) -> list[dict[str, Any]]:
        return list(self._guide_rows)

    def on_events(self, events: list[Event]) -> None:
        for e in events:
            if e.kind == GUIDE_ROW and e.run_id == self._guide_run and self._current(e, "guidance"):
                self.set_guidance_rows([*self._guide_rows, e.data["row"]])
            elif e.kind == GUIDE_RESULT and e.run_id == self._guide_run and self._current(e, "guidance"):
                self._done("guidance")
                self.set_guidance_rows(e.data["rows"])
                self.status.setText(f"guidance sweep done: {len(self._guide_rows)} scales")
                self._update_buttons()
        super().on_events(events)
