"""DDPM sample quality after a fixed training budget, next to the floor of real-vs-real data.

    python bench/bench_ddpm_quality.py [--part 2d|digits|all] [--steps2d 3000] [--steps-digits 2500]
                                       [--set2d key=value ...] [--set-digits key=value ...] [--threads 1]

8gaussians: MMD^2 (RBF, one number per bandwidth) and energy distance between 2000 samples and 2000
fresh data points, for DDPM ancestral (all T steps) and DDIM (50 steps); the "floor" row compares
two fresh draws of data, i.e. what a perfect model would score at this sample size.

digits (8x8): 500 samples (DDIM 50 and DDPM respaced to 100 steps) scored by
  * nearest-neighbour L2 distance to the 1797 training images (the floor: each real image to its
    nearest *other* real image; much smaller than the floor would mean copying),
  * a scikit-learn logistic-regression classifier trained on all real digits: mean max-probability
    on the samples (floor: 5-fold cross-validated confidence on real digits) and the entropy of the
    predicted labels in bits (log2 10 = 3.32 when all ten digits appear equally).
Each part is meant to stay under ~3 minutes on one CPU thread.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin  # noqa: E402

from genstudio.core.config import apply_overrides  # noqa: E402
from genstudio.core.data import get_dataset  # noqa: E402
from genstudio.core.metrics import energy_distance, mmd_rbf  # noqa: E402
from genstudio.core.plugin import final_state  # noqa: E402

BANDWIDTHS = (0.1, 0.3, 1.0)


def train(dataset: str, steps: int, overrides: list[str], seed: int = 0) -> tuple[DDPMPlugin, object, float]:
    ds = get_dataset(dataset)
    cfg = apply_overrides(DDPMConfig(), overrides)
    torch.manual_seed(seed)
    model = DDPMPlugin(cfg, "cpu")
    model.setup(ds.spec)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for s in range(1, steps + 1):
        x, y = ds.batch(cfg.batch_size, g)
        m = model.train_step(x, y, s)
        if s % max(1, steps // 5) == 0:
            print(f"  step {s:5d}  loss {m['loss']:.4f}  {time.perf_counter() - t0:6.1f}s", flush=True)
    return model, ds, time.perf_counter() - t0


def sample(model: DDPMPlugin, n: int, sampler: str, steps: int | None) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    x = final_state(model.sample(n, seed=123, sampler=sampler, steps=steps)).x
    return x, time.perf_counter() - t0


def row2d(name: str, x: torch.Tensor, ref: torch.Tensor, secs: float | None = None) -> None:
    mmds = "  ".join(f"{mmd_rbf(x, ref, [h]):9.5f}" for h in BANDWIDTHS)
    extra = f"  ({secs:.1f}s)" if secs is not None else ""
    print(f"  {name:<22} {mmds}   {energy_distance(x, ref):9.5f}{extra}")


def bench_2d(steps: int, overrides: list[str]) -> None:
    print(f"== DDPM on 8gaussians, {steps} steps {' '.join(overrides)}")
    model, ds, secs = train("8gaussians", steps, overrides)
    print(f"  trained in {secs:.1f}s ({steps / secs:.0f} steps/s, batch {model.config.batch_size})")
    ref = ds.fixed(2000, seed=1001)[0]
    head = "  ".join(f"MMD h={h:<4}" for h in BANDWIDTHS)
    print(f"  {'':<22} {head}   energy")
    row2d("floor (data vs data)", ds.fixed(2000, seed=1002)[0], ref)
    x, s = sample(model, 2000, "ddpm", None)
    row2d(f"DDPM ({model.sched.T} steps)", x, ref, s)
    x, s = sample(model, 2000, "ddim", 50)
    row2d("DDIM (50 steps)", x, ref, s)
    row2d("N(0, I) (no model)", torch.randn(2000, 2, generator=torch.Generator().manual_seed(5)), ref)


def digit_scores(x: np.ndarray, train_x: np.ndarray, clf, leave_one_out: bool = False,
                 probs: np.ndarray | None = None) -> tuple[float, float, float]:
    d = ((x[:, None, :] - train_x[None]) ** 2).sum(-1)
    if leave_one_out:
        np.fill_diagonal(d, np.inf)
    nn = float(np.sqrt(d.min(1)).mean())
    p = clf.predict_proba(x) if probs is None else probs
    conf = float(p.max(1).mean())
    counts = np.bincount(p.argmax(1), minlength=10) / len(p)
    ent = float(-(counts[counts > 0] * np.log2(counts[counts > 0])).sum())
    return nn, conf, ent


def bench_digits(steps: int, overrides: list[str]) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    print(f"== DDPM on digits (8x8), {steps} steps {' '.join(overrides)}")
    model, ds, secs = train("digits", steps, overrides)
    print(f"  trained in {secs:.1f}s ({steps / secs:.1f} steps/s, batch {model.config.batch_size})")
    real = ds.x.flatten(1).numpy().astype(np.float64)
    labels = ds.y.numpy()
    clf = LogisticRegression(max_iter=3000).fit(real, labels)
    cv = cross_val_predict(LogisticRegression(max_iter=3000), real, labels, cv=5, method="predict_proba")
    print(f"  {'':<24} {'NN dist':>8} {'LR conf':>8} {'label H':>8}")
    nn, conf, ent = digit_scores(real, real, clf, leave_one_out=True, probs=cv)
    print(f"  {'floor (real digits)':<24} {nn:8.3f} {conf:8.3f} {ent:8.3f}")
    for name, sampler, st in (("DDIM (50 steps)", "ddim", 50), ("DDPM (respaced 100)", "ddpm", 100)):
        x, s = sample(model, 500, sampler, st)
        nn, conf, ent = digit_scores(x.flatten(1).numpy().astype(np.float64), real, clf)
        print(f"  {name:<24} {nn:8.3f} {conf:8.3f} {ent:8.3f}  ({s:.1f}s)")
    noise = torch.rand(500, 64, generator=torch.Generator().manual_seed(5)).numpy() * 2 - 1
    nn, conf, ent = digit_scores(noise.astype(np.float64), real, clf)
    print(f"  {'uniform noise (no model)':<24} {nn:8.3f} {conf:8.3f} {ent:8.3f}")
    print(f"  (label entropy of a uniform spread over 10 digits: {math.log2(10):.3f} bits)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("2d", "digits", "all"), default="all")
    ap.add_argument("--steps2d", type=int, default=3000)
    ap.add_argument("--steps-digits", type=int, default=2500)
    ap.add_argument("--set2d", nargs="*", default=[], help="DDPMConfig overrides for the 2-D run")
    ap.add_argument("--set-digits", nargs="*", default=["batch_size=128"],
                    help="DDPMConfig overrides for the digits run (default batch_size=128: ~60 ms/step on one thread)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("2d", "all"):
        bench_2d(args.steps2d, args.set2d)
    if args.part in ("digits", "all"):
        bench_digits(args.steps_digits, args.set_digits)


if __name__ == "__main__":
    main()
