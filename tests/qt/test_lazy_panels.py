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


def test_window_paints_before_importing_the_other_plugins():
    """A fresh process: the window imports only the picked plugin's module before its first
    paint; the others join the picker right after it, the pick unchanged (issue #18)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, tempfile\n"
        "from pathlib import Path\n"
        "from PySide6.QtCore import QTimer\n"
        "from genstudio.core.runs import RunStore\n"
        "from genstudio.qt.app import create_app\n"
        "from genstudio.qt.main_window import MainWindow\n"
        "mods = lambda: [m for m in sys.modules if m.count('.') == 1 and m.startswith('genstudio_plugins.')]\n"
        "app = create_app()\n"
        "tmp = Path(tempfile.mkdtemp())\n"
        "w = MainWindow(store=RunStore(tmp / 'data'), settings_path=tmp / 's.ini', restore=False)\n"
        "print(mods(), w.current_plugin(), w.plugin_combo.count())\n"
        "w.show()\n"
        "QTimer.singleShot(0, lambda: QTimer.singleShot(500, app.quit))\n"
        "app.exec()\n"
        "ok = [e.id for e in w.registry.entries.values() if e.ok]\n"
        "print(len(mods()) > 10, w.current_plugin(), all(w.plugin_combo.findData(p) >= 0 for p in ok))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=300).stdout
    assert out.split() == ["['genstudio_plugins.ddpm']", "ddpm", "2", "True", "ddpm", "True"]
