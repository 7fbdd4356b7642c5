"""Sampler: pick a checkpoint, n, seed, steps and sampler, then watch x_t and the predicted x̂0
side by side while the job runs (image grids, or 2-D points with particle trails). The whole
trajectory stays scrubbable afterwards (slider + play) and exports as PNG (final) or GIF.

Sampling runs through ``ctx.start_job`` in the worker thread; the panel only collects the
SAMPLE_STATE events it is sent and draws the newest one per screen tick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from genstudio.core import events as ev
from genstudio.core import jobs
from genstudio.core.events import Event
from genstudio.core.imaging import image_grid, samples_image, save_gif, save_png
from genstudio.core.jobs import Control
from genstudio.core.plugin import SampleState
from genstudio.core.runs import Run, RunError
from genstudio.qt.panels.base import AppContext, Panel
from genstudio.qt.panels.views import PALETTE, SampleView

TRAIL = 8  # positions per particle trail
MAX_TRAILS = 2000  # particles that get a trail (drawing cost grows with n * TRAIL)
MAX_GIF_FRAMES = 120
PLAY_SECONDS = 5.0  # a whole trajectory plays in about this long
PLAY_INTERVAL_MS = 40


def frame_indices(n: int, max_frames: int = MAX_GIF_FRAMES) -> list[int]:
    """At most ``max_frames`` evenly spaced indices of ``range(n)``, always first and last."""
    if n <= max_frames:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, max_frames).round().astype(int).tolist()))


def _is_points(x: torch.Tensor) -> bool:
    return x.dim() == 2 and x.shape[1] == 2


class SamplerPanel(Panel):
    panel_id = "sampler"
    title = "Sampler"

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._run: Run | None = None
        self._states: list[SampleState] = []
        self._sampling_run: str | None = None  # run of the sample job this panel started (until RESULT)
        self._traj_run: str | None = None  # run whose trajectory is shown
        self._done = False  # the shown trajectory is complete (its RESULT arrived)
        self._control: Control | None = None
        self._result: dict[str, Any] = {}
        self._lim: float | None = None
        self._problem = ""  # why this run cannot be sampled (broken plugin, unreadable run)
        self._hint = ""  # the last such reason shown in the status line
        self._build()
        self._play = QTimer(self, interval=PLAY_INTERVAL_MS)
        self._play.timeout.connect(self._play_tick)
        self._poll = QTimer(self, interval=250)  # notices a job that ended without a RESULT (stop, error)
        self._poll.timeout.connect(self._update_buttons)
        self.set_run(None)

    # -- UI ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.checkpoint = QComboBox()
        self.checkpoint.setMinimumWidth(110)
        self.checkpoint.setToolTip("Checkpoint to sample from (newest first)")
        self.n = QSpinBox(minimum=1, maximum=100_000, value=64, prefix="n ")
        self.n.setToolTip("Number of samples")
        self.seed = QSpinBox(minimum=0, maximum=999_999, value=0, prefix="seed ")
        self.seed.setToolTip("Random seed (the same seed and settings give the same samples)")
        self.steps = QSpinBox(minimum=0, maximum=100_000, value=0, prefix="steps ")
        self.steps.setSpecialValueText("steps: default")
        self.steps.setToolTip("Sampling steps (default: the plugin's)")
        self.sampler = QComboBox()
        self.sampler.setToolTip("Sampler")
        self.sample_button = QPushButton("Sample")
        self.sample_button.setDefault(True)
        self.status = QLabel()
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # long messages clip, never widen

        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 2)
        for w in (self.checkpoint, self.sampler, self.steps, self.n, self.seed, self.sample_button):
            top.addWidget(w)
        top.addWidget(self.status, 1)

        self.view_x = SampleView("<i>x</i><sub>t</sub> (current state)", PALETTE[0])
        self.view_x0 = SampleView("<i>x&#770;</i><sub>0</sub> (predicted clean sample)", PALETTE[1])
        views = QHBoxLayout()  # two canvases, so the halves stay equal whatever their titles measure
        views.setSpacing(2)
        for view in (self.view_x, self.view_x0):
            canvas = pg.GraphicsLayoutWidget()
            canvas.addItem(view)
            views.addWidget(canvas, 1)

        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 0)
        self.step_label = QLabel()
        self.step_label.setMinimumWidth(150)
        self.png_button = QPushButton("Export PNG…")
        self.gif_button = QPushButton("Export GIF…")
        bottom = QHBoxLayout()
        bottom.setContentsMargins(4, 2, 4, 2)
        bottom.addWidget(self.play_button)
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.step_label)
        bottom.addWidget(self.png_button)
        bottom.addWidget(self.gif_button)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addLayout(views, 1)
        lay.addLayout(bottom)

        self.sample_button.clicked.connect(self._sample_clicked)
        self.play_button.toggled.connect(self._play_toggled)
        self.slider.valueChanged.connect(self.show_step)
        self.png_button.clicked.connect(self._export_png_dialog)
        self.gif_button.clicked.connect(self._export_gif_dialog)

    # -- run selection ------------------------------------------------------------------------
    def set_run(self, run: Run | None) -> None:
        self._run = run
        samplers: tuple[str, ...] = ()
        problem = ""
        if run is not None:
            try:
                plugin = run.info()["plugin"]
                samplers = tuple(self.ctx.registry.get(plugin).info.samplers)
            except (KeyError, RunError) as e:
                problem = str(e).strip("'\"")
        self.sampler.clear()
        for s in samplers:
            self.sampler.addItem(s, s)
        if not samplers:
            self.sampler.addItem("default", None)
        self._problem = problem
        self._refresh_checkpoints()

    def _refresh_checkpoints(self) -> None:
        """List the run's checkpoints, newest first, keeping the user's pick if it still exists."""
        keep = self.checkpoint.currentData()
        self.checkpoint.clear()
        cks = self._run.checkpoints() if self._run is not None else []
        for step, path in reversed(cks):
            self.checkpoint.addItem(f"step {step:,}", str(path))
        i = self.checkpoint.findData(keep) if keep is not None else -1
        self.checkpoint.setCurrentIndex(max(i, 0))
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.ctx.job_running("sample")
        if not running and self._poll.isActive():
            self._poll.stop()
            if self._sampling_run is not None and not self._done:  # ended without a RESULT: stopped/failed
                self.status.setText(f"sampling ended ({len(self._states)} states)")
        self.sample_button.setText("Stop" if running else "Sample")
        can = self._run is not None and self.checkpoint.count() > 0 and not self._problem
        self.sample_button.setEnabled(running or can)
        has = bool(self._states)
        for w in (self.slider, self.play_button, self.png_button, self.gif_button):
            w.setEnabled(has)
        if not running:
            hint = ("select a run" if self._run is None else self._problem
                    or ("" if self.checkpoint.count() else "no checkpoint yet: train first"))
            if hint:
                self.status.setText(hint)
            elif self.status.text() == self._hint:  # the reason went away (a checkpoint arrived)
                self.status.clear()
            self._hint = hint

    # -- sampling -------------------------------------------------------------------------------
    def _sample_clicked(self) -> None:
        if self.ctx.job_running("sample"):
            if self._control is not None:
                self._control.cancel()
            return
        self.start_sampling()

    def start_sampling(self) -> Control | None:
        """Start a sampling job with the current settings (what the Sample button does)."""
        run = self._run
        if run is None or not self.checkpoint.count():
            return None
        kw = dict(n=self.n.value(), seed=self.seed.value(), steps=self.steps.value() or None,
                  sampler=self.sampler.currentData(), checkpoint=self.checkpoint.currentData())
        self._begin_trajectory(run.id)
        self._sampling_run = run.id
        self.status.setText(f"sampling from {self.checkpoint.currentText()}…")
        bus = self.ctx.bus
        self._control = self.ctx.start_job(
            "sample", run, lambda control: jobs.sample(run, control=control, bus=bus, **kw))
        self._poll.start()
        self._update_buttons()
        return self._control

    def _begin_trajectory(self, run_id: str) -> None:
        self._play.stop()
        self.play_button.setChecked(False)
        self._states = []
        self._result = {}
        self._lim = None
        self._done = False
        self._traj_run = run_id
        self.slider.setRange(0, 0)  # an empty trajectory "is at its end": the view follows new states

    def on_events(self, events: list[Event]) -> None:
        new = False
        current = self._run.id if self._run is not None else None
        for e in events:
            if e.kind == ev.STATUS:
                if e.run_id == current:
                    self._refresh_checkpoints()  # training may have written a new checkpoint
            elif e.kind == ev.SAMPLE_STATE:
                # our own job's states, or a sample job for the selected run started elsewhere (menu, demo)
                if e.run_id not in (self._sampling_run, current):
                    continue
                st = e.data["state"]
                if (e.run_id != self._traj_run or self._done
                        or (self._states and st.step <= self._states[-1].step)):  # a new trajectory
                    self._begin_trajectory(e.run_id)
                    if e.run_id != self._sampling_run:
                        self.status.setText("sampling…")
                self._states.append(st)
                new = True
            elif e.kind == ev.RESULT and e.run_id == self._traj_run and not self._done:
                self._finish(e.data)
                new = True
        if new:
            self._show_states(follow=True)

    def _finish(self, result: dict[str, Any]) -> None:
        """The job is done: make sure the full trajectory is here (the NPZ has all of it)."""
        self._result = dict(result)
        self._done = True
        if self._sampling_run == self._traj_run:
            self._sampling_run = None
        npz = result.get("npz")
        if npz:
            try:
                with np.load(npz) as f:
                    if "traj_x" in f.files and len(f["traj_x"]) > len(self._states):
                        self._states = self._states_from_npz(f)
            except (OSError, ValueError, KeyError):
                pass
        self.status.setText(f"done: {len(self._states)} states" + (f" → {Path(result['png']).name}"
                                                                    if result.get("png") else ""))

    @staticmethod
    def _states_from_npz(f: Any) -> list[SampleState]:
        xs, ts = f["traj_x"], f["traj_t"]
        x0s = f["traj_x0"] if "traj_x0" in f.files else None
        total = len(xs) - 1
        return [SampleState(i, total, float(ts[i]), torch.from_numpy(xs[i]),
                            torch.from_numpy(x0s[i]) if x0s is not None else None) for i in range(len(xs))]

    # -- trajectory display -------------------------------------------------------------------
    def num_states(self) -> int:
        return len(self._states)

    def states(self) -> list[SampleState]:
        return list(self._states)

    def _show_states(self, follow: bool) -> None:
        n = len(self._states)
        at_end = self.slider.value() >= self.slider.maximum()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        if follow and at_end:
            self.slider.setValue(n - 1)
        self.slider.blockSignals(False)
        self._update_buttons()
        if n:
            self.show_step(self.slider.value())

    def show_step(self, i: int) -> None:
        """Draw state ``i`` of the trajectory (x_t left, x̂0 right)."""
        if not self._states:
            return
        i = max(0, min(int(i), len(self._states) - 1))
        if self.slider.value() != i:
            self.slider.blockSignals(True)
            self.slider.setValue(i)
            self.slider.blockSignals(False)
        st = self._states[i]
        if _is_points(st.x):
            fit = None
            if self._lim is None:  # fit once per trajectory (then the cloud visibly contracts; zoom stays)
                first = self._states[0].x.numpy()
                q = float(np.nanpercentile(np.abs(first), 99.5)) if first.size else 3.0
                self._lim = fit = max(2.5, 1.1 * q)
            lo = max(0, i - TRAIL + 1)
            hist = np.stack([s.x[:MAX_TRAILS].numpy() for s in self._states[lo:i + 1]])
            self.view_x.show_points(st.x.numpy(), hist, fit)
            if st.x0 is not None:
                hist0 = np.stack([s.x0[:MAX_TRAILS].numpy() for s in self._states[lo:i + 1]
                                  if s.x0 is not None])
                self.view_x0.show_points(st.x0.numpy(), hist0, fit)
            else:
                self.view_x0.clear_content()
        elif st.x.dim() == 4:
            self.view_x.show_image(image_grid(st.x))
            if st.x0 is not None:
                self.view_x0.show_image(image_grid(st.x0))
            else:
                self.view_x0.clear_content()
        else:
            self.status.setText(f"cannot draw samples of shape {tuple(st.x.shape)}")
        self.step_label.setText(f"step {st.step}/{st.total} · t={st.t:.3f}")
        self.step_label.setToolTip(f"state {i + 1} of {len(self._states)} kept")

    def _play_toggled(self, on: bool) -> None:
        if on:
            if self.slider.value() >= len(self._states) - 1:
                self.show_step(0)
            self._play.start()
            self.play_button.setText("Pause")
        else:
            self._play.stop()
            self.play_button.setText("Play")

    def _play_tick(self) -> None:
        n = len(self._states)
        stride = max(1, round(n * PLAY_INTERVAL_MS / 1000 / PLAY_SECONDS))
        i = self.slider.value() + stride
        self.show_step(min(i, n - 1))
        if i >= n - 1:
            self.play_button.setChecked(False)

    # -- export -------------------------------------------------------------------------------
    def export_png(self, path: str | Path) -> Path:
        """The final samples as one picture (grid or scatter)."""
        if not self._states:
            raise RuntimeError("nothing sampled yet")
        return save_png(samples_image(self._states[-1].x), path)

    def export_gif(self, path: str | Path, fps: float = 12.0) -> Path:
        """The x_t trajectory as an animated GIF (at most MAX_GIF_FRAMES evenly spaced frames)."""
        if not self._states:
            raise RuntimeError("nothing sampled yet")
        frames = [samples_image(self._states[i].x) for i in frame_indices(len(self._states))]
        return save_gif(frames, path, fps=fps)

    def _default_path(self, suffix: str) -> str:
        folder = self._run.sample_dir() if self._run is not None else Path.home()
        return str(folder / f"trajectory{suffix}")

    def _export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export final samples", self._default_path(".png"),
                                              "PNG image (*.png)")
        if path:
            self._export(self.export_png, path)

    def _export_gif_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export trajectory", self._default_path(".gif"),
                                              "GIF animation (*.gif)")
        if path:
            self._export(self.export_gif, path)

    def _export(self, fn: Any, path: str) -> None:
        try:
            out = fn(path)
        except (OSError, ValueError, RuntimeError) as e:
            self.ctx.show_error(f"Export failed: {e}")
            return
        self.ctx.status_message(f"wrote {out}")
