"""Sampler: pick a checkpoint, n, seed, steps and sampler, then watch x_t and the predicted x̂0
side by side while the job runs (image grids, or 2-D points with particle trails). The whole
trajectory stays scrubbable afterwards (slider + play) and exports as PNG (the final samples, or
x_t | x̂0 at the slider's step) or as a GIF/MP4 of x_t | x̂0 with step/t labels.
Class-conditional runs (the Conditional face, recorded in run.json) get a class picker; the
options a plugin declares (``SampleOption``: DDPM's eta for "ddim", its guidance scale once a class
is picked) get a control each, shown where they apply.

The "Invert / interpolate" tab (models with the Denoiser face) inverts two start items (a dataset example, a seed's
noise or an image file) with deterministic DDIM, shows x0 | noise | reconstruction with the
round-trip error, and decodes the slerp and lerp strips between their noises
(``genstudio.core.tools.edit``).

Sampling and editing run through ``ctx.start_job`` in the worker thread; the panel only collects
the SAMPLE_STATE events (and its own EDIT_RESULT) it is sent and draws the newest per screen tick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QBoxLayout,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
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
from genstudio.core import jobs
from genstudio.core.events import Event
from genstudio.core.imaging import (
    ANIMATION_SUFFIXES,
    colormap,
    data_lim,
    frame_indices,  # noqa: F401 - part of this module's API (tests, older callers)
    image_grid,
    samples_image,
    save_animation,
    save_png,
    trajectory_frame,
    trajectory_frames,
    trajectory_label,
)
from genstudio.core.jobs import Control
from genstudio.core.plugin import SampleOption, SampleState, option_applies, sample_options
from genstudio.core.runs import Run, RunError
from genstudio.core.tools import edit
from genstudio.core.tools.text2image import (
    attention_figure,
    attention_strip,
    has_attention,
    run_vocabulary,
    state_pipeline_image,
)
from genstudio.qt.panels.base import AppContext, Panel
from genstudio.qt.panels.runs import short_name
from genstudio.qt.panels.views import (
    MAX_TRAILS,
    PALETTE,
    TRAIL,
    ImageLabel,
    PromptEdit,
    SampleView,
    particle_history,
)

ANIMATION_FILTERS = {".gif": "GIF animation (*.gif)", ".mp4": "MP4 video (*.mp4)"}
TIME_BAR_WIDTH = 78  # px of the t colour bar's column (bar, ticks and axis title)
PLAY_SECONDS = 5.0  # a whole trajectory plays in about this long
PLAY_INTERVAL_MS = 40
EDIT_RESULT = "sampler_edit"  # data: {"result": EditResult | None, "error": str, "token": int, "step": int}
INV_TITLES = {True: "x<sub>0</sub> | inverted noise | reconstruction (rows A, B)",
              False: "x<sub>0</sub> (ring) → noise (grey) → reconstruction (orange)"}
INTERP_TITLES = {True: "between the two noises, decoded: slerp (top) · lerp (bottom)",
                 False: "between the two noises, decoded: slerp (blue) · lerp (orange)"}


def _is_points(x: torch.Tensor) -> bool:
    return x.dim() == 2 and x.shape[1] == 2


class ItemPicker(QWidget):
    """One start item of the edit tab: a dataset index, a seed, or an image file."""

    def __init__(self, name: str, index: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.kind = QComboBox()
        self.kind.addItem("data", "data")
        self.kind.addItem("seed", "seed")
        self.kind.addItem("image file", "file")
        self.kind.setToolTip(f"{name}: a dataset example, the noise of a seed, or an image file")
        self.value = QSpinBox(minimum=0, maximum=999_999, value=index)
        self.value.setToolTip("Dataset index or seed")
        self.open_button = QPushButton("Open image…")
        self.path = ""
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(QLabel(f"<b>{name}</b>"))
        for w in (self.kind, self.value, self.open_button):
            lay.addWidget(w)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.open_button.clicked.connect(self._open_dialog)
        self._kind_changed()

    def set_images_allowed(self, ok: bool) -> None:
        """Image files only make sense for image datasets."""
        i = self.kind.findData("file")
        self.kind.model().item(i).setEnabled(ok)
        if not ok and self.kind.currentData() == "file":
            self.kind.setCurrentIndex(0)

    def _kind_changed(self) -> None:
        file = self.kind.currentData() == "file"
        self.value.setVisible(not file)
        self.open_button.setVisible(file)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Image for {self.name}", self.path or str(Path.home()),
                                              "Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp)")
        if path:
            self.set_spec(path)

    def set_spec(self, spec: str) -> None:
        """``data:12`` | ``seed:3`` | an image path (or ``file:PATH``)."""
        kind, sep, rest = spec.partition(":")
        if sep and kind in ("data", "seed"):
            self.kind.setCurrentIndex(self.kind.findData(kind))
            self.value.setValue(int(rest))
        else:
            self.path = rest if kind == "file" and sep else spec
            spec = self.path
            self.open_button.setText(Path(spec).name[:18] or "Open image…")
            self.open_button.setToolTip(spec)
            self.kind.setCurrentIndex(self.kind.findData("file"))

    def spec(self) -> str:
        kind = self.kind.currentData()
        return self.path if kind == "file" else f"{kind}:{self.value.value()}"


class OptionControl(QWidget):
    """A declared :class:`SampleOption`: a slider with a spin box (numbers) or a combo (choices)."""

    def __init__(self, opt: SampleOption) -> None:
        super().__init__()
        self.opt = opt
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.combo = self.spin = self.slider = None
        if opt.choices:
            self.combo = QComboBox()
            for c in opt.choices:
                self.combo.addItem(f"{opt.name}: {c}", c)
            lay.addWidget(self.combo)
        else:
            lo, hi = opt.range
            self.spin = QDoubleSpinBox(minimum=lo, maximum=hi, singleStep=opt.step, decimals=2, prefix=f"{opt.name} ")
            self.slider = QSlider(Qt.Horizontal, minimum=0, maximum=max(1, round((hi - lo) / opt.step)))
            self.slider.setMinimumWidth(70)
            self.slider.valueChanged.connect(lambda v: self.spin.setValue(lo + v * opt.step))
            self.spin.valueChanged.connect(lambda w: self.slider.setValue(round((w - lo) / opt.step)))
            lay.addWidget(self.slider)
            lay.addWidget(self.spin)
        for w in (self, self.combo, self.spin, self.slider):
            if w is not None:
                w.setToolTip(opt.help)
        self.setValue(opt.default)

    def value(self) -> float | str:
        return self.combo.currentData() if self.combo is not None else float(self.spin.value())

    def setValue(self, v: Any) -> None:  # noqa: N802 - Qt naming
        if self.combo is not None:
            self.combo.setCurrentIndex(max(0, self.combo.findData(str(v))))
        else:
            self.spin.setValue(float(v))


class SamplerPanel(Panel):
    panel_id = "sampler"
    area = "top"
    order = 20
    tools = ("sample", "invert")
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
        self.options: dict[str, OptionControl] = {}  # the run's plugin's declared sample options
        self._faces: set[str] = set()  # face names the run recorded (run.json)
        self._edit_why = ""  # why this run cannot be inverted ('' = it can)
        self._edit_token = 0  # the edit job whose EDIT_RESULT the panel waits for (0 = none)
        self._edit_control: Control | None = None
        self._edit_late = 0  # polls since the edit job ended without its result
        self._edit_hint = ""
        self.edit_result: edit.EditResult | None = None
        self._build()
        self._edit_poll = QTimer(self, interval=250)  # notices an edit job that ended without a result
        self._edit_poll.timeout.connect(self._update_edit_buttons)
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
        self.checkpoint.currentIndexChanged.connect(self._checkpoint_picked)
        # the training step as a slider: dragging it samples the same seed from each checkpoint in
        # turn, so the fixed-noise grid is seen evolving over training (GAN runs keep every checkpoint)
        self.ckpt_slider = QSlider(Qt.Horizontal)
        self.ckpt_slider.setObjectName("checkpoint_slider")
        self.ckpt_slider.setFixedWidth(130)
        self.ckpt_slider.setRange(0, 0)
        self.ckpt_slider.setPageStep(1)
        self.ckpt_slider.setToolTip("Training step: drag to sample the same seed from every checkpoint in turn "
                                    "(the fixed-noise grid over training)")
        self.ckpt_slider.valueChanged.connect(self._checkpoint_slid)
        self._resample = QTimer(self, singleShot=True, interval=200)  # one sample per pause of the drag
        self._resample.timeout.connect(self._resample_now)
        self.n = QSpinBox(minimum=1, maximum=100_000, value=64, prefix="n ")
        self.n.setToolTip("Number of samples")
        self.seed = QSpinBox(minimum=0, maximum=999_999, value=0, prefix="seed ")
        self.seed.setToolTip("Random seed (the same seed and settings give the same samples)")
        self.steps = QSpinBox(minimum=0, maximum=100_000, value=0, prefix="steps ")
        self.steps.setSpecialValueText("steps: default")
        self.steps.setToolTip("Sampling steps (default: the plugin's)")
        self.sampler = QComboBox()
        self.sampler.setToolTip("Sampler")
        self.sampler.currentIndexChanged.connect(self._sampler_changed)
        self.cls = QComboBox()
        self.cls.setToolTip("Class label (class-conditional runs)")
        self.cls.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.cls.currentIndexChanged.connect(self._options_changed)  # a guidance scale needs a label
        self.option_row = QHBoxLayout()  # the run's declared sample options (SampleOption)
        self.option_row.setContentsMargins(0, 0, 0, 0)
        self.sample_button = QPushButton("Sample")
        self.sample_button.setDefault(True)
        self.status = QLabel()
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # long messages clip, never widen

        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 2)
        self.run_label = QLabel()  # the run this panel is about
        self.run_label.setObjectName("sampler_run")
        self.run_label.setMinimumWidth(40)  # a long run name clips (the tooltip has it), never widens the window
        self.run_label.setMaximumWidth(240)
        top.addWidget(self.run_label)
        top.addWidget(self.checkpoint)
        top.addWidget(self.ckpt_slider)
        self.sample_controls = QWidget()  # what only the Sample tab uses (hidden on the Invert tab)
        rows = QVBoxLayout(self.sample_controls)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.setSpacing(2)
        row = QHBoxLayout()
        row.addWidget(self.sampler)
        for w in (self.steps, self.n, self.seed, self.cls, self.sample_button):
            row.addWidget(w)
        rows.addLayout(row)
        rows.addLayout(self.option_row)  # the plugin's declared options on a line of their own: the
        self.option_row.addStretch(1)     # main row stays narrow whatever a plugin declares
        # text-to-image runs (the TextConditional face): a prompt box completing words from the
        # run's vocabulary; the guidance scale is the plugin's declared option above
        self.prompt = PromptEdit()
        self.prompt.setObjectName("sampler_prompt")
        self.prompt.returnPressed.connect(lambda: None if self.ctx.job_running("sample") else self.start_sampling())
        self.prompt_row = QWidget()
        prow = QHBoxLayout(self.prompt_row)
        prow.setContentsMargins(0, 0, 0, 0)
        prow.addWidget(QLabel("prompt"))
        prow.addWidget(self.prompt, 1)
        self.prompt_row.setVisible(False)
        rows.addWidget(self.prompt_row)
        top.addWidget(self.sample_controls)
        top.addWidget(self.status, 1)

        self.view_x = SampleView("<i>x</i><sub>t</sub> (current state)", PALETTE[0])
        self.view_x0 = SampleView("<i>x&#770;</i><sub>0</sub> (predicted clean sample)", PALETTE[1])
        views = QHBoxLayout()  # two canvases, so the halves stay equal whatever their titles measure
        views.setSpacing(2)
        self.canvas_x, self.canvas_x0 = pg.GraphicsLayoutWidget(), pg.GraphicsLayoutWidget()
        self.canvas_x.addItem(self.view_x)
        self.canvas_x0.addItem(self.view_x0)
        # the t colour bar of "paths coloured by t", right of x_t in a column of its own: its column
        # is there for every 2-D trajectory, the bar drawn in it only with the whole paths, so
        # ticking the box never resizes x_t or x̂0 (image trajectories have no column)
        self.time_canvas = pg.GraphicsLayoutWidget()
        self.time_canvas.setFixedWidth(TIME_BAR_WIDTH)
        self.time_bar = pg.ColorBarItem(values=(0.0, 1.0), width=12, interactive=False,
                                        colorMap=pg.ColorMap(np.linspace(0, 1, 9), colormap(np.linspace(0, 1, 9))),
                                        colorMapMenu=False)
        self.time_bar.axis.setTicks([[(0.0, "noise"), (1.0, "data")]])
        self.time_bar.axis.setLabel("noise → data")
        self.time_bar.setToolTip("Path colour: dark = noise (t = T, start), bright = data (t = 0)")
        self.time_canvas.addItem(self.time_bar)
        self.time_bar.setVisible(False)
        self.time_canvas.setVisible(False)
        views.addWidget(self.canvas_x, 1)
        views.addWidget(self.time_canvas)
        views.addWidget(self.canvas_x0, 1)

        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 0)
        self.step_label = QLabel()
        self.step_label.setMinimumWidth(150)
        self.png_button = QPushButton("Export PNG…")
        png_menu = QMenu(self.png_button)
        self.png_final_action = png_menu.addAction("Final samples…")
        self.png_views_action = png_menu.addAction("x_t | x̂0 at this step…")
        self.png_views_action.setToolTip("Both views at the slider's step, side by side, labelled")
        self.png_attn_action = png_menu.addAction("Cross-attention over the steps…")
        self.png_attn_action.setToolTip("Text-to-image runs: each word's attention map of the chosen sample at "
                                        "evenly spaced steps (rows: noise at the top, sample at the bottom)")
        self.png_attn_action.setVisible(False)  # shown once a trajectory carries attention maps
        self.png_button.setMenu(png_menu)
        self.gif_button = QPushButton("Export GIF/MP4…")
        gif_menu = QMenu(self.gif_button)
        self.gif_traj_action = gif_menu.addAction("Trajectory…")
        self.gif_traj_action.setToolTip("The trajectory as an animation, x_t and x̂0 side by side, each frame "
                                        "labelled with its step and t (GIF or MP4, by the file name)")
        self.gif_ckpt_action = gif_menu.addAction("Samples at every checkpoint…")
        self.gif_ckpt_action.setToolTip("This seed's samples drawn from each checkpoint in turn, labelled with "
                                        "the training step and loss: the fixed-noise grid over training")
        gif_menu.setToolTipsVisible(True)
        self.gif_button.setMenu(gif_menu)
        self._evo_out = ""  # the over-training animation an export job is writing
        self.whole_paths = QCheckBox("paths coloured by t")
        self.whole_paths.setToolTip("2-D: draw each particle's whole path from x_T, coloured by time "
                                    "(dark = noise, bright = data), instead of a short trail")
        self.whole_paths.toggled.connect(lambda _: self.show_step(self.slider.value()))
        bottom = QHBoxLayout()
        bottom.setContentsMargins(4, 2, 4, 2)
        bottom.addWidget(self.play_button)
        bottom.addWidget(self.whole_paths)
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.step_label)
        bottom.addWidget(self.png_button)
        bottom.addWidget(self.gif_button)

        sample_tab = QWidget()
        sample_lay = QVBoxLayout(sample_tab)
        sample_lay.setContentsMargins(0, 0, 0, 0)
        views_box = QWidget()
        views_box.setLayout(views)
        self.split = QSplitter(Qt.Vertical)  # x_t | x̂0 above, the text-to-image views below
        self.split.addWidget(views_box)
        self.split.addWidget(self._build_text_views())
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 2)
        self.split.setChildrenCollapsible(False)
        sample_lay.addWidget(self.split, 1)
        # image -> caption models stream their captions as extras["caption"]: shown under the images
        self.caption_label = QLabel()
        self.caption_label.setWordWrap(True)
        self.caption_label.setVisible(False)
        sample_lay.addWidget(self.caption_label)
        sample_lay.addLayout(bottom)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(sample_tab, "Sample")
        self.tabs.addTab(self._build_edit(), "Invert / interpolate")
        self.tabs.currentChanged.connect(lambda i: self.sample_controls.setVisible(i == 0))

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.tabs, 1)

        self.sample_button.clicked.connect(self._sample_clicked)
        self.play_button.toggled.connect(self._play_toggled)
        for key, d in ((Qt.Key_Left, -1), (Qt.Key_Right, 1)):  # step the trajectory from anywhere in the panel
            sc = QShortcut(QKeySequence(key), self, context=Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(lambda d=d: self.step_by(d))
        self.slider.valueChanged.connect(self.show_step)
        self.png_final_action.triggered.connect(self._export_png_dialog)
        self.png_views_action.triggered.connect(self._export_views_dialog)
        self.png_attn_action.triggered.connect(self._export_attention_dialog)
        self.gif_traj_action.triggered.connect(self._export_animation_dialog)
        self.gif_ckpt_action.triggered.connect(self._export_checkpoints_dialog)

    def _build_text_views(self) -> QWidget:
        """Text-to-image runs: each word's cross-attention map of one sample at the slider's step,
        and the pipeline (prompt -> tokens -> text encoder -> denoiser <-> scheduler -> decoder) with
        the live tensor of every stage; hidden for other runs."""
        self.attn_index = QSpinBox(minimum=0, maximum=0, prefix="sample ")
        self.attn_index.setToolTip("Which sample of the grid (row by row from the top left) the maps are of")
        self.attn_index.valueChanged.connect(lambda _: self.show_step(self.slider.value()))
        self.attn_eos = QCheckBox("<eos>")
        self.attn_eos.setToolTip("Also show the end token's map (it often soaks up attention no word wants)")
        self.attn_eos.toggled.connect(lambda _: self.show_step(self.slider.value()))
        self.attn_note = QLabel()
        self.attn_note.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        row = QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 0)
        row.addWidget(QLabel("<b>Cross-attention per word</b>"))
        for w in (self.attn_index, self.attn_eos):
            row.addWidget(w)
        row.addWidget(self.attn_note, 1)
        self.attn_view = ImageLabel(smooth=True, max_zoom=2.0)
        self.attn_view.setObjectName("attention_view")
        self.pipe_view = ImageLabel(smooth=True, max_zoom=1.5)
        self.pipe_view.setObjectName("pipeline_view")
        self.text_views = QWidget()
        lay = QVBoxLayout(self.text_views)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(row)
        # side by side in a strip under the views; stacked in a column beside them when the panel is
        # short and wide (the default layout), so x_t and x̂0 keep a usable size (_orient_text_views)
        self._pics = QBoxLayout(QBoxLayout.LeftToRight)
        self._pics.setSpacing(4)
        self._pics.addWidget(self.attn_view, 5)
        self._pics.addWidget(self.pipe_view, 4)
        lay.addLayout(self._pics, 1)
        self.text_views.setVisible(False)
        return self.text_views

    def _orient_text_views(self, force: bool = False) -> None:
        """Text views below x_t | x̂0 (a strip) when the panel is tall enough, else beside them (a
        column): under a 340 px dock they left the sample views 60 px. Sizes are reset only when the
        orientation changes (or ``force``), so a user's splitter drag stays."""
        beside = self.split.height() < 480 and self.split.width() > 2 * self.split.height()
        want = Qt.Horizontal if beside else Qt.Vertical
        if want == self.split.orientation() and not force:
            return
        self.split.setOrientation(want)
        self._pics.setDirection(QBoxLayout.TopToBottom if beside else QBoxLayout.LeftToRight)
        total = max(200, sum(self.split.sizes()))
        keep = total * 62 // 100 if beside else total * 3 // 4
        self.split.setSizes([keep, total - keep])

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self.text_views.isVisibleTo(self):
            self._orient_text_views()

    def _show_text_views(self, st: SampleState) -> None:
        """The attention strip and the pipeline diagram of state ``st`` (if it carries them)."""
        ex = st.extras or {}
        attn, pipe = has_attention(st), ex.get("pipeline")
        self.png_attn_action.setVisible(attn)
        if not (attn or pipe):
            self.text_views.setVisible(False)
            return
        if not self.text_views.isVisibleTo(self):  # first shown: the views keep most of the room
            self.text_views.setVisible(True)
            self._orient_text_views(force=True)
        n = int(st.x.shape[0])
        self.attn_index.setMaximum(max(0, n - 1))
        k = min(self.attn_index.value(), n - 1)
        if attn:
            self.attn_view.set_image(attention_strip(st, k, cell=64, eos=self.attn_eos.isChecked()))
            words = [w for w in ex["tokens"][k] if w and w != "<eos>"]
            self.attn_note.setText(f"“{' '.join(words) or '(empty prompt: unconditional)'}” · step {st.step}/{st.total}, t = {st.t:.3f} · one colour "
                                   "scale for all words (dark = the word is ignored there)")
            self.attn_note.setToolTip(self.attn_note.text())  # cut short when the views stand in a column
        else:
            self.attn_view.clear()
            self.attn_note.setText("this model reports no cross-attention")
        if pipe:
            self.pipe_view.set_image(state_pipeline_image(st, pipe, k))
        else:
            self.pipe_view.clear()

    def _export_attention_dialog(self) -> None:
        if not any(has_attention(s) for s in self._states):
            self.status.setText("these samples carry no cross-attention maps (not a text-to-image run)")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export cross-attention over the steps", "attention.png",
                                              "PNG image (*.png)")
        if path:
            self.export_attention(path)

    def export_attention(self, path: str | Path, rows: int = 8) -> Path:
        """The chosen sample's per-word attention maps at ``rows`` evenly spaced steps, as a PNG."""
        out = save_png(attention_figure(self._states, self.attn_index.value(), rows=rows,
                                        eos=self.attn_eos.isChecked()), path)
        self.ctx.status_message(f"wrote {out}")
        return out

    def _build_edit(self) -> QWidget:
        """The Invert / interpolate tab: A and B, DDIM steps, frames; two pictures; export."""
        self.item_a = ItemPicker("A", 0)
        self.item_b = ItemPicker("B", 1)
        self.edit_steps = QSpinBox(minimum=1, maximum=4000, value=50, prefix="DDIM steps ")
        self.edit_steps.setToolTip("Steps of the inversion and of every decode (more: smaller round-trip error)")
        self.frames = QSpinBox(minimum=2, maximum=64, value=8, prefix="frames ")
        self.frames.setToolTip("Frames of the interpolation strips, ends included")
        self.invert_button = QPushButton("Invert")
        self.invert_button.setToolTip("x0 -> inverted noise -> reconstruction for A and B")
        self.interp_button = QPushButton("Interpolate")
        self.interp_button.setToolTip("Decode the slerp and the lerp path between the noises of A and B")
        self.edit_cls_in = QComboBox()  # class-conditional runs: the class whose ODE inverts ...
        self.edit_cls_in.setToolTip("Invert along this class's probability-flow ODE (class-conditional runs)")
        self.edit_cls_out = QComboBox()  # ... and the one that decodes: another class = class editing
        self.edit_cls_out.setToolTip("Decode (reconstructions, seeds, strips) as this class: a class other than "
                                     "the inverting one keeps the noise's pose and style but changes the class")
        row = QHBoxLayout()
        row.setContentsMargins(4, 2, 4, 2)
        for w in (self.item_a, self.item_b, self.edit_cls_in, self.edit_cls_out, self.edit_steps, self.frames,
                  self.invert_button, self.interp_button):
            row.addWidget(w)
        row.addStretch(1)

        self.view_inv = SampleView(INV_TITLES[True], PALETTE[0])
        self.view_interp = SampleView(INTERP_TITLES[True], PALETTE[1])
        views = QHBoxLayout()
        views.setSpacing(2)
        for view, stretch in ((self.view_inv, 2), (self.view_interp, 3)):
            canvas = pg.GraphicsLayoutWidget()
            canvas.addItem(view)
            views.addWidget(canvas, stretch)

        self.edit_status = QLabel()
        self.edit_status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.edit_status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.edit_png_button = QPushButton("Export PNG…")
        self.edit_png_button.setToolTip("Inversion and interpolation pictures as one PNG")
        bottom = QHBoxLayout()
        bottom.setContentsMargins(4, 2, 4, 2)
        bottom.addWidget(self.edit_status, 1)
        bottom.addWidget(self.edit_png_button)

        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addLayout(views, 1)
        lay.addLayout(bottom)
        self.invert_button.clicked.connect(lambda: self._edit_clicked(False))
        self.interp_button.clicked.connect(lambda: self._edit_clicked(True))
        self.edit_png_button.clicked.connect(self._export_edit_dialog)
        return tab

    # -- run selection ------------------------------------------------------------------------
    def set_run(self, run: Run | None) -> None:
        if (run.id if run else None) != (self._run.id if self._run else None):
            self._clear_edit()
            self._clear_trajectory()
        self._run = run
        self.run_label.setText(f"<b>{short_name(run.id)}</b>" if run is not None else "<i>no run</i>")
        self.run_label.setToolTip(f"The run this panel samples: {run.id}" if run is not None else "")
        samplers: tuple[str, ...] = ()
        problem = ""
        options: tuple[SampleOption, ...] = ()
        config: dict[str, Any] = {}
        self._faces = set()
        info: dict[str, Any] = {}
        classes, spatial, edit_why = 0, False, "select a run"
        if run is not None:
            try:
                info = run.info()
                cls = self.ctx.registry.get(info["plugin"])
                samplers = tuple(cls.info.samplers)
                options = sample_options(cls)
                edit_why = self.why_not("invert", run)
                config = info.get("config", {})
                self._faces = set(info.get("faces") or ())  # recorded by the train job
                cond = "Conditional" in self._faces
                if cond or not edit_why:
                    from genstudio.core.data import get_dataset

                    spec = get_dataset(info["dataset"]).spec
                    spatial = spec.modality.spatial  # image files can be inverted
                    classes = int(info.get("classes") or spec.num_classes or 0) if cond else 0
            except (KeyError, RunError, ValueError, OSError) as e:
                problem = str(e).strip("'\"")
                edit_why = edit_why or problem
        self.sampler.clear()
        for s in samplers:
            self.sampler.addItem(s, s)
        if not samplers:
            self.sampler.addItem("default", None)
        self.cls.clear()
        self.cls.addItem("unconditional", None)
        for c in range(classes):
            self.cls.addItem(f"class {c}", c)
        self.cls.setVisible(classes > 0)
        for combo, none in ((self.edit_cls_in, "invert: unconditional"), (self.edit_cls_out, "decode: as inverted")):
            combo.clear()
            combo.addItem(none, None)
            for c in range(classes if not edit_why else 0):
                combo.addItem(f"{'invert as' if combo is self.edit_cls_in else 'decode as'} class {c}", c)
            combo.setVisible(classes > 0 and not edit_why)
        self._set_options(options, config)
        self._sampler_changed()
        text = "TextConditional" in self._faces
        self.prompt_row.setVisible(text)
        if text:
            self.prompt.set_vocabulary(run_vocabulary(info))
        self._edit_why = edit_why
        for picker in (self.item_a, self.item_b):
            picker.set_images_allowed(spatial)
        self._problem = problem
        self._refresh_checkpoints()

    def _set_options(self, options: tuple[SampleOption, ...], config: dict[str, Any]) -> None:
        """One control per declared option, starting from the run config's value of that name."""
        for c in self.options.values():
            self.option_row.removeWidget(c)
            c.hide()  # the old run's option is gone at once, not at the next event-loop turn
            c.deleteLater()
        self.options = {}
        for opt in options:
            c = OptionControl(opt)
            policy = c.sizePolicy()
            policy.setRetainSizeWhenHidden(True)  # a sampler change never shifts the fields after it
            c.setSizePolicy(policy)
            if config.get(opt.name) is not None:
                c.setValue(config[opt.name])
            self.option_row.insertWidget(self.option_row.count() - 1, c)  # before the stretch
            self.options[opt.name] = c

    def option(self, name: str) -> OptionControl:
        return self.options[name]

    def _sampler_changed(self) -> None:
        self._options_changed()

    def _options_changed(self, *_: Any) -> None:
        """Show the options that apply to this sampler and run; one needing the Conditional face
        (a guidance scale) is enabled only once a class is picked."""
        labelled = self.cls.currentData() is not None
        for c in self.options.values():
            c.setVisible(option_applies(c.opt, self.sampler.currentData(), self._faces))
            c.setEnabled(c.opt.needs != "Conditional" or labelled)

    def sample_kwargs(self) -> dict[str, Any]:
        """The extra ``sample()`` keywords the visible, enabled controls set."""
        kw: dict[str, Any] = {}
        if self.cls.isVisibleTo(self.sample_controls) and self.cls.currentData() is not None:
            kw["cond"] = int(self.cls.currentData())
        for name, c in self.options.items():
            if c.isVisibleTo(self.sample_controls) and c.isEnabled():
                kw[name] = c.value()
        if self.prompt_row.isVisibleTo(self.sample_controls) and self.prompt.prompts():
            kw["prompt"] = self.prompt.prompts()
        return kw

    def step_by(self, d: int) -> None:
        """Move the trajectory slider ``d`` recorded states (the Left/Right keys)."""
        if self.slider.isEnabled():
            self.slider.setValue(max(self.slider.minimum(), min(self.slider.maximum(), self.slider.value() + d)))

    def _refresh_checkpoints(self) -> None:
        """List the run's checkpoints, newest first. An older one picked stays picked while it
        exists; the newest follows the training (a run that went on to step 1000 samples step 1000,
        not the step-500 checkpoint that was newest when the run was selected)."""
        keep = self.checkpoint.currentData() if self.checkpoint.currentIndex() > 0 else None
        self.checkpoint.clear()
        cks = self._run.checkpoints() if self._run is not None else []
        for step, path in reversed(cks):
            self.checkpoint.addItem(f"step {step:,}", str(path))
        i = self.checkpoint.findData(keep) if keep is not None else -1
        self.checkpoint.setCurrentIndex(max(i, 0))
        self.ckpt_slider.blockSignals(True)  # a refresh is no request to sample
        self.ckpt_slider.setRange(0, max(len(cks) - 1, 0))
        self.ckpt_slider.setValue(len(cks) - 1 - max(self.checkpoint.currentIndex(), 0))
        self.ckpt_slider.blockSignals(False)
        self.ckpt_slider.setEnabled(len(cks) > 1)
        self._update_buttons()
        self._update_edit_buttons()

    def _checkpoint_picked(self, index: int) -> None:
        """The combo moved (the user, or a refresh): the slider shows the same checkpoint (oldest left)."""
        if index >= 0 and not self.ckpt_slider.isSliderDown():
            self.ckpt_slider.blockSignals(True)
            self.ckpt_slider.setValue(self.checkpoint.count() - 1 - index)
            self.ckpt_slider.blockSignals(False)

    def _checkpoint_slid(self, value: int) -> None:
        """The slider moved: pick that checkpoint and, after a pause of the drag, sample it."""
        self.checkpoint.setCurrentIndex(self.checkpoint.count() - 1 - value)
        self._resample.start()

    def _resample_now(self) -> None:
        """Sample the slider's checkpoint with the current seed and settings; a sampling still going
        (of an earlier checkpoint) is stopped first and this one starts when it has ended."""
        if self.ctx.job_running("sample"):
            if self._control is not None:
                self._control.cancel()
            self._resample.start()  # try again once that job has stopped
            return
        self.start_sampling()

    def _update_buttons(self) -> None:
        running = self.ctx.job_running("sample")
        if not running and not self.ctx.job_running("export") and self._poll.isActive():
            self._poll.stop()
            if self._sampling_run is not None and not self._done:  # ended without a RESULT: stopped/failed
                self.status.setText(f"sampling ended ({len(self._states)} states)")
        self.sample_button.setText("Stop" if running else "Sample")
        can = self._run is not None and self.checkpoint.count() > 0 and not self._problem
        self.sample_button.setEnabled(running or can)
        has = bool(self._states)
        for w in (self.slider, self.play_button, self.png_button):
            w.setEnabled(has)
        self.gif_traj_action.setEnabled(has)
        self.gif_ckpt_action.setEnabled(self.checkpoint.count() > 0 and not self._problem
                                        and not self.ctx.job_running("export"))
        self.gif_button.setEnabled(has or self.gif_ckpt_action.isEnabled())
        if self._evo_out and not self.ctx.job_running("export"):
            if Path(self._evo_out).is_file():
                self.ctx.status_message(f"wrote {self._evo_out}")
            self._evo_out = ""
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
        # "Stop" on the button means stop, even if the job ended a poll ago: never restart on it
        if self.sample_button.text() == "Stop" or self.ctx.job_running("sample"):
            if self._control is not None:
                self._control.cancel()
            self._update_buttons()
            return
        self.start_sampling()

    def start_sampling(self) -> Control | None:
        """Start a sampling job with the current settings (what the Sample button does)."""
        run = self._run
        if run is None or not self.checkpoint.count():
            return None
        kw = dict(n=self.n.value(), seed=self.seed.value(), steps=self.steps.value() or None,
                  sampler=self.sampler.currentData(), checkpoint=self.checkpoint.currentData(),
                  **self.sample_kwargs())
        self._begin_trajectory(run.id)
        self._sampling_run = run.id
        self.status.setText(f"sampling from {self.checkpoint.currentText()}…")
        bus = self.ctx.bus
        self._control = self.ctx.start_job(
            "sample", run, lambda control: jobs.sample(run, control=control, bus=bus, **kw))
        self._poll.start()
        self._update_buttons()
        return self._control

    def _begin_trajectory(self, run_id: str | None) -> None:
        self._play.stop()
        self.play_button.setChecked(False)
        self._states = []
        self._result = {}
        self._lim = None
        self._done = False
        self._traj_run = run_id
        self.slider.setRange(0, 0)  # an empty trajectory "is at its end": the view follows new states

    def _clear_trajectory(self) -> None:
        """Another run was selected: its views, slider and status were about the old run's samples."""
        self._begin_trajectory(None)
        self._sampling_run = None  # a job still sampling the old run no longer draws here
        self.view_x.clear_content()
        self.view_x0.clear_content()
        self._show_time_bar(False, False)
        self.text_views.setVisible(False)
        self.step_label.clear()
        self.step_label.setToolTip("")
        self.status.clear()
        self._hint = ""

    def on_events(self, events: list[Event]) -> None:
        new = False
        current = self._run.id if self._run is not None else None
        for e in events:
            if e.kind in (ev.STATUS, ev.CHECKPOINT):
                if e.run_id == current:
                    self._refresh_checkpoints()  # training (here or watched elsewhere) wrote a checkpoint
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
            elif e.kind == EDIT_RESULT and e.data.get("token") == self._edit_token:
                self._edit_finished(e.data)
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
                self._lim = fit = data_lim(self._states[0].x)
            hist, times = particle_history(self._states, i, self.whole_paths.isChecked())
            self.view_x.show_points(st.x.numpy(), hist, fit, times=times)
            self._show_time_bar(True, times is not None)
            if st.x0 is not None:
                lo = max(0, i - TRAIL + 1)
                hist0 = np.stack([s.x0[:MAX_TRAILS].numpy() for s in self._states[lo:i + 1]
                                  if s.x0 is not None])
                # at high t x̂0 can lie far outside the data: draw only what the view's range holds
                self.view_x0.show_points(st.x0.numpy(), hist0, fit, clip=self._lim)
            else:
                self.view_x0.clear_content()
        elif st.x.dim() == 4:
            self._show_time_bar(False, False)
            self.view_x.show_image(image_grid(st.x))
            if st.x0 is not None:
                self.view_x0.set_note("")
                self.view_x0.show_image(image_grid(st.x0))
            else:
                self.view_x0.clear_content()
                # an empty pane says why: token and one-shot models (dalle, unified, GANs) draw x directly
                self.view_x0.set_note("none for this model: it draws the sample itself")
        else:
            self.status.setText(f"cannot draw samples of shape {tuple(st.x.shape)}")
        self.step_label.setText(f"step {st.step}/{st.total} · t={st.t:.3f}")
        self.step_label.setToolTip(f"state {i + 1} of {len(self._states)} kept")
        self._show_caption(st)
        self._show_text_views(st)

    def _show_caption(self, st: SampleState) -> None:
        """The state's streamed captions (extras["caption"], one per sample), numbered as the grid reads."""
        caps = (st.extras or {}).get("caption")
        self.caption_label.setVisible(bool(caps))
        if caps:
            self.caption_label.setText("   ".join(f"{k + 1}: {c or '…'}" for k, c in enumerate(caps[:16])))

    def _show_time_bar(self, column: bool, bar: bool) -> None:
        """The colour bar's column (2-D trajectories) and the bar in it (whole paths coloured by t)."""
        self.time_canvas.setVisible(column)
        if self.time_bar.isVisible() != bar:
            self.time_bar.setVisible(bar)
            # the canvas laid the bar out while it was hidden (at no height): lay it out again
            self.time_canvas.ci.setGeometry(self.time_canvas.range)
        if bar:
            self._align_time_bar()

    def _align_time_bar(self) -> None:
        """Start and end the bar where x_t's plot area does (below its title, above its axis)."""
        vb = self.view_x.getViewBox().sceneBoundingRect()
        h = self.canvas_x.height()
        if vb.height() > 0 and h > 0:
            self.time_canvas.ci.layout.setContentsMargins(0, int(vb.top()) - 8, 0, max(0, h - int(vb.bottom()) - 8))

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

    def _animation_lim(self) -> float | None:
        """The square the view shows 2-D points in (fitted to x_T once per trajectory)."""
        if self._lim is None and _is_points(self._states[0].x):
            return data_lim(self._states[0].x)  # not kept: show_step fits the view when it sets it
        return self._lim

    def export_animation(self, path: str | Path, fps: float = 12.0) -> Path:
        """The trajectory as a GIF or an MP4 (by ``path``'s suffix), x_t and x̂0 side by side, each
        frame labelled with its step and t (at most imaging.MAX_ANIMATION_FRAMES evenly spaced frames; image grids
        at native resolution, 2-D scatters 512 px a side over the range the view uses)."""
        if not self._states:
            raise RuntimeError("nothing sampled yet")
        return save_animation(list(trajectory_frames(self._states, lim=self._animation_lim())), path, fps=fps)

    export_gif = export_animation  # the name it had while it wrote GIFs only

    def export_views_png(self, path: str | Path) -> Path:
        """x_t and x̂0 at the slider's step side by side under a "step k/N · t=..." label (one frame
        of the animation)."""
        if not self._states:
            raise RuntimeError("nothing sampled yet")
        st = self._states[max(0, min(self.slider.value(), len(self._states) - 1))]
        frame = trajectory_frame(st.x, st.x0, trajectory_label(st.step, st.total, st.t), lim=self._animation_lim())
        return save_png(frame, path)

    def _default_path(self, suffix: str) -> str:
        folder = self._run.sample_dir() if self._run is not None else Path.home()
        return str(folder / f"trajectory{suffix}")

    def _export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export final samples", self._default_path(".png"),
                                              "PNG image (*.png)")
        if path:
            self._export(self.export_png, path)

    def _export_views_dialog(self) -> None:
        st = self._states[self.slider.value()] if self._states else None
        name = f"_step{st.step}" if st is not None else ""
        path, _ = QFileDialog.getSaveFileName(self, "Export x_t | x̂0 at this step", self._default_path(f"{name}.png"),
                                              "PNG image (*.png)")
        if path:
            self._export(self.export_views_png, path)

    def _export_animation_dialog(self) -> None:
        path = self._animation_path("Export trajectory")
        if path:
            self._export(self.export_animation, path)

    def _animation_path(self, title: str) -> str:
        path, chosen = QFileDialog.getSaveFileName(self, title, self._default_path(".mp4"),
                                                   ";;".join(ANIMATION_FILTERS[s] for s in (".mp4", ".gif")))
        if path and Path(path).suffix.lower() not in ANIMATION_SUFFIXES:  # a bare name: the chosen filter's type
            path += next((s for s, f in ANIMATION_FILTERS.items() if f == chosen), ".mp4")
        return path

    def _export_checkpoints_dialog(self) -> None:
        path = self._animation_path("Export samples at every checkpoint")
        if path:
            self.export_checkpoints(path)

    def export_checkpoints(self, path: str) -> Control | None:
        """Write this seed's samples from every checkpoint (``timelapse.write_checkpoint_evolution``) in
        a job, so a slow sampler never freezes the window; the status bar says when it is written."""
        run = self._run
        if run is None or self.ctx.job_running("export"):
            return None
        from genstudio.core.timelapse import write_checkpoint_evolution

        kw = dict(n=self.n.value(), seed=self.seed.value(), steps=self.steps.value() or None,
                  sampler=self.sampler.currentData(), **self.sample_kwargs())

        def job(control: Control) -> Any:
            yield write_checkpoint_evolution(run, path, progress=lambda done, total: control.check(), **kw)

        self._evo_out = path
        self.status.setText(f"writing the samples of {self.checkpoint.count()} checkpoints to {Path(path).name}…")
        control = self.ctx.start_job("export", run, job)
        self._poll.start()
        self._update_buttons()
        return control

    def _export(self, fn: Any, path: str) -> None:
        try:
            out = fn(path)
        except (OSError, ValueError, RuntimeError) as e:
            self.ctx.show_error(f"Export failed: {e}")
            return
        self.ctx.status_message(f"wrote {out}")

    # -- invert / interpolate -------------------------------------------------------------------
    def _clear_edit(self) -> None:
        self.edit_result = None
        self._edit_token = 0
        self.view_inv.clear_content()
        self.view_interp.clear_content()
        self.edit_status.clear()

    def _update_edit_buttons(self) -> None:
        running = self.ctx.job_running("edit")
        if not running and self._edit_poll.isActive():
            self._edit_late += 1  # the result event may still be a screen tick behind the job's end
            if not self._edit_token or self._edit_late >= 3:
                self._edit_poll.stop()
                if self._edit_token:  # ended without its EDIT_RESULT: stopped or failed
                    self._edit_token = 0
                    self.edit_status.setText("invert / interpolate ended without a result (stopped or failed)")
        why = self._edit_why or ("" if self.checkpoint.count() else "no checkpoint yet: train first")
        for button, label in ((self.invert_button, "Invert"), (self.interp_button, "Interpolate")):
            button.setEnabled(running or not why)
            button.setText("Stop" if running else label)
        self.edit_png_button.setEnabled(self.edit_result is not None)
        if not running and not self._edit_token:
            if why:
                self.edit_status.setText(why)
            elif self.edit_status.text() == self._edit_hint:  # the reason went away
                self.edit_status.clear()
        self._edit_hint = why

    def _edit_clicked(self, interpolate: bool) -> None:
        button = self.interp_button if interpolate else self.invert_button
        if button.text() == "Stop" or self.ctx.job_running("edit"):  # as in _sample_clicked
            if self._edit_control is not None:
                self._edit_control.cancel()
            self._update_edit_buttons()
            return
        self.start_edit(interpolate)

    def start_edit(self, interpolate: bool = True) -> Control | None:
        """Invert A and B (and with ``interpolate`` decode the slerp/lerp strips) in a worker job;
        the result comes back as an EDIT_RESULT event."""
        run = self._run
        if run is None or self._edit_why or not self.checkpoint.count():
            return None
        a, b = self.item_a.spec(), self.item_b.spec()
        steps, frames, ckpt = self.edit_steps.value(), self.frames.value(), self.checkpoint.currentData()
        cond_in = self.edit_cls_in.currentData() if not self.edit_cls_in.isHidden() else None
        cond_out = self.edit_cls_out.currentData() if not self.edit_cls_out.isHidden() else None
        cond_out = cond_in if cond_out is None else cond_out  # "as inverted"
        bus = self.ctx.bus
        self._edit_token += 1
        token = self._edit_token

        def job(control: Control):
            model, ds, step = jobs.load_model(run, checkpoint_path=ckpt)
            yield "loaded"
            control.check()
            try:
                res = edit.edit_pair(model, ds, a, b, frames, steps, interpolate=interpolate, check=control.check,
                                     cond_in=cond_in, cond_out=cond_out)
            except ValueError as e:  # bad item, unsupported model: a line in the tab, not a dialog
                bus.emit(EDIT_RESULT, run.id, result=None, error=str(e), token=token, step=step)
                return
            yield "done"
            bus.emit(EDIT_RESULT, run.id, result=res, error="", token=token, step=step)

        what = "inverting and interpolating" if interpolate else "inverting"
        self.edit_status.setText(f"{what} {a} and {b} ({steps} DDIM steps)…")
        self._edit_control = self.ctx.start_job("edit", run, job)
        self._edit_late = 0
        self._edit_poll.start()
        self._update_edit_buttons()
        return self._edit_control

    def _edit_finished(self, data: dict[str, Any]) -> None:
        self._edit_token = 0
        res = data.get("result")
        if res is None:
            self.edit_status.setText(f"cannot invert: {data.get('error', '?')}")
        else:
            self.show_edit(res)
            self.edit_status.setText(self.edit_summary(res) + f" · step {data.get('step', 0):,}")
        self._update_edit_buttons()

    @staticmethod
    def edit_summary(res: edit.EditResult) -> str:
        """Reconstruction errors and, after an interpolation, the noise norm in the middle of each
        path against sqrt(d) (lerp sags: that is why slerp is used)."""
        text = res.summary()
        if res.slerp.numel():
            mid, d = len(res.slerp_norm) // 2, res.z[0].numel()
            text += (f" · mid-path noise norm: slerp {res.slerp_norm[mid]:.3g}, lerp {res.lerp_norm[mid]:.3g}"
                     f" (sqrt(d) = {d ** 0.5:.3g})")
        return text

    def show_edit(self, res: edit.EditResult) -> None:
        """Draw an edit result (the inversion picture, and the strips when it has them)."""
        self.edit_result = res
        images = res.x0.dim() == 4
        self.view_inv.setTitle(INV_TITLES[images])
        self.view_interp.setTitle(INTERP_TITLES[images])
        self.view_inv.show_image(edit.inversion_image(res))
        if res.slerp.numel():
            self.view_interp.show_image(edit.interpolation_image(res))
        else:
            self.view_interp.clear_content()

    def export_edit_png(self, path: str | Path) -> Path:
        """Inversion above interpolation, as shown (what ``genstudio interp --out`` writes too)."""
        if self.edit_result is None:
            raise RuntimeError("nothing inverted yet")
        return save_png(edit.edit_image(self.edit_result), path)

    def _export_edit_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export inversion / interpolation",
                                              self._default_path("").replace("trajectory", "interpolation") + ".png",
                                              "PNG image (*.png)")
        if path:
            self._export(self.export_edit_png, path)
