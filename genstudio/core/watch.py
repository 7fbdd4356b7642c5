"""Watching a run another process writes (the CLI, torchrun, another machine's folder on shared
storage), and steering it through a control file.

:class:`RunTail` reads only what was added to a run folder since its last look (TensorBoard-style
tailing: new complete lines of metrics.jsonl, run.json when it changes, new preview PNGs and
checkpoints) and turns it into the events a training job publishes, so panels cannot tell a
watched run from one trained in the window. :func:`watch` is that as a job (a generator).

Pause / resume / step / stop travel the other way through ``control.json`` in the run folder:
:class:`RemoteControl` (the watcher's side) writes it, :class:`FileControl` (the trainer's side,
a :class:`~genstudio.core.jobs.Control`) polls it between steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genstudio.core import events as ev
from genstudio.core.jobs import Cancelled, Control
from genstudio.core.runs import METRICS_FILE, RUN_FILE, WAKE_FD_ENV, Run, RunError, atomic_write_text
from genstudio.core.timelapse import logged_previews

CONTROL_FILE = "control.json"
COMMANDS = ("pause", "resume", "step", "stop", "steer")
ENDED = ("completed", "stopped", "failed", "interrupted")  # a run in one of these, unlocked, is over
POLL_S = 0.1  # how often a trainer looks at its control file (a stat: Pause, Step, Stop reach it this late at most)
STOP_WAIT_S = 10.0  # Stop pressed and no trainer holds the run this long after: stop watching
RESEND_S = 1.0  # Stop pressed and the run still trains: the stop is written again this often
STARTING_INTERVAL_S = 0.02  # how often a run still "created" is looked at in its first STARTING_S
STARTING_S = 5.0  # (its trainer is starting; a run nobody trains is not polled that often for long)
WOKEN_INTERVAL_S = 0.5  # how often a run whose trainer wakes the watcher is looked at anyway


class WakePipe:
    """A pipe from a trainer this process starts: the trainer writes a byte whenever its run folder
    changes (:func:`genstudio.core.runs.wake_watcher`: a status, metric rows, a checkpoint, a
    preview, the lock let go), so :func:`watch` looks then instead of at its next poll; the end of
    a run is seen at once, not up to a poll interval later. POSIX only: :meth:`open` gives None
    elsewhere, and the watcher polls."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._poke_r, self._poke_w = os.pipe()  # this process's own wake-up (:meth:`poke`)
        for fd in (self.read_fd, self._poke_r, self._poke_w):
            os.set_blocking(fd, False)
        self.closed = False  # the trainer's end is closed (it exited): nothing more will come
        self._lock = threading.Lock()  # poke (another thread) never writes to a closed number

    @classmethod
    def open(cls) -> WakePipe | None:
        return cls() if os.name == "posix" else None

    def child(self) -> dict[str, Any]:
        """``subprocess.Popen`` arguments that hand the write end to the trainer."""
        return {"pass_fds": (self.write_fd,)}

    def env(self) -> dict[str, str]:
        return {WAKE_FD_ENV: str(self.write_fd)}

    def spawned(self) -> None:
        """The trainer has its copy of the write end: this process's goes, so the pipe reads as
        ended when the trainer exits."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less when the trainer writes or :meth:`poke` is called; what
        was written is consumed."""
        if self._poke_r < 0:
            time.sleep(seconds)
            return
        # once the trainer's end is closed its pipe reads as ready for ever: only a poke wakes then
        ready, _, _ = select.select([self._poke_r] if self.closed else [self.read_fd, self._poke_r], [], [], seconds)
        for fd in ready:
            try:
                if os.read(fd, 4096) == b"" and fd == self.read_fd:
                    self.closed = True
            except BlockingIOError:
                pass

    def poke(self) -> None:
        """End a :meth:`wait` now, from another thread (the window stops watching)."""
        with self._lock, contextlib.suppress(OSError):
            if self._poke_w >= 0:
                os.write(self._poke_w, b".")

    def close(self) -> None:
        self.spawned()
        with self._lock:
            for name in ("read_fd", "_poke_r", "_poke_w"):
                fd = getattr(self, name)
                if fd >= 0:
                    os.close(fd)
                    setattr(self, name, -1)
        self.closed = True


