"""What every panel that starts worker jobs for the selected run shares: one Stop/start button per
job, tokens so an older job's events never mix into the newest one's, and a poll that notices a
job that ended without its result event (stopped or failed)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QPushButton, QSizePolicy, QWidget

from genstudio.core import events as ev
from genstudio.core.events import Event
from genstudio.core.jobs import Control
from genstudio.core.runs import Run
from genstudio.qt.panels.base import AppContext, Panel


class JobPanel(Panel):
    """Subclasses build their widgets, call ``_launch`` from a start method and ``_done(name)`` when
    a job's result event arrives; ``_update_buttons`` is theirs (call ``_poll_jobs`` at its end)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._run: Run | None = None
        self._problem = ""  # why the selected run cannot be used at all ('' = it can)
        self._controls: dict[str, Control] = {}
        self._awaiting: dict[str, int] = {}  # job name -> polls since it ended without its result
        self._tokens: dict[str, int] = {}  # job name -> token of its newest job
        self._token_counter = itertools.count(1)
        self.run_label = QLabel()  # which run the panel is about (it follows the selection)
        self.run_label.setSizePolicy(QSizePolicy.Maximum, QSizePolicy.Preferred)
        self.run_label.setMaximumWidth(200)  # a long run name is cut, it never widens the window
        self.status = QLabel()
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # long messages clip
        self._poll = QTimer(self, interval=250)  # re-enables the buttons once a job has ended
        self._poll.timeout.connect(self._update_buttons)

    def _update_buttons(self) -> None:
        self._poll_jobs()

    def _name_run(self, run: Run | None) -> None:
        from genstudio.qt.panels.runs import short_name

        self.run_label.setText(f"<b>{short_name(run.id)}</b>" if run is not None else "<i>no run</i>")
        self.run_label.setToolTip(run.id if run is not None else "")

    def _can_sample(self) -> str:
        """Why the selected run cannot be sampled ('' = it can)."""
        if self._run is None:
            return "select a run"
        if self._problem:
            return self._problem
        return "" if self._run.checkpoints() else "no checkpoint yet: train first"

    def _run_switched(self) -> None:
        """Another run was selected: the status line (a result, a reason) was about the old one, and
        so are the results of jobs started for it (their tokens no longer match)."""
        self.status.clear()
        self._why_shown = None
        self._tokens.clear()
        self._awaiting.clear()

    def _checkpoint_may_have_come(self, events: list[Event]) -> bool:
        """Whether to look for a first checkpoint again: the panel says the selected run has none,
        and the run wrote a checkpoint (CHECKPOINT) or changed status; not at every PROGRESS tick,
        which listed the checkpoints folder ~30 times a second while a run trained."""
        if self._run is None or not str(getattr(self, "_why_shown", "") or "").startswith("no checkpoint"):
            return False
        rid = self._run.id
        return any(e.run_id == rid and e.kind in (ev.CHECKPOINT, ev.STATUS) for e in events)

    def _show_why(self, why: str) -> None:
        """Say why the run cannot be used; take that back (only that) once it can."""
        if why:
            self.status.setText(why)
        elif self.status.text() == getattr(self, "_why_shown", None):
            self.status.clear()
        self._why_shown = why

    def _job_button(self, button: QPushButton, name: str, idle: str, stop: str, why: str) -> bool:
        """Label and enable a job's button; returns whether the job is running."""
        busy = self.ctx.job_running(name)
        button.setEnabled(busy or not why)  # while busy it is the Stop button
        button.setText(stop if busy else idle)
        button.setToolTip("" if busy else why)
        return busy

    def _toggle(self, name: str, button: QPushButton, start: Callable[[], Any]) -> None:
        """Stop while the button says so (even if the job ended a moment ago and the label is a poll
        behind: a click meant as Stop must never start a new job), else start."""
        if button.text().startswith("Stop") or self.ctx.job_running(name):
            control = self._controls.get(name)
            if control is not None:
                control.cancel()
            self._update_buttons()
        else:
            start()

    def _new_token(self, name: str) -> int:
        """A fresh token for job ``name``: events of its older jobs no longer match."""
        self._tokens[name] = next(self._token_counter)
        return self._tokens[name]

    def _current(self, e: Event, name: str) -> bool:
        return e.data.get("token") == self._tokens.get(name)

    def _launch(self, name: str, run: Run, job: Callable[[Control], Iterator[Any]], text: str) -> Control:
        self.status.setText(text)
        control = self.ctx.start_job(name, run, job)
        self._awaiting[name] = 0
        self._controls[name] = control
        self._poll.start()
        self._update_buttons()
        return control

    def _export(self, fn: Callable[[str], Any], path: str) -> None:
        """Write a file with ``fn(path)``; a failure is a message, not a traceback."""
        try:
            out = fn(path)
        except (OSError, RuntimeError) as e:
            self.ctx.show_error(f"Export failed: {e}")
            return
        self.ctx.status_message(f"wrote {out}")

    def _done(self, name: str) -> None:
        self._awaiting.pop(name, None)

    def _poll_jobs(self) -> None:
        for name in list(self._awaiting):
            if not self.ctx.job_running(name):  # a result event may still be a tick behind
                self._awaiting[name] += 1
                if self._awaiting[name] >= 3:  # ~0.5 s after the job ended and still no result
                    del self._awaiting[name]
                    self.status.setText(f"{name} job ended without a result (stopped or failed)")
        # keep polling while a job of ours still runs: its button must turn back from Stop
        if (not self._awaiting and self._poll.isActive()
                and not any(self.ctx.job_running(n) for n in self._controls)):
            self._poll.stop()
