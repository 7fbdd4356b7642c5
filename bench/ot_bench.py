"""Time and agreement of every optimal-transport routine of genstudio.core.ot (POT underneath),
each against an independent route, on 8 Gaussians (A) vs two moons (B):

- exact W2 (POT network simplex) vs scipy's assignment solver; exact W1 vs scipy's linear program
  (small n only: the LP has n^2 variables);
- the minibatch assignment (OT-CFM's pairing, the w2 metric): both solvers at 256 / 1024 on
  N(0, I) noise vs data, which is why core.ot switches at ASSIGNMENT_MAX;
- log-domain Sinkhorn at relative eps vs the exact cost (the entropic bias);
- unbalanced OT with a large marginal penalty vs balanced Sinkhorn at the same eps;
- sliced W2 vs numpy sorting on the same directions (the same number, by another route) and vs
  exact W2 (what slicing loses in 2-D);
- closed-form Gaussian W2 vs exact W2 on samples mapped by the Gaussian OT map.

Exact OT and Sinkhorn need the n x n cost matrix: at n = 10k that is 800 MB and the network
simplex takes minutes, so they run at 1k and 3k (``--big`` adds 10k for the O(n log n) routines).

    python bench/ot_bench.py [--sizes 1000,3000] [--big 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import ot as pot
import torch
from scipy.optimize import linear_sum_assignment

from genstudio.core import ot
from genstudio.core.metrics.functional import sqrt_psd


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[Any, float]:
    """(result, median seconds over ``repeats`` calls)."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, float(np.median(times))


def rel(a: float, b: float) -> str:
    return f"{abs(a - b) / max(abs(b), 1e-300):.1e}"


def sliced_by_sorting(x: np.ndarray, y: np.ndarray, n_proj: int, seed: int) -> float:
    """Sliced W2 by hand on POT's own directions: sort both projections, mean squared gap."""
    proj = pot.sliced.get_random_projections(x.shape[1], n_proj, seed)
    px, py = np.sort(x @ proj, 0), np.sort(y @ proj, 0)
    return math.sqrt(((px - py) ** 2).mean(0).mean())


