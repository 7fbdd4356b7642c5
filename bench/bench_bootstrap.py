"""Bootstrap interval widths vs n for the Fréchet distance and KID (what "± how much" means).

    python bench/bench_bootstrap.py [--dim 64] [--boot 100]

Two Gaussian feature sets with a known population Fréchet distance; for each n prints the estimate,
its finite-n bias against the truth, the bootstrap bias estimate (and the debiased FD - bias), and
the 95% interval width for FD (centered bootstrap) and KID. KID widths shrink like 1/sqrt(n); the FD
bias shrinks like 1/n and its interval faster than 1/sqrt(n) until n >> d.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from genstudio.core.metrics.functional import bootstrap_ci, fid_from_features, kid  # noqa: E402


def kid_full(a: np.ndarray, b: np.ndarray) -> float:
    return kid(a, b, subsets=1, subset_size=len(a))[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--boot", type=int, default=100)
    ap.add_argument("--ns", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    ap.add_argument("--kid-max-n", type=int, default=2000, help="KID bootstraps cost O(n^2 d) each")
    a = ap.parse_args()
    d = a.dim
    shift, scale = 0.1, 1.2
    true_fd = d * shift**2 + d * (1 - math.sqrt(scale)) ** 2
    print(f"d={d}, N(0, I) vs N({shift}, {scale} I): population FD = {true_fd:.4f}; {a.boot} bootstrap resamples")
    print(f"{'n':>6} {'FD':>9} {'FD-true':>8} {'boot.bias':>9} {'FD-bias':>8} {'FD 95% CI':>20} {'width':>7} {'w*sqrt(n)':>9}"
          f" {'KID':>10} {'KID 95% CI':>24} {'width':>9} {'w*sqrt(n)':>9} {'sec':>5}")
    rng = np.random.default_rng(0)
    for n in a.ns:
        t = time.perf_counter()
        f1 = rng.normal(size=(n, d))
        f2 = shift + math.sqrt(scale) * rng.normal(size=(n, d))
        fd = bootstrap_ci(fid_from_features, f1, f2, n_boot=a.boot, seed=1)
        row = (f"{n:>6} {fd.value:>9.4f} {fd.value - true_fd:>8.4f} {fd.bias:>9.4f} {fd.value - fd.bias:>8.4f} "
               f"[{fd.low:>8.4f}, {fd.high:>8.4f}] {fd.high - fd.low:>7.4f} {(fd.high - fd.low) * math.sqrt(n):>9.3f}")
        if n <= a.kid_max_n:
            k = bootstrap_ci(kid_full, f1, f2, n_boot=a.boot, seed=1)
            row += (f" {k.value:>10.5f} [{k.low:>10.5f}, {k.high:>10.5f}] {k.high - k.low:>9.5f}"
                    f" {(k.high - k.low) * math.sqrt(n):>9.4f}")
        else:
            row += f" {'(skipped)':>10} {'':>24} {'':>9} {'':>9}"
        print(row + f" {time.perf_counter() - t:>5.1f}", flush=True)


if __name__ == "__main__":
    main()
