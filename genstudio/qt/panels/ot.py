"""OT explorer: two 2-D point sets (built-in datasets or samples of the selected run), the optimal
transport plan between them drawn as lines (alpha by mass, only the heaviest ``lines`` of a big or
blurred plan), an epsilon slider (log scale) for Sinkhorn so the plan blurs as epsilon grows, the
costs as text, and McCann's displacement interpolation on a t slider with Play and GIF/MP4 export.

Every solve runs in the app's worker (job "ot"; drawing run samples is job "ot-samples"): exact
OT takes ~10 ms at n = 200 but ~1 s at n = 2000 (the n box's limit), and log-domain Sinkhorn at
small epsilon needs thousands of iterations, so none of it may block the GUI thread. A change made
while a solve runs is solved once that one is done (only the newest settings)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from genstudio.core import ot
from genstudio.core.data import dataset_names
from genstudio.core.events import Event
from genstudio.core.imaging import ANIMATION_SUFFIXES, save_animation
from genstudio.core.jobs import Control
from genstudio.core.runs import Run, RunError
from genstudio.qt.panels.base import AppContext
from genstudio.qt.panels.jobpanel import JobPanel
from genstudio.qt.panels.views import colour

OT_PLAN = "ot_plan"  # data: {"token", "result": OTResult, "numbers": {w1, w2, sinkhorn, sliced}, "key"}
OT_POINTS = "ot_points"  # data: {"token", "side": "a" | "b", "points": (n, 2) array}
RUN_SAMPLES = "samples of the selected run"
EPS_RANGE = (1e-3, 1.0)  # relative to the largest cost; below 1e-3 Sinkhorn needs >10^4 iterations
SLIDER_STEPS = 120
MAX_ITER = 3000  # Sinkhorn iterations per solve in the explorer (a picture, not a benchmark)
ALPHA_LEVELS = 6  # lines are drawn in this many alpha bins (one item each: per-line pens are slow)


def point_datasets() -> list[str]:
    """The built-in datasets of 2-D points (the main window's cached kinds, so no dataset is built
    twice in the app)."""
    from genstudio.core.data import dataset_kind

    return [d for d in dataset_names() if ":" not in d and dataset_kind(d) == "points2d"]


class OTPanel(JobPanel):
    panel_id = "ot"
    title = "OT explorer"
    area = "tab:sampler"
    order = 85

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._points: dict[str, np.ndarray | None] = {"a": None, "b": None}
        self._result: ot.OTResult | None = None
        self._numbers: dict[str, float] = {}
        self._ranged = -1  # the points version the views were last fitted to
        self._version = 0  # bumped whenever a set of points changes (keys the exact numbers' cache)
        self._exact_cache: tuple[int, dict[str, float]] | None = None  # (version, w1/w2/sliced)
        self._dirty = False
        self._resample: set[str] = set()  # sides to sample again once their running job is done
        names = point_datasets() + [RUN_SAMPLES]
        self.a_box, self.b_box = QComboBox(), QComboBox()
        for side, box, default in (("a", self.a_box, "8gaussians"), ("b", self.b_box, "moons")):
            box.addItems(names)
            box.setCurrentText(default)
            box.currentTextChanged.connect(lambda _text, side=side: self.refresh_points((side,)))
        self.n_spin = QSpinBox(minimum=2, maximum=2000, value=200, prefix="n ")
        self.n_spin.setToolTip("Points per set (up to 2000: exact OT there takes about a second, in the worker)")
        self.seed_spin = QSpinBox(minimum=0, maximum=10_000, value=0, prefix="seed ")
        self.method_box = QComboBox()
        self.method_box.addItems(list(ot.METHODS))
        self.eps_slider = QSlider(Qt.Horizontal, minimum=0, maximum=SLIDER_STEPS)
        self.eps_slider.setMinimumWidth(140)
        self.eps_slider.setToolTip("Sinkhorn epsilon, log scale, relative to the largest cost")
        self.eps_label = QLabel()
        self.reg_m = QDoubleSpinBox(minimum=1e-3, maximum=1e4, value=1.0, decimals=3, prefix="marginal ")
        self.reg_m.setToolTip("Unbalanced OT: weight of the KL penalty on the marginals (relative to the largest "
                              "cost); large = balanced, small = mass may be dropped")
        self.lines_spin = QSpinBox(minimum=10, maximum=20_000, value=1500, prefix="lines ")
        self.lines_spin.setToolTip("Draw only the heaviest this many pairs of the plan")
        self.t_slider = QSlider(Qt.Horizontal, minimum=0, maximum=100)
        self.t_slider.setMinimumWidth(160)
        self.t_label = QLabel("t = 0.00")
        self.play_button = QPushButton("Play")
        self.export_button = QPushButton("Export GIF/MP4…")
        self.costs = QLabel()
        self.costs.setTextFormat(Qt.RichText)
        self.costs.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.plot = self._plot("transport plan (heaviest pairs, alpha by mass)")
        self.interp_plot = self._plot("McCann displacement interpolation")
        self.interp_plot.setXLink(self.plot)
        self.interp_plot.setYLink(self.plot)
        self.line_items = [pg.PlotCurveItem(connect="pairs", pen=pg.mkPen((200, 200, 220, 255 * (k + 1) // ALPHA_LEVELS),
                                                                          width=1))
                           for k in range(ALPHA_LEVELS)]
        for item in self.line_items:
            self.plot.addItem(item)
        self.a_item, self.b_item = self._sets(self.plot, 200, "A", "B")
        self.a_faint, self.b_faint = self._sets(self.interp_plot, 70, "A", "B")
        self.move_item = pg.ScatterPlotItem(size=6, pen=None, brush=pg.mkBrush(120, 230, 140, 230),
                                            name="at t")
        self.interp_plot.addItem(self.move_item)
        self._layout()
        self.set_eps(0.01)
        self._debounce = QTimer(self, singleShot=True, interval=150)
        self._debounce.timeout.connect(self.compute)
        self._play = QTimer(self, interval=40)
        self._play.timeout.connect(self._tick)
        self.eps_slider.valueChanged.connect(self._eps_moved)
        for sig in (self.method_box.currentTextChanged, self.reg_m.valueChanged):
            sig.connect(self._changed)
        self.method_box.currentTextChanged.connect(self._enable_knobs)
        for spin in (self.n_spin, self.seed_spin):
            spin.valueChanged.connect(lambda _v: self.refresh_points())
        self.lines_spin.valueChanged.connect(self._draw)
        self.t_slider.valueChanged.connect(self._draw_t)
        self.play_button.clicked.connect(self.toggle_play)
        self.export_button.clicked.connect(self._export_dialog)
        self._enable_knobs()
        self.set_run(None)

    @staticmethod
    def _plot(title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(title=title)
        plot.setAspectLocked(True)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.addLegend(offset=(10, 10))
        return plot

    @staticmethod
    def _sets(plot: pg.PlotWidget, alpha: int, *names: str) -> list[pg.ScatterPlotItem]:
        items = [pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(colour(i, alpha)), name=name)
                 for i, name in enumerate(names)]
        for item in items:
            plot.addItem(item)
        return items

    def _layout(self) -> None:
        """Controls in a column on the left, the plan and the interpolation side by side (the
        tabbed dock is wide and short: two square plots fill it)."""
        form = QFormLayout()
        form.setContentsMargins(4, 2, 4, 2)
        eps_row = QHBoxLayout()
        eps_row.addWidget(self.eps_slider, 1)
        eps_row.addWidget(self.eps_label)
        t_row = QHBoxLayout()
        t_row.addWidget(self.t_slider, 1)
        t_row.addWidget(self.t_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.play_button)
        buttons.addWidget(self.export_button)
        for label, w in (("run", self.run_label), ("A", self.a_box), ("B", self.b_box), ("points", self.n_spin),
                         ("", self.seed_spin), ("method", self.method_box), ("ε", eps_row), ("", self.reg_m),
                         ("", self.lines_spin), ("t", t_row), ("", buttons)):
            form.addRow(label, w)
        self.costs.setWordWrap(True)
        side = QVBoxLayout()
        side.addLayout(form)
        side.addWidget(self.costs)
        side.addStretch(1)
        side.addWidget(self.status)
        box = QWidget()
        box.setLayout(side)
        self.status.setWordWrap(True)
        scroll = QScrollArea()  # the column scrolls rather than making the whole tabbed dock taller
        scroll.setWidget(box)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setFixedWidth(316)
        scroll.setMinimumHeight(120)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(scroll)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.interp_plot, 1)

    # -- settings ---------------------------------------------------------------------------------
    def eps(self) -> float:
        lo, hi = map(math.log10, EPS_RANGE)
        return 10 ** (lo + (hi - lo) * self.eps_slider.value() / SLIDER_STEPS)

    def set_eps(self, eps: float) -> None:
        lo, hi = map(math.log10, EPS_RANGE)
        self.eps_slider.setValue(round((math.log10(eps) - lo) / (hi - lo) * SLIDER_STEPS))
        self.eps_label.setText(f"{self.eps():.3g}")

    def t(self) -> float:
        return self.t_slider.value() / self.t_slider.maximum()

    def set_t(self, t: float) -> None:
        self.t_slider.setValue(round(t * self.t_slider.maximum()))

    def _eps_moved(self) -> None:
        self.eps_label.setText(f"{self.eps():.3g}")
        self._changed()

    def _enable_knobs(self) -> None:
        method = self.method_box.currentText()
        self.eps_slider.setEnabled(method != "exact")
        self.reg_m.setEnabled(method == "unbalanced")

    def _changed(self) -> None:
        self._debounce.start()  # sliders fire on every pixel: solve once they rest

    # -- points -----------------------------------------------------------------------------------
    def set_run(self, run: Run | None) -> None:
        self._name_run(run)
        switched = (run.id if run else None) != (self._run.id if self._run else None)
        self._run = run
        self._problem = ""
        if run is not None:
            try:
                why = ot.points_source(run.info()["dataset"])
                self._problem = f"the selected run is not 2-D: {why}" if why else ""
            except (KeyError, RunError, OSError) as e:
                self._problem = str(e).strip("'\"")
        if switched:
            self._run_switched()
            if RUN_SAMPLES in (self.a_box.currentText(), self.b_box.currentText()):
                self.refresh_points()
            elif self._result is None and self._points["a"] is not None:
                self.compute()  # a solve in flight lost its token with the switch: solve again
        self._update_buttons()

    def refresh_points(self, sides: tuple[str, ...] = ("a", "b")) -> None:
        """Draw the sets again (datasets here, a run's samples in the worker), then solve."""
        n, seed = self.n_spin.value(), self.seed_spin.value()
        self._result = None
        self._version += 1
        for i, (side, box) in enumerate((("a", self.a_box), ("b", self.b_box))):
            if side not in sides:
                continue
            name = box.currentText()
            if name == RUN_SAMPLES:
                self._points[side] = None
                self._sample_run(side, n, seed + i)
            else:
                self._points[side] = ot.dataset_points(name, n, seed + i)  # B another draw: A vs A is not 0
        self._draw()
        self.compute()

    def _sample_run(self, side: str, n: int, seed: int) -> None:
        why = self._can_sample()
        run = self._run
        if why or run is None:
            self.status.setText(f"{RUN_SAMPLES}: {why or 'select a run'}")
            return
        name = f"ot-samples-{side}"
        if self.ctx.job_running(name):
            self._resample.add(side)  # one job per side at a time: sample again when it is done
            self._poll.start()
            return
        bus, token = self.ctx.bus, self._new_token(name)

        def job(control: Control):
            pts = yield from ot.run_points(run, n, seed, control)
            bus.emit(OT_POINTS, run.id, side=side, points=pts, token=token)

        self._launch(name, run, job, f"sampling {n} points from {run.id}…")

    # -- solving -------------------------------------------------------------------------------
    def compute(self) -> Control | None:
        """Solve the plan for the current settings in the worker (or later, if a solve runs)."""
        x, y = self._points["a"], self._points["b"]
        if x is None or y is None:
            return None
        if self.ctx.job_running("ot"):
            self._dirty = True
            self._poll.start()  # _update_buttons solves again once that job is done
            return None
        self._dirty = False
        self._resample: set[str] = set()  # sides to sample again once their running job is done
        method, eps, reg_m, seed = self.method_box.currentText(), self.eps(), self.reg_m.value(), self.seed_spin.value()
        key = self._version
        cached = self._exact_cache[1] if self._exact_cache and self._exact_cache[0] == key else None
        bus, token = self.ctx.bus, self._new_token("ot")

        def job(control: Control):
            yield
            res = ot.solve(method, x, y, eps, reg_m, max_iter=MAX_ITER)
            control.check()
            numbers = dict(cached) if cached else {"w1": ot.w1(x, y), "w2": ot.w2(x, y), "sliced": ot.sliced(x, y,
                                                                                                           seed=seed)}
            numbers["sinkhorn"] = res.distance if method == "sinkhorn" else ot.sinkhorn(x, y, eps,
                                                                                         max_iter=MAX_ITER).distance
            bus.emit(OT_PLAN, "", result=res, numbers=numbers, key=key, token=token)
            yield

        self.status.setText(f"solving {method} OT on {len(x)} x {len(y)} points…")
        control = self.ctx.start_job("ot", None, job)
        self._controls["ot"] = control
        self._awaiting["ot"] = 0
        self._poll.start()
        return control

    def _update_buttons(self) -> None:
        has = self._result is not None
        self.export_button.setEnabled(has)
        self.play_button.setEnabled(has)
        self._poll_jobs()
        for side in [s for s in self._resample if not self.ctx.job_running(f"ot-samples-{s}")]:
            self._resample.discard(side)
            self.refresh_points((side,))
        if self._dirty and not self.ctx.job_running("ot"):
            self.compute()

    def on_events(self, events: list[Event]) -> None:
        for e in events:
            if e.kind == OT_POINTS and self._current(e, f"ot-samples-{e.data['side']}"):
                side = e.data["side"]
                self._done(f"ot-samples-{side}")
                self._points[side] = np.asarray(e.data["points"], np.float64)
                self._version += 1
                self.status.clear()
                self._draw()
                if side in self._resample:  # the settings changed while it sampled
                    self._resample.discard(side)
                    self.refresh_points((side,))
                else:
                    self.compute()
            elif e.kind == OT_PLAN and self._current(e, "ot"):
                self._done("ot")
                self._result, self._numbers = e.data["result"], e.data["numbers"]
                self._exact_cache = (e.data["key"], {k: self._numbers[k] for k in ("w1", "w2", "sliced")})
                self.status.clear()
                self._draw()
                self._update_buttons()
        if self._checkpoint_may_have_come(events):
            self._update_buttons()

    # -- drawing ----------------------------------------------------------------------------------
    def plan(self) -> np.ndarray | None:
        return None if self._result is None else self._result.plan

    def drawn_lines(self) -> int:
        """How many plan lines are on the screen."""
        return sum(len(item.xData) // 2 for item in self.line_items if item.xData is not None)

    def moving_points(self) -> np.ndarray:
        """The displacement interpolation's points on the screen ((0, 2) at t = 0)."""
        x, y = self.move_item.getData()
        return np.column_stack([x, y]) if x is not None and len(x) else np.zeros((0, 2))

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        """The first time the panel is seen it draws its sets (no work at window start-up)."""
        super().showEvent(event)
        QTimer.singleShot(0, self, lambda: self.screen_changed(self.on_screen))  # after the dock says if it is seen

    def screen_changed(self, visible: bool) -> None:
        """Behind another tab Qt still "shows" it: the first solve waits until it is really seen."""
        if visible and self._points["a"] is None and self._points["b"] is None:
            self.refresh_points()

    def _draw(self) -> None:
        x, y = self._points["a"], self._points["b"]
        for item, pts in ((self.a_item, x), (self.b_item, y), (self.a_faint, x), (self.b_faint, y)):
            item.setData(*(pts.T if pts is not None else ([], [])))
        if self._ranged != self._version and (x is not None or y is not None):
            self._ranged = self._version  # new sets: fit them (the views are linked and aspect-locked)
            self.plot.autoRange(items=[self.a_item, self.b_item])
        for item in self.line_items:
            item.setData([], [])
        if self._result is not None and x is not None and y is not None:
            i, j, m = ot.plan_pairs(self._result.plan, 1e-4, self.lines_spin.value())
            level = np.minimum((np.sqrt(m / m.max()) * ALPHA_LEVELS).astype(int), ALPHA_LEVELS - 1)
            for k, item in enumerate(self.line_items):
                sel = level == k
                seg = np.empty((2 * int(sel.sum()), 2))
                seg[0::2], seg[1::2] = x[i[sel]], y[j[sel]]
                item.setData(seg[:, 0], seg[:, 1])
        self._draw_numbers()
        self._draw_t()

    def _draw_numbers(self) -> None:
        r, nums = self._result, self._numbers
        if r is None or not nums:
            self.costs.setText("")
            return
        ent = ot.plan_entropy(r.plan)
        rows = [("W1 (exact)", nums["w1"]), ("W2 (exact)", nums["w2"]),
                (f"Sinkhorn W2, ε {self.eps():.3g}", nums["sinkhorn"]), ("sliced W2", nums["sliced"])]
        self.costs.setText(
            "<table>" + "".join(f"<tr><td>{k}&nbsp;&nbsp;</td><td align=right><b>{v:.4f}</b></td></tr>"
                                for k, v in rows) + "</table>"
            f"<p>plan ({r.method}): cost &lt;P, C&gt; {r.cost:.4f}, mass {r.plan.sum():.3f}, "
            f"entropy {ent:.2f} nats</p>")

    def _draw_t(self) -> None:
        t = self.t()
        self.t_label.setText(f"t = {t:.2f}")
        x, y = self._points["a"], self._points["b"]
        if self._result is None or x is None or y is None or t == 0.0:
            self.move_item.setData([], [])
            return
        pts, m = ot.displacement(x, y, self._result.plan, t, 1e-4, self.lines_spin.value())
        alpha = (60 + 190 * np.sqrt(m / m.max())).astype(int)
        brushes = [pg.mkBrush(120, 230, 140, int(a)) for a in alpha]
        self.move_item.setData(pts[:, 0], pts[:, 1], brush=brushes)

    # -- animation and export ----------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self._play.isActive():
            self._play.stop()
            self.play_button.setText("Play")
            return
        if self.t() >= 1.0:
            self.set_t(0.0)
        self._play.start()
        self.play_button.setText("Pause")

    def _tick(self) -> None:
        step = self.t_slider.value() + 2
        self.t_slider.setValue(min(step, self.t_slider.maximum()))
        if step >= self.t_slider.maximum():
            self.toggle_play()

    def export_animation(self, path: str | Path, frames: int = 24, fps: float = 12.0) -> Path:
        """Write the displacement interpolation of the current plan as a GIF or MP4."""
        x, y = self._points["a"], self._points["b"]
        if self._result is None or x is None or y is None:
            raise RuntimeError("no transport plan yet")
        imgs = ot.interpolation_images(x, y, self._result.plan, frames, top=self.lines_spin.value())
        return save_animation(imgs, path, fps=fps)

    def _export_dialog(self) -> None:
        folder = self._run.sample_dir() if self._run is not None else Path.home()
        filters = ";;".join(f"{s[1:].upper()} (*{s})" for s in ANIMATION_SUFFIXES)
        path, _ = QFileDialog.getSaveFileName(self, "Export interpolation", str(folder / "ot_interpolation.gif"),
                                              filters)
        if path:
            self._export(self.export_animation, path)
