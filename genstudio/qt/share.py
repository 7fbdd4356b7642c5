"""File menu: "Export report…" and "Export to TensorBoard…" for the selected run: the same core
functions as ``genstudio report`` / ``genstudio tensorboard``, run as worker jobs (the report
samples the model), with the folder asked for first and the written path said at the end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu

from genstudio.core.runs import Run

REPORT_JOB, TB_JOB = "report", "tensorboard"


def _write_report(run: Run, folder: str) -> Path:
    from genstudio.core.report import build_report

    return build_report(run, folder)


def _write_tensorboard(run: Run, folder: str) -> Path:
    from genstudio.core.tboard import export_run

    return export_run(run, folder)


EXPORTS: dict[str, tuple[str, Callable[[Run, str], Path]]] = {
    REPORT_JOB: ("Export report…", _write_report),
    TB_JOB: ("Export to TensorBoard…", _write_tensorboard),
}


def export_run(window: Any, kind: str, folder: str | None = None) -> bool:
    """Start the ``kind`` export (REPORT_JOB or TB_JOB) of the window's current run into ``folder``
    (asked for when None); False when there is no run, no folder, or one is already running."""
    title, write = EXPORTS[kind]
    run = window.current_run()
    if run is None:
        window.status_message("select a run first (Runs panel)")
        return False
    if window.job_running(kind):
        window.status_message(f"a {kind} export is already running")
        return False
    if folder is None:
        folder = QFileDialog.getExistingDirectory(window, f"{title.rstrip('…')}: folder to write into",
                                                  str(Path.home()))
        if not folder:
            return False
    done: list[Path] = []

    def job(control: Any) -> Any:
        done.append(write(run, folder))
        yield

    def finished(name: str, outcome: str) -> None:
        if name != kind:
            return
        window.job_finished.disconnect(finished)
        if done:
            what = "report" if kind == REPORT_JOB else "TensorBoard log"
            window.status_message(f"{what} of {run.id} written: {done[0]}", 10_000)
            window._activity(f"{what} written: {done[0]}")

    window.job_finished.connect(finished)
    window.status_message(f"writing the {kind} export of {run.id} …")
    window.start_job(kind, run, job)
    return True


def add_export_actions(window: Any, menu: QMenu) -> dict[str, QAction]:
    """The two export actions, added to ``menu`` (the File menu)."""
    actions = {}
    for kind, (title, _) in EXPORTS.items():
        act = QAction(title, window)
        act.setObjectName(f"export_{kind}")
        act.triggered.connect(lambda *_, k=kind: export_run(window, k))
        menu.addAction(act)
        actions[kind] = act
    return actions
