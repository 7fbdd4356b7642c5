"""EventBus -> Qt, at screen rate.

Jobs publish events from the worker thread. Emitting a Qt signal per event from there is both
wasteful (hundreds of previews per second nobody can see) and, with some PySide6 versions, a
crash (ARCHITECTURE.md: 6.12.0 dies after a few hundred cross-thread ``emit`` calls). So the bus
handler only appends to a deque (thread-safe, never blocks the trainer) and a GUI-thread QTimer
drains it ~30 times a second, emitting ONE signal with the whole batch.
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QObject, QTimer, Signal

from genstudio.core import events as ev
from genstudio.core.events import Event, EventBus

# Only the newest of these per (kind, run) and tick matters: progress, not history. SAMPLES are
# history (every logged grid is a position on the training monitor's slider), so none is dropped.
COALESCED = frozenset({ev.PROGRESS})


def coalesce(events: list[Event]) -> list[Event]:
    """Drop all but the newest PROGRESS event per run; keep everything else, in order."""
    seen: set[tuple[str, str]] = set()
    out: list[Event] = []
    for e in reversed(events):
        if e.kind in COALESCED:
            key = (e.kind, e.run_id)
            if key in seen:
                continue
            seen.add(key)
        out.append(e)
    out.reverse()
    return out


class EventBridge(QObject):
    """Subscribes to ``bus`` (any thread) and emits ``events(list[Event])`` from the GUI thread."""

    events = Signal(list)

    def __init__(self, bus: EventBus, parent: QObject | None = None, hz: float = 30.0) -> None:
        super().__init__(parent)
        self._queue: deque[Event] = deque()
        self._unsubscribe = bus.subscribe(self._queue.append)
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, round(1000 / hz)))
        self._timer.timeout.connect(self.flush)
        self._timer.start()

    def flush(self) -> list[Event]:
        """Drain what arrived since the last tick; emit (and return) the coalesced batch."""
        batch: list[Event] = []
        pop = self._queue.popleft
        while True:
            try:
                batch.append(pop())
            except IndexError:
                break
        batch = coalesce(batch)
        if batch:
            self.events.emit(batch)
        return batch

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop listening (the window calls this when it closes)."""
        self._unsubscribe()
        self._timer.stop()
