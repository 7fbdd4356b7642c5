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


GUI_CHILD = """
import sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication
import genstudio.qt.app as app_mod

class FirstPaint(QObject):
    def eventFilter(self, obj, e):
        if e.type() == QEvent.Paint and obj.objectName() == "main_window":
            QApplication.instance().removeEventFilter(self)
            print("torch_at_paint", "torch" in sys.modules, "ready_at_paint", obj.ready,
                  "start_enabled", obj.start_button.isEnabled())
            obj.when_ready(lambda: (print("ready", obj.current_plugin(), obj.current_dataset(),
                                          sorted(dict.keys(obj.panels)), obj.start_button.isEnabled(),
                                          obj.device_combo.count() > 1),
                                    print("run", obj.current_run() and obj.current_run().id,
                                          obj.job_running("train")),
                                    QTimer.singleShot(0, obj.close)))
        return False

create = app_mod.create_app
def create_app(argv=None):
    app = create(argv)
    app.installEventFilter(hook)
    return app
hook = FirstPaint()
app_mod.create_app = create_app
from genstudio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _gui(tmp_path, *argv: str) -> list[str]:
    """`genstudio ARGV` in a fresh process on a scratch store and settings file; what its window
    printed at its first paint and once ready (then it closes itself)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "QT_QPA_PLATFORM": "offscreen",
           "GENSTUDIO_DATA_DIR": str(tmp_path / "data"), "GENSTUDIO_SETTINGS": str(tmp_path / "s.ini")}
    return subprocess.run([sys.executable, "-c", GUI_CHILD, *argv], env=env, capture_output=True, text=True,
                          timeout=300, check=True).stdout.split("\n")


def test_genstudio_gui_paints_its_window_before_importing_torch(tmp_path):
    """`genstudio gui` shows the window's shell (toolbar, run header, status bar) before torch is
    imported; the panels, pickers and saved choices come in the turn after that paint (#18)."""
    from PySide6.QtCore import QSettings

    ini = tmp_path / "s.ini"
    saved = QSettings(str(ini), QSettings.IniFormat)
    saved.setValue("choices/plugin", "vae")  # the user's last choices, restored once ready
    saved.setValue("choices/dataset", "digits")
    saved.sync()
    out = _gui(tmp_path, "gui")
    assert out[0] == "torch_at_paint False ready_at_paint False start_enabled False"
    assert out[1] == "ready vae digits ['runs', 'sampler', 'settings', 'training'] True True"
    assert out[2] == "run None False"
    again = QSettings(str(ini), QSettings.IniFormat)  # closing saved the (restored) choices back
    assert (again.value("choices/plugin"), again.value("choices/dataset")) == ("vae", "digits")


def test_a_staged_window_closed_while_starting_keeps_the_saved_choices(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from genstudio.core.runs import RunStore
    from genstudio.qt.main_window import MainWindow

    ini = tmp_path / "s.ini"
    s = QSettings(str(ini), QSettings.IniFormat)
    s.setValue("choices/plugin", "vae")
    s.sync()
    w = MainWindow(store=RunStore(tmp_path / "data"), settings_path=ini, staged=True)
    assert not w.ready and not w.toolbar.isEnabled() and not dict.keys(w.panels)
    w.close()  # before its first paint: nothing built, nothing overwritten, nothing left running
    assert not w.ready and w.standby is None
    assert QSettings(str(ini), QSettings.IniFormat).value("choices/plugin") == "vae"
    w2 = MainWindow(store=RunStore(tmp_path / "data"), settings_path=ini, staged=True)
    qtbot.addWidget(w2)
    calls = []
    w2.when_ready(lambda: calls.append(w2.current_plugin()))
    w2.show()
    qtbot.waitUntil(lambda: w2.ready, timeout=30_000)
    assert calls == ["vae"] and w2.toolbar.isEnabled() and "settings" in dict.keys(w2.panels)
    w2.when_ready(lambda: calls.append("now"))  # once ready: at once
    assert calls == ["vae", "now"]
    w2.close()


def test_genstudio_watch_follows_its_run_once_the_window_is_ready(tmp_path):
    from genstudio.core.jobs import TrainSpec, create_run
    from genstudio.core.runs import RunStore

    run = create_run(RunStore(tmp_path / "data"), TrainSpec(plugin="ddpm", dataset="moons", steps=5))
    out = _gui(tmp_path, "watch", run.id)
    assert out[0] == "torch_at_paint False ready_at_paint False start_enabled False"
    assert out[2] == f"run {run.id} True"  # selected and followed (Pause / Stop reach its trainer)


def test_a_staged_window_whose_second_half_fails_says_why_and_stays_open(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    import genstudio.qt.main_window as mw
    from genstudio.core.runs import RunStore

    def broken(*_):
        raise ImportError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(mw, "available_devices", broken)
    ini = tmp_path / "s.ini"
    QSettings(str(ini), QSettings.IniFormat).setValue("choices/plugin", "vae")
    w = mw.MainWindow(store=RunStore(tmp_path / "data"), settings_path=ini, staged=True)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: bool(w.errors), timeout=10_000)
    assert not w.ready and "could not finish starting" in w.errors[0][0] and "libtorch_cpu" in w.errors[0][0]
    assert "Traceback" in w.errors[0][1] and "libtorch_cpu" in w.run_header.text()
    assert not w.toolbar.isEnabled()
    w.close()
    assert QSettings(str(ini), QSettings.IniFormat).value("choices/plugin") == "vae"
