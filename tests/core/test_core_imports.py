"""The core must stay GUI-free: importing all of it loads no Qt, pyqtgraph or vispy."""

import subprocess
import sys


def test_core_does_not_import_qt():
    code = (
        "import pkgutil, importlib, sys, genstudio.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'genstudio.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import genstudio.cli\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'vispy', 'shiboken6')]\n"
        "bad += [m for m in sys.modules if m.startswith('genstudio.qt')]\n"
        "print(bad); assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
