"""What `genstudio sample` adds to a sampling loop: ``jobs.sample`` (Control checks, SAMPLE_STATE
events, CPU copies, the PNG + NPZ it writes) against a bare loop over the same plugin's sampler,
same net, same process, one torch thread, in turn (bare, job, job with trajectory) several times.

    python bench/bench_sample_overhead.py [--steps 1000] [--n 400] [--repeats 5]

The run is a 2-D DDPM trained for a few steps (the net's cost does not depend on its weights).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from genstudio.core import jobs
from genstudio.core.runs import RunStore


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1000, help="ancestral DDPM steps (T)")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        store = RunStore(d)
        run = jobs.create_run(store, jobs.TrainSpec("ddpm", "8gaussians", steps=20, sample_every=0,
                                                    checkpoint_every=0, overrides=[f"timesteps={a.steps}"]))
        for _ in jobs.train(run):
            pass
        model, _, _ = jobs.load_model(run)

        def bare() -> float:
            t = time.perf_counter()
            with torch.no_grad():
                for _ in model.sample(a.n, seed=0, sampler="ddpm"):
                    pass
            return time.perf_counter() - t

        def job(keep: bool) -> float:
            t = time.perf_counter()
            for _ in jobs.sample(run, n=a.n, seed=0, sampler="ddpm", model=model, keep_states=keep):
                pass
            return time.perf_counter() - t

        bare()  # warm-up
        rows: dict[str, list[float]] = {"bare": [], "job": [], "job+trajectory": []}
        for _ in range(a.repeats):
            rows["bare"].append(bare())
            rows["job"].append(job(False))
            rows["job+trajectory"].append(job(True))
    b = rows["bare"]
    print(f"2-D DDPM, {a.steps} ancestral steps, n={a.n}, 1 torch thread, {a.repeats} repeats (medians)")
    for name, ts in rows.items():
        ratio = statistics.median([t / x for t, x in zip(ts, b, strict=True)])
        print(f"{name:16s}: {statistics.median(ts):7.3f} s   ratio to bare {ratio:6.3f}")


if __name__ == "__main__":
    main()
