"""The main window: toolbar (plugin, dataset, steps, seed, device, start/pause/resume/stop), dockable
panels, a status bar with device and throughput, and the AppContext the panels talk to.

Jobs run in :class:`~genstudio.qt.worker.JobThread`; their events come back through the
:class:`~genstudio.qt.bridge.EventBridge` once per screen tick and are handed to every panel.
Layout and last choices persist in QSettings (``GENSTUDIO_SETTINGS`` or ``settings_path`` points
it at an ini file, which tests use).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from genstudio.core import events as ev
from genstudio.core.events import Event, EventBus
from genstudio.core.runs import Run, RunError, RunStore
from genstudio.qt.bridge import EventBridge
from genstudio.qt.forms import guard_wheel
from genstudio.qt.panels.base import Panel
from genstudio.qt.throttle import after_first_paint, on_first_touch

if TYPE_CHECKING:  # torch's importers: this module loads without them, so a staged window paints first
    from genstudio.core.jobs import Control
    from genstudio.core.registry import PluginEntry, Registry
    from genstudio.qt.worker import JobThread

log = logging.getLogger(__name__)
FIRST_STANDBY_MS = 500  # the first trainer process is warmed this soon after the window's first paint (a
# demo may press Start at once), the next ones this long after a run ends (not while its results are sampled)
STANDBY_DELAY_MS = 2500
QUIET_JOB_S = 2.0  # a job that finishes faster (an OT solve, a decode) is not worth a line in the activity log

# Panels come through the entry-point group ``genstudio.panels`` (pyproject.toml), exactly like
# plugins, so another package can add one. Each class says where it goes (``area``: a dock area
# "top", "left", "right", "bottom" -- later panels of an area stack below the first -- or
# "tab:<panel_id>", a tab behind that panel) and in which ``order``. A panel that fails to import
# (or to build) is logged and skipped, never fatal.
PANEL_GROUP = "genstudio.panels"
PanelSpec = tuple[str, str, str]  # (module, class, area): an explicit list instead of the entry points

SETTINGS_ENV = "GENSTUDIO_SETTINGS"
STATE_VERSION = 1
ACTIVITY_LINES = 5  # lines the activity log shows (it scrolls; View → Activity log hides it)
OPEN_FOLDER = "__open_folder__"  # dataset picker entry that asks for a folder
OPEN_SCENE = "__open_scene__"  # dataset picker entry that asks for a transforms.json scene folder
OPEN_AUDIO = "__open_audio__"  # dataset picker entry that asks for a folder of audio files
OPEN_VIDEO = "__open_video__"  # dataset picker entry that asks for a folder of GIF/MP4 clips
# The picker's "Open … folder" entries: (Modality.user_data source, recent-folders key, entry, label, tooltip)
USER_SOURCES = (
    ("folder", "folders", OPEN_FOLDER, "Open image folder…", "Train on your own images (png/jpg), resized"),
    ("wav", "audio", OPEN_AUDIO, "Open audio folder…", "Train on your own audio files (wav/flac/ogg), mono, resampled"),
    ("video", "videos", OPEN_VIDEO, "Open video folder…",
     "Train on your own clips (gif/mp4/webm): first 16 frames, centre crop, resized"),
    ("transforms", "scenes", OPEN_SCENE, "Open scene folder (transforms.json)…",
     "A nerfstudio / instant-ngp folder with transforms.json and its images"),
)
OPENERS = tuple(entry for _, _, entry, _, _ in USER_SOURCES)
DEFAULT_DATASETS = ("8gaussians", "moons", "digits")  # first choice on a fresh install: quick to train
AREAS = {"left": Qt.LeftDockWidgetArea, "right": Qt.RightDockWidgetArea,
         "top": Qt.TopDockWidgetArea, "bottom": Qt.BottomDockWidgetArea}

_orphans: list[JobThread] = []  # threads that did not stop when the window closed (kept alive to exit)


def user_data_sources(kinds: Sequence[str]) -> set[str]:
    """Dataset-name prefixes of the user's own data that plugins of these kinds train on
    (``Modality.user_data``: "folder" image folders, "transforms" scene folders)."""
    from genstudio.core.modality import MODALITIES

    return {MODALITIES[k].user_data for k in kinds if k in MODALITIES} - {""}


def load_panel_classes(specs: Sequence[PanelSpec] | None = None) -> tuple[list[tuple[type, str]], dict[str, str]]:
    """Import the panel classes (the entry points, or ``specs``); returns ([(cls, area)] in
    ``order``, {name: error}) without raising."""
    from importlib.metadata import entry_points

    found: list[tuple[str, Callable[[], Any], str | None]] = []
    if specs is None:
        found = [(f"{ep.name} = {ep.value}", ep.load, None) for ep in entry_points(group=PANEL_GROUP)]
    else:
        found = [(f"{m}.{n}", partial(lambda m, n: getattr(importlib.import_module(m), n), m, n), area)
                 for m, n, area in specs]
    ok, errors = [], {}
    for name, load, area in found:
        try:
            cls = load()
            ok.append((cls, area or getattr(cls, "area", "right")))
        except Exception as exc:  # noqa: BLE001
            log.warning("panel %s unavailable: %s", name, exc)
            errors[name] = f"{exc.__class__.__name__}: {exc}"
    ok.sort(key=lambda c: getattr(c[0], "order", 100))
    return ok, errors


LAZY_PANELS = os.environ.get("GENSTUDIO_EAGER_PANELS", "") != "1"  # 1: build every panel at start (debugging)


class LazyPanels(dict):
    """Panel id -> panel, where a panel not built yet (a tab no one has raised) is built on first
    ``panels[pid]`` / ``panels.get(pid)``; iterating gives the built ones only, so events and run
    changes never build a hidden panel (issue #18: building all of them was ~1 s of cold start)."""

    def __init__(self, build: Callable[[str], Any], pending: dict[str, Any]) -> None:
        super().__init__()
        self._build = build
        self._pending = pending

    def __missing__(self, pid: str) -> Any:
        panel = self._build(pid)
        if panel is None:
            raise KeyError(pid)
        return panel

    def get(self, pid: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[pid]
        except KeyError:
            return default

    def __contains__(self, pid: object) -> bool:
        return dict.__contains__(self, pid) or pid in self._pending


def make_settings(path: str | os.PathLike | None = None) -> QSettings:
    """QSettings at ``path`` / $GENSTUDIO_SETTINGS (ini file), else the platform's default place."""
    path = path or os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(str(path), QSettings.IniFormat)
    return QSettings()


class MainWindow(QMainWindow):
    """The application window; implements :class:`~genstudio.qt.panels.base.AppContext`."""

    job_finished = Signal(str, str)  # job name, outcome ("finished" | "cancelled" | "failed")
    run_changed = Signal(object)  # Run | None
    job_started = Signal(str)  # job name (Record tour listens)

    def __init__(self, store: RunStore | None = None, *, registry: Registry | None = None,
                 settings: QSettings | None = None, settings_path: str | os.PathLike | None = None,
                 panels: Sequence[PanelSpec] | None = None, restore: bool = True, staged: bool = False,
                 parent: QWidget | None = None) -> None:
        """``staged``: paint the window's shell (toolbar, run header, status bar) first and build
        what needs torch -- panels, pickers, menus, the saved layout -- in the event-loop turn
        after that first paint (``genstudio gui``: a window shows before ``import torch``, issue
        #18). :attr:`ready` says when that is done; :meth:`when_ready` queues work for then.
        Not staged (tests, screenshots, demos), all of it is done here."""
        super().__init__(parent)
        after_first_paint(self, guard_wheel)  # a wheel turn never edits an unfocused spin box, combo box or slider
        self.setObjectName("main_window")
        self.setWindowTitle("GenStudio")
        self.store = store or RunStore()
        self.registry: Registry = registry  # type: ignore[assignment] # the process's registry when ready, if None
        self.bus = EventBus()
        self.settings = settings or make_settings(settings_path)
        self.errors: list[tuple[str, str]] = []  # every error shown (tests read it)
        self._deferred: dict[str, tuple[type, QDockWidget]] = {}  # panel id -> (class, its dock) not built yet
        self.panels: dict[str, Panel] = LazyPanels(self._build_deferred, self._deferred)  # built when first seen
        self.panel_errors: dict[str, str] = {}
        self._pending_steer: dict[str, dict[str, Any]] = {}  # run id -> live settings for its next job
        self.docks: dict[str, QDockWidget] = {}
        self._run: Run | None = None
        self._jobs: dict[str, JobThread] = {}
        self._banner_run: str | None = None
        self._last_dataset_index = 0
        self._live_step: dict[str, int] = {}  # run id -> last step seen in PROGRESS while it trains
        self._info: dict[str, dict[str, Any]] = {}  # run id -> run.json, read again only when it changes
        self.standby: Any = None  # a warm trainer process for the next own_process run (made when ready)
        self.gc: Any = None
        self._closed = False
        self.ready = False
        self._when_ready: list[Callable[[], Any]] = []

        self._build_toolbar()
        self._build_central()
        self._build_statusbar()
        self.bridge = EventBridge(self.bus, self)
        self.bridge.events.connect(self._on_events)
        self.resize(1400, 880)
        self._startup = (panels, restore)
        if staged:
            self.toolbar.setEnabled(False)
            self.run_header.setText("Starting: loading PyTorch, the panels and the model plugins…")
            self.device_label.setText("Device: …")
            after_first_paint(self, self._finish_staged_startup)
        else:
            self._finish_startup()

    def _finish_staged_startup(self) -> None:
        """The staged window's second half, in the event loop: a failure (a broken torch install,
        a panel module that raises at import) is an error dialog and a line in the window, which
        stays open to read it and close; the saved choices are left as they were."""
        try:
            self._finish_startup()
        except Exception as exc:  # noqa: BLE001 - the user must see why, not a window stuck "starting"
            message = f"GenStudio could not finish starting: {exc.__class__.__name__}: {exc}"
            self.run_header.setText(message)
            self.device_label.setText("")
            self.show_error(message, traceback.format_exc())

    def _finish_startup(self) -> None:
        """Everything that imports torch: devices, panels, menus, plugins, the saved choices."""
        if self.ready or self._closed:
            return
        from genstudio.core.registry import registry as core_registry
        from genstudio.qt.watch import Standby
        from genstudio.qt.worker import GuiGarbageCollector, freeze_startup_objects

        panels, restore = self._startup
        if self.registry is None:
            self.registry = core_registry()
        self.standby = Standby(self.store.root)
        for name in available_devices():
            self.device_combo.addItem(name, name)
        self._panel_classes, self.panel_errors = load_panel_classes(panels)
        self._build_panels()
        self._build_menus()
        self.populate_plugins()
        self.gc = GuiGarbageCollector(self)  # Python's GC only in this thread, never in a worker
        after_first_paint(self, freeze_startup_objects)  # full collections skip the startup objects
        self._default_state = self.saveState(STATE_VERSION)
        if restore:
            self.restore_settings()
        self.toolbar.setEnabled(True)
        self._update_header()
        self._update_device_label()
        self._update_controls()
        self._warm_trainer_later(FIRST_STANDBY_MS)
        self.ready = True
        calls, self._when_ready = self._when_ready, []
        for call in calls:
            call()

    def when_ready(self, call: Callable[[], Any]) -> None:
        """Run ``call`` once the window is built (now, if it is)."""
        if self.ready:
            call()
        else:
            self._when_ready.append(call)

    # == construction ==========================================================================
    def _build_toolbar(self) -> None:
        tb = QToolBar("Run controls")
        tb.setObjectName("run_toolbar")
        tb.setMovable(False)
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.toolbar = tb

        self.plugin_combo = QComboBox()
        self.plugin_combo.setObjectName("plugin_combo")
        self.plugin_combo.setMinimumContentsLength(14)
        self.plugin_combo.setToolTip("Model plugin (broken plugins are listed greyed out with their error)")
        self.plugin_combo.currentIndexChanged.connect(self._plugin_changed)
        self.dataset_combo = QComboBox()
        self.dataset_combo.setObjectName("dataset_combo")
        self.dataset_combo.setMinimumContentsLength(14)
        self.dataset_combo.setToolTip("Training data (only kinds the plugin accepts)")
        self.dataset_combo.activated.connect(self._dataset_activated)
        self.dataset_combo.currentIndexChanged.connect(self._dataset_changed)
        self.steps_spin = QSpinBox()
        self.steps_spin.setObjectName("steps_spin")
        self.steps_spin.setRange(1, 10_000_000)
        self.steps_spin.setValue(2000)
        self.steps_spin.setSingleStep(100)
        self.steps_spin.setAccelerated(True)
        self.steps_spin.setToolTip("Training steps for a new run (or extra steps when resuming a completed run)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("seed_spin")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Random seed (data order and initialisation)")
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("device_combo")
        self.device_combo.addItem("auto", None)  # the devices found join it when torch is in
        self.device_combo.setToolTip("Where the model trains: auto = cuda > mps > cpu")
        self.device_combo.currentIndexChanged.connect(self._update_device_label)

        self.start_button = self._button("Start", "start_button", "Create a run with these settings and train it",
                                         self.start_training)
        self.pause_button = self._button("Pause", "pause_button", "Pause after the current step (writes a "
                                         "checkpoint)", self.pause_training)
        self.resume_button = self._button("Resume", "resume_button", "Resume the paused run, or continue the "
                                          "selected run from its last checkpoint", self.resume_training)
        self.stop_button = self._button("Stop", "stop_button", "Stop after the current step (writes a "
                                        "checkpoint; Resume continues later)", self.stop_training)
        self.step_button = self._button("Step", "step_button", "Paused: take one training step, show it and pause "
                                        "again (a GAN with players = alternate moves one player per step)",
                                        self.step_training)

        for label, w in (("Plugin", self.plugin_combo), ("Data", self.dataset_combo), ("Steps", self.steps_spin),
                         ("Seed", self.seed_spin), ("Device", self.device_combo)):
            tb.addWidget(QLabel(label))
            tb.addWidget(w)
        tb.addSeparator()
        for b in (self.start_button, self.pause_button, self.resume_button, self.step_button, self.stop_button):
            tb.addWidget(b)

    def _button(self, text: str, name: str, tip: str, slot: Callable[[], Any]) -> QPushButton:
        b = QPushButton(text)
        b.setObjectName(name)
        b.setToolTip(tip)
        b.clicked.connect(lambda: slot())
        return b

    def _build_central(self) -> None:
        central = QWidget()
        central.setObjectName("central")
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 4, 6, 4)
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        self.run_header = QLabel("No run selected. Pick a plugin and data, then press Start.")
        self.run_header.setObjectName("run_header")
        self.run_header.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.activity = QPlainTextEdit()
        self.activity.setObjectName("activity_log")
        self.activity.setReadOnly(True)
        self.activity.setMaximumBlockCount(2000)
        self.activity.setPlaceholderText("Run activity appears here.")
        # compact (a few lines) or hidden: the height it used to take (~40 %) goes to the panels
        lines = self.activity.fontMetrics().lineSpacing()
        self.activity.setMaximumHeight(ACTIVITY_LINES * lines + 12)
        self.activity_action = QAction("Activity log", self, checkable=True)
        self.activity_action.setToolTip("Show or hide the run activity log (hidden, its space goes to the panels)")
        self.activity_action.setChecked(self.settings.value("window/activity_log", True, type=bool))
        self.activity_action.toggled.connect(self._show_activity)
        toggle = QToolButton()
        toggle.setObjectName("activity_toggle")
        toggle.setDefaultAction(self.activity_action)
        toggle.setAutoRaise(True)
        header = QHBoxLayout()
        header.addWidget(self.run_header, 1)
        header.addWidget(toggle)
        lay.addWidget(self.banner)
        lay.addLayout(header)
        lay.addWidget(self.activity, 1)
        central.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)  # never taller than it needs
        self.setCentralWidget(central)
        self._show_activity(self.activity_action.isChecked())

    def _show_activity(self, on: bool) -> None:
        """The activity log's toggle (View menu and the button by the run header); remembered."""
        self.activity.setVisible(on)
        self.settings.setValue("window/activity_log", on)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setFixedWidth(180)
        self.progress.setVisible(False)
        self.throughput_label = QLabel("–")
        self.throughput_label.setObjectName("throughput_label")
        self.throughput_label.setToolTip("Training throughput (from the run's logged metrics)")
        self.device_label = QLabel()
        self.device_label.setObjectName("device_label")
        for w in (self.progress, self.throughput_label, self.device_label):
            sb.addPermanentWidget(w)

    def _build_panels(self) -> None:
        self.setDockNestingEnabled(True)
        self.setCorner(Qt.TopLeftCorner, Qt.LeftDockWidgetArea)
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        placed: dict[str, list[QDockWidget]] = {}
        tabs_front: list[QDockWidget] = []
        for cls, area in self._panel_classes:
            behind = self.docks.get(area[4:]) if area.startswith("tab:") else None
            dock = QDockWidget(cls.title, self)
            dock.setObjectName(f"dock_{cls.panel_id}")
            if behind is not None and LAZY_PANELS:  # off screen at start: built when its tab is first raised
                dock.setWidget(QWidget())
                self._deferred[cls.panel_id] = (cls, dock)
                dock.visibilityChanged.connect(partial(self._deferred_seen, cls.panel_id))
            elif not self._place_panel(cls, dock):
                dock.deleteLater()
                continue
            dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                             | QDockWidget.DockWidgetClosable)
            siblings = placed.setdefault(area, [])
            if behind is not None:
                self.tabifyDockWidget(behind, dock)
                tabs_front.append(behind)
            elif siblings:  # later panels of an area stack below the first (the big panels are wide)
                self.splitDockWidget(siblings[-1], dock, Qt.Vertical)
            else:
                self.addDockWidget(AREAS.get(area, Qt.RightDockWidgetArea), dock)
            siblings.append(dock)
            self.docks[cls.panel_id] = dock
        for dock in tabs_front:  # the panel a tab was added behind stays in front
            dock.raise_()
        runs = self.panels.get("runs")
        if runs is not None and hasattr(runs, "open_requested"):
            runs.open_requested.connect(self.select_run)
            runs.resume_requested.connect(self.resume_run)
            runs.delete_requested.connect(self.delete_run)
        left = [d for k, d in self.docks.items() if k in ("runs", "settings")]
        if left:
            self.resizeDocks(left, [320] * len(left), Qt.Horizontal)
        for names, heights in ((("runs", "settings"), (280, 520)), (("training", "sampler"), (400, 340))):
            docks = [self.docks[n] for n in names if n in self.docks]
            if docks:
                self.resizeDocks(docks, list(heights[:len(docks)]), Qt.Vertical)

    def _place_panel(self, cls: type, dock: QDockWidget) -> Panel | None:
        """Build one panel into its dock; a panel that fails is logged and listed, never fatal."""
        try:
            panel = cls(self)
        except Exception as exc:  # noqa: BLE001 - a broken panel must not take the window down
            log.exception("panel %s failed to build", cls.__name__)
            self.panel_errors[cls.__name__] = f"{exc.__class__.__name__}: {exc}"
            return None
        dock.setWidget(panel)
        dock.visibilityChanged.connect(panel.set_on_screen)  # a tab behind another: no redraws
        dict.__setitem__(self.panels, panel.panel_id, panel)
        return panel

    def _deferred_seen(self, pid: str, visible: bool) -> None:
        if visible:
            self._build_deferred(pid, on_screen=True)

    def _build_deferred(self, pid: str, on_screen: bool = False) -> Panel | None:
        """Build a panel whose tab has not been seen yet (its dock is shown, or code asked for it)
        and bring it up to date with the selected run; None if ``pid`` is no such panel."""
        if pid not in self._deferred:
            return None
        cls, dock = self._deferred.pop(pid)
        placeholder = dock.widget()
        panel = self._place_panel(cls, dock)
        if placeholder is not None and panel is not None:
            placeholder.deleteLater()
        if panel is not None:
            panel.set_on_screen(on_screen)
            if self._run is not None:
                self._safely(panel.set_run, self._run)
        return panel

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        act = QAction("Open image folder…", self)
        act.triggered.connect(self.open_image_folder)
        file_menu.addAction(act)
        act = QAction("Open audio folder…", self)
        act.triggered.connect(self.open_audio_folder)
        file_menu.addAction(act)
        act = QAction("Open video folder…", self)
        act.triggered.connect(self.open_video_folder)
        file_menu.addAction(act)
        act = QAction("Watch a run folder…", self)  # a run another process trains
        act.triggered.connect(self.choose_watch_folder)
        file_menu.addAction(act)
        file_menu.addSeparator()
        from genstudio.qt.share import add_export_actions  # share a run: HTML report, TensorBoard (#16)

        self.export_actions = add_export_actions(self, file_menu)
        file_menu.addSeparator()
        quit_act = QAction("Quit", self)
        quit_act.setShortcut(QKeySequence.Quit)
        quit_act.triggered.connect(self.close)
        file_menu.addAction(quit_act)
        run_menu = mb.addMenu("&Run")
        self.run_actions: dict[str, QAction] = {}
        for b, keys in ((self.start_button, "Ctrl+Return"), (self.pause_button, "Ctrl+P"),
                        (self.resume_button, "Ctrl+R"), (self.step_button, "Ctrl+T"), (self.stop_button, "Ctrl+.")):
            a = QAction(b.text(), self)
            a.setShortcut(QKeySequence(keys))  # the button's own enabled state decides (click() no-ops)
            a.triggered.connect(lambda *_, b=b: b.isEnabled() and b.click())
            b.setToolTip(f"{b.toolTip() or b.text()} ({QKeySequence(keys).toString(QKeySequence.NativeText)})")
            run_menu.addAction(a)
            self.run_actions[b.text()] = a
        space = QAction("Pause / resume, or play the trajectory", self)
        space.setShortcut(QKeySequence(Qt.Key_Space))  # a text field with focus still types its space
        space.triggered.connect(lambda *_: self.space_pressed())
        run_menu.addAction(space)
        self.run_actions["Space"] = space
        view = mb.addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        view.addAction(self.activity_action)
        view.addSeparator()
        reset = QAction("Reset layout", self)
        reset.triggered.connect(lambda: self.restoreState(self._default_state, STATE_VERSION))
        view.addAction(reset)
        shot_act = QAction("Save screenshot…", self)
        shot_act.setShortcuts([QKeySequence("Ctrl+S"), QKeySequence("Ctrl+Shift+S")])
        shot_act.triggered.connect(lambda: self.save_screenshot())
        view.addAction(shot_act)
        help_menu = mb.addMenu("&Help")
        about = QAction("Plugins…", self)
        about.triggered.connect(self._show_plugins)
        help_menu.addAction(about)
        from genstudio.qt.present import Presentation  # demo mode (issue 16): View → Presentation mode,
        from genstudio.qt.tour import TourActions  # Help → Show me / Record tour

        self.presentation = Presentation(self)
        view.addAction(self.presentation.action)
        self.tours = TourActions(self, help_menu)

    # == pickers ===============================================================================
    def populate_plugins(self) -> None:
        """(Re)fill the plugin picker from the registry; broken plugins are disabled, error as tooltip.
        A registry that has not imported its plugins yet lists the one the picker will show (its
        pick, or the default); the rest are imported one event-loop turn at a time after the first
        paint, or all at once when the user reaches for the picker (issue #18)."""
        from genstudio.core.registry import DEFAULT_PLUGINS

        keep = self.plugin_combo.currentData()
        entries = None
        if not self.registry.loaded:
            first = {e.id: e for p in (keep, self.settings.value("choices/plugin", "") or None, *DEFAULT_PLUGINS)
                     if (e := self.registry.entry(p)) is not None}
            if not self.registry.loaded and any(first[p].ok for p in (keep, *DEFAULT_PLUGINS) if p in first):
                entries = list(first.values())  # the pick is the one a full list would make
                after_first_paint(self, self._import_next_plugin)
                self._plugin_touch = on_first_touch(self.plugin_combo, self._list_all_plugins)
        self._plugins_listed = entries is None
        self._fill_plugin_combo(self.registry.entries.values() if entries is None else entries)
        ok = [e.id for e in self.registry.entries.values() if e.ok] if entries is None else []
        if not any(self.select_plugin(p) for p in (keep, *DEFAULT_PLUGINS, *ok[:1])):
            self._plugin_changed()

    def _fill_plugin_combo(self, entries: Iterable[PluginEntry]) -> None:
        combo = self.plugin_combo
        combo.blockSignals(True)
        combo.clear()
        entries = sorted(entries, key=lambda e: (not e.ok, e.info.family if e.ok else "",
                                                 e.info.name if e.ok else e.id))
        family = None
        for e in entries:
            if e.ok and e.info.family != family:  # a header per family (not selectable), so 19 ids read as groups
                family = e.info.family
                combo.addItem(f"— {family} —", None)
                header = combo.model().item(combo.count() - 1)
                header.setEnabled(False)
                font = header.font()
                font.setBold(True)
                header.setFont(font)
            if e.ok:
                combo.addItem(e.info.name, e.id)
                tip = f"{e.id} ({e.info.family}): {e.info.description or ''}".strip()
            else:
                combo.addItem(f"{e.id} (broken)", e.id)
                tip = f"{e.id} failed to load from {e.source}:\n{e.error}"
                if e.details:
                    tip += "\n\n" + e.details[-1500:]
            i = combo.count() - 1
            combo.setItemData(i, tip, Qt.ToolTipRole)
            if not e.ok:
                combo.model().item(i).setEnabled(False)
        combo.blockSignals(False)

    def _import_next_plugin(self) -> None:
        """One plugin a turn, so the window answers the user meanwhile; the list when all are in."""
        if self._plugins_listed:
            return
        if self.registry.load_next():
            QTimer.singleShot(0, self._import_next_plugin)
        else:
            self._list_all_plugins()

    def _list_all_plugins(self) -> None:
        """Import the plugins the picker does not list yet and list them; the pick stays as it is
        (no plugin-changed: the settings form keeps what it holds)."""
        if self._plugins_listed:
            return
        self._plugins_listed = True
        self._plugin_touch.deleteLater()
        pid = self.plugin_combo.currentData()
        self.plugin_combo.blockSignals(True)
        self._fill_plugin_combo(self.registry.entries.values())
        self.plugin_combo.setCurrentIndex(self.plugin_combo.findData(pid) if pid else -1)
        self.plugin_combo.blockSignals(False)

    def select_plugin(self, pid: str | None) -> bool:
        """Pick plugin ``pid`` if it is present and working."""
        if pid is None:
            return False
        i = self.plugin_combo.findData(pid)
        e = self.registry.entry(pid)
        if i < 0 and e is not None and e.ok:  # not listed yet (the others join after the first paint)
            self._list_all_plugins()
            i = self.plugin_combo.findData(pid)
        if i < 0 or e is None or not e.ok:
            return False
        if self.plugin_combo.currentIndex() == i:
            self._plugin_changed()
        else:
            self.plugin_combo.setCurrentIndex(i)
        return True

    def current_plugin(self) -> str | None:
        pid = self.plugin_combo.currentData()
        e = self.registry.entry(pid)
        return pid if e is not None and e.ok else None

    def _plugin_changed(self, *_: Any) -> None:
        pid = self.current_plugin()
        cls = self.registry.entry(pid).cls if pid else None
        self.populate_datasets()
        settings = self.panels.get("settings")
        if settings is not None and hasattr(settings, "set_plugin"):
            settings.set_plugin(pid, cls.info.config_cls if cls else None)
        self._form_follows_data()
        self._update_controls()

    def populate_datasets(self) -> None:
        """Datasets the current plugin accepts, recent image folders, and "Open image folder…"."""
        pid = self.current_plugin()
        kinds = self.registry.entry(pid).info.data_kinds if pid else ()
        sources = user_data_sources(kinds)
        keep = self.dataset_combo.currentData()
        combo = self.dataset_combo
        combo.blockSignals(True)
        combo.clear()
        from genstudio.core.data import dataset_kind, dataset_table

        for name, desc in dataset_table():
            if name.startswith(("folder:", "wav:")) or dataset_kind(name) not in kinds:
                continue
            combo.addItem(name, name)
            combo.setItemData(combo.count() - 1, desc, Qt.ToolTipRole)
        for source, recent, opener, label, tip in USER_SOURCES:  # each with the folders picked lately
            if source in sources:
                for folder in self._recent_folders(recent):
                    self._add_folder_item(folder, opener)
                combo.addItem(label, opener)
                combo.setItemData(combo.count() - 1, tip, Qt.ToolTipRole)
        combo.blockSignals(False)
        if not self.select_dataset(keep) and not any(self.select_dataset(d) for d in DEFAULT_DATASETS):
            combo.setCurrentIndex(0 if combo.count() and combo.itemData(0) not in OPENERS else -1)
        self._last_dataset_index = combo.currentIndex()

    def _add_folder_item(self, spec: str, before: str = OPEN_FOLDER) -> int:
        combo = self.dataset_combo
        i = combo.findData(spec)
        if i >= 0:
            return i
        at = combo.findData(before)
        at = combo.count() if at < 0 else at
        prefix, _, path = spec.partition(":")
        combo.insertItem(at, f"{prefix}: {Path(path).name}", spec)
        combo.setItemData(at, spec, Qt.ToolTipRole)
        return at

    def select_dataset(self, name: str | None) -> bool:
        if not name:
            return False
        i = self.dataset_combo.findData(name)
        if i < 0:
            return False
        self.dataset_combo.setCurrentIndex(i)
        return True

    def current_dataset(self) -> str | None:
        d = self.dataset_combo.currentData()
        return None if d is None or d in OPENERS else d

    def _dataset_changed(self, index: int) -> None:
        if self.dataset_combo.itemData(index) not in OPENERS:
            self._last_dataset_index = index
        self._form_follows_data()
        self._update_controls()

    def _form_follows_data(self) -> None:
        """The settings form greys out fields that do not apply to the picked data's kind."""
        settings = self.panels.get("settings")
        form = getattr(settings, "form", None)
        name = self.current_dataset()
        if form is not None and hasattr(form, "set_data_kind"):
            from genstudio.core.data import dataset_kind

            user = {"folder": "image", "wav": "audio"}.get(name.partition(":")[0]) if name else None
            form.set_data_kind(user or (dataset_kind(name) if name and not name.startswith("transforms:") else None))

    def _dataset_activated(self, index: int) -> None:
        action = {OPEN_FOLDER: self.open_image_folder, OPEN_SCENE: self.open_scene_folder,
                  OPEN_AUDIO: self.open_audio_folder, OPEN_VIDEO: self.open_video_folder}.get(
            self.dataset_combo.itemData(index))
        if action is not None and not action():
            self.dataset_combo.setCurrentIndex(self._last_dataset_index)

    def choose_screenshot_file(self) -> str | None:
        """Ask where to save a screenshot (tests monkeypatch this: a modal dialog would block them)."""
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "genstudio.png", "PNG images (*.png)")
        return path or None

    def save_screenshot(self, path: str | Path | None = None) -> Path | None:
        """View → Save screenshot…: the window as it is now (``QWidget.grab``) to a PNG (or the format
        the file's suffix names), like
        ``genstudio shot --out FILE.png``. Returns the path, None when cancelled or not written."""
        path = path or self.choose_screenshot_file()
        if not path:
            return None
        path = Path(path)
        path = path if path.suffix else path.with_suffix(".png")  # Qt picks the format by suffix
        if not self.grab().save(str(path)):
            self.show_error(f"Cannot write the screenshot {path}", "")
            return None
        self.statusBar().showMessage(f"screenshot saved: {path}", 5000)
        return path

    def choose_folder(self) -> str | None:
        """Ask for an image folder (tests monkeypatch this: a modal dialog would block them)."""
        path = QFileDialog.getExistingDirectory(self, "Image folder to train on")
        return path or None

    def open_image_folder(self, path: str | None = None) -> bool:
        """Add ``folder:PATH`` to the dataset picker (asks when ``path`` is None) and select it."""
        return self._open_user_folder(path, "folder", "folders", OPEN_FOLDER, "images")

    def open_audio_folder(self, path: str | None = None) -> bool:
        """Add ``wav:PATH`` (a folder of audio files) to the dataset picker and select it."""
        return self._open_user_folder(path, "wav", "audio", OPEN_AUDIO, "audio")

    def open_video_folder(self, path: str | None = None) -> bool:
        """Add ``video:PATH`` (a folder of GIF/MP4/WebM clips) to the dataset picker and select it."""
        return self._open_user_folder(path, "video", "videos", OPEN_VIDEO, "video")

    def _open_user_folder(self, path: str | None, prefix: str, key: str, before: str, what: str) -> bool:
        """A folder of the user's own data as the dataset ``PREFIX:PATH``: checked by loading it (one
        clear error otherwise), remembered among the recent ones under ``key`` and selected."""
        path = path or self.choose_folder()
        if not path:
            return False
        spec = f"{prefix}:{path}"
        try:
            from genstudio.core.data import get_dataset

            get_dataset(spec)
        except Exception as exc:  # noqa: BLE001
            self.show_error(f"Cannot use {path}: {exc}", traceback.format_exc())
            return False
        pid = self.current_plugin()
        if pid and prefix not in user_data_sources(self.registry.entry(pid).info.data_kinds):
            self.show_error(f"{pid} does not train on {what}; pick a plugin for {what} first")
            return False
        folders = [spec] + [f for f in self._recent_folders(key) if f != spec]
        self.settings.setValue(f"choices/{key}", json.dumps(folders[:8]))
        self.dataset_combo.setCurrentIndex(self._add_folder_item(spec, before))
        return True

    def open_scene_folder(self, path: str | None = None) -> bool:
        """Load a nerfstudio / instant-ngp ``transforms.json`` folder as the dataset ``transforms:PATH``."""
        path = path or self.choose_folder()
        if not path:
            return False
        try:
            from genstudio.core.data.scenes import load_transforms_dataset

            spec = load_transforms_dataset(path).spec.name
        except Exception as exc:  # noqa: BLE001 - a bad scene folder is the user's to fix
            self.show_error(f"Cannot use {path} as a scene: {exc}", traceback.format_exc())
            return False
        scenes = [spec] + [f for f in self._recent_folders("scenes") if f != spec]
        self.settings.setValue("choices/scenes", json.dumps(scenes[:8]))
        self.dataset_combo.setCurrentIndex(self._add_folder_item(spec, OPEN_SCENE))
        return True

    def _recent_folders(self, key: str = "folders") -> list[str]:
        prefix = {"folders": "folder:", "audio": "wav:", "videos": "video:"}.get(key, "transforms:")
        try:
            v = json.loads(self.settings.value(f"choices/{key}", "[]") or "[]")
            return [f for f in v if isinstance(f, str) and f.startswith(prefix)]
        except (TypeError, json.JSONDecodeError):
            return []

    # == AppContext ============================================================================
    def current_run(self) -> Run | None:
        return self._run

    def start_job(self, name: str, run: Run | None, job: Callable[[Control], Iterator[Any]],
                  thread: Callable[..., JobThread] | None = None) -> Control:
        if self.job_running(name):
            raise RuntimeError(f"a {name} job is already running")
        from genstudio.qt.worker import JobThread

        t = (thread or JobThread)(name, run, job, parent=self)
        t.failed.connect(partial(self._job_failed, t), Qt.QueuedConnection)
        t.finished.connect(partial(self._job_done, t), Qt.QueuedConnection)
        self._jobs[name] = t
        t.start()
        self._update_controls()
        self.job_started.emit(name)
        return t.control

    def job_running(self, name: str) -> bool:
        return name in self._jobs

    def job(self, name: str) -> JobThread | None:
        return self._jobs.get(name)

    def show_error(self, message: str, details: str = "") -> None:
        """A readable, non-modal error (traceback under "Show Details…"); never blocks."""
        self.errors.append((message, details))
        log.error("%s\n%s", message, details)
        self.statusBar().showMessage(message, 10_000)
        self._activity(f"error: {message}")
        box = QMessageBox(QMessageBox.Critical, "GenStudio", message, QMessageBox.Ok, self)
        if details:
            box.setDetailedText(details)
        box.setWindowModality(Qt.NonModal)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.show()

    def status_message(self, text: str, ms: int = 4000) -> None:
        self.statusBar().showMessage(text, ms)

    def ask(self, question: str) -> bool:
        """Yes/no confirmation (tests monkeypatch this)."""
        return QMessageBox.question(self, "GenStudio", question) == QMessageBox.Yes

    # == runs ==================================================================================
    def select_run(self, run: Run | None) -> None:
        """Make ``run`` current: every panel's ``set_run`` is called."""
        self._run = run
        self._info.clear()
        if run is not None:
            self._follow_run(run)
        for p in self.panels.values():
            self._safely(p.set_run, run)
        self.setWindowTitle(f"GenStudio – {run.id}" if run else "GenStudio")
        if run is None or run.id != self._banner_run:
            self._hide_banner()
        self._update_header()
        self._update_controls()
        self.run_changed.emit(run)

    def _follow_run(self, run: Run) -> None:
        """The toolbar's plugin and dataset pickers show the selected run's (nothing starts), so
        Start trains that family; a run of a missing or broken plugin leaves them as they are."""
        try:
            info = run.info()
        except RunError:
            return
        pid, ds = info.get("plugin"), info.get("dataset")
        if pid != self.current_plugin() and not self.select_plugin(pid):
            return
        if not ds or ds == self.current_dataset() or self.select_dataset(ds):
            return
        pid = self.current_plugin()
        sources = user_data_sources(self.registry.entry(pid).info.data_kinds) if pid else set()
        if str(ds).startswith("folder:") and "folder" in sources:
            self.dataset_combo.setCurrentIndex(self._add_folder_item(ds))
        elif str(ds).startswith("transforms:") and "transforms" in sources:
            self.dataset_combo.setCurrentIndex(self._add_folder_item(ds, OPEN_SCENE))
        elif str(ds).startswith("wav:") and "wav" in sources:
            self.dataset_combo.setCurrentIndex(self._add_folder_item(ds, OPEN_AUDIO))
        elif str(ds).startswith("video:") and "video" in sources:
            self.dataset_combo.setCurrentIndex(self._add_folder_item(ds, OPEN_VIDEO))

    def start_training(self) -> Run | None:
        """Start: create a run from the pickers and the settings form, then train it in the worker."""
        if self.job_running("train"):
            self.status_message("A run is already training; stop it first")
            return None
        pid, ds = self.current_plugin(), self.current_dataset()
        if not pid or not ds:
            self.show_error("Pick a working plugin and a dataset first")
            return None
        from genstudio.core.jobs import TrainSpec, create_run

        settings = self.panels.get("settings")
        try:
            config = settings.config_values() if settings is not None else None
            opts = settings.run_values() if settings is not None else {}
            spec = TrainSpec(plugin=pid, dataset=ds, steps=self.steps_spin.value(), seed=self.seed_spin.value(),
                             device=self.device_combo.currentData(), config=config, **opts)
            run = create_run(self.store, spec)
        except Exception as exc:  # noqa: BLE001 - bad settings are the user's to fix, not a crash
            self.show_error(f"Cannot start: {exc}", traceback.format_exc())
            return None
        self.save_settings()
        self._activity(f"created {run.id}")
        if spec.processes > 1 or spec.own_process:  # outside the window, watched like any other process's run
            from genstudio.qt.watch import launch

            launch(self, run, spec.processes)
            return run
        self.select_run(run)
        self._train(run)
        return run

    def watch_run(self, run: Run) -> Control:
        """Follow a run another process trains (CLI, torchrun, shared storage) as it grows;
        Pause / Resume / Stop reach that process through the run's control file."""
        from genstudio.qt.watch import attach

        return attach(self, run)

    def choose_watch_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Watch a run folder", str(self.store.runs_dir))
        if path:
            try:
                self.watch_run(self.store.get(path))
            except (RunError, RuntimeError) as exc:
                self.show_error(f"Cannot watch {path}: {exc}")

    def _train(self, run: Run, extra_steps: int | None = None) -> None:
        self.progress.setVisible(True)
        self.throughput_label.setText("–")
        pending = self._pending_steer.pop(run.id, {})  # steered while no job ran it: taken at its first step

        from genstudio.core.jobs import train

        def job(c: Control) -> Any:
            if pending:
                c.steer(**pending)
            return train(run, control=c, bus=self.bus, extra_steps=extra_steps)

        self.start_job("train", run, job)

    def steer_run(self, run: Run, changes: dict[str, Any]) -> str:
        """Live settings for ``run``: to its training job from the next step, or kept for the step
        it resumes at (never into another run's form). Returns what happens, for the status bar."""
        from genstudio.core.config import from_dict
        from genstudio.core.jobs import check_steering

        try:
            info = run.info()
            cfg = from_dict(self.registry.get(info["plugin"]).info.config_cls, info.get("config") or {})
            checked = check_steering(cfg, changes)
        except (ValueError, KeyError, RunError) as exc:
            self.show_error(f"Not applied: {exc}")
            return f"not applied: {exc}"
        t = self._jobs.get("train")
        if t is not None and t.run_ref is not None and t.run_ref.id == run.id:
            t.control.steer(**checked)
            msg = "applies from the next step" + (" (when it resumes)" if t.control.paused else "")
        else:
            self._pending_steer[run.id] = {**self._pending_steer.get(run.id, {}), **checked}
            msg = "applies when the run resumes"
        self.status_message(f"{', '.join(checked)}: {msg}")
        return msg

    def _training_run_id(self) -> str | None:
        t = self._jobs.get("train")
        return t.run_ref.id if t is not None and t.run_ref is not None else None

    def pause_training(self) -> None:
        t = self._jobs.get("train")
        if t is not None:
            t.control.pause()
            self.status_message("Pausing after the current step…")
        self._update_controls()

    def resume_training(self) -> None:
        """Resume the paused job, or continue the selected run when nothing trains."""
        t = self._jobs.get("train")
        if t is not None:
            t.control.resume()
            self._hide_banner()
            self._update_controls()
        elif self._run is not None:
            self.resume_run(self._run)

    def space_pressed(self) -> str:
        """Space: pause or resume the training job; with none, play/pause the Sampler's trajectory.
        Returns what it did (for the status bar and tests)."""
        t = self._jobs.get("train")
        if t is not None and not t.control.cancelled:
            if t.control.paused:
                self.resume_training()
                return "resumed"
            self.pause_training()
            return "paused"
        sampler = self.panels.get("sampler")
        button = getattr(sampler, "play_button", None)
        if button is not None and button.isEnabled():
            button.toggle()
            return "play" if button.isChecked() else "stop"
        return ""

    def step_training(self) -> None:
        """One step of the paused run, then paused again (the job previews that step)."""
        t = self._jobs.get("train")
        if t is not None and t.control.paused:
            t.control.step_once()
            self.status_message("One step…")
        self._update_controls()

    def stop_training(self) -> None:
        t = self._jobs.get("train")
        if t is not None:
            t.control.cancel()
            self.status_message("Stopping after the current step…")
        self._update_controls()

    def resume_run(self, run: Run) -> None:
        """Continue ``run`` from its last checkpoint (a completed run trains ``steps`` more)."""
        t = self._jobs.get("train")
        if t is not None:
            if t.run_ref is not None and t.run_ref.id == run.id:
                t.control.resume()
                self._update_controls()
            else:
                self.show_error("Another run is training; stop it before resuming this one")
            return
        try:
            info = run.info()
        except RunError as exc:
            self.show_error(str(exc))
            return
        if run.busy():  # another process trains it (CLI, torchrun): follow it instead
            self.watch_run(run)
            return
        extra = self.steps_spin.value() if info.get("step", 0) >= info.get("steps", 0) else None
        if self._run is None or self._run.id != run.id:
            self.select_run(run)
        self._activity(f"resuming {run.id}" + (f" for {extra} more steps" if extra else ""))
        processes = int(info.get("processes", 1) or 1)
        if processes > 1 or self.own_process():
            from genstudio.qt.watch import launch

            launch(self, run, processes, extra_steps=extra, steer=self._pending_steer.pop(run.id, None))
            return
        self._train(run, extra_steps=extra)

    def own_process(self) -> bool:
        """Whether runs train in a process of their own (the Settings → Run option, on by default)."""
        settings = self.panels.get("settings")
        try:
            return bool(settings.run_values().get("own_process")) if settings is not None else False
        except Exception:  # noqa: BLE001 - a half-typed form: the worker thread, as before the option
            return False

    def _warm_trainer_later(self, ms: int = STANDBY_DELAY_MS) -> None:
        QTimer.singleShot(ms, self, self._warm_trainer)

    def _warm_trainer(self) -> None:
        """Start the standby trainer when runs train in their own process and none trains now (its
        imports would take CPU from a run)."""
        if (self.standby is not None and not self._closed and not self.job_running("train")
                and self.own_process()):
            try:
                self.standby.start()
            except OSError as exc:  # no process to be had: Start launches a cold one
                log.warning("cannot start a standby trainer: %s", exc)

    def delete_run(self, run: Run) -> bool:
        """Delete a run folder after confirmation; refused while a job uses it."""
        if any(t.run_ref is not None and t.run_ref.id == run.id for t in self._jobs.values()):
            self.show_error("This run has a job in progress; stop it before deleting the run")
            return False
        if not self.ask(f"Delete run {run.id} and all its files?"):
            return False
        try:
            self.store.delete(run)
        except (RunError, OSError) as exc:
            self.show_error(f"Cannot delete {run.id}: {exc}", traceback.format_exc())
            return False
        self._activity(f"deleted {run.id}")
        if self._run is not None and self._run.id == run.id:
            self.select_run(None)
        runs = self.panels.get("runs")
        if runs is not None and hasattr(runs, "refresh"):
            runs.refresh()
        return True

    # == job ends ==============================================================================
    def _job_failed(self, t: JobThread, message: str, details: str) -> None:
        self.bridge.flush()  # the job's events come first (else a late "running" would hide the banner)
        run = t.run_ref
        if t.name == "train" and run is not None:
            try:  # the train job marks itself failed; cover failures before it got that far
                # (not a run another trainer holds: this job was refused, that one is fine)
                if not run.busy() and run.info().get("status") in ("created", "running", "paused"):
                    run.update(status="failed", message=message)
            except RunError:
                pass
            if self._run is not None and self._run.id == run.id:
                self._show_banner(f"Training failed: {message} (details in the error dialog and the run's log)",
                                  run.id, level="error")
        self.show_error(f"The {t.name} job failed: {message}", details)

    def _job_done(self, t: JobThread) -> None:
        t.wait()
        self.bridge.flush()  # deliver the job's last events first: "job ended" implies "panels saw it all"
        if t.run_ref is not None:
            self._info.pop(t.run_ref.id, None)
        if self._jobs.get(t.name) is t:
            del self._jobs[t.name]
        from genstudio.qt.worker import FAILED, FINISHED

        outcome = t.outcome or FAILED
        if outcome != FINISHED or time.monotonic() - t.started_at > QUIET_JOB_S:  # slider-driven jobs stay quiet
            self._activity(f"{t.name} job {outcome}")
        if t.name == "train":
            self.progress.setVisible(False)
            if t.run_ref is not None:
                self._live_step.pop(t.run_ref.id, None)
            self._warm_trainer_later()
        self._update_header()
        self._update_controls()
        runs = self.panels.get("runs")
        if runs is not None and hasattr(runs, "refresh"):
            self._safely(runs.refresh)
        self.job_finished.emit(t.name, outcome)
        t.deleteLater()

    # == events ================================================================================
    def _on_events(self, events: list[Event]) -> None:
        train_id = self._training_run_id()
        cur = self._run.id if self._run is not None else None
        for e in events:
            if e.kind in (ev.STATUS, ev.CHECKPOINT, ev.STEERED):  # the events after which run.json changed
                self._info.pop(e.run_id, None)
            if e.kind == ev.STATUS:
                self._on_status(e)
            elif e.kind == ev.METRICS and e.run_id == train_id:
                rate = e.data.get("steps_per_s")
                if isinstance(rate, (int, float)):
                    self.throughput_label.setText(f"{rate:,.1f} steps/s")
            elif e.kind == ev.PROGRESS and e.run_id == train_id:
                total = int(e.data.get("total") or 0)
                self.progress.setRange(0, max(total, 1))
                self.progress.setValue(int(e.data.get("done", 0)))
                self.progress.setFormat(f"%v / {total}")
                self._live_step[e.run_id] = int(e.data.get("done", 0))
                if e.run_id == cur:
                    self._update_header()
            elif e.kind == ev.LOG:
                self._activity(f"{e.run_id}: {e.data.get('message', '')}")
        for p in self.panels.values():
            self._safely(p.on_events, events)

    def _on_status(self, e: Event) -> None:
        s = e.data.get("status", "")
        msg = e.data.get("message", "")
        self._activity(f"{e.run_id}: {s}" + (f" – {msg}" if msg else ""))
        relevant = e.run_id in (self._training_run_id(), self._run.id if self._run else None)
        if s == "diverged" and relevant:
            text = "Training paused: non-finite loss (NaN/inf). " + (
                msg[:1].upper() + msg[1:] if msg else "Resume rolls back to the last checkpoint; Stop ends the run.")
            self._show_banner(text, e.run_id, level="warning")
            self.statusBar().showMessage("Training paused: non-finite loss (NaN/inf)", 15_000)
        elif s == "running" and self._banner_run == e.run_id:
            self._hide_banner()
        elif s in ("running", "paused", "completed", "stopped") and relevant:
            self.status_message(msg or s, 6000)
        if s == "running" and e.run_id == self._training_run_id():
            self._update_device_label()
        if self._run is not None and e.run_id == self._run.id:
            self._update_header()
        self._update_controls()

    def _safely(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call a panel; an exception is reported (sys.excepthook) without stopping the others."""
        try:
            fn(*args)
        except Exception:  # noqa: BLE001
            log.exception("panel call %s failed", getattr(fn, "__qualname__", fn))
            sys.excepthook(*sys.exc_info())

    # == small views ===========================================================================
    def _activity(self, text: str) -> None:
        self.activity.appendPlainText(time.strftime("%H:%M:%S  ") + text)

    def _show_banner(self, text: str, run_id: str | None, level: str = "warning") -> None:
        self._banner_run = run_id
        self.banner.setProperty("level", level)
        self.banner.style().unpolish(self.banner)
        self.banner.style().polish(self.banner)
        self.banner.setText(text)
        self.banner.setVisible(True)

    def _hide_banner(self) -> None:
        self._banner_run = None
        self.banner.setVisible(False)

    def banner_text(self) -> str:
        """The banner's message, '' when hidden."""
        return self.banner.text() if self.banner.isVisibleTo(self) else ""

    def _update_header(self) -> None:
        run = self._run
        if run is None:
            self.run_header.setText("No run selected. Pick a plugin and data, then press Start.")
            return
        try:
            info = self._info.get(run.id) or self._info.setdefault(run.id, run.info())  # not a disk read per tick
        except RunError as exc:
            self.run_header.setText(f"{run.id}: {exc}")
            return
        step = self._live_step.get(run.id, info.get("step", 0))  # run.json only has the last checkpoint
        self.run_header.setText(f"<b>{run.id}</b> &nbsp;·&nbsp; {info.get('plugin')} on {info.get('dataset')}"
                                f" &nbsp;·&nbsp; {info.get('status')} &nbsp;·&nbsp; step {step} / {info.get('steps')}"
                                f" &nbsp;·&nbsp; {info.get('device', '')}")

    def _update_device_label(self, *_: Any) -> None:
        rid = self._training_run_id()
        name = None
        if rid is not None:
            try:
                name = self.store.get(rid).info().get("device")
            except RunError:
                pass
        from genstudio.core.device import describe, pick_device, worker_threads

        if name is None:
            try:
                name = describe(pick_device(self.device_combo.currentData()))
            except (ValueError, RuntimeError) as exc:
                name = f"unavailable ({exc})"
        self.device_label.setText(f"Device: {name} · {worker_threads(gui_running=True)} torch thread(s)")

    def _update_controls(self) -> None:
        t = self._jobs.get("train")
        running = t is not None
        paused = running and t.control.paused and not t.control.cancelled
        self.start_button.setEnabled(not running and bool(self.current_plugin()) and bool(self.current_dataset()))
        self.pause_button.setEnabled(running and not paused and not t.control.cancelled)
        self.resume_button.setEnabled(paused or (not running and self._run is not None))
        self.step_button.setEnabled(paused)
        self.stop_button.setEnabled(running and not t.control.cancelled)

    def _show_plugins(self) -> None:
        lines = []
        for e in self.registry.entries.values():
            lines.append(f"{e.id}: ok ({e.info.family})" if e.ok else f"{e.id}: BROKEN – {e.error}")
        extra = [f"{k}: {v}" for k, v in self.panel_errors.items()]
        box = QMessageBox(QMessageBox.Information, "Plugins", "\n".join(lines) or "no plugins found",
                          QMessageBox.Ok, self)
        if extra:
            box.setDetailedText("Panels that failed to load:\n" + "\n".join(extra))
        box.setWindowModality(Qt.NonModal)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.show()

    # == persistence ===========================================================================
    def save_settings(self) -> None:
        if not self.ready:  # closed while starting: the pickers are empty, the saved choices stay
            return
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(STATE_VERSION))
        s.setValue("choices/plugin", self.current_plugin() or "")
        s.setValue("choices/dataset", self.current_dataset() or "")
        s.setValue("choices/steps", self.steps_spin.value())
        s.setValue("choices/seed", self.seed_spin.value())
        s.setValue("choices/device", self.device_combo.currentData() or "auto")
        s.setValue("choices/run", self._run.id if self._run else "")
        settings = self.panels.get("settings")
        if settings is not None and hasattr(settings, "all_values"):
            s.setValue("choices/settings", json.dumps(settings.all_values()))
        s.sync()

    def restore_settings(self) -> None:
        s = self.settings
        settings = self.panels.get("settings")
        if settings is not None and hasattr(settings, "load_all"):
            try:
                settings.load_all(json.loads(s.value("choices/settings", "{}") or "{}"))
            except (TypeError, ValueError):
                log.warning("ignoring unreadable saved settings")
        self.select_plugin(s.value("choices/plugin", "") or None)
        self.select_dataset(s.value("choices/dataset", "") or None)
        self.steps_spin.setValue(_int(s.value("choices/steps"), self.steps_spin.value()))
        self.seed_spin.setValue(_int(s.value("choices/seed"), 0))
        i = self.device_combo.findText(str(s.value("choices/device", "auto")))
        if i >= 0:
            self.device_combo.setCurrentIndex(i)
        geom, state = s.value("window/geometry"), s.value("window/state")
        if geom is not None:
            self.restoreGeometry(geom)
        if state is not None:
            self.restoreState(state, STATE_VERSION)
        rid = s.value("choices/run", "")
        if rid:
            try:
                self.select_run(self.store.get(rid))
            except RunError:
                pass

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self, wait_ms: int = 30_000) -> None:
        """Cancel every job and wait for its thread (jobs checkpoint on cancel)."""
        for t in list(self._jobs.values()):
            if not t.stop(wait_ms):
                log.warning("job %s did not stop within %d ms; leaving it to process exit", t.name, wait_ms)
                t.setParent(None)
                _orphans.append(t)
        self._jobs.clear()
        self._closed = True  # no standby trainer is started after this
        if self.standby is not None:
            self.standby.close()
        self.bridge.close()
        if self.gc is not None:
            self.gc.close()


def available_devices() -> list[str]:
    """Device names worth offering besides "auto"."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())] * (torch.cuda.device_count() > 1)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append("mps")
    return out


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