def send(run: Run, command: str, **data: Any) -> None:
    """Ask the process training ``run`` to pause, resume, take one step, stop, or take new live
    settings (``send(run, "steer", changes={"lr": 1e-3})``)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; one of {', '.join(COMMANDS)}")
    atomic_write_text(run.path / CONTROL_FILE, json.dumps({"command": command, "time": time.time(),
                                                           "pid": os.getpid(), **data}))


class FileControl(Control):
    """A Control that also obeys the run folder's control file (read at most every ``poll_s``).
    A file left from before this job started is removed, so an old "stop" stops nothing."""

    def __init__(self, run: Run, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.path = run.path / CONTROL_FILE
        self.poll_s = poll_s
        self._seen = 0.0
        self._next = 0.0
        self.path.unlink(missing_ok=True)

    def poll(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self.poll_s
        try:
            st = self.path.stat()
            if st.st_mtime_ns == self._seen:
                return
            self._seen = st.st_mtime_ns
            msg = json.loads(self.path.read_text("utf-8"))
            command = msg.get("command")
        except (OSError, ValueError, AttributeError):
            return
        if command == "stop":
            self.cancel()
        elif command == "pause":
            self.pause()
        elif command == "resume":
            self.resume()
        elif command == "step":
            self.step_once()
        elif command == "steer" and isinstance(msg.get("changes"), dict):
            self.steer(**msg["changes"])  # checked by the job like a steer from its own window

    @property
    def paused(self) -> bool:
        self.poll()
        return super().paused

    @property
    def cancelled(self) -> bool:
        self.poll()
        return super().cancelled

    def check(self, on_pause: Any = None) -> None:
        """As Control.check, with the file read while paused (its resume comes from there too)."""
        if self.paused and on_pause is not None:
            on_pause()
        while self.paused and not self.cancelled:
            time.sleep(0.05)
        if self.cancelled:
            raise Cancelled()


class RemoteControl(Control):
    """The watcher's Control: pause / resume / step / stop are written to the run's control file
    (the trainer obeys them); :meth:`detach` only ends the watching. The paused state follows what
    the run reports (:meth:`follow`), so a pause from another watcher shows here too."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run
        self._detached = False
        self._pause_unheard = False  # paused here, and the run has not said "paused" since

    def pause(self) -> None:
        super().pause()
        self._pause_unheard = True
        send(self.run, "pause")

    def resume(self) -> None:
        super().resume()
        self._pause_unheard = False
        send(self.run, "resume")

    def step_once(self) -> None:
        send(self.run, "step")

    def steer(self, **changes: Any) -> None:
        send(self.run, "steer", changes=changes)

    def cancel(self) -> None:
        self._cancel.set()
        self._run.set()
        send(self.run, "stop")

    def detach(self) -> None:
        self._detached = True

    @property
    def detached(self) -> bool:
        return self._detached

    def follow(self, status: str) -> None:
        if status == "paused" or status == "diverged":
            self._run.clear()
            self._pause_unheard = False
        elif status == "running" and self._pause_unheard:
            send(self.run, "pause")  # pressed while the trainer started: it removed that file as stale
        elif status == "running":
            self._run.set()


