"""The window's side of watching a run that another process trains (``genstudio.core.watch``),
and of starting an N-process run (torchrun) that it then watches the same way.

The watcher is the window's "train" job, so the training monitor, progress bar and toolbar work
unchanged; its Control writes the run's control file, so Pause / Resume / Step / Stop reach the
other process. Closing the window only stops watching: the run trains on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from genstudio.core.distributed import launch_command
from genstudio.core.jobs import Control
from genstudio.core.runs import Run
from genstudio.core.watch import RemoteControl, RunTail, watch
from genstudio.qt.worker import JobThread

LAUNCH_LOG = "launch.log"  # torchrun's own output, for a run the window started


class WatchThread(JobThread):
    """A watching job: its Control is the run's control file; stopping the thread detaches."""

    def __init__(self, name: str, run: Run, job: Any, parent: QObject | None = None) -> None:
        super().__init__(name, run, job, control=RemoteControl(run), parent=parent, threads=1)
        self.process: subprocess.Popen | None = None  # the trainer, when this window started it

    def stop(self, wait_ms: int = 10_000) -> bool:
        self.control.detach()  # closing the window must not stop the run
        return self.wait(wait_ms)


def attach(window: Any, run: Run, process: subprocess.Popen | None = None) -> Control:
    """Make ``run`` current and follow its folder as it grows; returns the remote Control."""
    tail = RunTail(run)  # what the files hold now is what select_run shows
    window.select_run(run)
    window.progress.setVisible(True)
    window.throughput_label.setText("–")
    alive = (lambda: process.poll() is None) if process is not None else None

    def thread(name: str, run_: Run, job: Any, parent: QObject) -> WatchThread:
        t = WatchThread(name, run_, job, parent)
        t.process = process
        return t

    def job(c: Control) -> Any:
        return watch(run, control=c, bus=window.bus, tail=tail, trainer=alive)

    control = window.start_job("train", run, job, thread=thread)
    window.status_message(f"watching {run.id}: Pause / Stop go to the process that trains it")
    return control


def trainer_command(run: Run, processes: int) -> list[str]:
    """``genstudio resume RUN`` in a process of its own, or under torchrun for several."""
    if processes > 1:
        return launch_command(["resume", str(run.path)], processes)
    return [sys.executable, "-m", "genstudio", "resume", str(run.path)]


def launch(window: Any, run: Run, processes: int) -> Control:
    """Train ``run`` outside the window -- one process of its own, or ``processes`` under torchrun
    -- and watch it."""
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if processes > 1 else {})}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("GENSTUDIO_DATA_DIR", str(window.store.root))
    with open(run.path / LAUNCH_LOG, "ab") as log:
        proc = subprocess.Popen(trainer_command(run, processes), env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return attach(window, run, proc)
