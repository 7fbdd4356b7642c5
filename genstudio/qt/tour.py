"""Demo mode: play a tour (``genstudio.core.tour``) in the main window, and record one.

A tour stage brings its panel to the front, runs its job through the same panel methods the
buttons call (Start, Sample, Compare, Encode: real jobs in the worker thread, never recordings)
and shows its caption in large type in a bar at the bottom, with Back / Next / Exit (Page Up,
Page Down, Esc). The window goes into presentation mode (full screen, large fonts) for the tour.

Each job is a generator that starts the work, then yields a status line on every tick while it
waits; the player advances it from a QTimer, so the GUI never blocks. A train stage runs once per
tour (Back to it shows its run again, it does not retrain); the others run again when revisited,
since they are quick. A train stage with ``reuse = true`` takes the run an earlier tour trained with
the same settings, if it is still there.

Record tour (Help menu) watches what the user does — panels brought forward, jobs started with
their settings — and writes it as a tour file with a caption to fill in per stage.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from genstudio.core.config import ConfigError
from genstudio.core.data import dataset_table
from genstudio.core.runs import RunError
from genstudio.core.tour import (
    JOBS,
    Stage,
    Tour,
    TourError,
    check_names,
    load_tour,
    remember_run,
    remembered_run,
    save_tour,
)
from genstudio.qt.present import CAPTION_PT

log = logging.getLogger(__name__)
TICK_MS = 100  # how often a waiting job is polled (and a camera or slider walk moves)
RUN_OPTIONS = ("log_every", "sample_every", "checkpoint_every", "n_preview", "preview_steps")
JOB_PANEL = {"train": "training", "sample": "sampler", "compare": "trajectory", "latent": "latent", "fly": "splats"}
BAR_QSS = f"""
QWidget#tour_bar {{ background: #10243f; border-top: 2px solid #4c8dff; }}
QLabel#tour_title {{ font-size: {CAPTION_PT + 4}pt; font-weight: bold; color: #ffffff; }}
QLabel#tour_caption {{ font-size: {CAPTION_PT}pt; color: #e8ecf4; }}
QLabel#tour_count {{ font-size: {CAPTION_PT - 6}pt; color: #9fb8e0; }}
QLabel#tour_status {{ font-size: {CAPTION_PT - 6}pt; color: #ffd36b; }}
QLabel#tour_status[level="error"] {{ color: #ff8f99; }}
QPushButton {{ font-size: {CAPTION_PT - 4}pt; padding: 8px 22px; }}
"""


class TourBar(QWidget):
    """The caption bar: counter and title, the caption, a status line, Back / Next / Exit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tour_bar")
        self.setAttribute(Qt.WA_StyledBackground)
        self.setStyleSheet(BAR_QSS)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.count, self.title, self.caption, self.status = (QLabel() for _ in range(4))
        for label, name in ((self.count, "tour_count"), (self.title, "tour_title"), (self.caption, "tour_caption"),
                            (self.status, "tour_status")):
            label.setObjectName(name)
            label.setWordWrap(True)
        self.back_button = QPushButton("◀ Back")
        self.next_button = QPushButton("Next ▶")
        self.exit_button = QPushButton("Exit (Esc)")
        self.back_button.setToolTip("Previous stage (Page Up)")
        self.next_button.setToolTip("Next stage (Page Down); waits for the stage's job")
        text = QVBoxLayout()
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.count)
        text.addLayout(head)
        text.addWidget(self.caption)
        text.addWidget(self.status)
        buttons = QVBoxLayout()
        for b in (self.next_button, self.back_button, self.exit_button):
            b.setFocusPolicy(Qt.NoFocus)  # keys go to the shortcuts, never "click" a focused button twice
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(24, 14, 24, 14)
        lay.addLayout(text, 1)
        lay.addSpacing(16)
        lay.addLayout(buttons)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """Narrow (the captions wrap), as tall as the wrapped text needs at the current width: a
        toolbar gives a widget its size hint and knows nothing of height-for-width."""
        return QSize(600, self.layout().heightForWidth(max(self.width(), 600)))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(400, self.sizeHint().height())

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        h = self.layout().heightForWidth(max(self.width(), 400))
        if h > 0 and h != self.minimumHeight():
            self.setMinimumHeight(h)
            self.updateGeometry()

    def show_stage(self, i: int, n: int, stage: Stage) -> None:
        self.count.setText(f"{i + 1} / {n}")
        self.title.setText(stage.title)
        self.caption.setText(stage.caption)
        self.back_button.setEnabled(i > 0)
        self.next_button.setText("Finish ✓" if i == n - 1 else "Next ▶")
        self.set_status("")
        self._fit()

    def set_status(self, text: str, level: str = "") -> None:
        self.status.setProperty("level", level)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.status.setText(text)
        self._fit()


