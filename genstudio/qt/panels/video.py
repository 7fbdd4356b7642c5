"""The video sampler: one DDIM run of a video model kept at every step (``core.tools.video``), shown
through a 2-D scrub -- a denoising-step slider x a clip-frame slider -- so a person sees noise become
a moving clip: x_t | x0_hat of every clip at (step, frame), the per-frame x0_hat strip of the first
clip at the current step, playback over the frames (looping), and GIF/MP4 export of the final clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from genstudio.core.data import dataset_kind
from genstudio.core.events import Event
from genstudio.core.jobs import Control
from genstudio.core.runs import Run, RunError
from genstudio.core.tools.video import Scrub, scrub_image, scrub_job, x0_strip
from genstudio.qt.panels.base import AppContext
from genstudio.qt.panels.jobpanel import JobPanel

VIDEO_RESULT = "video_scrub"  # data: {"scrub": Scrub, "token"}


class VideoPanel(JobPanel):
    panel_id = "video"
    title = "Video"
    order = 79
    tools = ("sample",)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.scrub: Scrub | None = None
        self.sample_button = QPushButton("Sample clips")
        self.n_spin = QSpinBox(minimum=1, maximum=16, value=4, prefix="clips ")
        self.steps_spin = QSpinBox(minimum=1, maximum=200, value=20, prefix="DDIM steps ")
        self.frames_spin = QSpinBox(minimum=0, maximum=64, value=0, prefix="frames ", specialValueText="frames: trained")
        self.frames_spin.setToolTip("Clip length to sample (more than trained = extrapolated)")
        self.cond_spin = QSpinBox(minimum=-1, maximum=99, value=-1, prefix="class ", specialValueText="class: none")
        self.prompt = QLineEdit(placeholderText="prompt (caption runs), e.g. a red circle moves right")
        self.step_slider = QSlider(Qt.Horizontal, minimum=0, maximum=0, enabled=False)
        self.step_slider.setToolTip("Denoising step (left: noise, right: the final clips)")
        self.frame_slider = QSlider(Qt.Horizontal, minimum=0, maximum=0, enabled=False)
        self.frame_slider.setToolTip("Frame of the clip")
        self.step_label, self.frame_label = QLabel("step —"), QLabel("frame —")
        for lab in (self.step_label, self.frame_label):
            lab.setMinimumWidth(140)
        self.play_button = QPushButton("▶ Play")
        self.loop = QCheckBox("loop", checked=True)
        self.export_button = QPushButton("Export GIF/MP4…")
        self.timer = QTimer(self, interval=125)  # 8 frames/s
        self.timer.timeout.connect(self._tick)

        self.view = pg.GraphicsLayoutWidget()
        self.main_box = self.view.addViewBox(row=0, col=0, lockAspect=True, enableMouse=False)
        self.main_box.invertY(True)
        self.main_item = pg.ImageItem(axisOrder="row-major")
        self.main_box.addItem(self.main_item)
        self.view.addLabel("top row: x_t (noisy clip at this step) · bottom row: x0_hat (predicted clean clip)",
                           row=1, col=0)
        self.strip_box = self.view.addViewBox(row=2, col=0, lockAspect=True, enableMouse=False)
        self.strip_box.invertY(True)
        self.strip_item = pg.ImageItem(axisOrder="row-major")
        self.strip_box.addItem(self.strip_item)
        self.view.addLabel("x0_hat of clip 1 at this step, frame by frame", row=3, col=0)
        self.view.ci.layout.setRowStretchFactor(0, 3)
        self.view.ci.layout.setRowStretchFactor(2, 1)

        bar = QHBoxLayout()
        for w in (self.run_label, self.sample_button, self.n_spin, self.steps_spin, self.frames_spin, self.cond_spin,
                  self.prompt):
            bar.addWidget(w, 1 if w is self.prompt else 0)
        scrub = QHBoxLayout()
        for w in (QLabel("step"), self.step_slider, self.step_label, QLabel("frame"), self.frame_slider,
                  self.frame_label, self.play_button, self.loop, self.export_button):
            scrub.addWidget(w, 1 if isinstance(w, QSlider) else 0)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addLayout(scrub)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.status)

        self.sample_button.clicked.connect(lambda: self._toggle("video", self.sample_button, self.start_sample))
        self.step_slider.valueChanged.connect(self._redraw)
        self.frame_slider.valueChanged.connect(self._redraw)
        self.play_button.clicked.connect(self.toggle_play)
        self.export_button.clicked.connect(self._export_dialog)
        self.set_run(None)

    # -- run and job ------------------------------------------------------------------------------
    def set_run(self, run: Run | None) -> None:
        self._name_run(run)
        if (run.id if run else None) != (self._run.id if self._run else None):
            self._run_switched()
        self._run = run
        self._problem = ""
        if run is not None:
            try:
                info = run.info()
                self.ctx.registry.get(info["plugin"])
                if dataset_kind(info.get("dataset", "")) != "video" and not str(info.get("dataset", "")).startswith(
                        "video:"):
                    self._problem = "the video sampler needs a run trained on video clips"
                faces = set(info.get("faces") or ())
                self.cond_spin.setEnabled("Conditional" in faces)
                self.prompt.setEnabled("TextConditional" in faces)
            except (KeyError, RunError) as e:
                self._problem = str(e).strip("'\"")
        self._update_buttons()

    def _update_buttons(self) -> None:
        why = self._can_sample() or self.why_not("sample", self._run)
        self._job_button(self.sample_button, "video", "Sample clips", "Stop", why)
        self.export_button.setEnabled(self.scrub is not None)
        self.play_button.setEnabled(self.scrub is not None)
        self._show_why(why)
        self._poll_jobs()

    def sample_kwargs(self) -> dict:
        kw: dict = {}
        if self.frames_spin.value():
            kw["frames"] = self.frames_spin.value()
        if self.cond_spin.isEnabled() and self.cond_spin.value() >= 0:
            kw["cond"] = self.cond_spin.value()
        if self.prompt.isEnabled() and self.prompt.text().strip():
            kw["prompt"] = self.prompt.text().strip()
        return kw

    def start_sample(self) -> Control | None:
        run = self._run
        if run is None or self._can_sample():
            return None
        bus, token = self.ctx.bus, self._new_token("video")
        n, steps, kw = self.n_spin.value(), self.steps_spin.value(), self.sample_kwargs()

        def job(control: Control):
            scrub = yield from scrub_job(run, n, steps, control=control, **kw)
            bus.emit(VIDEO_RESULT, run.id, scrub=scrub, token=token)

        return self._launch("video", run, job, "sampling clips…")

    def on_events(self, events: list[Event]) -> None:
        for e in events:
            if e.kind == VIDEO_RESULT and self._run is not None and e.run_id == self._run.id \
                    and self._current(e, "video"):
                self._done("video")
                self.set_scrub(e.data["scrub"])
                self.status.setText(f"{e.data['scrub'].x.shape[1]} clips, {e.data['scrub'].steps} steps: "
                                    "drag the step and frame sliders")
        if self._checkpoint_may_have_come(events):
            self._update_buttons()

    # -- the scrub ----------------------------------------------------------------------------------
    def set_scrub(self, scrub: Scrub | None, step: int | None = None) -> None:
        """Show ``scrub``; the step slider starts at the last step (the final clips), frame 0."""
        self.scrub = scrub
        for s, hi in ((self.step_slider, (scrub.steps - 1) if scrub else 0),
                      (self.frame_slider, (scrub.frames - 1) if scrub else 0)):
            s.blockSignals(True)
            s.setRange(0, hi)
            s.setValue(hi if s is self.step_slider else 0)
            s.blockSignals(False)
            s.setEnabled(scrub is not None)
        if step is not None:
            self.step_slider.setValue(step)
        self._redraw()
        self._update_buttons()

    def images(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(x_t | x0_hat picture at the sliders' (step, frame), the x0_hat strip at that step)."""
        if self.scrub is None:
            return None
        s, f = self.step_slider.value(), self.frame_slider.value()
        return scrub_image(self.scrub, s, f), x0_strip(self.scrub, s)

    def _redraw(self) -> None:
        imgs = self.images()
        if imgs is None:
            self.main_item.clear()
            self.strip_item.clear()
            self.step_label.setText("step —")
            self.frame_label.setText("frame —")
            return
        self.main_item.setImage(imgs[0], autoLevels=False, levels=(0, 255))
        self.strip_item.setImage(imgs[1], autoLevels=False, levels=(0, 255))
        self.main_box.autoRange(padding=0.01)
        self.strip_box.autoRange(padding=0.01)
        s, f, sc = self.step_slider.value(), self.frame_slider.value(), self.scrub
        self.step_label.setText(f"step {s + 1}/{sc.steps} · t={sc.t[s]:.2f}")
        self.frame_label.setText(f"frame {f + 1}/{sc.frames}")

    def toggle_play(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self.play_button.setText("▶ Play")
        elif self.scrub is not None:
            self.timer.start()
            self.play_button.setText("⏸ Pause")

    def _tick(self) -> None:
        f = self.frame_slider.value() + 1
        if f > self.frame_slider.maximum():
            if not self.loop.isChecked():
                self.toggle_play()
                return
            f = 0
        self.frame_slider.setValue(f)

    def export_clip(self, path: str | Path) -> Path:
        if self.scrub is None:
            raise RuntimeError("sample clips first")
        return self.scrub.export(path)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export clips", str(Path.home() / "clips.gif"),
                                              "Animations (*.gif *.mp4)")
        if path:
            self._export(lambda p: str(self.export_clip(p)), path)
