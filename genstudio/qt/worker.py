"""Runs a core job generator in a QThread so the GUI never blocks.

A job is ``job(control) -> Iterator``; the thread just iterates it. Pause/resume/cancel go through
the :class:`~genstudio.core.jobs.Control` (checked by the job between steps). Progress reaches the
GUI through the event bus and the bridge; only the job's end crosses threads as a Qt signal (two
emits per job, never one per step).
"""

from __future__ import annotations

import gc
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import torch
from PySide6.QtCore import QObject, QThread, QTimer, Signal

from genstudio.core.device import worker_threads
from genstudio.core.jobs import Cancelled, Control
from genstudio.core.runs import Run

log = logging.getLogger(__name__)

Job = Callable[[Control], Iterator[Any]]

FINISHED = "finished"
CANCELLED = "cancelled"
FAILED = "failed"


class JobThread(QThread):
    """One job in one thread. ``failed(message, traceback)`` is emitted before ``finished``;
    ``outcome`` is "finished", "cancelled" or "failed" once the thread has ended."""

    failed = Signal(str, str)

    def __init__(self, name: str, run: Run | None, job: Job, control: Control | None = None,
                 parent: QObject | None = None, threads: int | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.run_ref = run
        self.job = job
        self.control = control or Control()
        self.threads = threads
        self.outcome: str | None = None
        self.result: Any = None  # the generator's return value (e.g. SampleResult)
        self.started_at = time.monotonic()
        self.setObjectName(f"job-{name}")

    def run(self) -> None:  # runs in the worker thread
        self.started_at = time.monotonic()
        try:
            # Measured on 2 cores: one torch thread here beats two, because the GUI thread competes.
            torch.set_num_threads(self.threads or worker_threads(gui_running=True))
            gen = self.job(self.control)
            while True:
                try:
                    next(gen)
                except StopIteration as stop:
                    self.result = stop.value
                    break
            self.outcome = CANCELLED if self.control.cancelled else FINISHED
        except Cancelled:
            self.outcome = CANCELLED
        except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything; the app must live
            self.outcome = FAILED
            tb = traceback.format_exc()
            log.error("job %s failed: %s", self.name, tb)
            details = getattr(exc, "details", None)  # an error that explains itself (a trainer's log)
            self.failed.emit(str(exc) if details else f"{exc.__class__.__name__}: {exc}", details or tb)

    def stop(self, wait_ms: int = 10_000) -> bool:
        """Cancel and wait for the thread to end; False if it did not end in time."""
        self.control.cancel()
        return self.wait(wait_ms)


class GuiGarbageCollector(QObject):
    """Runs Python's cyclic garbage collector from a GUI-thread timer instead of automatically.

    Automatic collection runs in whichever thread happens to allocate, so a worker thread could
    end up destroying dead Qt wrappers (pyqtgraph items, closed windows): Qt then warns "Timers
    cannot be started from another thread" or crashes. Same recipe as calibre's GarbageCollector.
    Nested instances are counted; automatic GC comes back when the last one closes.
    """

    _active = 0

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self._closed = False
        if GuiGarbageCollector._active == 0:
            gc.disable()
        GuiGarbageCollector._active += 1
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def check(self) -> None:
        """Collect the generations whose allocation counts passed gc's own thresholds."""
        c0, c1, c2 = gc.get_count()
        if c0 > self.threshold[0]:
            gc.collect(0)
            if c1 > self.threshold[1]:
                gc.collect(1)
                if c2 > self.threshold[2]:
                    gc.collect(2)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        GuiGarbageCollector._active -= 1
        if GuiGarbageCollector._active == 0:
            gc.enable()


_frozen = False


def freeze_startup_objects() -> None:
    """Take what the process holds once its window is up (torch, Qt, the window: ~200,000
    objects that live as long as it does) out of the cyclic GC's walks (``gc.freeze``): each
    full collection walked them all, ~0.15 s of the GUI thread every time, and once more at exit
    (issue #18). At most once a process, so a later window (tests) never pins an earlier one's
    garbage; the first window's leaves ~50 unreachable objects behind, for good."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()
