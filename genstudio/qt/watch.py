"""The window's side of watching a run that another process trains (``genstudio.core.watch``),
and of starting an N-process run (torchrun) that it then watches the same way.

The watcher is the window's "train" job, so the training monitor, progress bar and toolbar work
unchanged; its Control writes the run's control file, so Pause / Resume / Step / Stop reach the
other process. Closing the window stops a run the window started (it checkpoints, as a run in the
window's own thread does) and only stops watching any other: that run trains on.

A one-process run starts in a :class:`Standby` trainer when one is warm (it imported torch and the
plugins while the window sat idle), so Start costs no ``import torch``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from genstudio.core.device import worker_threads
from genstudio.core.distributed import launch_command
from genstudio.core.jobs import Control
from genstudio.core.runs import WAKE_FD_ENV, Run
from genstudio.core.watch import RemoteControl, RunTail, WakePipe, watch
from genstudio.qt.worker import JobThread

LAUNCH_LOG = "launch.log"  # the trainer's (or torchrun's) own output, for a run the window started
LOG_TAIL_LINES = 40  # of launch.log, in the error dialog of a trainer that failed
WATCH_INTERVAL_S = 0.05  # how often the window looks at a run folder whose trainer it started (Start → running and
# the end are seen this much later at most)


class TrainerFailed(RuntimeError):
    """The process training a run the window started ended without finishing it; ``details`` is
    the end of its output (the error dialog's text)."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


class WatchThread(JobThread):
    """A watching job: its Control is the run's control file; stopping the thread detaches."""

    def __init__(self, name: str, run: Run, job: Any, parent: QObject | None = None) -> None:
        super().__init__(name, run, job, control=RemoteControl(run), parent=parent, threads=1)
        self.process: subprocess.Popen | None = None  # the trainer, when this window started it
        self.wake: WakePipe | None = None  # its wake pipe

    def stop(self, wait_ms: int = 10_000) -> bool:
        """Closing the window: a trainer it started stops (and checkpoints) like an in-window run;
        a run some other process trains goes on, only the watching ends."""
        if self.process is not None and self.process.poll() is None:
            self.control.cancel()
            try:
                self.process.wait(wait_ms / 1000)
            except subprocess.TimeoutExpired:
                return False
        self.control.detach()
        if self.wake is not None:
            self.wake.poke()  # the watcher sees the detach now, not at its next look
        return self.wait(wait_ms)


def attach(window: Any, run: Run, process: subprocess.Popen | None = None, tail: RunTail | None = None,
           wake: WakePipe | None = None) -> Control:
    """Make ``run`` current and follow its folder as it grows; returns the remote Control.
    ``process``: the trainer the window started (its end is checked, closing the window stops it);
    ``wake``: its wake pipe (the folder is looked at when the trainer writes, not polled)."""
    tail = tail or RunTail(run)  # what the files hold now is what select_run shows
    window.select_run(run)
    window.progress.setVisible(True)
    window.throughput_label.setText("–")
    alive = (lambda: process.poll() is None) if process is not None else None

    def thread(name: str, run_: Run, job: Any, parent: QObject) -> WatchThread:
        t = WatchThread(name, run_, job, parent)
        t.process = process
        t.wake = wake
        return t

    def job(c: Control) -> Any:
        if process is None:
            return (yield from watch(run, control=c, bus=window.bus, tail=tail))
        try:
            step = yield from watch(run, control=c, bus=window.bus, tail=tail, trainer=alive,
                                    interval=WATCH_INTERVAL_S, wake=wake)
        finally:
            if wake is not None:
                wake.close()
        check_trainer(run, process)
        return step

    control = window.start_job("train", run, job, thread=thread)
    window.status_message(f"training {run.id} in a process of its own" if process is not None else
                          f"watching {run.id}: Pause / Stop go to the process that trains it")
    return control


def check_trainer(run: Run, process: subprocess.Popen) -> None:
    """Raise :class:`TrainerFailed` when the trainer the window started ended and left ``run``
    neither completed nor stopped (a plugin error, a crash, a kill), with the end of its output."""
    try:
        info = run.info()
    except Exception as exc:  # noqa: BLE001 - an unreadable run.json is itself the thing to report
        info = {"status": "unreadable", "message": str(exc)}
    status, message = info.get("status"), info.get("message") or ""
    if status in ("completed", "stopped"):
        return  # its work is done and saved: the job ends now, not when the process has torn down
    try:
        rc = process.wait(5)
    except subprocess.TimeoutExpired:
        return  # it lives on (the window stopped watching): nothing to report
    why = message or (f"the trainer process exited with status {rc} before its first step" if rc else
                      f"the trainer process ended and left the run {status}")
    raise TrainerFailed(why, f"run {run.id}: {status} (trainer exit status {rc})\n\n"
                             f"last lines of {run.path / LAUNCH_LOG}:\n{log_tail(run.path / LAUNCH_LOG)}")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError as exc:
        return f"(unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def trainer_argv(run: Run, extra_steps: int | None = None, steer: dict[str, Any] | None = None) -> list[str]:
    """``resume RUN [--steps N] [--set KEY=VALUE ...]``: the CLI command a trainer runs."""
    out = ["resume", str(run.path), *(["--steps", str(extra_steps)] if extra_steps else [])]
    for k, v in (steer or {}).items():
        out += ["--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    return out


def trainer_command(run: Run, processes: int, extra_steps: int | None = None,
                    steer: dict[str, Any] | None = None) -> list[str]:
    """``genstudio resume RUN`` in a process of its own, or under torchrun for several."""
    argv = trainer_argv(run, extra_steps, steer)
    if processes > 1:
        return launch_command(argv, processes)
    return genstudio_command(argv)


def genstudio_command(argv: list[str]) -> list[str]:
    """``genstudio ARGV`` as a new process: this Python with ``-m genstudio``, or the app itself
    when it is a frozen bundle (its entry point is the CLI)."""
    return [sys.executable, *argv] if getattr(sys, "frozen", False) else [sys.executable, "-m", "genstudio", *argv]


def trainer_env(store_root: Path, processes: int = 1, wake: WakePipe | None = None) -> dict[str, str]:
    """The trainer's environment: this window's, its source tree importable, its data folder; torch
    threads as for a run in the window's worker (the GUI competes for the cores: with 2, 1 thread
    ran 3-5x faster than 2), one per process under torchrun; the number of its wake pipe."""
    threads = 1 if processes > 1 else worker_threads(gui_running=True)
    env = {"OMP_NUM_THREADS": str(threads), **os.environ, **({"OMP_NUM_THREADS": "1"} if processes > 1 else {})}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("GENSTUDIO_DATA_DIR", str(store_root))
    env.pop(WAKE_FD_ENV, None)  # never one inherited from whoever started this window
    env.update(wake.env() if wake is not None else {})
    return env


def spawn_trainer(argv: list[str], wake: WakePipe | None, env: dict[str, str], **popen: Any) -> subprocess.Popen:
    """Start a trainer process that holds the write end of ``wake`` (this process lets go of its
    own, so the pipe reads as ended when the trainer exits)."""
    proc = subprocess.Popen(argv, env=env, start_new_session=True, **popen,
                            **(wake.child() if wake is not None else {}))
    if wake is not None:
        wake.spawned()
    return proc


class Standby:
    """One warm trainer process (``genstudio.core.standby``): it imports torch and the plugins while
    the window is idle, then trains the next one-process run Start hands it. One serves one run."""

    def __init__(self, store_root: Path) -> None:
        self.store_root = Path(store_root)
        self.process: subprocess.Popen | None = None
        self.wake: WakePipe | None = None  # the waiting process's wake pipe (it goes with the run)
        self._ready_file: Path | None = None

    def start(self) -> None:
        """Start the warm process unless one is waiting already."""
        if self.ready():
            return
        self._forget_ready()
        fd, name = tempfile.mkstemp(prefix="genstudio-standby-", suffix=".ready")
        os.close(fd)
        self._ready_file = Path(name)
        self._ready_file.unlink()  # the process creates it once its imports are done
        self._forget_wake()
        self.wake = WakePipe.open()
        self.process = spawn_trainer(genstudio_command(["standby", name]), self.wake,
                                     trainer_env(self.store_root, wake=self.wake), stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)

    def ready(self) -> bool:
        """Whether a standby process lives (it may still be importing)."""
        return self.process is not None and self.process.poll() is None

    def warm(self) -> bool:
        """Whether it lives and has done its imports."""
        return self.ready() and self._ready_file is not None and self._ready_file.exists()

    def _forget_ready(self) -> None:
        if self._ready_file is not None:
            self._ready_file.unlink(missing_ok=True)
            self._ready_file = None

    def _forget_wake(self) -> None:
        if self.wake is not None:
            self.wake.close()
            self.wake = None

    def take(self, argv: list[str], log: Path) -> tuple[subprocess.Popen, WakePipe | None] | None:
        """Hand ``argv`` (a CLI command) to the warm process: it and its wake pipe, or None when
        there is none alive."""
        proc, self.process = self.process, None
        wake, self.wake = self.wake, None
        self._forget_ready()
        if proc is None or proc.poll() is not None:
            if wake is not None:
                wake.close()
            return None
        try:
            proc.stdin.write(json.dumps({"argv": argv, "log": str(log),
                                         "env": {"GENSTUDIO_DATA_DIR": str(self.store_root)}}) + "\n")
            proc.stdin.close()
        except OSError:  # it died just now
            proc.kill()
            if wake is not None:
                wake.close()
            return None
        return proc, wake

    def close(self) -> None:
        """End the waiting process (end of file on its stdin), killed if it does not go at once."""
        proc, self.process = self.process, None
        self._forget_ready()
        self._forget_wake()
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()


def launch(window: Any, run: Run, processes: int, extra_steps: int | None = None,
           steer: dict[str, Any] | None = None) -> Control:
    """Train ``run`` outside the window -- one process of its own (the warm standby when there is
    one), or ``processes`` under torchrun -- and watch it."""
    log = run.path / LAUNCH_LOG
    tail = RunTail(run)  # before the trainer starts: none of its events can be missed
    standby: Standby | None = getattr(window, "standby", None)
    taken = standby.take(trainer_argv(run, extra_steps, steer), log) if standby and processes == 1 else None
    if taken is not None:
        proc, wake = taken
    else:  # torchrun's ranks get no wake pipe: the number would mean nothing in their processes
        wake = WakePipe.open() if processes == 1 else None
        with open(log, "ab") as out:
            proc = spawn_trainer(trainer_command(run, processes, extra_steps, steer), wake,
                                 trainer_env(window.store.root, processes, wake=wake), stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return attach(window, run, proc, tail, wake)
