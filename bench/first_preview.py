"""Time from Start to the first preview in the GUI, with the window's defaults (the default
plugin on 8 Gaussians, the Settings panel's run options): press Start, then wait until the
training monitor shows a sample preview (it came through the job's SAMPLES event and the bridge).

Prints the seconds to the job's "preview" stage (sampling begins), to the preview on screen,
the step it was drawn at, and the run's planned steps.

    QT_QPA_PLATFORM=offscreen python bench/first_preview.py [--data 8gaussians] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from genstudio.core import events as ev  # noqa: E402
from genstudio.core.runs import RunStore  # noqa: E402
from genstudio.qt.app import create_app  # noqa: E402
from genstudio.qt.main_window import MainWindow  # noqa: E402
from genstudio.qt.shot import settle, wait_until  # noqa: E402


def first_preview(data: str, timeout: float) -> dict[str, float]:
    """One measurement in a fresh window and a throw-away data folder."""
    with tempfile.TemporaryDirectory(prefix="genstudio-bench-") as tmp:
        w = MainWindow(store=RunStore(Path(tmp) / "data"), settings_path=Path(tmp) / "s.ini", restore=False)
        w.resize(1600, 1000)
        w.show()
        settle(300)
        try:
            if not w.select_dataset(data):
                raise SystemExit(f"dataset {data!r} is not offered for {w.plugin_combo.currentData()}")
            stage: dict[str, float] = {}
            w.bus.subscribe(lambda e: stage.setdefault("t", time.perf_counter()) if e.data.get("stage") == "preview"
                            else None, ev.STAGE)
            training = w.panels["training"]
            t0 = time.perf_counter()
            w.start_button.click()
            run = w.current_run()
            if run is None:
                raise SystemExit("Start did not create a run: " + (w.errors[-1][0] if w.errors else "?"))
            if not wait_until(lambda: bool(training.sample_steps()), timeout=timeout, poll_ms=10):
                raise SystemExit(f"no preview within {timeout:.0f} s")
            t1 = time.perf_counter()
            info = run.info()
            w.stop_training()
            wait_until(lambda: not w.job_running("train"), timeout=60)
            return {"to_stage_s": stage.get("t", float("nan")) - t0, "to_preview_s": t1 - t0,
                    "step": float(training.sample_steps()[0]), "steps": float(info["steps"]),
                    "plugin": info["plugin"]}
        finally:
            w.close()
            w.deleteLater()
            settle(100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="8gaussians")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    create_app()
    for i in range(args.repeat):
        r = first_preview(args.data, args.timeout)
        stage = "n/a (a trainer process: no stage events)" if r["to_stage_s"] != r["to_stage_s"] else \
            f"{r['to_stage_s']:.2f} s"
        print(f"[{i + 1}] {r['plugin']} on {args.data}: Start -> preview stage {stage}, "
              f"-> preview on screen {r['to_preview_s']:.2f} s (drawn at step {r['step']:.0f} of "
              f"{r['steps']:.0f})")


if __name__ == "__main__":
    main()
