"""GUI responsiveness and training throughput inside the running app.

Measures, in one process:
1. a 10 ms QTimer's real intervals with the window idle (baseline) and while a run trains
   (median, p99, max);
2. training steps/s of that run (from its metrics) vs a bare loop calling ``plugin.train_step``
   with no GUI, run in the same process afterwards.

With ``--steps N`` it counts wall time instead (issue #18's goal): a whole N-step run started with
the Start button and the default run options (previews every 500 steps, the final preview, the
checkpoints), from the click to the "completed" status the window sees (and, for reference, from
its "running" status), against N bare ``train_step`` calls on a fresh model, run just before and just after each GUI run
(their mean: the machine's speed drifts); they alternate ``--repeats`` times and the medians are printed, with the 10 ms timer's p99 during the GUI runs.
The app's default trains the run in a process of its own that the window watches (run option
``own_process``; a warm standby process takes the run, as it would for a user who opened the
window a few seconds earlier); ``--in-window`` trains it in the window's worker thread instead.

    QT_QPA_PLATFORM=offscreen python bench/bench_gui.py [--plugin ddpm] [--data 8gaussians] [--seconds 10]
    QT_QPA_PLATFORM=offscreen python bench/bench_gui.py --steps 3000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402

from genstudio.qt.main_window import MainWindow  # noqa: E402
from genstudio.qt.shot import scratch_window, wait_until  # noqa: E402


def timer_intervals(seconds: float) -> np.ndarray:
    """Intervals (ms) between ticks of a 10 ms timer while the event loop runs for ``seconds``."""
    clock = QElapsedTimer()
    clock.start()
    stamps: list[float] = []
    t = QTimer()
    t.setInterval(10)
    t.timeout.connect(lambda: stamps.append(clock.nsecsElapsed() / 1e6))
    t.start()
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() > end, timeout=seconds + 5, poll_ms=200)
    t.stop()
    return np.diff(np.array(stamps))


def stats(x: np.ndarray) -> str:
    return f"median {np.median(x):6.1f} ms  p99 {np.percentile(x, 99):6.1f} ms  max {x.max():7.1f} ms  (n={len(x)})"


def bare_steps_per_s(window: MainWindow, plugin: str, data: str, seconds: float) -> float:
    from genstudio.core.data import get_dataset

    cls = window.registry.get(plugin)
    ds = get_dataset(data)
    model = cls(cls.info.config_cls(), torch.device("cpu"))
    model.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    n, t0 = 0, None
    while True:
        x, y = ds.batch(model.config.batch_size, g)
        model.train_step(x, y, n + 1)
        n += 1
        if n == 20:
            t0 = time.perf_counter()
        if t0 and time.perf_counter() - t0 > seconds:
            return (n - 20) / (time.perf_counter() - t0)


def bare_wall(window: MainWindow, plugin: str, data: str, steps: int) -> float:
    """Seconds for ``steps`` train_step calls on a fresh model (what a run does, minus everything else)."""
    from genstudio.core.data import get_dataset

    cls = window.registry.get(plugin)
    ds = get_dataset(data)
    model = cls(cls.info.config_cls(), torch.device("cpu"))
    model.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = ds.batch(model.config.batch_size, g)
        model.train_step(x, y, step)
    return time.perf_counter() - t


def headless_wall(window: MainWindow, plugin: str, data: str, steps: int) -> float:
    """Seconds for the same run without a window: ``jobs.train`` in this process, from creating
    the run to its end (its set-up, previews and checkpoints included, as in ``genstudio train``):
    what the run costs by itself, so what is left of the in-GUI gap is the window's."""
    from genstudio.core.jobs import TrainSpec, create_run, train

    t = time.perf_counter()
    run = create_run(window.store, TrainSpec(plugin=plugin, dataset=data, steps=steps, seed=window.seed_spin.value()))
    for _ in train(run):
        pass
    return time.perf_counter() - t


def gui_wall(window: MainWindow, plugin: str, data: str, steps: int) -> tuple[float, float, np.ndarray, float, float]:
    """(seconds from the Start click to "completed", from "running" to "completed", the 10 ms
    timer's intervals meanwhile, seconds of previews, seconds between the trainer writing
    "completed" and the window seeing it) of one ``steps``-step run started with the Start button
    and default run options."""
    from genstudio.core import events as ev

    seen: dict[str, float] = {}
    previews: list[float] = []

    def on(e: ev.Event) -> None:
        if e.kind == ev.STATUS:
            seen.setdefault(e.data.get("status", ""), e.time)
        elif e.kind == ev.SAMPLES and "seconds" in e.data:
            previews.append(float(e.data["seconds"]))

    unsubscribe = window.bus.subscribe(on)
    window.select_plugin(plugin)
    window.select_dataset(data)
    window.steps_spin.setValue(steps)
    clicked = time.time()
    run = window.start_training()
    clock = QElapsedTimer()
    clock.start()
    stamps: list[float] = []
    t = QTimer()
    t.setInterval(10)
    t.timeout.connect(lambda: stamps.append(clock.nsecsElapsed() / 1e6) if "running" in seen else None)
    t.start()
    wait_until(lambda: not window.job_running("train"), timeout=3600, poll_ms=200)
    t.stop()
    unsubscribe()
    written = float(run.info()["updated"])  # the trainer's last write of run.json: "completed"
    return (seen["completed"] - clicked, seen["completed"] - seen["running"], np.diff(np.array(stamps)),
            sum(previews), seen["completed"] - written)