class TourPlayer(QObject):
    """Plays ``tour`` in ``window``. ``quick``: the stages' quick settings (tests); ``auto``: go on
    by itself ``hold × hold_scale`` seconds after each stage's job; ``shots``: save a PNG of the
    window as each stage is left."""

    stage_entered = Signal(int)
    finished = Signal(str)  # "done" (past the last stage) | "stopped" (Esc, Exit)

    def __init__(self, window: Any, tour: Tour, *, quick: bool = False, auto: bool = False,
                 hold_scale: float = 1.0, shots: str | Path | None = None) -> None:
        super().__init__(window)
        self.window, self.tour, self.quick, self.auto, self.hold_scale = window, tour, quick, auto, hold_scale
        self.shots = Path(shots) if shots else None
        self.index = -1
        self.ready = False  # the current stage's job is done (or failed): Next may go on
        self.visited: list[tuple[int, str]] = []  # (stage index, caption shown) in order
        self.errors: list[tuple[int, str]] = []  # (stage index, message)
        self.timings: dict[int, float] = {}  # stage index -> seconds its job took (first time)
        self.shot_paths: list[Path] = []
        self._runs: dict[int, Any] = {}  # train stage index -> the run it made or reused
        self._job: Iterator[str] | None = None
        self._entered = self._started_at = 0.0
        self._advance = QTimer(self, singleShot=True)
        self._advance.timeout.connect(self.next)
        self._timer = QTimer(self, interval=TICK_MS)
        self._timer.timeout.connect(self._tick)
        self.bar = TourBar()
        self.bar.next_button.clicked.connect(self.next)
        self.bar.back_button.clicked.connect(self.back)
        self.bar.exit_button.clicked.connect(self.stop)
        self.toolbar: QToolBar | None = None
        self._keys: list[QShortcut] = []
        self._saved_choices: dict[str, Any] = {}

    @property
    def running(self) -> bool:
        return self.toolbar is not None

    # -- start / stop ---------------------------------------------------------------------------
    def start(self) -> None:
        """Check the tour against this install (a typo fails now, not at stage 5), then play it."""
        w = self.window
        check_names(self.tour, panels=set(w.docks), datasets={n for n, _ in dataset_table()},
                    plugins={k: e.cls for k, e in w.registry.entries.items() if e.ok})
        settings = w.panels.get("settings")
        self._saved_choices = {"steps": w.steps_spin.value(), "seed": w.seed_spin.value(),
                               "settings": settings.all_values() if settings is not None else None}
        presentation = getattr(w, "presentation", None)
        if presentation is not None:
            first = next((st.panel for st in self.tour.stages if st.panel in w.docks), None)
            presentation.enter(keep=set(w.docks), only={first} if first else None)
        self.toolbar = QToolBar("Tour")
        self.toolbar.setObjectName("tour_toolbar")
        self.toolbar.setMovable(False)
        self.toolbar.addWidget(self.bar)
        w.addToolBar(Qt.BottomToolBarArea, self.toolbar)
        for keys, slot in (((Qt.Key_PageDown,), self.next), ((Qt.Key_PageUp,), self.back),
                           ((Qt.Key_Escape,), self.stop)):
            sc = QShortcut(QKeySequence(*keys), w, context=Qt.WindowShortcut)
            sc.activated.connect(slot)
            self._keys.append(sc)
        self._started_at = time.monotonic()
        self._timer.start()
        self.go(0)

    def stop(self, outcome: str = "stopped") -> None:
        """Leave the tour: cancel what it still runs, give back the layout and the user's settings."""
        if not self.running:
            return
        w = self.window
        self._timer.stop()
        self._advance.stop()
        self._job = None
        for name in ("train", "sample", "compare", "latent"):
            t = w.job(name)
            if t is not None and self._started_here(t):
                t.control.cancel()
        for sc in self._keys:
            sc.setEnabled(False)
            sc.deleteLater()
        self._keys.clear()
        w.removeToolBar(self.toolbar)
        self.toolbar.deleteLater()
        self.toolbar = None
        presentation = getattr(w, "presentation", None)
        if presentation is not None:
            presentation.leave()
        self._restore_choices()
        self.finished.emit(outcome)

    def _started_here(self, t: Any) -> bool:
        return t.started_at >= self._started_at

    def _restore_choices(self) -> None:
        w, saved = self.window, self._saved_choices
        if not saved:
            return
        w.steps_spin.setValue(saved["steps"])
        w.seed_spin.setValue(saved["seed"])
        settings = w.panels.get("settings")
        if settings is not None and saved["settings"] is not None:
            settings.load_all(saved["settings"])
        w.save_settings()

    # -- moving between stages ------------------------------------------------------------------
    def go(self, i: int) -> None:
        """Enter stage ``i``: its panel in front, its caption, its job."""
        w = self.window
        self._advance.stop()
        self.index, stage = i, self.tour.stages[i]
        run = self._stage_run(i)
        if run is not None and (w.current_run() is None or w.current_run().id != run.id):
            w.select_run(run)
        if stage.panel in w.docks:
            for pid, dock in w.docks.items():  # one panel at a time: it gets the whole window
                dock.setVisible(pid == stage.panel)
            w.docks[stage.panel].raise_()
        self.bar.show_stage(i, len(self.tour.stages), stage)
        self.visited.append((i, self.bar.caption.text()))
        self.ready = False
        self._entered = time.monotonic()
        self._job = None
        if stage.job and not (stage.job == "train" and i in self._runs):
            self._job = getattr(self, f"_job_{stage.job}")(stage.settings_for(self.quick), stage)
        self.bar.next_button.setEnabled(False)
        self.stage_entered.emit(i)
        self._tick()

    def _stage_run(self, i: int) -> Any:
        """The run a stage works on: that of the nearest train stage at or before it (None: none yet)."""
        for j in range(i, -1, -1):
            if j in self._runs:
                return self._runs[j]
        return None

    def next(self) -> None:
        if not self.running or not self.ready:
            return
        self._shoot()
        if self.index >= len(self.tour.stages) - 1:
            self.stop("done")
        else:
            self.go(self.index + 1)

    def back(self) -> None:
        if self.running and self.index > 0:
            self._cancel_stage_job()
            self.go(self.index - 1)

    def _cancel_stage_job(self) -> None:
        """Leaving a stage early (Back) stops its quick job; a training run carries on to its end."""
        stage = self.tour.stages[self.index]
        if stage.job in ("sample", "compare", "latent") and self.window.job(stage.job) is not None:
            self.window.job(stage.job).control.cancel()

    def _shoot(self) -> None:
        if self.shots is None or self.index < 0:
            return
        self.shots.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", self.tour.stages[self.index].title.lower()).strip("-")[:40]
        path = self.shots / f"{self.index + 1:02d}-{slug}.png"
        if self.window.grab().save(str(path)):
            self.shot_paths.append(path)

    def _tick(self) -> None:
        if self.ready or not self.running:
            return
        status = ""
        if self._job is not None:
            try:
                status = next(self._job)
            except StopIteration:
                self._job = None
            except (TourError, RunError, ConfigError, RuntimeError, ValueError, KeyError) as exc:
                self._job = None
                log.warning("tour stage %d failed\n%s", self.index + 1, traceback.format_exc())
                self._fail(str(exc).strip("'\""))
                return
        if self._job is not None:
            self.bar.set_status(status)
            return
        self._stage_done()

    def _fail(self, message: str) -> None:
        self.errors.append((self.index, message))
        self.bar.set_status(f"This stage had a problem: {message}", level="error")
        self._stage_done(failed=True)

    def _stage_done(self, failed: bool = False) -> None:
        self.ready = True
        self.timings.setdefault(self.index, time.monotonic() - self._entered)
        self.bar.next_button.setEnabled(True)
        if not failed:
            self.bar.set_status("Press Next (Page Down) to go on." if not self.auto else "")
        if self.auto:
            self._advance.start(int(1000 * self.tour.stages[self.index].hold * self.hold_scale))

    # -- the jobs: each starts its work, then yields a status line per tick until it is done ---
    def _panel(self, name: str) -> Any:
        panel = self.window.panels.get(name)
        if panel is None:
            raise TourError(f"this window has no {name} panel")
        return panel

    @staticmethod
    def _pick(combo: Any, value: str | None, what: str) -> None:
        if value is None:
            return
        i = combo.findData(value)
        if i < 0:
            have = [str(combo.itemData(k)) for k in range(combo.count())]
            raise TourError(f"no {what} {value!r} here (there is: {', '.join(have) or 'none'})")
        combo.setCurrentIndex(i)

    def _job_train(self, s: dict[str, Any], stage: Stage) -> Iterator[str]:
        w = self.window
        if s.get("reuse") and (run := self._kept_run(s)) is not None:
            self._runs[self.index] = run
            w.select_run(run)
            yield "This model was trained in an earlier tour: showing it again."
            return
        if not w.select_plugin(s["plugin"]):
            raise TourError(f"the {s['plugin']} model is not available here")
        if not w.select_dataset(s["dataset"]):
            raise TourError(f"the {s['dataset']} data is not offered for {s['plugin']}")
        w.steps_spin.setValue(s.get("steps", w.steps_spin.value()))
        w.seed_spin.setValue(s.get("seed", 0))
        settings = w.panels.get("settings")
        if settings is not None:
            if settings.form is not None:
                settings.form.reset()  # the tour's settings, not what this user last typed
                settings.form.set_values(s.get("config", {}))
            settings.run_form.reset()
            settings.run_form.set_values({k: s[k] for k in RUN_OPTIONS if k in s})
        run = w.start_training()
        if run is None:
            raise TourError(w.errors[-1][0] if w.errors else "training did not start")
        self._runs[self.index] = run
        while w.job_running("train"):
            total = w.progress.maximum()
            yield f"Training live on this computer: step {w.progress.value():,} of {total:,}"
        status = run.info().get("status")
        if status != "completed":
            raise TourError(f"training ended {status}")
        remember_run(w.store.root, s, run.id)

    def _kept_run(self, s: dict[str, Any]) -> Any:
        rid = remembered_run(self.window.store.root, s)
        if rid is None:
            return None
        try:
            run = self.window.store.get(rid)
            return run if run.info().get("status") == "completed" and run.checkpoints() else None
        except RunError:
            return None

    def _wait_job(self, name: str, text: Callable[[], str]) -> Iterator[str]:
        while self.window.job_running(name):
            yield text()

    def _play(self, button: Any) -> Iterator[str]:
        """Press Play and wait until the playback has reached the end."""
        if not button.isEnabled():
            return
        button.setChecked(True)
        while button.isChecked():
            yield "Playing it back, step by step."

    def _job_sample(self, s: dict[str, Any], stage: Stage) -> Iterator[str]:
        sp = self._panel("sampler")
        self._pick(sp.sampler, s.get("sampler"), "sampler")
        for key, spin in (("n", sp.n), ("steps", sp.steps), ("seed", sp.seed)):
            if key in s:
                spin.setValue(s[key])
        if sp.start_sampling() is None:
            raise TourError(f"nothing to sample: {sp.status.text() or 'no trained model yet'}")
        yield from self._wait_job("sample", lambda: f"Making new points: {sp.num_states()} steps so far")
        if not sp.num_states():
            raise TourError(sp.status.text() or "sampling gave nothing")
        if s.get("play"):
            yield from self._play(sp.play_button)

    def _job_compare(self, s: dict[str, Any], stage: Stage) -> Iterator[str]:
        tp = self._panel("trajectory")
        for key, side in (("a", tp.a), ("b", tp.b)):
            cfg = s.get(key, {})
            self._pick(side.sampler, cfg.get("sampler"), "sampler")
            if "steps" in cfg:
                side.steps.setValue(cfg["steps"])
            if "seed" in cfg:
                side.seed.setValue(cfg["seed"])
        if "n" in s:
            tp.n.setValue(s["n"])
        if tp.start_compare() is None:
            raise TourError(f"cannot compare: {tp.status.text() or 'no trained model yet'}")
        yield from self._wait_job("compare", lambda: "Running both ways from the same starting noise…")
        if not tp.trajectories()[0]:
            raise TourError(tp.status.text() or "the comparison gave nothing")
        if s.get("play"):
            yield from self._play(tp.play_button)

    def _job_latent(self, s: dict[str, Any], stage: Stage) -> Iterator[str]:
        lp = self._panel("latent")
        self._pick(lp.method, s.get("method"), "map method")
        if "n" in s:
            lp.n.setValue(s["n"])
        if "clusters" in s:
            lp.k.setValue(s["clusters"])
        if lp.encode() is None:
            raise TourError(f"cannot map this model: {lp.status.text()}")
        yield from self._wait_job("latent", lambda: "Placing every example on the map…")
        ex = lp.explorer
        if ex is None:
            raise TourError(lp.status.text() or "the map was not made")
        if not s.get("walk"):
            return
        lp.tabs.setCurrentIndex(0)  # Decode: one picture that changes as we walk
        for v in [*range(0, -101, -10), *range(-100, 101, 10), *range(100, -1, -10)]:
            lp.sliders[0].setValue(v)
            yield "Walking across the map: the decoded picture changes smoothly."
        a, b = walk_ends(ex.labels, ex.embedding)
        lp.select_point(a)
        lp.select_point(b)
        lp.tabs.setCurrentIndex(1)  # Interpolate: the strip from A to B

    def _job_fly(self, s: dict[str, Any], stage: Stage) -> Iterator[str]:
        vp = self._panel(stage.panel or "splats")
        deadline = time.monotonic() + 120
        while vp.scene_item is None:
            if not self.window.job_running(vp.job_name):
                if vp.status.text().startswith("no scene") or time.monotonic() > deadline:
                    raise TourError(vp.status.text() or "no 3-D scene to show")
                vp.refresh()
            yield "Loading the 3-D scene…"
        if vp.view is None:  # no OpenGL here (offscreen): the panel says so itself
            yield "The 3-D view needs OpenGL on this display."
            return
        vp.camera_box.setCurrentText("turntable")
        cam = vp.cameras["turntable"]
        ticks = max(1, round(s.get("seconds", 8) * 1000 / TICK_MS))
        for _ in range(ticks):
            cam.azimuth = (cam.azimuth + s.get("degrees", 360) / ticks) % 360
            vp.canvas.update()
            yield "Flying around the scene the model built."


