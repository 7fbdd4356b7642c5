"""Does orbiting the splat viewer starve training? Steps/s of a splat run trained in the app's
worker while the viewer is idle vs orbited continuously (a QTimer sends the canvas a left-button
drag move every 16 ms, as Qt delivers a real drag), with the viewer's cap on redraws and drag
moves on (as shipped) and off.

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" python bench/viewer_orbit.py [--window 8] [--pairs 4]

Each setting trains one run (default splat settings: 2000 Gaussians at the start, a checkpoint
every 50 steps so the viewer also reloads the scene as it does while you watch) and alternates
idle and orbit windows of ``--window`` seconds, ``--pairs`` times; steps/s per window come from the
PROGRESS events. Alternating inside one run cancels the drift of whatever else loads the machine
(a shared machine swings steps/s by 2x between minutes). Goal: orbit / idle >= 0.9.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from PySide6.QtCore import QEvent, QPointF, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from genstudio.core import events as ev  # noqa: E402
from genstudio.core import jobs  # noqa: E402
from genstudio.qt.main_window import MainWindow  # noqa: E402
from genstudio.qt.shot import scratch_window, settle, wait_until  # noqa: E402


class Drag:
    """A left-button drag over a widget, side to side, one move per timer tick (real Qt events)."""

    def __init__(self, widget, interval_ms: int = 16) -> None:
        self.widget, self.tick = widget, 0
        self.timer = QTimer(interval=interval_ms)
        self.timer.timeout.connect(self.move)

    def send(self, kind: QEvent.Type, x: float, y: float, buttons: Qt.MouseButton) -> None:
        pos = QPointF(x, y)
        QApplication.sendEvent(self.widget, QMouseEvent(kind, pos, self.widget.mapToGlobal(pos), Qt.LeftButton,
                                                        buttons, Qt.NoModifier))

    def centre(self) -> tuple[float, float]:
        return self.widget.width() / 2, self.widget.height() / 2

    def start(self) -> None:
        self.send(QEvent.MouseButtonPress, *self.centre(), Qt.LeftButton)
        self.timer.start()

    def move(self) -> None:
        self.tick += 1
        x, y = self.centre()
        self.send(QEvent.MouseMove, x + 0.4 * x * math.sin(self.tick / 30), y, Qt.LeftButton)

    def stop(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self.send(QEvent.MouseButtonRelease, *self.centre(), Qt.NoButton)


def one_setting(w: MainWindow, capped: bool, window: float, pairs: int, dataset: str) -> dict[str, list[float]]:
    """Train one run, alternating idle / orbit windows; per window: steps/s, frames/s, handled moves/s."""
    p = w.panels["splats"]
    p.busy_fps = type(p).busy_fps if capped else 0.0
    run = jobs.create_run(w.store, jobs.TrainSpec("splat", dataset, steps=10**6, sample_every=0,
                                                  checkpoint_every=50))
    stamps: list[tuple[float, int]] = []
    unsubscribe = w.bus.subscribe(lambda e: stamps.append((time.perf_counter(), e.data["done"]))
                                  if e.run_id == run.id else None, ev.PROGRESS)
    drag = Drag(p.canvas.native)
    w.resume_run(run)
    wait_until(lambda: any(d >= 10 for _, d in stamps), timeout=120, poll_ms=20)
    out: dict[str, list[float]] = {k: [] for k in ("idle", "orbit", "idle fps", "orbit fps", "orbit moves")}
    for _ in range(pairs):
        for case in ("idle", "orbit"):
            if case == "orbit":
                drag.start()
            draws, moves, n0, t0 = p.canvas.draws, p.canvas.moves, len(stamps), time.perf_counter()
            settle(int(window * 1000))
            drag.stop()
            (ta, da), (tb, db) = stamps[n0], stamps[-1]
            dt = time.perf_counter() - t0
            out[case].append((db - da) / (tb - ta))
            out[f"{case} fps"].append((p.canvas.draws - draws) / dt)
            if case == "orbit":
                out["orbit moves"].append((p.canvas.moves - moves) / dt)
    unsubscribe()
    w.stop_training()
    wait_until(lambda: not w.job_running("train"), timeout=120, poll_ms=20)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=float, default=8.0, help="seconds per idle / orbit window")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--data", default="scene:primitives")
    a = ap.parse_args()
    with scratch_window((1600, 1000)) as w:
        w.docks["splats"].raise_()
        p = w.panels["splats"]
        if p.canvas is None:
            sys.exit("no GL context: run under xvfb-run with QT_QPA_PLATFORM=xcb")
        print(f"splat on {a.data}, cores={os.cpu_count()}, canvas {tuple(p.canvas.size)}, {a.pairs} x "
              f"({a.window:g} s idle, {a.window:g} s orbit) per setting; medians over the windows", flush=True)
        for capped in (True, False):
            r = one_setting(w, capped, a.window, a.pairs, a.data)
            med = {k: statistics.median(v) for k, v in r.items()}
            ratios = [o / i for o, i in zip(r["orbit"], r["idle"])]
            name = f"cap on ({type(p).busy_fps:g} fps, frames <= {100 * type(p).busy_share:g} % of the time)" \
                if capped else "cap off"
            print(f"{name}:\n  idle  {med['idle']:6.2f} steps/s (viewer {med['idle fps']:4.1f} frames/s)\n"
                  f"  orbit {med['orbit']:6.2f} steps/s (viewer {med['orbit fps']:4.1f} frames/s, "
                  f"{med['orbit moves']:4.1f} drag moves/s handled of ~60 sent)\n"
                  f"  ratio orbit / idle {med['orbit'] / med['idle']:.3f} (per pair: "
                  f"{', '.join(f'{x:.2f}' for x in ratios)})", flush=True)


if __name__ == "__main__":
    main()
