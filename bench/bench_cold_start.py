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
                    print(f"first paint {time.perf_counter() - T0:.3f} s after the script started", flush=True)
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
def wall(cmd: list[str], pycache: str, painted: list[float] | None = None) -> float:
    """Seconds the whole process took; ``painted`` gets the child's own time to its first paint."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                         env={**env, "PYTHONPYCACHEPREFIX": pycache}).stdout
    took = time.perf_counter() - t
    if painted is not None:
        painted += [float(line.split()[2]) for line in out.splitlines() if line.startswith("first paint ")]
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
    torch_cmd = [sys.executable, "-c", "import torch"]
    gui_cmd = [sys.executable, __file__, "--child"]
    pycache = tempfile.mkdtemp(prefix="genstudio-pycache-")
    wall(torch_cmd, pycache), wall(gui_cmd, pycache)  # warm the file cache, write the bytecode
    ratios, tt, tg, painted = [], [], [], []
    for _ in range(a.repeats):
        t, g = wall(torch_cmd, pycache), wall(gui_cmd, pycache, painted)
        tt.append(t)
        tg.append(g)
        ratios.append(g / t)
    subprocess.run(gui_cmd, check=True)
    print(f"import torch        : median {statistics.median(tt):.2f} s  (min {min(tt):.2f}, max {max(tt):.2f})")
    print(f"window, first paint : median {statistics.median(tg):.2f} s  (min {min(tg):.2f}, max {max(tg):.2f})")
    # the whole process, exit included (as for torch); the child's own clock stops at the paint
    print(f"  of which to paint : median {statistics.median(painted):.2f} s  (the child's clock, from its "
          f"first line; interpreter start and exit not in it)")
    print(f"ratio (pairwise)    : median {statistics.median(ratios):.2f}  (min {min(ratios):.2f}, "
          f"max {max(ratios):.2f}, n={a.repeats})")


if __name__ == "__main__":
    main()
