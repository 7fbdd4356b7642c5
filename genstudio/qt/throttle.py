"""Redraw throttling for live views.

Events reach the GUI ~30 times a second; repainting pyqtgraph curves (and their axes) or a GL
scene that often holds the GIL long enough to slow the trainer in the worker thread (issue #18:
the GUI cost 32 % of a bare loop's throughput). A :class:`Throttle` folds any number of redraw
requests into at most ``hz`` runs a second, and none while the view is out of sight.
:func:`after_first_paint` holds work the first screen does not need until that screen is up, and
:func:`on_first_touch` does it at once if the user reaches for a widget that needs it sooner.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QWidget


class Throttle(QObject):
    """Runs ``fn`` at most ``hz`` times a second however often :meth:`request` is called.

    The first request after a quiet spell runs at once (a single update shows without delay);
    later ones inside the interval fold into one run at its end. While ``visible()`` is False
    nothing runs and the request stays pending: :meth:`flush` (e.g. when the view comes back into
    sight, or before a test reads what is drawn) runs it then. ``runs`` counts the runs.
    """

    def __init__(self, fn: Callable[[], object], hz: float, visible: Callable[[], bool] = lambda: True,
                 parent: QObject | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self._fn = fn
        self.interval = 1.0 / hz
        self._visible = visible
        self._clock = clock
        self._last = -math.inf
        self.pending = False
        self.runs = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._due)

    def request(self) -> None:
        """Something changed: run ``fn`` now, or at the end of the interval, or once visible."""
        self.pending = True
        if not self._visible():
            return
        wait = self._last + self.interval - self._clock()
        if wait <= 0:
            self._run()
        elif not self._timer.isActive():
            self._timer.start(max(1, math.ceil(wait * 1000)))

    def flush(self) -> None:
        """Run a pending request now (visible or not)."""
        if self.pending:
            self._run()

    def _due(self) -> None:
        if self.pending and self._visible():
            self._run()

    def _run(self) -> None:
        self._timer.stop()
        self.pending = False
        self._last = self._clock()
        self.runs += 1
        self._fn()


class _AfterFirstPaint(QObject):
    """Event filter that runs its calls once, in the event loop's turn after the widget's first
    paint: work the first screen does not need waits until that screen is up (issue #18)."""

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        self.calls: list[Callable[[], Any]] = []
        self.painted = False
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Paint:
            obj.removeEventFilter(self)
            self.painted = True
            QTimer.singleShot(0, self._run)
        return False

    def _run(self) -> None:
        calls, self.calls = self.calls, []
        for call in calls:
            call()


def after_first_paint(widget: QWidget, call: Callable[[], Any]) -> None:
    """Run ``call`` once ``widget`` has painted for the first time (soon, if it has already)."""
    hook = widget.findChild(_AfterFirstPaint, options=Qt.FindDirectChildrenOnly) or _AfterFirstPaint(widget)
    if hook.painted:
        QTimer.singleShot(0, call)
    else:
        hook.calls.append(call)


class _FirstTouch(QObject):
    """Event filter that runs ``call`` when its widget first gets a click, a key or a wheel turn."""

    def __init__(self, widget: QWidget, call: Callable[[], Any]) -> None:
        super().__init__(widget)
        self.call = call
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() in (QEvent.MouseButtonPress, QEvent.KeyPress, QEvent.Wheel):
            obj.removeEventFilter(self)
            self.call()
        return False


def on_first_touch(widget: QWidget, call: Callable[[], Any]) -> QObject:
    """Run ``call`` before ``widget`` handles its first click, key or wheel turn (not focus: a
    window gives its first widget focus when it opens); delete the returned object to drop it."""
    return _FirstTouch(widget, call)
