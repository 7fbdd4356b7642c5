"""Does orbiting the splat viewer starve training? Steps/s of a splat run trained in the app's
worker with the viewer idle vs orbiting continuously (a QTimer turns the turntable every 16 ms, as
a mouse drag would), with the viewer's redraw cap on (as shipped) and off.

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" python bench/viewer_orbit.py [--steps 150]

Each case trains a fresh run (default splat settings: 2000 Gaussians, a checkpoint every 50 steps
so the viewer also reloads the scene as it does while you watch) and times the steps after the
first 10 (start-up excluded) from the PROGRESS events. Cases are interleaved ``--repeats`` times
and the median is printed: other processes on the machine add noise. Goal: orbit / idle >= 0.9.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from PySide6.QtCore import QTimer  # noqa: E402

from genstudio.core import events as ev  # noqa: E402
from genstudio.core import jobs  # noqa: E402
from genstudio.core.runs import RunStore  # noqa: E402
from genstudio.qt.app import create_app  # noqa: E402
from genstudio.qt.main_window import MainWindow  # noqa: E402
from genstudio.qt.shot import wait_until  # noqa: E402

CASES = ("idle", "orbit", "orbit, no cap")


def one_case(w: MainWindow, case: str, steps: int, dataset: str) -> tuple[float, float, float]:
    """Train one run under ``case``; returns (steps/s after step 10, viewer frames/s meanwhile,
    the viewer's smoothed cost of one frame in ms)."""
    p = w.panels["splats"]
    p.busy_fps = 0.0 if case == "orbit, no cap" else type(p).busy_fps
    run = jobs.create_run(w.store, jobs.TrainSpec("splat", dataset, steps=steps, sample_every=0,
                                                  checkpoint_every=50))
    stamps: list[tuple[float, int]] = []
    unsubscribe = w.bus.subscribe(lambda e: stamps.append((time.perf_counter(), e.data["done"]))
                                  if e.run_id == run.id else None, ev.PROGRESS)
    orbit = QTimer(interval=16)
    tt = p.cameras["turntable"]
    orbit.timeout.connect(lambda: setattr(tt, "azimuth", tt.azimuth + 2.0))
    w.resume_run(run)
    wait_until(lambda: any(d >= 10 for _, d in stamps), timeout=120, poll_ms=20)
    draws0, t0 = p.canvas.draws, time.perf_counter()
    if case != "idle":
        orbit.start()
    wait_until(lambda: not w.job_running("train"), timeout=600, poll_ms=20)
    orbit.stop()
    fps = (p.canvas.draws - draws0) / (time.perf_counter() - t0)
    unsubscribe()
    (ta, da), (tb, db) = next(s for s in stamps if s[1] >= 10), stamps[-1]
    return (db - da) / (tb - ta), fps, 1e3 * p.canvas.draw_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data", default="scene:primitives")
    a = ap.parse_args()
    create_app()
    with tempfile.TemporaryDirectory() as tmp:
        w = MainWindow(store=RunStore(Path(tmp) / "data"), settings_path=Path(tmp) / "s.ini", restore=False)
        w.resize(1600, 1000)
        w.show()
        w.docks["splats"].raise_()
        p = w.panels["splats"]
        if p.canvas is None:
            sys.exit("no GL context: run under xvfb-run with QT_QPA_PLATFORM=xcb")
        results: dict[str, list[tuple[float, float, float]]] = {c: [] for c in CASES}
        for r in range(a.repeats):
            for case in CASES:
                results[case].append(one_case(w, case, a.steps, a.data))
                rate, fps, ms = results[case][-1]
                print(f"  repeat {r + 1} {case:>14}: {rate:6.2f} steps/s, viewer {fps:5.1f} frames/s, "
                      f"{ms:6.1f} ms a frame", flush=True)
        w.close()
    med = {c: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for c, v in results.items()}
    print(f"splat on {a.data}, {a.steps} steps, cores={os.cpu_count()}, canvas {p.canvas.size}, "
          f"redraw cap {type(p).busy_fps:g} fps while training")
    for c in CASES:
        print(f"{c:>14}: {med[c][0]:6.2f} steps/s   viewer {med[c][1]:5.1f} frames/s   "
              f"ratio vs idle {med[c][0] / med['idle'][0]:.3f}")


if __name__ == "__main__":
    main()
