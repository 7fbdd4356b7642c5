"""Qt test fixtures: offscreen platform, a private data dir and settings file per test, and a
``main_window`` that is shown, then closed (jobs cancelled and joined) at teardown."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from genstudio.core.registry import registry  # noqa: E402
from genstudio.core.runs import RunStore  # noqa: E402


@pytest.fixture
def make_window(qapp, tmp_path, monkeypatch, request):
    """Factory for main windows sharing this test's data dir and settings file (so a second window
    sees what the first one saved)."""
    from genstudio.qt.app import configure_app
    from genstudio.qt.main_window import MainWindow
    from genstudio.qt.panels.settings import RunOptions

    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(tmp_path / "data"))
    if "own_process" not in request.keywords:  # GUI tests train in the window's worker thread (fast, and
        # it sees the test plugins); tests marked own_process keep the app's default: a trainer process
        monkeypatch.setattr(RunOptions.__dataclass_fields__["own_process"], "default", False)
    configure_app(qapp)
    windows = []

    def make(**kw):
        kw.setdefault("store", RunStore(tmp_path / "data"))
        kw.setdefault("settings_path", tmp_path / "settings.ini")
        w = MainWindow(**kw)
        w.resize(1400, 880)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()  # cancels and joins jobs
        w.deleteLater()
    qapp.processEvents()
    # Collect dead Qt wrappers here, in the GUI thread: left to chance, Python's cyclic GC may run
    # them down inside the next test's worker thread ("Timers cannot be started from another thread").
    gc.collect()


@pytest.fixture
def main_window(make_window):
    return make_window()


@pytest.fixture
def test_plugins():
    """Adds the tiny test plugin (``gaussfit``) to the process registry for one test."""
    from tests.fakeplugins import GaussFit

    reg = registry()
    reg.add_class(GaussFit, "tests/fakeplugins.py", "gaussfit")
    yield reg
    reg.entries.pop("gaussfit", None)
