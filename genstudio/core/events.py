"""A small thread-safe publish/subscribe bus between jobs (worker thread) and whoever listens.

Handlers run in the publisher's thread, so they must be quick: the Qt bridge only queues a signal,
the CLI only updates tqdm. A handler that raises is logged and dropped from that delivery; it can
never stop a training run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Event kinds published by jobs (panels switch on these):
STATUS = "status"  # data: {"status": "running"|"paused"|"completed"|"cancelled"|"failed"|"diverged", "message"}
METRICS = "metrics"  # data: {"step", "time", "<name>": float, ...}
SAMPLES = "samples"  # data: {"step", "x": Tensor, "path": str|None, "views": {name: HxWx3 uint8}, "seconds", "sample_steps"}
SAMPLE_STATE = "sample_state"  # data: {"state": SampleState}  (one step of a trajectory)
PROGRESS = "progress"  # data: {"done", "total", "rate"}
LOG = "log"  # data: {"message"}
ERROR = "error"  # data: {"message", "traceback"}
RESULT = "result"  # data: job-specific final payload
STAGE = "stage"  # data: {"step", "stage": "preview"|"final checkpoint"|...} (what a job does between steps)
CHECKPOINT = "checkpoint"  # data: {"step"} (a training run wrote a checkpoint: viewers may reload it)
STEERED = "steered"  # data: {"step", "changes": {name: [old, new]}} (live settings a training run took)


@dataclass
class Event:
    kind: str
    run_id: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: list[tuple[str | None, Handler]] = []

    def subscribe(self, handler: Handler, kind: str | None = None) -> Callable[[], None]:
        """Call ``handler`` for events of ``kind`` (all when None); returns an unsubscribe function."""
        entry = (kind, handler)
        with self._lock:
            self._handlers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._handlers:
                    self._handlers.remove(entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            handlers = list(self._handlers)
        for kind, h in handlers:
            if kind is None or kind == event.kind:
                try:
                    h(event)
                except Exception:  # a broken listener must never stop the job
                    log.exception("event handler failed for %s", event.kind)

    def emit(self, kind: str, run_id: str, **data: Any) -> None:
        self.publish(Event(kind, run_id, data))