class RunTail:
    """What a run folder gained since the last :meth:`poll`, as training-job events. Construction
    takes the folder as it is now as already seen (a window shows that from the files)."""

    def __init__(self, run: Run, *, from_start: bool = False) -> None:
        self.run = run
        self.offset = 0 if from_start else _size(run.path / METRICS_FILE)
        self._info_key: tuple[int, int] | None = None
        self.info: dict[str, Any] = {}
        self.step = 0
        self._samples: set[int] = set()
        self._checkpoints: set[int] = set()
        self._steered = 0  # entries of run.json's "steering" already published
        if not from_start:
            self._samples = set(logged_previews(run.path / "samples")[0])
            self._checkpoints = {s for s, _ in run.checkpoints()}
            self._read_info()
            self._steered = len(self.info.get("steering") or [])

    def poll(self) -> list[ev.Event]:
        rid = self.run.id
        out: list[ev.Event] = []
        info = self._read_info()
        if info is not None:
            out.append(ev.Event(ev.STATUS, rid, {"status": info.get("status", ""), "message": info.get("message", "")}))
        steering = self.info.get("steering") or []
        for m in steering[self._steered:]:  # live settings the trainer took: the monitor marks them
            if isinstance(m, dict) and "step" in m:
                out.append(ev.Event(ev.STEERED, rid, {"step": int(m["step"]), "changes": dict(m.get("changes") or {})}))
        self._steered = len(steering)
        for row in self._new_rows():
            out.append(ev.Event(ev.METRICS, rid, row))
            self.step = max(self.step, int(row["step"]))
        if out and self.info:
            out.append(ev.Event(ev.PROGRESS, rid, {"done": max(self.step, int(self.info.get("step", 0) or 0)),
                                                   "total": int(self.info.get("steps", 0) or 0)}))
        samples, views = logged_previews(self.run.path / "samples")
        new = sorted(set(samples) - self._samples)
        costs = self.run.preview_costs() if new else {}
        for step in new:
            self._samples.add(step)
            shown = {name: _png(frames[step]) for name, frames in views.items() if step in frames}
            cost = {"seconds": costs[step][0], "sample_steps": costs[step][1]} if step in costs else {}
            out.append(ev.Event(ev.SAMPLES, rid, {"step": step, "x": None, "path": str(samples[step]),
                                                  "views": {k: v for k, v in shown.items() if v is not None},
                                                  **cost}))
        for step, _ in self.run.checkpoints():
            if step not in self._checkpoints:
                self._checkpoints.add(step)
                out.append(ev.Event(ev.CHECKPOINT, rid, {"step": step}))
        return out

    def ended(self) -> bool:
        """Whether nobody trains the run any more and it says it is over."""
        return self.info.get("status") in ENDED and not self.run.busy()

    def _read_info(self) -> dict[str, Any] | None:
        """run.json when its status or message changed since the last read (None otherwise)."""
        try:
            st = (self.run.path / RUN_FILE).stat()
            key = (st.st_mtime_ns, st.st_size)
            if key == self._info_key and self.info.get("status") not in ("running", "created"):
                return None
            self._info_key = key
            info = self.run.info()  # "running" with its owner gone reads as interrupted
        except (OSError, RunError):
            return None
        old = (self.info.get("status"), self.info.get("message"))
        self.info = info
        return info if (info.get("status"), info.get("message")) != old else None

    def _new_rows(self) -> list[dict[str, Any]]:
        """Complete lines appended to metrics.jsonl since the last read (a torn tail waits)."""
        path = self.run.path / METRICS_FILE
        try:
            with open(path, "rb") as f:
                if _size(path) < self.offset:  # replaced (a new run in the same folder): start over
                    self.offset = 0
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        rows = []
        for raw in data[:end].split(b"\n"):
            try:
                row = json.loads(raw)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
        return rows


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _png(path: Path) -> np.ndarray | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError:
        return None


def watch(run: Run, *, control: Control | None = None, bus: ev.EventBus | None = None,
          tail: RunTail | None = None, interval: float = 0.25,
          trainer: Callable[[], bool] | None = None, wake: WakePipe | None = None) -> Iterator[int]:
    """Publish what ``run``'s folder gains until the run is over, the control detaches, or
    ``trainer()`` (whether the process we started lives) turns false; yields the step last seen.
    With ``wake`` (the trainer's :class:`WakePipe`) it looks whenever the trainer says so, and only
    every ``WOKEN_INTERVAL_S`` otherwise."""
    control = control or Control()
    bus = bus or ev.EventBus()
    tail = tail or RunTail(run)
    stop_asked: float | None = None
    resent = 0.0
    heard = trainer is None  # a trainer we just started: the folder's old "completed" is not its end
    began = time.monotonic()
    while True:
        gone = trainer is not None and not trainer()  # read before the last look: nothing is missed
        for e in tail.poll():
            if e.kind == ev.STATUS:
                heard = True
                if isinstance(control, RemoteControl):
                    control.follow(str(e.data.get("status")))
            bus.publish(e)
        yield tail.step
        if control.cancelled and stop_asked is None:
            stop_asked = resent = time.monotonic()
        elif (stop_asked is not None and isinstance(control, RemoteControl)
              and tail.info.get("status") in ("created", "running") and time.monotonic() - resent > RESEND_S):
            # Stop pressed while the trainer was starting: its control file was removed as stale when
            # its job began, so say it again until the run has stopped
            send(run, "stop")
            resent = time.monotonic()
        unheard = (stop_asked is not None and time.monotonic() - stop_asked > STOP_WAIT_S and not run.busy()
                   and (trainer is None or gone))  # a trainer of ours still starting will hear it
        if getattr(control, "detached", False) or (heard and tail.ended()) or (gone and not run.busy()) or unheard:
            return
        if wake is not None and not wake.closed:
            wake.wait(max(interval, WOKEN_INTERVAL_S))
            continue
        # a trainer just handed the run starts in ~0.05 s: look more often until it says "running"
        starting = tail.info.get("status") == "created" and time.monotonic() - began < STARTING_S
        time.sleep(min(interval, STARTING_INTERVAL_S) if starting else interval)
