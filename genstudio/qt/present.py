"""Presentation mode (View → Presentation mode, F11): for showing the app to people on a projector.

Hides what a viewer does not need (the run list, the settings form, the run toolbar and the
activity log), goes full screen and enlarges every font, so the previews get the room. The menu bar
stays, so every control keeps its keyboard shortcut (Ctrl+Return start, Space pause / play,
F11 back). Leaving restores exactly what was there: the dock layout (``saveState``), the window's
style sheet, the toolbar, the log, the window's size and state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow

SHORTCUT = "F11"
HIDDEN_PANELS = ("runs", "settings")  # docks a viewer does not need (they stay one F11 away)
FONT_PT = 13  # every widget's font in presentation mode (the theme's is 10 pt; 15 made panels wider than a 1600 px screen)
CAPTION_PT = 22  # the tour's caption (genstudio.qt.tour)


def big_font_qss(pt: int = FONT_PT) -> str:
    """A window style sheet that wins over the application's (Qt prefers the closer sheet)."""
    return f"QWidget {{ font-size: {pt}pt; }}"


@dataclass
class _Saved:
    state: QByteArray
    size: QSize  # a panel with wide controls may have widened the window meanwhile
    style: str
    window_state: Qt.WindowState
    shown: dict[str, bool]  # widgets hidden here, and whether each was visible before


class Presentation:
    """Enter / leave presentation mode on a main window (one instance per window)."""

    def __init__(self, window: QMainWindow) -> None:
        self.window = window
        self._saved: _Saved | None = None
        self.action = QAction("Presentation mode", window, checkable=True)
        self.action.setShortcut(QKeySequence(SHORTCUT))
        self.action.setToolTip(f"Full screen, large fonts, only the panels a viewer needs ({SHORTCUT} toggles)")
        self.action.toggled.connect(lambda on: self.enter() if on else self.leave())

    @property
    def active(self) -> bool:
        return self._saved is not None

    def _widgets(self) -> dict[str, Any]:
        w: Any = self.window
        out = {name: getattr(w, name) for name in ("toolbar", "activity") if getattr(w, name, None) is not None}
        out.update({f"dock:{p}": w.docks[p] for p in HIDDEN_PANELS if p in getattr(w, "docks", {})})
        return out

    def enter(self, keep: Iterable[str] = (), only: Iterable[str] | None = None) -> None:
        """Hide what a viewer does not need (except the docks of panels in ``keep``), full screen.
        ``only``: hide every dock but these (a tour shows one panel at a time) before the fonts grow,
        so the window never widens for panels nobody sees."""
        if self.active:
            return
        w = self.window
        widgets = self._widgets()
        self._saved = _Saved(w.saveState(), w.size(), w.styleSheet(), w.windowState(),
                             {k: v.isVisibleTo(w) for k, v in widgets.items()})
        keep = set(keep)
        if only is not None:
            only = set(only)
            for pid, dock in getattr(w, "docks", {}).items():
                if pid not in only:
                    dock.setVisible(False)
        for name, widget in widgets.items():
            if name.removeprefix("dock:") not in keep:
                widget.setVisible(False)
        w.setStyleSheet(big_font_qss())
        w.showFullScreen()
        self._sync_action(True)

    def leave(self) -> None:
        """Put everything back as it was before :meth:`enter`."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        w = self.window
        w.setStyleSheet(saved.style)
        w.setWindowState(saved.window_state)
        if not saved.window_state & Qt.WindowFullScreen:
            w.showMaximized() if saved.window_state & Qt.WindowMaximized else w.showNormal()
            if not saved.window_state & Qt.WindowMaximized:
                w.resize(saved.size)
        for name, widget in self._widgets().items():
            widget.setVisible(saved.shown.get(name, widget.isVisibleTo(w)))
        w.restoreState(saved.state)
        # the window gets its old size back only when the window system answers: lay the docks
        # out again then, or their sizes would be those of the full screen
        QTimer.singleShot(50, lambda: self.active or self._settle(saved))
        self._sync_action(False)

    def _settle(self, saved: _Saved) -> None:
        w = self.window
        if not w.windowState() & (Qt.WindowMaximized | Qt.WindowFullScreen):
            w.resize(saved.size)
        w.restoreState(saved.state)

    def _sync_action(self, on: bool) -> None:
        self.action.blockSignals(True)
        self.action.setChecked(on)
        self.action.blockSignals(False)
