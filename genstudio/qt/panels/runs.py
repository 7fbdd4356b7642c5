"""The run list: every run folder in the store with plugin, dataset, status and step.

The panel only reads the store and asks the window (through signals) to open, resume or delete a
run; the window owns jobs and the confirmation dialog.
"""

from __future__ import annotations

import re
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from genstudio.core import events as ev
from genstudio.core.events import Event
from genstudio.core.runs import Run, RunError
from genstudio.qt.panels.base import AppContext, Panel

COLUMNS = ("Run", "Status", "Step", "Plugin", "Dataset", "Created")
STATUS_COLOURS = {
    "running": "#4c8dff", "completed": "#5cb85c", "failed": "#e05561", "diverged": "#e0a030",
    "paused": "#c8b060", "stopped": "#8a90a0", "created": "#8a90a0", "interrupted": "#e0a030",
    "broken": "#e05561", "stalled": "#e0a030",
}


def short_name(run_id: str) -> str:
    """The run id without its timestamp prefix (the Created column shows the time)."""
    m = re.match(r"^\d{8}-\d{6}-(.+)$", run_id)
    return m.group(1) if m else run_id


def is_training_progress(e: Event) -> bool:
    """Whether a PROGRESS event counts training steps (an eval or sample job's carries its ``job``
    or a ``stage``: its "2/10" is not the run's step)."""
    return "job" not in e.data and "stage" not in e.data


def _created(run: Run) -> tuple[float, str]:
    """Sort key: creation time (ids made in the same second differ only by a random suffix)."""
    try:
        return float(run.info().get("created", 0.0)), run.id
    except (RunError, TypeError, ValueError):
        return 0.0, run.id


class RunsPanel(Panel):
    panel_id = "runs"
    area = "left"
    order = 30
    title = "Runs"

    open_requested = Signal(object)  # Run
    resume_requested = Signal(object)  # Run
    delete_requested = Signal(object)  # Run

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.tree = QTreeWidget()
        self.tree.setObjectName("runs_tree")
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.tree.header().setStretchLastSection(False)
        self.tree.currentItemChanged.connect(self._current_changed)
        self.tree.itemDoubleClicked.connect(lambda *_: self._request(self.open_requested))

        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Show the selected run in all panels")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue training the selected run from its last checkpoint "
                                      "(a completed run trains for the toolbar's step count more)")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the run folder (asks first)")
        self.refresh_button = QPushButton("Refresh")
        self.open_button.clicked.connect(lambda: self._request(self.open_requested))
        self.resume_button.clicked.connect(lambda: self._request(self.resume_requested))
        self.delete_button.clicked.connect(lambda: self._request(self.delete_requested))
        self.refresh_button.clicked.connect(self.refresh)

        buttons = QHBoxLayout()
        for b in (self.open_button, self.resume_button, self.delete_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree)
        layout.addLayout(buttons)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._quiet = False  # selection changes made by set_run must not echo back as open requests
        self.refresh()

    # -- data -------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read every run folder (newest first), keeping the selection."""
        keep = self.selected_id()
        self._quiet = True
        try:
            self.tree.clear()
            self._items.clear()
            for run in sorted(self.ctx.store.list(), key=_created, reverse=True):
                item = QTreeWidgetItem()
                item.setData(0, Qt.UserRole, run.id)
                self._fill(item, run)
                self.tree.addTopLevelItem(item)
                self._items[run.id] = item
            if keep in self._items:
                self.tree.setCurrentItem(self._items[keep])
        finally:
            self._quiet = False
        self._update_buttons()

    def _fill(self, item: QTreeWidgetItem, run: Run) -> None:
        try:
            info = run.info()
        except RunError as e:  # a broken run.json: listed, marked, with the reason
            item.setText(0, short_name(run.id))
            item.setText(1, "broken")
            item.setForeground(1, QBrush(QColor(STATUS_COLOURS["broken"])))
            for col in (0, 1):
                item.setToolTip(col, str(e))
            return
        created = info.get("created")
        status = str(info.get("status", "?"))
        shown = "stalled" if info.get("stalled") else status  # running, but no step for minutes
        values = (short_name(run.id), shown, f"{info.get('step', 0)}/{info.get('steps', '?')}",
                  info.get("plugin", "?"), info.get("dataset", "?"),
                  time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else "")
        for i, v in enumerate(values):
            item.setText(i, str(v))
        item.setForeground(1, QBrush(QColor(STATUS_COLOURS.get(shown, STATUS_COLOURS.get(status, "#d0d4dc")))))
        if info.get("message"):
            item.setToolTip(1, str(info["message"]))
        item.setToolTip(0, f"{run.id}\n{run.path}")

    def row_text(self, run_id: str) -> dict[str, str] | None:
        """The cells shown for a run (tests and status checks read this)."""
        item = self._items.get(run_id)
        return None if item is None else {c: item.text(i) for i, c in enumerate(COLUMNS)}

    def run_ids(self) -> list[str]:
        return list(self._items)

    # -- selection ----------------------------------------------------------------------------
    def selected_id(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, Qt.UserRole) if item is not None else None

    def selected_run(self) -> Run | None:
        rid = self.selected_id()
        if rid is None:
            return None
        try:
            return self.ctx.store.get(rid)
        except RunError:
            return None

    def _request(self, signal: Signal) -> None:
        run = self.selected_run()
        if run is not None:
            signal.emit(run)

    def _current_changed(self, *_: object) -> None:
        self._update_buttons()
        if not self._quiet:
            self._request(self.open_requested)

    def _update_buttons(self) -> None:
        has = self.tree.currentItem() is not None
        for b in (self.open_button, self.resume_button, self.delete_button):
            b.setEnabled(has)

    # -- panel contract ---------------------------------------------------------------------
    def set_run(self, run: Run | None) -> None:
        if run is not None and run.id not in self._items:
            self.refresh()
        self._quiet = True
        try:
            self.tree.setCurrentItem(self._items.get(run.id) if run is not None else None)
        finally:
            self._quiet = False
        self._update_buttons()

    def on_events(self, events: list[Event]) -> None:
        for e in events:
            if e.kind == ev.STATUS:
                item = self._items.get(e.run_id)
                if item is None:
                    self.refresh()
                else:
                    self._fill(item, Run(self.ctx.store.runs_dir / e.run_id))
            elif e.kind == ev.PROGRESS and is_training_progress(e):
                item = self._items.get(e.run_id)
                if item is not None and "done" in e.data:
                    item.setText(2, f"{e.data['done']}/{e.data.get('total', '?')}")
