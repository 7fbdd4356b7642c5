"""Cold start: a fresh process to the main window's first paint, against a fresh ``import torch``.

Both are whole processes started in turn (A B A B ...), so the ratio is taken pair by pair and a
machine that speeds up or slows down during the run moves both. The child builds the window the
way ``genstudio gui`` does (QApplication + theme + a staged MainWindow on a scratch store): its
shell paints before torch is imported, then the panels, pickers and menus are built. The child
prints both times -- first paint, and ready (everything built) -- and exits when ready.

    QT_QPA_PLATFORM=offscreen python bench/bench_cold_start.py [--repeats 5]
    python bench/bench_cold_start.py --child   # one cold start, prints the seconds to first paint
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

T0 = time.perf_counter()


def child() -> None:
    """Build the window like ``genstudio gui`` and quit at its first paint."""
    from pathlib import Path

    from PySide6.QtCore import QEvent, QObject, QTimer

    from genstudio.qt.app import create_app
    from genstudio.qt.main_window import MainWindow

    app = create_app()
    with tempfile.TemporaryDirectory() as tmp:
        from genstudio.core.runs import RunStore

        w = MainWindow(store=RunStore(Path(tmp) / "data"), settings_path=Path(tmp) / "s.ini", restore=False,
                       staged=True)

        class FirstPaint(QObject):
            def eventFilter(self, obj: QObject, e: QEvent) -> bool:  # noqa: N802 - Qt override
                if e.type() == QEvent.Paint:
                    took = time.perf_counter() - T0
                    torch = "torch" in sys.modules
                    print(f"first paint {took:.3f} s after the script started (torch imported: {torch})\n"
                          f"paint {took:.4f}", flush=True)
                    obj.removeEventFilter(self)
                return False

        def ready() -> None:
            took = time.perf_counter() - T0
            print(f"window ready (panels, pickers, menus) {took:.3f} s after the script started\nready {took:.4f}",
                  flush=True)
            QTimer.singleShot(0, app.quit)

        f = FirstPaint()
        w.installEventFilter(f)
        w.when_ready(ready)
        w.show()
        app.exec()
        mods = sorted(m for m in ("scipy", "scipy.signal", "sklearn", "skimage", "vispy", "pyqtgraph.opengl")
                      if m in sys.modules)
        print("heavy modules loaded: " + (", ".join(mods) or "none"))
        w.close()


# Bytecode as an installed app has it: pip compiles a wheel's modules at install, so a user's start
# reads .pyc files. Both commands cache theirs under one scratch prefix (written by the warm-up run,
# never into the source tree); with PYTHONDONTWRITEBYTECODE=1 (set on some machines) every start
# compiled GenStudio's ~140 modules again, about 1 s of "cold start" no user pays.
def timed(cmd: list[str], pycache: str) -> dict[str, float]:
    """One process: for each ``TAG SECONDS`` line it prints ("paint", "ready"), the process's own
    clock (``TAG``) and the seconds from its spawn to that line (``TAG@spawn``, interpreter start
    included); ``exit`` is the whole process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**env, "PYTHONPYCACHEPREFIX": pycache})
    got: dict[str, float] = {}
    for line in proc.stdout:
        tag, _, rest = line.partition(" ")
        if tag in ("paint", "ready"):
            got[f"{tag}@spawn"] = time.perf_counter() - t
            got[tag] = float(rest)
    if proc.wait():
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    got["exit"] = time.perf_counter() - t
    return got


def _line(what: str, xs: list[float], unit: str = " s") -> str:
    return (f"{what:<34}: median {statistics.median(xs):.2f}{unit}  (min {min(xs):.2f}, max {max(xs):.2f}, "
            f"n={len(xs)})")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--child", action="store_true")
    a = p.parse_args()
    if a.child:
        child()
        return
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    torch_cmd = [sys.executable, "-c", "import time; t = time.perf_counter(); import torch; "
                 "print(f'ready {time.perf_counter() - t:.4f}', flush=True)"]
    gui_cmd = [sys.executable, __file__, "--child"]
    pycache = tempfile.mkdtemp(prefix="genstudio-pycache-")
    timed(torch_cmd, pycache), timed(gui_cmd, pycache)  # warm the file cache, write the bytecode
    pairs = [(timed(torch_cmd, pycache), timed(gui_cmd, pycache)) for _ in range(a.repeats)]
    subprocess.run(gui_cmd, check=True)
    col = {k: [t[k] for t, _ in pairs] for k in ("ready", "ready@spawn", "exit")}
    print(_line("import torch (own clock)", col["ready"]))
    print(_line("import torch (spawn to done)", col["ready@spawn"]))
    print(_line("import torch (whole process)", col["exit"]))
    for tag, what in (("paint", "window's first paint"), ("ready", "window ready")):
        print(_line(f"{what} (own clock)", [g[tag] for _, g in pairs]))
        print(_line(f"{what} (spawn to it)", [g[f"{tag}@spawn"] for _, g in pairs]))
    print(_line("window process (whole, to exit)", [g["exit"] for _, g in pairs]))
    # pair by pair: the window's first paint / ready against `import torch`, on the same clocks
    for tag, what in (("paint", "first paint"), ("ready", "ready")):
        print(_line(f"ratio {what} / torch, own clocks", [g[tag] / t["ready"] for t, g in pairs], ""))
        print(_line(f"ratio {what} / torch, from spawn", [g[f"{tag}@spawn"] / t["ready@spawn"] for t, g in pairs], ""))
    print(_line("ratio whole processes", [g["exit"] / t["exit"] for t, g in pairs], ""))


if __name__ == "__main__":
    main()