def wall_mode(a: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    own = not a.in_window
    if own:  # the trainer process gets one thread too, like the bare loop
        os.environ["OMP_NUM_THREADS"] = "1"
    gui, running, bare, busy, prev, headless, lag, start = [], [], [], [], [], [], [], []
    with scratch_window((1400, 880)) as w:
        w.panels["settings"].run_form.set_values({"own_process": own})
        timer_intervals(1.0)
        for _ in range(a.repeats):
            if own:  # the window warms a trainer while idle; a user who just opened it waits the same
                wait_until(w.standby.warm, timeout=60, poll_ms=100)  # its imports done: it waits on its stdin
            before = bare_wall(w, a.plugin, a.data, a.steps)
            g, r, iv, ps, seen_late = gui_wall(w, a.plugin, a.data, a.steps)
            gui.append(g)
            lag.append(seen_late)
            start.append(g - r)
            running.append(r)
            busy.append(iv)
            prev.append(ps)
            if own:  # the next standby's imports must not share the cores with the bare loop
                wait_until(w.standby.warm, timeout=60, poll_ms=100)
            # this machine's speed drifts by 10-20 % within a minute: each GUI run is compared with
            # the mean of a bare loop just before it and one just after it
            bare.append((before + bare_wall(w, a.plugin, a.data, a.steps)) / 2)
            headless.append(headless_wall(w, a.plugin, a.data, a.steps))
    ratios = [b / g for g, b in zip(gui, bare, strict=True)]
    ratios_running = [b / r for r, b in zip(running, bare, strict=True)]
    p99 = [float(np.percentile(iv, 99)) for iv in busy]
    print(f"plugin={a.plugin} data={a.data} steps={a.steps} repeats={a.repeats} cores={os.cpu_count()} "
          f"QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']} load={os.getloadavg()[0]:.1f} "
          f"trainer={'its own process (warm standby), watched' if own else 'the window worker thread'}")
    print(f"whole run in the GUI, Start click to completed : median {statistics.median(gui):7.2f} s  "
          f"{[round(x, 2) for x in gui]}")
    print(f"  from its 'running' status                    : median {statistics.median(running):7.2f} s  "
          f"{[round(x, 2) for x in running]}")
    print(f"  of which previews                            : median {statistics.median(prev):7.2f} s")
    print(f"  Start click -> 'running' seen                : median {statistics.median(start) * 1e3:7.1f} ms")
    print(f"  'completed' written -> seen by the window    : median {statistics.median(lag) * 1e3:7.1f} ms  "
          f"{[round(x * 1e3, 1) for x in lag]}")
    print(f"bare loop, same steps, no GUI (before+after)/2 : median {statistics.median(bare):7.2f} s  "
          f"{[round(x, 2) for x in bare]}")
    print(f"in-GUI throughput / bare (wall time from Start): median {statistics.median(ratios):7.3f}  "
          f"{[round(r, 3) for r in ratios]}")
    print(f"  the same from 'running'                      : median {statistics.median(ratios_running):7.3f}  "
          f"{[round(r, 3) for r in ratios_running]}")
    print(f"10 ms timer p99 while training                 : median {statistics.median(p99):7.1f} ms  "
          f"{[round(x, 1) for x in p99]}")
    print(f"the same run headless (jobs.train, no window)  : median {statistics.median(headless):7.2f} s  "
          f"{[round(x, 2) for x in headless]}")
    ratios_headless = [h / g for g, h in zip(gui, headless, strict=True)]
    print(f"in-GUI / headless run (the window's own cost)  : median {statistics.median(ratios_headless):7.3f}  "
          f"{[round(r, 3) for r in ratios_headless]}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--plugin", default="ddpm")
    p.add_argument("--data", default="8gaussians")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=0, help="wall-time mode: whole runs of this many steps")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--in-window", action="store_true",
                   help="wall-time mode: train in the window's worker thread (run option own_process off)")
    a = p.parse_args()
    if a.steps:
        wall_mode(a)
        return
    with scratch_window((1400, 880)) as w:
        w.panels["settings"].run_form.set_values({"own_process": not a.in_window})
        timer_intervals(1.0)  # warm up the event loop and pyqtgraph
        idle = timer_intervals(a.seconds)
        w.select_plugin(a.plugin)
        w.select_dataset(a.data)
        w.steps_spin.setValue(10**6)
        run = w.start_training()
        wait_until(lambda: len(run.metrics()) > 0 or w.panels["training"].curve_points("loss")[0].size > 5, 60)
        busy = timer_intervals(a.seconds)
        rates = w.panels["training"].curve_points("steps_per_s")[1]
        w.stop_training()
        wait_until(lambda: not w.job_running("train"), 60)
        gui_rate = statistics.median(rates[len(rates) // 4:]) if len(rates) > 4 else float("nan")
        torch.set_num_threads(1)
        bare = bare_steps_per_s(w, a.plugin, a.data, a.seconds / 2)
    print(f"plugin={a.plugin} data={a.data} cores={os.cpu_count()} QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}")
    print(f"10 ms timer, idle window    : {stats(idle)}")
    print(f"10 ms timer, while training : {stats(busy)}")
    print(f"training in the GUI         : {gui_rate:8.1f} steps/s (median of logged rates; "
          f"{'worker thread' if a.in_window else 'its own process'})")
    print(f"bare loop, no GUI, 1 thread : {bare:8.1f} steps/s")
    print(f"ratio GUI/bare              : {gui_rate / bare:8.3f}")


if __name__ == "__main__":
    main()
