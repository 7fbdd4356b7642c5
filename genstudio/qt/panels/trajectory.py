"""Compare A/B: two samplers, seeds or runs side by side from the SAME starting noise, scrubbed
with one slider on normalised time, and (2-D) the marginal density at that time with forward
noising paths from a clicked point. The NFE and guidance sweeps are their own panels (sweeps.py).

The A/B job (``core.tools.compare.compare_runs``) runs through ``ctx.start_job``; its result comes back
as this panel's own event kind (so the sampler panel, which listens to SAMPLE_STATE/RESULT, is not
disturbed), with a token so an older comparison never replaces a newer one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from genstudio.core.config import from_dict
from genstudio.core.diffusion.paths import (
    ForwardProcess,
    describe_process,
    forward_marginal,
    forward_paths,
    marginal_histogram,
)
from genstudio.core.diffusion.schedules import NoiseSchedule
from genstudio.core.events import Event
from genstudio.core.faces import ForwardProcessFace, has_face
from genstudio.core.imaging import colormap, heatmap_image, image_grid
from genstudio.core.jobs import Control
from genstudio.core.metrics.functional import energy_distance
from genstudio.core.plugin import SampleState, sample_options
from genstudio.core.runs import Run, RunError
from genstudio.core.tools.compare import compare_runs
from genstudio.core.tools.text2image import run_vocabulary
from genstudio.qt.panels.base import AppContext
from genstudio.qt.panels.jobpanel import JobPanel
from genstudio.qt.panels.runs import short_name
from genstudio.qt.panels.sampler import PLAY_INTERVAL_MS, PLAY_SECONDS, _is_points
from genstudio.qt.panels.views import PALETTE, PromptEdit, SampleView, particle_history

# every event's data also has "token": the job that sent it (see TrajectoryPanel._tokens)
AB_RESULT = "trajectory_ab"  # data: {"a", "b": [SampleState], "labels": (str, str), "scales", "steps"}
SAME_RUN = "same run"  # side B's run picker: sample side B from side A's run
PATH_DOTS = 26  # time points per forward path drawn as dots (the curve keeps every step)
MARGINAL_MAX_N = 1000  # particles per side in the A-vs-B energy distance (O(n^2), redrawn as the slider moves)
MARGINAL_BINS = 32  # bins per axis of the Marginals heat map (a few hundred particles fill it)
SLIDER_MAX = 1000  # the shared slider runs over normalised progress 0..1 in this many ticks


def index_at(states: list[SampleState], frac: float) -> int:
    """The state whose progress step/total is nearest ``frac`` (0 = x_T, 1 = final sample)."""
    if not states:
        return 0
    prog = np.array([s.step / max(1, s.total) for s in states])
    return int(np.abs(prog - frac).argmin())


class _Side:
    """One half of the A/B view: sampler, seed and a SampleView."""

    def __init__(self, name: str, col: tuple[int, int, int]) -> None:
        self.name = name
        self.sampler = QComboBox()
        self.sampler.setToolTip(f"Sampler of side {name}")
        self.sampler.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.sampler.setMinimumContentsLength(6)
        self.steps = QSpinBox(minimum=0, maximum=100_000, value=0, prefix="steps ")
        self.steps.setSpecialValueText("steps: default")
        self.seed = QSpinBox(minimum=0, maximum=999_999, value=0, prefix="seed ")
        self.seed.setToolTip("Seed: the same seed on both sides starts both from the same noise x_T")
        self.prompt = PromptEdit(f"prompt of side {name}")  # text-to-image runs: prompt A vs prompt B
        self.prompt.setObjectName(f"compare_prompt_{name}")
        self.view = SampleView(name, col)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.addItem(self.view)
        self.states: list[SampleState] = []
        self.label = name
        self.lim: float | None = None  # the points' half-width on this side (None: image or nothing)


class TrajectoryPanel(JobPanel):
    panel_id = "trajectory"
    area = "tab:sampler"
    order = 70
    tools = ("compare",)
    title = "Compare A/B"  # no "&": Qt reads it as a mnemonic in tab and dock titles

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._lim: float | None = None
        self._classes = 0
        self._ab_run: str | None = None
        self._shapes: dict[str, tuple[int, ...] | None] = {}  # dataset name -> data shape (building one can take ~1 s)
        self._b_classes = 0  # classes of side B's run when it is another run (for cond/guidance)
        self._b_shown: str | None = None  # the B run whose samplers B's list shows
        self._samplers: tuple[str, ...] = ()  # side A's run's samplers
        self._marg_stale = False  # a comparison is being sampled: the heat map waits for it
        self._two_runs = False  # the shown A/B came from two runs (their t need not mean the same)
        self._text = False  # the run takes prompts (TextConditional face)
        self._build()
        self._play = QTimer(self, interval=PLAY_INTERVAL_MS)
        self._play.timeout.connect(self._play_tick)
        self.set_run(None)

    # -- UI ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.a = _Side("A", PALETTE[0])
        self.b = _Side("B", PALETTE[1])
        self.n = QSpinBox(minimum=1, maximum=100_000, value=256, prefix="n ")
        self.cls = QComboBox()
        self.cls.setToolTip("Class label for both sides (class-conditional runs)")
        self.cls.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.cls.currentIndexChanged.connect(  # w needs a label (or a prompt)
            lambda _: self.guidance.setEnabled(self._text or self.cls.currentData() is not None))
        self.guidance = QDoubleSpinBox(minimum=0.0, maximum=20.0, value=1.0, singleStep=0.5, prefix="w ")
        self.guidance.setToolTip("Classifier-free guidance scale (0 = unconditional, 1 = conditional)")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setDefault(True)
        self.b_run = QComboBox()
        self.b_run.setToolTip("Run of side B: the same run as A, or another run on data of the same shape\n"
                              "(both start from the same unit noise for the same seed)")
        self.b_run.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.b_run.setMinimumContentsLength(8)
        self.b_run.addItem(SAME_RUN, None)
        top = QHBoxLayout()  # side A's settings | side B's settings (two rows keep the panel narrow)
        top.setContentsMargins(4, 2, 4, 0)
        for side in (self.a, self.b):
            top.addWidget(QLabel(f"<b>{side.name}</b>"))
            if side is self.b:
                top.addWidget(self.b_run, 1)
            for w in (side.sampler, side.steps, side.seed):
                top.addWidget(w, 1 if w is side.sampler else 0)
        self.prompt_row = QWidget()  # text runs: two prompts from the same noise on one slider
        prow = QHBoxLayout(self.prompt_row)
        prow.setContentsMargins(4, 0, 4, 0)
        for side in (self.a, self.b):
            prow.addWidget(QLabel(f"<b>{side.name}</b> prompt"))
            prow.addWidget(side.prompt, 1)
        self.prompt_row.setVisible(False)
        shared = QHBoxLayout()
        shared.setContentsMargins(4, 0, 4, 2)
        self.whole_paths = QCheckBox("paths coloured by t")
        self.whole_paths.setToolTip("2-D: draw each particle's whole path from x_T, coloured by time "
                                    "(dark = noise, bright = data), instead of a short trail")
        self.whole_paths.toggled.connect(lambda _: self.show_progress(self.slider.value()))
        for w in (self.run_label, self.n, self.cls, self.guidance, self.compare_button, self.whole_paths):
            shared.addWidget(w)
        shared.addStretch(1)
        self.views = QWidget()  # both canvases: what "Export PNG" saves
        views = QHBoxLayout(self.views)
        views.setContentsMargins(0, 0, 0, 0)
        views.setSpacing(2)
        views.addWidget(self.a.canvas, 1)
        views.addWidget(self.b.canvas, 1)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, SLIDER_MAX)
        self.slider.setValue(SLIDER_MAX)
        self.slider.setToolTip("Progress from noise (left) to sample (right), shared by both sides")
        self.step_label = QLabel()
        self.step_label.setMinimumWidth(150)
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.ab_png_button = QPushButton("Export PNG…")
        self.ab_png_button.setToolTip("Both sides as shown, side by side")
        bottom = QHBoxLayout()
        bottom.setContentsMargins(4, 2, 4, 2)
        bottom.addWidget(self.play_button)
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.step_label)
        bottom.addWidget(self.ab_png_button)
        ab = QWidget()
        lay = QVBoxLayout(ab)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.prompt_row)
        lay.addLayout(shared)
        lay.addWidget(self.views, 1)
        lay.addLayout(bottom)

        self.tabs = QTabWidget()
        self.tabs.addTab(ab, "A/B")
        self.tabs.addTab(self._build_marginals(), "Marginals")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.tabs, 1)
        outer.addWidget(self.status)

        self.compare_button.clicked.connect(self._compare_clicked)
        self.b_run.currentIndexChanged.connect(lambda _: self._b_run_changed())
        self.play_button.toggled.connect(self._play_toggled)
        self.ab_png_button.clicked.connect(self._ab_png_dialog)
        self.slider.valueChanged.connect(self.show_progress)

    def _build_marginals(self) -> QWidget:
        """2-D runs: side A's particle density at the slider's t, and forward noising paths from a
        clicked point (on this plot or on side A's), so q(x_t | x_0) can be seen spreading out."""
        self.n_paths = QSpinBox(minimum=1, maximum=256, value=16, prefix="paths ")
        self.marg_note = QLabel()
        self.marg_note.setWordWrap(True)
        self.marg_plot = pg.PlotWidget(enableMenu=False)  # its view's menu is never built
        self.marg_plot.setAspectLocked(True)
        self.marg_img = pg.ImageItem()
        self.marg_plot.addItem(self.marg_img)
        self.marg_plot_b = pg.PlotWidget(enableMenu=False)  # side B at the same t: with A = reverse SDE
        self.marg_plot_b.setAspectLocked(True)  # (ancestral) and B = PF-ODE (DDIM, Euler...) the Fokker-Planck check
        self.marg_img_b = pg.ImageItem()
        self.marg_plot_b.addItem(self.marg_img_b)
        self.marg_dist = QLabel()
        self.marg_dist.setToolTip("Energy distance between A's and B's particles at the same t. Two samplers of "
                                  "one model that solve the reverse SDE and its probability-flow ODE have the "
                                  "same marginals p_t (Fokker-Planck), so this should be near the n-sample floor.")
        self.marg_distance: float | None = None
        self.path_curves: list[pg.PlotCurveItem] = []
        self.path_dots = pg.ScatterPlotItem(size=3, pen=None)
        self.marg_plot.addItem(self.path_dots)
        self._fwd: ForwardProcess | None = None
        row = QHBoxLayout()
        row.setContentsMargins(4, 2, 4, 2)
        row.addWidget(self.n_paths)
        row.addWidget(self.marg_note, 1)
        plots = QHBoxLayout()
        plots.setSpacing(2)
        plots.addWidget(self.marg_plot, 1)
        plots.addWidget(self.marg_plot_b, 1)
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addLayout(plots, 1)
        lay.addWidget(self.marg_dist)
        self.marg_plot.scene().sigMouseClicked.connect(
            lambda ev: self._clicked(self.marg_plot.getPlotItem().vb, ev))
        self.a.canvas.scene().sigMouseClicked.connect(lambda ev: self._clicked(self.a.view.vb, ev))
        return w

    def _clicked(self, vb: pg.ViewBox, ev: Any) -> None:
        if self.a.states and _is_points(self.a.states[0].x) and self.a.states[0].x.shape[1] == 2:
            p = vb.mapSceneToView(ev.scenePos())
            self.pick_point((p.x(), p.y()))

    def _describe_fwd(self) -> None:
        if self._fwd is None:
            what = "this run has no forward noising process in data space, so a click draws no paths"
        else:
            what = f"a click draws forward paths of its {describe_process(self._fwd)}; colour = time"
        self.marg_note.setText(f"Density of A's particles at the slider's t · {what}")

    def clear_paths(self) -> None:
        """Remove the drawn forward paths and the heat map (a new comparison or another run)."""
        for c in self.path_curves:
            self.marg_plot.removeItem(c)
        self.path_curves = []
        self.path_dots.clear()
        for img, plot in ((self.marg_img, self.marg_plot), (self.marg_img_b, self.marg_plot_b)):
            img.clear()
            plot.setTitle(None)
        self.marg_dist.clear()
        self.marg_distance = None

    def pick_point(self, x0: tuple[float, float], seed: int = 0) -> None:
        """Draw ``n_paths`` forward paths from ``x0`` of this run's own forward process
        (its ForwardProcess face), one curve per path, dots coloured by time."""
        for c in self.path_curves:
            self.marg_plot.removeItem(c)
        self.path_curves = []
        self.path_dots.clear()
        if self._fwd is None:
            self.status.setText("this run has no forward noising process to draw")
            return
        steps = min(self._fwd.T, 4000) if isinstance(self._fwd, NoiseSchedule) else 200  # DDPM: its whole chain
        t, paths = forward_paths(np.asarray(x0, np.float64), self._fwd, n_paths=self.n_paths.value(),
                                 steps=steps, seed=seed)
        for k in range(paths.shape[1]):
            c = pg.PlotCurveItem(paths[:, k, 0], paths[:, k, 1], pen=pg.mkPen(255, 255, 255, 90, width=1))
            self.marg_plot.addItem(c)
            self.path_curves.append(c)
        keep = np.unique(np.linspace(0, len(t) - 1, min(len(t), PATH_DOTS)).round().astype(int))
        t, dots = t[keep], paths[keep]  # a dot every few steps: a 1000-step chain would bury the plot
        cols = colormap(np.repeat(t, paths.shape[1]))
        self.path_dots.setData(dots[:, :, 0].ravel(), dots[:, :, 1].ravel(),
                               brush=[pg.mkBrush(*map(int, c)) for c in cols])
        self.path_dots.setZValue(10)
        m, sd = forward_marginal(self._fwd, float(t[-1]))
        self.status.setText(f"{len(self.path_curves)} forward paths from ({x0[0]:.2f}, {x0[1]:.2f}) to t = "
                            f"{t[-1]:.2f}: q(x_t | x_0) = N({m:.3g} x_0, {sd:.3g}^2)")

    def marginal_states(self) -> tuple[SampleState | None, SampleState | None]:
        """A's state at the slider, and B's state at the same t (one run: the state whose t is
        nearest; two runs, whose t may mean different things: the same progress)."""
        frac = self.slider.value() / SLIDER_MAX
        sa = self.a.states[index_at(self.a.states, frac)] if self.a.states else None
        if not self.b.states:
            return sa, None
        if sa is not None and not self._two_runs:
            return sa, min(self.b.states, key=lambda s: abs(s.t - sa.t))
        return sa, self.b.states[index_at(self.b.states, frac)]

    def _show_marginal(self) -> None:
        st, sb = self.marginal_states()
        if st is None or self._marg_stale or not _is_points(st.x) or st.x.shape[1] != 2:
            self.marg_img.clear()
            self.marg_img_b.clear()
            return
        lim = self._lim or 3.0
        self.marg_hist = marginal_histogram(st.x, bins=MARGINAL_BINS, lim=lim)  # [ix, iy]: ImageItem's x-first order
        hb = marginal_histogram(sb.x, bins=MARGINAL_BINS, lim=lim) if sb is not None and sb.x.shape == st.x.shape else None
        hi = max(float(self.marg_hist.max()), float(hb.max()) if hb is not None else 0.0, 1e-12)  # one colour scale
        self.marg_img.setImage(heatmap_image(self.marg_hist, 0.0, hi))
        self.marg_img.setRect(-lim, -lim, 2 * lim, 2 * lim)
        self.marg_plot.setTitle(f"A at step {st.step}/{st.total} · t={st.t:.3f}")
        if hb is None:
            self.marg_img_b.clear()
            self.marg_plot_b.setTitle(None)
            self.marg_dist.clear()
            self.marg_distance = None
            return
        self.marg_img_b.setImage(heatmap_image(hb, 0.0, hi))
        self.marg_img_b.setRect(-lim, -lim, 2 * lim, 2 * lim)
        self.marg_plot_b.setTitle(f"B at step {sb.step}/{sb.total} · t={sb.t:.3f}")
        self.marg_distance = float(energy_distance(st.x[:MARGINAL_MAX_N].double(), sb.x[:MARGINAL_MAX_N].double()))
        self.marg_dist.setText(f"energy distance between A and B at t≈{st.t:.3f}: {self.marg_distance:.4f} "
                               "(a reverse-SDE sampler and a probability-flow-ODE sampler of one model must agree: "
                               "Fokker-Planck)")

    # -- run selection ------------------------------------------------------------------------
    def set_run(self, run: Run | None) -> None:
        self._name_run(run)
        if (run.id if run else None) != (self._run.id if self._run else None):  # another run: drop the old views
            self._play.stop()
            self.play_button.setChecked(False)
            self.set_trajectories([], [])
            self.clear_paths()
            self.b_run.blockSignals(True)
            self.b_run.setCurrentIndex(0)  # B follows the new run until another is picked
            self.b_run.blockSignals(False)
            self._run_switched()
        self._run = run
        self._samplers = ()
        self._guided = False  # the plugin declares a guidance scale (SampleOption)
        self._text = False  # the run takes prompts (TextConditional face)
        self._problem = ""
        self._fwd = None
        info: dict[str, Any] = {}
        if run is not None:
            try:
                info = run.info()
                plugin = self.ctx.registry.get(info["plugin"])
                self._samplers = tuple(plugin.info.samplers)
                guide = [o for o in sample_options(plugin) if o.name == "guidance"]
                self._guided = bool(guide)
                if guide:  # the Sampler's starting value: the run config's, else the plugin's (sd: 3)
                    self.guidance.setValue(float(info["config"].get("guidance", guide[0].default)))
                fresh = plugin(from_dict(plugin.info.config_cls, info["config"]), "cpu")  # no setup: config only
                self._fwd = fresh.forward_process() if has_face(fresh, ForwardProcessFace) else None
            except (KeyError, RunError, ValueError, TypeError) as e:
                self._problem = str(e).strip("'\"")
        self._fill_samplers(self.a, self._samplers, 0)
        self._classes = self._num_classes(info) if info and not self._problem else 0
        self.cls.clear()
        self.cls.addItem("unconditional", None)
        for c in range(self._classes):
            self.cls.addItem(f"class {c}", c)
        self.cls.setVisible(self._classes > 0)
        self._text = "TextConditional" in (info.get("faces") or ()) and not self._problem
        self.prompt_row.setVisible(self._text)
        if self._text:
            words = run_vocabulary(info)
            for side in (self.a, self.b):
                side.prompt.set_vocabulary(words)
        self.guidance.setVisible((self._classes > 0 or self._text) and self._guided)
        self.guidance.setEnabled(self._text or self.cls.currentData() is not None)
        self._describe_fwd()
        self._b_shown = "?"  # B's samplers are refilled for the run just selected
        self.refresh_b_runs()
        self._update_buttons()

    def _num_classes(self, info: dict[str, Any]) -> int:
        """Classes a run can be conditioned on: what its train job recorded (the Conditional face)."""
        return int(info.get("classes") or 0) if "Conditional" in (info.get("faces") or ()) else 0

    def _data_shape(self, info: dict[str, Any]) -> tuple[int, ...] | None:
        """Shape of one sample of a run's dataset (cached per dataset: building digits takes ~1 s)."""
        name = info.get("dataset")
        if name not in self._shapes:
            from genstudio.core.data import get_dataset

            try:
                self._shapes[name] = tuple(get_dataset(name).spec.shape)
            except (KeyError, ValueError, OSError, TypeError):
                self._shapes[name] = None
        return self._shapes[name]

    @staticmethod
    def _fill_samplers(side: _Side, samplers: tuple[str, ...], default: int | str | None,
                       keep: bool = False) -> None:
        """Refill a side's sampler list; ``keep`` keeps its current choice when still offered,
        ``default`` is an index or a sampler name (index 0 when that one is not offered)."""
        current = side.sampler.currentData()
        side.sampler.blockSignals(True)
        side.sampler.clear()
        for s in samplers:
            side.sampler.addItem(s, s)
        if not samplers:
            side.sampler.addItem("default", None)
        if keep and side.sampler.findData(current) >= 0:
            i = side.sampler.findData(current)
        elif isinstance(default, str):
            i = max(side.sampler.findData(default), 0)
        else:
            i = min(int(default or 0), side.sampler.count() - 1)
        side.sampler.setCurrentIndex(i)
        side.sampler.blockSignals(False)

    def _b_other_run(self) -> Run | None:
        """Side B's run when it is not side A's (None: "same run")."""
        rid = self.b_run.currentData()
        if rid is None or self._run is None or rid == self._run.id:
            return None
        try:
            return self.ctx.store.get(rid)
        except RunError:
            return None

    def _b_problem(self, run: Run) -> str:
        """Why ``run`` cannot be side B next to side A's run ('' = it can)."""
        try:
            info, a_info = run.info(), self._run.info() if self._run is not None else {}
            self.ctx.registry.get(info["plugin"])
        except (KeyError, RunError) as e:
            return str(e).strip("'\"")
        if not run.checkpoints():
            return "no checkpoint yet"
        sa, sb = self._data_shape(a_info), self._data_shape(info)
        if sa is None or sb is None:
            return "unknown data shape"
        if sa != sb:
            return (f"its data ({info.get('dataset')}, shape {sb}) differs from A's "
                    f"({a_info.get('dataset')}, shape {sa}): pick a run on data of A's shape")
        return ""

    def refresh_b_runs(self) -> None:
        """Side B's run list: "same run", then every other run, newest first. Runs that cannot be B
        (no checkpoint, data of another shape) are greyed out with the reason as their tooltip."""
        keep = self.b_run.currentData()
        self.b_run.blockSignals(True)
        self.b_run.clear()
        self.b_run.addItem(SAME_RUN, None)
        self.b_run.setItemData(0, "Sample B from A's run", Qt.ToolTipRole)
        others = [r for r in self.ctx.store.list() if self._run is not None and r.id != self._run.id]
        for r in sorted(others, key=lambda r: r.id, reverse=True):  # ids start with their creation time
            why = self._b_problem(r)
            self.b_run.addItem(short_name(r.id), r.id)
            i = self.b_run.count() - 1
            self.b_run.setItemData(i, why or r.id, Qt.ToolTipRole)
            if why:
                self.b_run.model().item(i).setEnabled(False)
        self.b_run.setCurrentIndex(max(self.b_run.findData(keep), 0) if keep is not None else 0)
        self.b_run.blockSignals(False)
        self._b_run_changed()

    def _b_run_changed(self) -> None:
        """B's sampler list follows B's run (A's sampler preselected when B's plugin has it)."""
        rid = self.b_run.currentData()
        keep = rid == self._b_shown
        self._b_shown = rid
        other = self._b_other_run()
        if other is None:
            self._b_classes = self._classes
            self._fill_samplers(self.b, self._samplers, 1, keep)  # A and B differ by default
            return
        samplers: tuple[str, ...] = ()
        self._b_classes = 0
        try:
            info = other.info()
            samplers = tuple(self.ctx.registry.get(info["plugin"]).info.samplers)
            self._b_classes = self._num_classes(info)
        except (KeyError, RunError):
            pass
        self._fill_samplers(self.b, samplers, self.a.sampler.currentData(), keep)

    def _update_buttons(self) -> None:
        why = self._can_sample()
        self._job_button(self.compare_button, "compare", "Compare", "Stop", why)
        for w in (self.play_button, self.ab_png_button):
            w.setEnabled(bool(self.a.states or self.b.states))
        self._show_why(why)
        self._poll_jobs()

    # -- A/B ------------------------------------------------------------------------------------
    def _sample_kwargs(self, side: _Side) -> dict[str, Any]:
        kw: dict[str, Any] = {"sampler": side.sampler.currentData(), "steps": side.steps.value() or None}
        classes = self._classes if side is self.a else self._b_classes  # another run B may be unconditional
        if classes and self.cls.isVisibleTo(self) and self.cls.currentData() is not None:
            kw["cond"] = int(self.cls.currentData())
            if self._guided:
                kw["guidance"] = float(self.guidance.value())
        if self._text and (side is self.a or self._b_other_run() is None):  # another run B may take no text
            kw["prompt"] = side.prompt.prompts()
            if self._guided:
                kw["guidance"] = float(self.guidance.value())
        return kw

    def _compare_clicked(self) -> None:
        self._toggle("compare", self.compare_button, self.start_compare)

    def start_compare(self) -> Control | None:
        """Sample both sides from their runs' newest checkpoints in one job (one model load when B
        is A's run; B's model on A's device, so one seed draws the same unit noise on both sides)
        and post the two trajectories back as an AB_RESULT event."""
        run = self._run
        if run is None or self._can_sample():
            return None
        b_run = self._b_other_run()
        if b_run is None and self.b_run.currentData() not in (None, run.id):
            self.status.setText(f"B: run {self.b_run.currentText()} is gone; pick another")
            return None
        if b_run is not None and (why := self._b_problem(b_run)):
            self.status.setText(f"B cannot be {short_name(b_run.id)}: {why}")
            return None
        n = self.n.value()
        sides = [(s.seed.value(), self._sample_kwargs(s), self._side_label(s)) for s in (self.a, self.b)]
        bus, token = self.ctx.bus, self._new_token("compare")

        def job(control: Control):
            res = yield from compare_runs(run, b_run, n, sides, control)
            bus.emit(AB_RESULT, run.id, **res, token=token)

        self._ab_run = run.id
        self.clear_paths()
        self._marg_stale = True
        return self._launch("compare", run, job, "sampling A and B…")

    def _side_label(self, side: _Side) -> str:
        """"A: ddim, 10 steps, seed 0"; with two runs the run's short name comes first."""
        steps = side.steps.value()
        rid = (self._run.id if side is self.a else self.b_run.currentData()) if self._run is not None else None
        which = f"{short_name(rid)} · " if self._b_other_run() is not None and rid else ""
        prompt = " | ".join(side.prompt.prompts() or []) if self._text else ""
        return (f"{side.name}: {which}{side.sampler.currentText()}"
                + (f", {steps} steps" if steps else "") + f", seed {side.seed.value()}"
                + (f" · “{prompt}”" if prompt else ""))

    def _ab_status(self, data: dict[str, Any]) -> str:
        """Which checkpoints were compared and whether both sides start from the same noise."""
        sa, sb = data.get("scales") or (None, None)
        step = data.get("step", 0)
        ka, kb = data.get("steps") or (step, step)
        head = (f"A/B of two runs (A at step {ka:,}, B at step {kb:,})" if data.get("two_runs")
                else f"A/B from step {step:,}")
        a0, b0 = (self.a.states or [None])[0], (self.b.states or [None])[0]
        if a0 is None or b0 is None or a0.step or b0.step or a0.x.shape != b0.x.shape:
            return head
        if torch.equal(a0.x, b0.x):
            return head + ": both start from the same x_T"
        if sa and sb and torch.allclose(a0.x / sa, b0.x / sb, rtol=1e-5, atol=1e-6):
            return head + f": both start from the same unit noise ε (x_T = {sa:g}ε on A, {sb:g}ε on B)"
        return head + ": different starting noise"

    def set_trajectories(self, a: list[SampleState], b: list[SampleState],
                         labels: tuple[str, str] = ("A", "B")) -> None:
        """Show two trajectories; the slider keeps its (normalised) position."""
        self.a.states, self.b.states = list(a), list(b)
        self.a.label, self.b.label = labels
        self._marg_stale = False
        for side in (self.a, self.b):
            first = side.states[0].x if side.states and _is_points(side.states[0].x) else None
            q = float(np.nanpercentile(np.abs(first.numpy()), 99.5)) if first is not None and first.numel() else 0.0
            side.lim = max(2.5, 1.1 * q) if first is not None else None
        la, lb = self.a.lim, self.b.lim
        if la and lb and max(la, lb) <= 1.5 * min(la, lb):
            self.a.lim = self.b.lim = max(la, lb)  # one range for both sides, so they compare by eye
        self._lim = self.a.lim  # (two runs with priors of other scales, e.g. VE's sigma_max: each its own)
        self.show_progress(self.slider.value())
        self._update_buttons()

    def trajectories(self) -> tuple[list[SampleState], list[SampleState]]:
        return list(self.a.states), list(self.b.states)

    def shown_indices(self) -> tuple[int, int]:
        """Indices of the states each side shows at the slider's position."""
        frac = self.slider.value() / SLIDER_MAX
        return index_at(self.a.states, frac), index_at(self.b.states, frac)

    def show_progress(self, value: int) -> None:
        """Draw, on each side, the state nearest the slider's normalised progress."""
        frac = int(value) / SLIDER_MAX
        texts = []
        for side in (self.a, self.b):
            if not side.states:
                side.view.clear_content()
                side.view.setTitle(side.name)
                continue
            i = index_at(side.states, frac)
            st = side.states[i]
            if _is_points(st.x):
                hist, times = particle_history(side.states, i, self.whole_paths.isChecked())
                side.view.show_points(st.x.numpy(), hist, side.lim, times=times)
            elif st.x.dim() == 4:
                side.view.show_image(image_grid(st.x))
            sep = "<br>" if len(side.label) > 40 else " · "  # two runs' labels are long: step on a line of its own
            side.view.setTitle(f"{side.label}{sep}step {st.step}/{st.total}")
            texts.append(f"{side.name} {st.step}/{st.total}")
        self.step_label.setText(f"progress {frac:.0%} · " + " · ".join(texts) if texts else "")
        self._show_marginal()

    def _play_toggled(self, on: bool) -> None:
        if on:
            if self.slider.value() >= SLIDER_MAX:
                self.slider.setValue(0)
            self._play.start()
        else:
            self._play.stop()
        self.play_button.setText("Pause" if on else "Play")

    def _play_tick(self) -> None:
        v = min(SLIDER_MAX, self.slider.value() + max(1, round(SLIDER_MAX * PLAY_INTERVAL_MS / 1000 / PLAY_SECONDS)))
        self.slider.setValue(v)
        if v >= SLIDER_MAX:
            self.play_button.setChecked(False)

    def export_ab_png(self, path: str | Path) -> Path:
        """Both sides at the slider's position, as on screen."""
        if not (self.a.states or self.b.states):
            raise RuntimeError("nothing compared yet")
        path = Path(path)
        if not self.views.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        return path

    def _ab_png_dialog(self) -> None:
        folder = self._run.sample_dir() if self._run is not None else Path.home()
        path, _ = QFileDialog.getSaveFileName(self, "Export A/B", str(folder / "compare.png"), "PNG (*.png)")
        if path:
            self._export(self.export_ab_png, path)

    # -- events -----------------------------------------------------------------------------------
    def on_events(self, events: list[Event]) -> None:
        refresh_b = False
        for e in events:
            if e.kind == AB_RESULT and e.run_id == self._ab_run and self._current(e, "compare"):
                self._done("compare")
                self._two_runs = bool(e.data.get("two_runs", False))
                self.set_trajectories(e.data["a"], e.data["b"], tuple(e.data["labels"]))
                self.status.setText(self._ab_status(e.data))
            elif e.kind == "status":
                refresh_b = True
                if self._run is not None and e.run_id == self._run.id:
                    self._update_buttons()
        if self._checkpoint_may_have_come(events):
            self._update_buttons()
        if refresh_b and not self.b_run.view().isVisible():  # a run got (or lost) checkpoints: B's list follows
            self.refresh_b_runs()
