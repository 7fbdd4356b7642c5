"""DDP scaling on CPU: DDPM on moons with 1 process and with N processes (torchrun, gloo; DDP, and
FSDP with --sharding fsdp), one torch thread each, and the equal-loss check against 1 process on
the N-times batch.

    PYTHONPATH=. python3 bench/bench_ddp.py [--steps 400] [--batch 256] [--nproc 2]

Throughput is read from each run's own metrics (time between its first and last logged step), so
process start-up and torch import are not counted; samples/s = steps/s x batch x processes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from genstudio.core import jobs
from genstudio.core.runs import Run, RunStore

ROOT = Path(__file__).resolve().parents[1]


def rate(run: Run) -> tuple[float, np.ndarray]:
    """(steps/s over the logged span, loss per logged row)."""
    rows = [r for r in run.metrics() if "loss" in r]
    span = rows[-1]["time"] - rows[0]["time"]
    return (rows[-1]["step"] - rows[0]["step"]) / span, np.array([r["loss"] for r in rows])


def one_process(root: Path, steps: int, batch: int, overrides: list[str]) -> Run:
    torch.set_num_threads(1)
    spec = jobs.TrainSpec("ddpm", "moons", steps=steps, overrides=[*overrides, f"batch_size={batch}"],
                          log_every=10, sample_every=0, checkpoint_every=0, preview_steps=2, n_preview=16,
                          device="cpu")
    run = jobs.create_run(RunStore(root), spec)
    for _ in jobs.train(run):
        pass
    return run


def many_processes(root: Path, steps: int, batch: int, nproc: int, overrides: list[str],
                   sharding: str = "ddp") -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENSTUDIO_DATA_DIR": str(root)}
    sets = [a for kv in [*overrides, f"batch_size={batch}"] for a in ("--set", kv)]
    subprocess.run([sys.executable, "-m", "genstudio", "train", "ddpm", "--data", "moons", "--steps", str(steps),
                    "--log-every", "10", "--sample-every", "0", "--checkpoint-every", "0", "--preview-steps", "2",
                    "--n-preview", "16", "--device", "cpu", "--nproc", str(nproc), "--sharding", sharding, *sets],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    (run,) = RunStore(root).list()
    return run


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=256, help="per process")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="DDPM config override")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        r1, l1 = rate(one_process(tmp / "a", a.steps, a.batch, a.set))
        rb, lb = rate(one_process(tmp / "b", a.steps, a.batch * a.nproc, a.set))
        rn, ln = rate(many_processes(tmp / "c", a.steps, a.batch, a.nproc, a.set))
        rf, lf = rate(many_processes(tmp / "d", a.steps, a.batch, a.nproc, a.set, "fsdp"))
    load = os.getloadavg()[0]
    print(f"DDPM on moons, {a.steps} steps, CPU, 1 torch thread per process, {os.cpu_count()} cores "
          f"(load average {load:.1f})")
    print(f"{'setup':<34}{'steps/s':>10}{'samples/s':>12}{'vs 1 proc':>11}")
    base = r1 * a.batch
    for name, r, n in ((f"1 process, batch {a.batch}", r1, a.batch),
                       (f"1 process, batch {a.batch * a.nproc}", rb, a.batch * a.nproc),
                       (f"{a.nproc} processes, batch {a.batch} each", rn, a.batch * a.nproc),
                       (f"{a.nproc} processes FSDP, {a.batch} each", rf, a.batch * a.nproc)):
        print(f"{name:<34}{r:>10.1f}{r * n:>12.0f}{r * n / base:>10.2f}x")
    half = len(ln) // 2
    m_one, m_many = lb[half:].mean(), ln[half:].mean()
    print(f"equal-loss check (mean loss, second half): 1 process on batch {a.batch * a.nproc} {m_one:.4f}, "
          f"{a.nproc} processes {m_many:.4f}, relative gap {abs(m_many - m_one) / m_one:.1%}; FSDP "
          f"{lf[half:].mean():.4f} ({abs(lf[half:].mean() - m_one) / m_one:.1%})")


if __name__ == "__main__":
    main()