def walk_ends(labels: Any, embedding: Any) -> tuple[int, int]:
    """Two items to interpolate between: the most typical members (nearest their label's centre on
    the map) of the two labels whose centres lie farthest apart, so the walk crosses the map; without
    labels, the two items farthest apart along the map's first axis."""
    import numpy as np

    emb = np.asarray(embedding, dtype=float)
    if labels is None or len(emb) < 2 or len(set(np.asarray(labels).tolist())) < 2:
        return int(emb[:, 0].argmin()), int(emb[:, 0].argmax())
    labels = np.asarray(labels)
    keys = sorted(set(labels.tolist()))
    centres = np.stack([emb[labels == k].mean(0) for k in keys])
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    i, j = np.unravel_index(d.argmax(), d.shape)

    def typical(k: int) -> int:
        idx = np.flatnonzero(labels == keys[k])
        return int(idx[np.linalg.norm(emb[idx] - centres[k], axis=1).argmin()])

    return typical(i), typical(j)


class TourRecorder(QObject):
    """Turns what the user does into tour stages: a panel brought forward is a stage; a job started
    (train, sample, compare, latent) becomes that stage's job with the settings it ran with."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.recording = False
        self.stages: list[dict[str, Any]] = []
        for pid, dock in window.docks.items():
            dock.visibilityChanged.connect(lambda on, pid=pid: on and self._visit(pid))
        window.job_started.connect(self._job)

    def start(self) -> None:
        self.stages, self.recording = [], True

    def stop(self, name: str = "Recorded tour") -> Tour:
        """Stop recording; the tour so far (captions are placeholders to fill in)."""
        self.recording = False
        stages = tuple(Stage(title=d["title"], caption=d["caption"], panel=d["panel"], job=d["job"],
                             settings=d["settings"]) for d in self.stages)
        return Tour(name=name, stages=stages, description="Recorded in GenStudio; write a caption for each stage.")

    def _visit(self, pid: str) -> None:
        if not self.recording or (self.stages and self.stages[-1]["panel"] == pid):
            return
        title = self.window.docks[pid].windowTitle()
        self.stages.append({"title": title, "panel": pid, "job": "", "settings": {},
                            "caption": f"(Say what the audience sees in {title}.)"})

    def _job(self, name: str) -> None:
        if not self.recording or name not in JOBS or not name:
            return
        settings = getattr(self, f"_settings_{name}", lambda: {})()
        if settings is None:  # not worth a stage (a resumed run)
            return
        last = self.stages[-1] if self.stages else None
        if last is None or last["job"]:
            self._visit_new(JOB_PANEL.get(name, ""))
            last = self.stages[-1]
        last["job"], last["settings"] = name, settings
        if name == "train":
            last["title"] = f"Train {settings['plugin']} on {settings['dataset']}"

    def _visit_new(self, pid: str) -> None:
        title = self.window.docks[pid].windowTitle() if pid in self.window.docks else "Stage"
        self.stages.append({"title": title, "panel": pid, "job": "", "settings": {},
                            "caption": f"(Say what the audience sees in {title}.)"})

    def _settings_train(self) -> dict[str, Any] | None:
        run = self.window.current_run()
        if run is None:
            return None
        info = run.info()
        if info.get("step", 0) > 0:
            return None  # a resume: the tour's train stages make new runs
        cls = self.window.registry.get(info["plugin"]).info.config_cls
        defaults = dataclasses.asdict(cls())
        config = {k: v for k, v in (info.get("config") or {}).items() if k in defaults and defaults[k] != v}
        out = {"plugin": info["plugin"], "dataset": info["dataset"], "steps": int(info["steps"]),
               "seed": int(info.get("seed", 0)), **{k: int(info[k]) for k in RUN_OPTIONS if k in info}}
        return {**out, "config": config} if config else out

    def _settings_sample(self) -> dict[str, Any]:
        sp = self.window.panels["sampler"]
        out = {"n": sp.n.value(), "seed": sp.seed.value(), "play": True}
        if sp.steps.value():
            out["steps"] = sp.steps.value()
        if sp.sampler.currentData():
            out["sampler"] = sp.sampler.currentData()
        return out

    def _settings_compare(self) -> dict[str, Any]:
        tp = self.window.panels["trajectory"]
        sides = {k: {"sampler": s.sampler.currentData(), "steps": s.steps.value(), "seed": s.seed.value()}
                 for k, s in (("a", tp.a), ("b", tp.b))}
        for side in sides.values():  # "default" steps and a missing sampler are left out
            for k in [k for k, v in side.items() if v is None or (k == "steps" and v == 0)]:
                del side[k]
        return {"n": tp.n.value(), **sides, "play": True}

    def _settings_latent(self) -> dict[str, Any]:
        lp = self.window.panels["latent"]
        return {"n": lp.n.value(), "method": lp.method.currentData() or "pca", "clusters": lp.k.value(), "walk": True}


class TourActions(QObject):
    """The Help menu's "Show me" and "Record tour", and the player / recorder behind them."""

    def __init__(self, window: Any, menu: Any) -> None:
        super().__init__(window)
        self.window = window
        self.player: TourPlayer | None = None
        self.recorder = TourRecorder(window)
        self.show_action = QAction("Show me (guided tour)", window)
        self.show_action.setToolTip("A guided tour that trains and samples real models, with captions; Esc leaves it")
        self.show_action.triggered.connect(lambda: self.play())
        self.record_action = QAction("Record tour", window, checkable=True)
        self.record_action.setToolTip("Record the panels you visit and the jobs you start as a tour file "
                                      "(uncheck to save it)")
        self.record_action.toggled.connect(self._record_toggled)
        menu.addAction(self.show_action)
        menu.addAction(self.record_action)

    def play(self, spec: str | Path | None = None, **kw: Any) -> TourPlayer | None:
        """Start the tour ``spec`` (None = the default); a bad tour file is one error message."""
        if self.player is not None and self.player.running:
            self.player.stop()
        try:
            tour = load_tour(spec)
            self.player = TourPlayer(self.window, tour, **kw)
            self.player.start()
        except TourError as exc:
            self.window.show_error(f"Cannot play the tour: {exc}")
            self.player = None
        return self.player

    def choose_tour_file(self) -> str | None:
        """Where to save a recorded tour (tests monkeypatch this: a modal dialog would block them)."""
        path, _ = QFileDialog.getSaveFileName(self.window, "Save tour", "my-tour.json", "Tour files (*.json)")
        return path or None

    def _record_toggled(self, on: bool) -> None:
        if on:
            self.recorder.start()
            self.window.status_message("Recording a tour: visit panels and start jobs; Help → Record tour again "
                                       "to save it", 8000)
            return
        tour = self.recorder.stop()
        if not tour.stages:
            self.window.status_message("Nothing recorded")
            return
        path = self.choose_tour_file()
        if path:
            self.saved = save_tour(tour, path)
            self.window.status_message(f"Tour saved: {self.saved} (play it with `genstudio demo {self.saved}`)", 8000)


def run_demo_app(spec: str | Path | None = None, *, quick: bool = False, auto: bool = False,
                 hold_scale: float = 1.0, shots: str | Path | None = None) -> int:
    """``genstudio demo``: the main window, the tour in it; with ``auto`` the app quits when the tour
    ends and each stage's time is printed. Returns 1 if a stage had a problem, else 0."""
    from genstudio.qt.app import create_app
    from genstudio.qt.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    window.show()
    player = window.tours.play(spec, quick=quick, auto=auto, hold_scale=hold_scale, shots=shots)
    if player is None:
        print(window.errors[-1][0] if window.errors else "the tour did not start")
        return 1
    t0 = time.monotonic()
    if auto:
        player.finished.connect(lambda _: app.quit())
        app.exec()
        for i, st in enumerate(player.tour.stages):
            print(f"{i + 1:2d}  {player.timings.get(i, float('nan')):6.1f} s  {st.title}"
                  + "".join(f"  PROBLEM: {m}" for j, m in player.errors if j == i))
        print(f"tour wall time {time.monotonic() - t0:.1f} s ({'quick' if quick else 'full'} settings)")
        for p in player.shot_paths:
            print(p)
        window.close()
    else:
        app.exec()
    return 1 if player.errors or window.errors else 0
