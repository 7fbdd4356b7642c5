"""Panels in tabs behind others are built when first seen or asked for (issue #18: cold start)."""

from __future__ import annotations

from genstudio.qt.shot import scratch_window


def test_hidden_tabs_are_built_on_first_use(qtbot):
    with scratch_window((1400, 880)) as w:
        deferred = set(w._deferred)
        assert deferred, "the panels behind the sampler's tab should wait"
        built = set(dict.keys(w.panels))
        assert {"training", "sampler", "runs", "settings"} <= built and not built & deferred
        pid = sorted(deferred)[0]
        assert pid in w.panels and pid not in dict.keys(w.panels)  # listed, still not built
        panel = w.panels[pid]  # asking builds it, into its dock
        assert w.docks[pid].widget() is panel and pid not in w._deferred
        other = sorted(deferred)[1]
        w.docks[other].raise_()  # raising its tab builds it too
        qtbot.waitUntil(lambda: other not in w._deferred, timeout=5000)
        assert w.docks[other].widget() is w.panels[other]
        assert w.panels.get("no_such_panel") is None and "no_such_panel" not in w.panels



def _fresh_window(then: str) -> list[str]:
    """Run ``then`` in a fresh process after building a window (``w``, not shown yet); its output."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, tempfile\n"
            "from pathlib import Path\n"
            "from PySide6.QtCore import QEvent, Qt, QTimer\n"
            "from PySide6.QtGui import QKeyEvent\n"
            "from PySide6.QtWidgets import QApplication\n"
            "from genstudio.core.runs import RunStore\n"
            "from genstudio.qt.app import create_app\n"
            "from genstudio.qt.main_window import MainWindow\n"
            "mods = lambda: [m for m in sys.modules if m.count('.') == 1 and m.startswith('genstudio_plugins.')]\n"
            "app = create_app()\n"
            "tmp = Path(tempfile.mkdtemp())\n"
            "w = MainWindow(store=RunStore(tmp / 'data'), settings_path=tmp / 's.ini', restore=False)\n"
            "listed = lambda: all(w.plugin_combo.findData(e.id) >= 0 for e in w.registry.entries.values() if e.ok)\n"
            "print(mods(), w.current_plugin(), w.plugin_combo.count())\n" + then)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          timeout=300).stdout.split()


def test_window_paints_before_importing_the_other_plugins():
    """Only the picked plugin's module is imported before the first paint; after it the others
    come in one event-loop turn at a time and join the picker, the pick unchanged (issue #18)."""
    out = _fresh_window("w.show()\n"
                        "wait = QTimer(interval=20, timeout=lambda: w.registry.loaded and app.quit())\n"
                        "wait.start()\n"
                        "QTimer.singleShot(20_000, app.quit)\n"
                        "app.exec()\n"
                        "print(len(mods()) > 10, w.current_plugin(), listed())\n")
    assert out == ["['genstudio_plugins.ddpm']", "ddpm", "2", "True", "ddpm", "True"]


def test_plugin_picker_lists_all_when_reached_for_early():
    """A key on (or a click or wheel turn over) the picker before the others came in imports and
    lists them at once, before the picker handles it."""
    out = _fresh_window("QApplication.sendEvent(w.plugin_combo, QKeyEvent(QEvent.KeyPress, Qt.Key_Shift, Qt.NoModifier))\n"
                        "print(w.registry.loaded, w.current_plugin(), listed())\n")
    assert out == ["['genstudio_plugins.ddpm']", "ddpm", "2", "True", "ddpm", "True"]


def test_startup_objects_leave_the_cyclic_gc_after_the_first_paint():
    """Full collections (the GUI thread's GC timer, the one at exit) skip what the process held at
    its first paint: torch's and Qt's objects and the window."""
    out = _fresh_window("import gc\n"
                        "print(gc.get_freeze_count())\n"
                        "w.show()\n"
                        "QTimer.singleShot(0, lambda: QTimer.singleShot(200, app.quit))\n"
                        "app.exec()\n"
                        "print(gc.get_freeze_count() > 100_000)\n")
    assert out[3:] == ["0", "True"]
