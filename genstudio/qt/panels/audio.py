"""The codec explorer: a run with the Codec face encodes its reference clips once (a worker job,
``genstudio.core.tools.codec.codec_job``) and every bitrate is decoded up front, so the bitrate
slider (1..N codebooks) redraws instantly: waveforms of input and reconstruction over each other
with their difference, spectrograms input | reconstruction | difference on one dB scale, the code
grid (codebook level x frame) with the levels in use lit, and SI-SDR against kbps.

Playback goes through ``sounddevice`` (PortAudio) when an output device exists; without one the
play buttons say so and export the clip as a 16-bit WAV instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from genstudio.core.audioviews import INPUT, RECON, code_grid_image, spectrogram_db, spectrogram_image
from genstudio.core.events import Event
from genstudio.core.jobs import Control
from genstudio.core.runs import Run, RunError
from genstudio.core.tools.codec import CodecResult, codec_job
from genstudio.qt.panels.base import AppContext
from genstudio.qt.panels.jobpanel import JobPanel

CODEC_RESULT = "codec_result"  # data: {"result": CodecResult, "token"}
N_CLIPS = 4

Player = Callable[[np.ndarray, int], None]


def audio_output() -> tuple[Player | None, str]:
    """(play(samples, sr), "") when an audio output device is there, else (None, why not)."""
    try:
        import sounddevice as sd
    except (ImportError, OSError):  # OSError: the PortAudio library itself is missing
        return None, "no audio output (sounddevice / PortAudio not installed)"
    try:
        sd.query_devices(kind="output")
    except Exception:  # noqa: BLE001 - PortAudioError or ValueError: no default output device
        return None, "no audio output device"
    return (lambda x, sr: sd.play(np.asarray(x, np.float32).reshape(-1), sr)), ""


class CodecPanel(JobPanel):
    panel_id = "bitrates"
    title = "Codec"
    order = 78
    tools = ("bitrates",)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.result: CodecResult | None = None
        self._result_run: str | None = None
        self.player, self.no_audio = audio_output()
        self.decode_button = QPushButton("Decode clips")
        self.decode_button.setToolTip("Encode the dataset's reference clips with the newest checkpoint and decode "
                                      "them at every number of codebooks")
        self.clip_spin = QSpinBox(minimum=0, maximum=N_CLIPS - 1, prefix="clip ")
        self.slider = QSlider(Qt.Horizontal, minimum=1, maximum=1, enabled=False)
        self.slider.setToolTip("Codebooks (residual levels) the reconstruction uses: the bitrate")
        self.slider.setMinimumWidth(160)
        self.rate_label = QLabel("—")
        self.rate_label.setMinimumWidth(120)
        self.play_in = QPushButton()
        self.play_out = QPushButton()
        self.export_button = QPushButton("Export WAV…")
        self.export_button.setToolTip("Write the input and the reconstruction at this bitrate as 16-bit WAVs")
        self.summary = QLabel()
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.wave_plot = pg.PlotWidget()
        self.wave_plot.setLabel("bottom", "time", "s")
        self.wave_plot.setYRange(-1, 1)
        self.wave_plot.addLegend(offset=(-10, 10))
        self.wave_plot.setDownsampling(mode="peak")
        self.wave_plot.setClipToView(True)
        # the difference first, so input and reconstruction draw over it
        self.curves = {name: self.wave_plot.plot(pen=pg.mkPen(rgb, width=1), name=name)
                       for name, rgb in (("difference", (230, 70, 70)), ("input", INPUT), ("reconstruction", RECON))}
        self.images = pg.GraphicsLayoutWidget()
        self.images.setMinimumHeight(200)
        self._boxes: list[pg.ViewBox] = []
        self.spec_items = {}
        for i, name in enumerate(("input", "reconstruction", "difference")):
            vb = self.images.addViewBox(row=0, col=i, lockAspect=False, enableMouse=False)
            vb.invertY(True)
            self.spec_items[name] = pg.ImageItem(axisOrder="row-major")
            vb.addItem(self.spec_items[name])
            self._boxes.append(vb)
            self.images.addLabel(name, row=1, col=i)
        vb = self.images.addViewBox(row=2, col=0, colspan=3, lockAspect=False, enableMouse=False)
        vb.invertY(True)
        self.code_item = pg.ImageItem(axisOrder="row-major")
        vb.addItem(self.code_item)
        self._boxes.append(vb)
        self.images.addLabel("codes: codebook level (rows, coarse on top) x frame; unused levels dimmed",
                             row=3, col=0, colspan=3)
        self.rate_plot = pg.PlotWidget()
        self.rate_plot.setLabel("bottom", "bitrate (kbps)")
        self.rate_plot.setLabel("left", "SI-SDR (dB)")
        self.rate_plot.showGrid(x=True, y=True, alpha=0.2)
        self.rate_curve = self.rate_plot.plot(pen=pg.mkPen(RECON, width=2), symbol="o", symbolSize=5)
        self.rate_mark = pg.ScatterPlotItem(size=12, brush=pg.mkBrush(255, 255, 255))
        self.rate_plot.addItem(self.rate_mark)

        bar = QHBoxLayout()  # two rows, so the panel never widens the window past a 1400 px screen
        bar.setContentsMargins(4, 2, 4, 2)
        for w in (self.run_label, self.decode_button, self.clip_spin, QLabel("codebooks"), self.slider,
                  self.rate_label):
            bar.addWidget(w, 1 if w is self.slider else 0)
        bar2 = QHBoxLayout()
        bar2.setContentsMargins(4, 0, 4, 2)
        for w in (self.play_in, self.play_out, self.export_button):
            bar2.addWidget(w)
        bar2.addStretch(1)
        for label in (self.summary, self.status):  # long readouts clip (tooltip/selection has them), never widen
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        top = QSplitter(Qt.Horizontal)
        top.addWidget(self.wave_plot)
        top.addWidget(self.rate_plot)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 1)
        split = QSplitter(Qt.Vertical)
        split.addWidget(top)
        split.addWidget(self.images)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addLayout(bar2)
        lay.addWidget(split, 1)
        lay.addWidget(self.summary)
        lay.addWidget(self.status)

        self.decode_button.clicked.connect(lambda: self._toggle("bitrates", self.decode_button, self.start_decode))
        self.slider.valueChanged.connect(self._redraw)
        self.clip_spin.valueChanged.connect(self._redraw)
        self.play_in.clicked.connect(lambda: self.play(False))
        self.play_out.clicked.connect(lambda: self.play(True))
        self.export_button.clicked.connect(self._export_dialog)
        self.set_run(None)

    # -- state ------------------------------------------------------------------------------------
    @property
    def codebooks(self) -> int:
        return int(self.slider.value())

    def set_run(self, run: Run | None) -> None:
        self._name_run(run)
        if (run.id if run else None) != (self._run.id if self._run else None):
            self._run_switched()
            if run is None or run.id != self._result_run:
                self.set_result(None)
        self._run = run
        self._problem = ""
        if run is not None:
            try:
                self.ctx.registry.get(run.info()["plugin"])
            except (KeyError, RunError) as e:
                self._problem = str(e).strip("'\"")
        self._update_buttons()

    def _update_buttons(self) -> None:
        why = self._can_sample() or self.why_not("bitrates", self._run)
        self._job_button(self.decode_button, "bitrates", "Decode clips", "Stop", why)
        have = self.result is not None
        for b, what in ((self.play_in, "input"), (self.play_out, "reconstruction")):
            b.setEnabled(have)
            b.setText(f"▶ {what}" if self.player else f"▶ {what}: no audio device, export WAV")
            b.setToolTip("" if self.player else f"{self.no_audio}; the button writes a WAV instead")
        self.export_button.setEnabled(have)
        self._show_why(why)
        self._poll_jobs()

    def start_decode(self) -> Control | None:
        run = self._run
        if run is None or self._can_sample() or self.why_not("bitrates", run):
            return None
        bus, token = self.ctx.bus, self._new_token("bitrates")

        def job(control: Control):
            result = yield from codec_job(run, N_CLIPS, 0, control)
            bus.emit(CODEC_RESULT, run.id, result=result, token=token)

        return self._launch("bitrates", run, job, "encoding and decoding at every bitrate…")

    def on_events(self, events: list[Event]) -> None:
        for e in events:
            if e.kind == CODEC_RESULT and self._run is not None and e.run_id == self._run.id \
                    and self._current(e, "bitrates"):
                self._done("bitrates")
                self._result_run = e.run_id
                self.set_result(e.data["result"])
                self.status.setText(f"decoded {len(e.data['result'].x)} clips at "
                                    f"{e.data['result'].n_codebooks} bitrates")
            elif e.kind == "status" and self._run is not None and e.run_id == self._run.id:
                self._update_buttons()
        if self._checkpoint_may_have_come(events):
            self._update_buttons()

    def set_result(self, result: CodecResult | None) -> None:
        """Show ``result`` (None clears); the slider spans its codebooks, starting at all of them."""
        self.result = result
        n = result.n_codebooks if result is not None else 1
        self.slider.blockSignals(True)
        self.slider.setRange(1, n)
        self.slider.setValue(n)
        self.slider.blockSignals(False)
        self.slider.setEnabled(result is not None)
        if result is not None:
            self.clip_spin.setMaximum(len(result.x) - 1)
            self.rate_curve.setData(result.kbps, result.si_sdr.mean(1))
        else:
            self.rate_curve.setData([], [])
        self._redraw()
        self._update_buttons()

    # -- drawing ----------------------------------------------------------------------------------
    def current(self) -> tuple[np.ndarray, np.ndarray]:
        """(input, reconstruction) samples of the shown clip at the slider's bitrate."""
        r, c = self.result, self.clip_spin.value()
        return r.x[c].reshape(-1), r.recon[self.codebooks - 1, c].reshape(-1)

    def _redraw(self) -> None:
        r = self.result
        if r is None:
            for c in self.curves.values():
                c.setData([], [])
            for item in (*self.spec_items.values(), self.code_item):
                item.clear()
            self.rate_mark.setData([], [])
            self.rate_label.setText("—")
            self.summary.setText("")
            return
        k, c = self.codebooks, self.clip_spin.value()
        x, y = self.current()
        t = np.arange(len(x)) / r.sr
        for name, v in (("input", x), ("reconstruction", y), ("difference", y - x)):
            self.curves[name].setData(t, v, skipFiniteCheck=True)
        ref_db = float(spectrogram_db(x).max())
        for name, v in (("input", x), ("reconstruction", y), ("difference", y - x)):
            self.spec_items[name].setImage(spectrogram_image(v, ref_db=ref_db), autoLevels=False, levels=(0, 255))
        grid = code_grid_image(r.tokens[c], r.codebook_size).copy()
        rows = grid.shape[0] // r.n_codebooks
        grid[k * rows:] = (grid[k * rows:] * 0.25).astype(np.uint8)  # levels the slider leaves out
        self.code_item.setImage(grid, autoLevels=False, levels=(0, 255))
        for vb in self._boxes:
            vb.autoRange(padding=0)
        self.rate_mark.setData([r.kbps[k - 1]], [float(r.si_sdr[k - 1].mean())])
        self.rate_label.setText(f"{k}/{r.n_codebooks} · {r.kbps[k - 1]:.3g} kbps")
        self.summary.setText(f"clip {c}: SI-SDR {r.si_sdr[k - 1, c]:.1f} dB · mel distance {r.mel[k - 1, c]:.3f}"
                             f"   |   all clips: {r.summary(k)}   |   code use (perplexity) per level: "
                             + ", ".join(f"{p:.0f}" for p in r.perplexity))

    # -- sound ------------------------------------------------------------------------------------
    def play(self, reconstruction: bool) -> Any:
        """Play the shown clip (input or reconstruction); with no audio device, export it instead."""
        if self.result is None:
            return None
        x, y = self.current()
        if self.player is None:
            return self._export_dialog()
        self.player(y if reconstruction else x, self.result.sr)
        return True

    def export_wavs(self, folder: str | Path) -> tuple[Path, Path]:
        """Input and reconstruction (at the slider's bitrate) of the shown clip as WAVs in ``folder``."""
        if self.result is None:
            raise RuntimeError("decode clips first")
        return self.result.export(folder, self.codebooks, self.clip_spin.value())

    def _export_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export WAVs to folder", str(Path.home()))
        if folder:
            self._export(lambda p: ", ".join(str(f) for f in self.export_wavs(p)), folder)
