"""Screenshots made by the app itself (README images, docs, visual checks in tests).

``shot(None, out)`` grabs the whole window, ``shot("training", out)`` one panel's dock. With
``demo=True`` it first trains DDPM on 8 Gaussians for a few hundred steps in a throw-away data
directory and samples from it, so the picture shows real curves and samples. Works offscreen
(``QT_QPA_PLATFORM=offscreen``); vispy panels need a GL context (run under Xvfb).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from genstudio.core.registry import DEFAULT_PLUGINS
from genstudio.core.runs import RunStore
from genstudio.qt.app import create_app
from genstudio.qt.main_window import MainWindow

DEMO = {"plugin": DEFAULT_PLUGINS[0], "dataset": "8gaussians", "steps": 1000, "log_every": 10, "sample_every": 250,
        "n_sample": 1000, "sample_steps": 100}


def wait_until(pred: Callable[[], bool], timeout: float = 120.0, poll_ms: int = 50) -> bool:
    """Run the Qt event loop until ``pred()`` is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(poll_ms)
    timer.timeout.connect(lambda: (pred() or time.monotonic() > deadline) and loop.quit())
    timer.start()
    if not pred():
        loop.exec()
    timer.stop()
    return pred()


def settle(ms: int = 300) -> None:
    """Let layouts, the bridge's timer and pyqtgraph repaint before grabbing."""
    end = time.monotonic() + ms / 1000
    wait_until(lambda: time.monotonic() > end, timeout=ms / 1000 + 1)


def run_demo(window: MainWindow, *, plugin: str = DEMO["plugin"], dataset: str = DEMO["dataset"],
             steps: int = DEMO["steps"], log_every: int = DEMO["log_every"],
             sample_every: int = DEMO["sample_every"], n_sample: int = DEMO["n_sample"],
             sample_steps: int = DEMO["sample_steps"], timeout: float = 300.0) -> None:
    """Train ``plugin`` on ``dataset`` through the Start button's path, then sample through the
    sampler panel's own path (so the picture shows what a user would see)."""
    if not window.select_plugin(plugin):
        raise RuntimeError(f"demo plugin {plugin!r} is not available")
    if not window.select_dataset(dataset):
        raise RuntimeError(f"demo dataset {dataset!r} is not offered for {plugin}")
    window.steps_spin.setValue(steps)
    settings = window.panels.get("settings")
    if settings is not None:
        settings.run_form.set_values({"log_every": log_every, "sample_every": sample_every})
    run = window.start_training()
    if run is None:
        raise RuntimeError("the demo run did not start: " + (window.errors[-1][0] if window.errors else "?"))
    if not wait_until(lambda: not window.job_running("train"), timeout):
        raise RuntimeError("the demo run did not finish in time")
    sampler = window.panels.get("sampler")
    if n_sample and sampler is not None:
        sampler.n.setValue(n_sample)
        sampler.steps.setValue(sample_steps)
        if sampler.start_sampling() is None:
            raise RuntimeError("the sampler panel did not start sampling")
        wait_until(lambda: not window.job_running("sample"), timeout)
    settle(800)


@contextmanager
def scratch_window(size: tuple[int, int] = (1400, 880), store: RunStore | None = None) -> Iterator[MainWindow]:
    """A shown main window on a throw-away run store and settings file (screenshots, benchmarks):
    the default layout, and nothing left in the user's run list."""
    create_app()
    with tempfile.TemporaryDirectory(prefix="genstudio-scratch-") as tmp:
        window = MainWindow(store=store or RunStore(Path(tmp) / "data"), settings_path=Path(tmp) / "settings.ini",
                            restore=False)
        try:
            window.resize(*size)
            window.show()
            yield window
        finally:
            window.close()
            window.deleteLater()
            QApplication.processEvents()


def shot(panel: str | None, out: Path | str, *, setup: Callable[[MainWindow], Any] | None = None,
         demo: bool = False, size: tuple[int, int] = (1400, 880), store: RunStore | None = None) -> Path:
    """Build the window, optionally run the demo and ``setup(window)``, and save a PNG of the window
    or of the dock of the panel whose ``panel_id`` is ``panel``. Returns the PNG path."""
    create_app()
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="genstudio-shot-") as tmp:
        if store is None and demo:
            store = RunStore(Path(tmp) / "data")  # the demo run must not litter the user's run list
        # a fresh settings file: screenshots show the default layout, not this user's
        window = MainWindow(store=store, settings_path=Path(tmp) / "settings.ini", restore=False)
        try:
            if panel is not None and panel not in window.docks:
                raise KeyError(f"no panel {panel!r}; panels: {', '.join(window.docks)}")
            window.resize(*size)
            window.show()
            settle(200)
            if demo:
                run_demo(window)
            if setup is not None:
                setup(window)
            if panel is not None:
                window.docks[panel].show()
                window.docks[panel].raise_()  # a tabbed panel comes to the front, at its real size
            settle(300)
            target = window if panel is None else window.docks[panel]
            out.parent.mkdir(parents=True, exist_ok=True)
            if not target.grab().save(str(out), "PNG"):
                raise OSError(f"could not write {out}")
        finally:
            window.close()
            window.deleteLater()
            QApplication.processEvents()
    return out