def w1_vs_linprog(x: np.ndarray, y: np.ndarray) -> tuple[str, int, str, str, str]:
    """Exact W1 against scipy's linear program (m^2 variables, so a small subset)."""
    from scipy.optimize import linprog

    m = len(x)
    cc = ot.cost_matrix(x, y, 1)
    u = np.full(m, 1 / m)
    a_eq = np.vstack([np.kron(np.eye(m), np.ones(m)), np.kron(np.ones(m), np.eye(m))])
    lp, t_lp = timed(lambda: linprog(cc.ravel(), A_eq=a_eq, b_eq=np.concatenate([u, u]), method="highs"))
    v, t = timed(lambda: ot.w1(x, y), 5)
    return ("exact W1 (emd2)", m, f"{t * 1e3:.1f} ms", f"scipy linprog {t_lp:.2f} s", f"rel diff {rel(v, lp.fun)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,3000", help="n for the routines that need the n x n cost")
    ap.add_argument("--big", default="10000", help="extra n for sliced and the Gaussian map (O(n log n))")
    ap.add_argument("--eps", type=float, default=0.01, help="Sinkhorn eps, relative to the largest cost")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(v) for v in args.sizes.split(",") if v]
    big = [int(v) for v in args.big.split(",") if v]
    rows: list[tuple[str, int, str, str, str]] = []  # routine, n, time, independent route (time), agreement

    # the minibatch pairing: which solver is faster where (core.ot.ASSIGNMENT_MAX)
    rng = np.random.default_rng(0)
    for name in ("8gaussians", "digits"):
        from genstudio.core.data import get_dataset

        ds = get_dataset(name)
        for n in (256, 1024):
            data = ds.fixed(n, 3)[0].flatten(1).double().numpy()
            c = ot.cost_matrix(rng.normal(size=data.shape), data)
            (_, cols), t_lsa = timed(lambda c=c: linear_sum_assignment(c), 5)
            plan, t_emd = timed(lambda c=c: pot.emd([], [], c), 5)
            same = c[np.arange(n), cols].sum(), c[np.arange(n), plan.argmax(1)].sum()
            rows.append((f"assignment, noise vs {name}", n, f"emd {t_emd * 1e3:.1f} ms",
                         f"scipy {t_lsa * 1e3:.1f} ms", f"cost rel diff {rel(*same)}"))

    for n in sizes:
        x, y = ot.dataset_points("8gaussians", n, 0), ot.dataset_points("moons", n, 1)
        c = ot.cost_matrix(x, y)
        w2, t = timed(lambda x=x, y=y: ot.w2(x, y))
        (r, cols), t_lsa = timed(lambda c=c: linear_sum_assignment(c))
        rows.append(("exact W2 (emd2)", n, f"{t:.2f} s", f"scipy assignment {t_lsa:.2f} s",
                     f"rel diff {rel(w2, math.sqrt(c[r, cols].mean()))}"))
        w1, t = timed(lambda x=x, y=y: ot.w1(x, y))
        rows.append(("exact W1 (emd2)", n, f"{t:.2f} s", "-", f"W1 {w1:.4f}, W2 {w2:.4f}"))
        sk, t = timed(lambda x=x, y=y: ot.sinkhorn(x, y, args.eps))
        rows.append((f"Sinkhorn log, eps {args.eps:g} rel", n, f"{t:.2f} s", "exact", f"W2 {sk.distance:.4f} vs "
                     f"{w2:.4f} (+{(sk.distance / w2 - 1) * 100:.1f} %)"))
        sk5, t5 = timed(lambda x=x, y=y: ot.sinkhorn(x, y, 0.05))
        rows.append(("Sinkhorn log, eps 0.05 rel", n, f"{t5:.2f} s", "exact",
                     f"W2 {sk5.distance:.4f} (+{(sk5.distance / w2 - 1) * 100:.1f} %)"))
        if n > 1000:  # the stabilised unbalanced solver needs ~10^4 iterations at a large reg_m
            continue
        ub, t = timed(lambda x=x, y=y: ot.unbalanced(x, y, reg_m=100.0, eps=0.05))
        rows.append(("unbalanced, reg_m 100, eps 0.05", n, f"{t:.2f} s", "balanced Sinkhorn eps 0.05",
                     f"cost rel diff {rel(ub.cost, sk5.cost)}, mass {ub.plan.sum():.4f}"))
        ub1, t = timed(lambda x=x, y=y: ot.unbalanced(x, y, reg_m=0.1, eps=0.05))
        rows.append(("unbalanced, reg_m 0.1, eps 0.05", n, f"{t:.2f} s", "-",
                     f"mass moved {ub1.plan.sum():.3f}, cost {ub1.cost:.4f} vs {sk5.cost:.4f}"))
        rows.append(w1_vs_linprog(x[:60], y[:60]))

    for n in sorted(set(sizes[:1] + big)):
        x, y = ot.dataset_points("8gaussians", n, 0), ot.dataset_points("moons", n, 1)
        sw, t = timed(lambda x=x, y=y: ot.sliced(x, y, seed=0), 3)
        ref = sliced_by_sorting(x, y, 200, 0)
        note = f"rel diff {rel(sw, ref)}"
        if n in sizes:
            note += f"; SW2/W2 = {sw / ot.w2(x, y):.3f}"
        rows.append(("sliced W2, 200 directions", n, f"{t * 1e3:.1f} ms", "numpy sort, same directions", note))

    mu1, mu2 = np.zeros(2), np.array([2.0, -1.0])
    c1, c2 = np.array([[1.0, 0.6], [0.6, 0.8]]), np.array([[0.5, -0.2], [-0.2, 1.5]])
    closed, t = timed(lambda: ot.gaussian_w2(mu1, c1, mu2, c2), 5)
    r1 = sqrt_psd(c1)
    a = np.linalg.inv(r1) @ sqrt_psd(r1 @ c2 @ r1) @ np.linalg.inv(r1)
    for n in sorted(set(sizes[:1] + big)):
        xs = np.random.default_rng(1).multivariate_normal(mu1, c1, size=n)
        tx = mu2 + (xs - mu1) @ a.T
        direct = math.sqrt(((xs - tx) ** 2).sum(1).mean())
        note = f"closed {closed:.4f} vs samples {direct:.4f} ({rel(direct, closed)})"
        if n in sizes:
            note += f"; exact OT finds the map: {rel(ot.w2(xs, tx), direct)}"
        rows.append(("Gaussian W2 closed form", n, f"{t * 1e6:.0f} us", "samples under the Gaussian OT map", note))

    head = ("routine", "n", "time", "independent route", "agreement")
    widths = [max(len(str(r[i])) for r in [*rows, head]) for i in range(5)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
