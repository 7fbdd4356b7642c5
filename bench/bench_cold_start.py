"""Cold start: a fresh process to the main window's first paint, against a fresh ``import torch``.

Both are whole processes started in turn (A B A B ...), so the ratio is taken pair by pair and a
machine that speeds up or slows down during the run moves both. The child paints the window the
way ``genstudio gui`` builds it (QApplication + theme + MainWindow on a scratch store) and exits
at the first paint event.

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

        w = MainWindow(store=RunStore(Path(tmp) / "data"), settings_path=Path(tmp) / "s.ini", restore=False)

        class FirstPaint(QObject):
            def eventFilter(self, obj: QObject, e: QEvent) -> bool:  # noqa: N802 - Qt override
                if e.type() == QEvent.Paint:
                    took = time.perf_counter() - T0
                    print(f"first paint {took:.3f} s after the script started\nready {took:.4f}", flush=True)
                    QTimer.singleShot(0, app.quit)
                    obj.removeEventFilter(self)
                return False

        f = FirstPaint()
        w.installEventFilter(f)
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
def wall(cmd: list[str], pycache: str, own: list[float] | None = None) -> float:
    """Seconds the whole process took; ``own`` gets the process's own clock to its goal (the
    first paint; the end of ``import torch``), from its ``ready SECONDS`` line."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                         env={**env, "PYTHONPYCACHEPREFIX": pycache}).stdout
    took = time.perf_counter() - t
    if own is not None:
        own += [float(line.split()[1]) for line in out.splitlines() if line.startswith("ready ")]
    return took


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
                 "print(f'ready {time.perf_counter() - t:.4f}')"]
    gui_cmd = [sys.executable, __file__, "--child"]
    pycache = tempfile.mkdtemp(prefix="genstudio-pycache-")
    wall(torch_cmd, pycache), wall(gui_cmd, pycache)  # warm the file cache, write the bytecode
    ratios, tt, tg, painted, imported = [], [], [], [], []
    for _ in range(a.repeats):
        t, g = wall(torch_cmd, pycache, imported), wall(gui_cmd, pycache, painted)
        tt.append(t)
        tg.append(g)
        ratios.append(g / t)
    own = [p / i for p, i in zip(painted, imported, strict=True)]
    subprocess.run(gui_cmd, check=True)
    print(f"import torch        : median {statistics.median(tt):.2f} s  (min {min(tt):.2f}, max {max(tt):.2f})")
    print(f"window, first paint : median {statistics.median(tg):.2f} s  (min {min(tg):.2f}, max {max(tg):.2f})")
    # the whole process, exit included (as for torch); the child's own clock stops at the paint
    print(f"  of which to paint : median {statistics.median(painted):.2f} s  (the child's clock, from its "
          f"first line; interpreter start and exit not in it)")
    print(f"ratio (pairwise)    : median {statistics.median(ratios):.2f}  (min {min(ratios):.2f}, "
          f"max {max(ratios):.2f}, n={a.repeats})")
    # like for like without the interpreter's start and exit: the script's clock to its first paint
    # against a script's clock around `import torch` (the window imports torch itself)
    print(f"own clocks: to paint {statistics.median(painted):.2f} s vs import torch {statistics.median(imported):.2f} s"
          f", ratio (pairwise) median {statistics.median(own):.2f}  (min {min(own):.2f}, max {max(own):.2f})")


if __name__ == "__main__":
    main()
