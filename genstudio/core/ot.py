"""Optimal transport between point sets, through POT (Python Optimal Transport), never a solver of
our own: exact OT (network simplex), entropic Sinkhorn in the log domain, unbalanced OT, sliced
Wasserstein, the closed form between Gaussians and McCann's displacement interpolation.

Inputs are ``(n, d)`` tensors or arrays (1-D input is ``(n, 1)``), optional weights (uniform when
None, normalised otherwise); outputs are floats and numpy arrays (float64).

Costs: ``p=1`` is the Euclidean cost (W1 = <P, C>), ``p=2`` the squared Euclidean cost
(W2 = sqrt <P, C>). ``OTResult.cost`` is always <P, C>, ``OTResult.distance`` its p-th root.

Entropic epsilon: ``eps`` is **relative to the cost scale** by default: the regulariser is
``eps * max(C)``, so one eps blurs a plan equally at any data scale (the explorer's slider). With
``relative=False`` it is the absolute ``reg`` POT takes. Reported Sinkhorn costs are the transport
part <P_eps, C> (no entropy term), which falls to the exact cost as eps -> 0.

Equal-size uniform sets (OT-CFM's minibatch coupling, the ``w2`` metric): the exact plan is a
permutation. :func:`assignment` solves it by scipy's ``linear_sum_assignment`` below
``ASSIGNMENT_MAX`` points and POT's ``emd`` from there on: measured on 2 busy CPU cores (noise vs
8 Gaussians / digits, bench/ot_bench.py), the assignment solver is 1.7x faster at n = 256, POT 1.9x
faster at n = 1024 in 2-D (675 vs 1262 ms) and level with it at 64-D (1.58 vs 1.54 s).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genstudio.core.metrics.functional import as_array, frechet_distance


def _pot() -> Any:
    """POT, imported at first use: it loads scikit-learn and networkx (~1 s), which every process
    importing a plugin that *may* solve OT (the GAN family, the window's registry) would pay."""
    import ot

    return ot


ASSIGNMENT_MAX = 512  # below this many points scipy's assignment beats POT's network simplex (measured)
METHODS = ("exact", "sinkhorn", "unbalanced")


@dataclass(frozen=True)
class OTResult:
    """A transport plan and what it costs. ``plan[i, j]`` is the mass moved from x_i to y_j."""

    plan: np.ndarray
    cost: float  # <P, C>
    p: int
    method: str
    eps: float = 0.0  # the absolute regulariser used (0 for exact)

    @property
    def distance(self) -> float:
        """<P, C> ** (1/p): W1 or W2 for an exact plan."""
        return max(self.cost, 0.0) ** (1.0 / self.p)


def weights(w: Any, n: int) -> np.ndarray:
    """Uniform 1/n when ``w`` is None, else ``w`` normalised to sum 1 (must be >= 0, length n)."""
    if w is None:
        return np.full(n, 1.0 / n)
    a = np.asarray(w.detach().cpu().numpy() if hasattr(w, "detach") else w, np.float64).ravel()
    if len(a) != n or (a < 0).any() or a.sum() <= 0:
        raise ValueError(f"weights must be {n} non-negative numbers with a positive sum")
    return a / a.sum()


def cost_matrix(x: Any, y: Any, p: int = 2) -> np.ndarray:
    """|x_i - y_j|^p for p = 1 (Euclidean) or p = 2 (squared Euclidean)."""
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    a, b = as_array(x), as_array(y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two sets have different dimensions ({a.shape[1]} and {b.shape[1]})")
    return _pot().dist(a, b, metric="sqeuclidean" if p == 2 else "euclidean")


def _regulariser(cost: np.ndarray, eps: float, relative: bool) -> float:
    if eps <= 0:
        raise ValueError(f"epsilon must be > 0, got {eps}")
    scale = float(cost.max()) if relative else 1.0
    return eps * (scale if scale > 0 else 1.0)


def exact(x: Any, y: Any, a: Any = None, b: Any = None, p: int = 2) -> OTResult:
    """Exact OT plan (POT's network simplex, ``ot.emd``) between weighted or uniform sets."""
    c = cost_matrix(x, y, p)
    plan = _pot().emd(weights(a, c.shape[0]), weights(b, c.shape[1]), c, numItermax=10_000_000)
    return OTResult(plan, float((plan * c).sum()), p, "exact")


def wasserstein(x: Any, y: Any, a: Any = None, b: Any = None, p: int = 2) -> float:
    """Exact W_p (p = 1 or 2) between two weighted or uniform sets (``ot.emd2``)."""
    c = cost_matrix(x, y, p)
    val = float(_pot().emd2(weights(a, c.shape[0]), weights(b, c.shape[1]), c, numItermax=10_000_000))
    return max(val, 0.0) ** (1.0 / p)


def w1(x: Any, y: Any, a: Any = None, b: Any = None) -> float:
    return wasserstein(x, y, a, b, p=1)


def w2(x: Any, y: Any, a: Any = None, b: Any = None) -> float:
    return wasserstein(x, y, a, b, p=2)


def assignment(x: Any = None, y: Any = None, *, cost: np.ndarray | None = None) -> np.ndarray:
    """Permutation ``perm`` minimising sum_i |x_i - y_perm[i]|^2 between equal-size sets (or for a
    square ``cost``): the exact uniform plan. Solver chosen by size (module docstring)."""
    c = cost if cost is not None else cost_matrix(x, y, 2)
    n, m = c.shape
    if n != m:
        raise ValueError(f"an assignment needs equal-size sets (got {n} and {m}); subsample the larger")
    if n < ASSIGNMENT_MAX:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(c)
        perm = np.empty(n, dtype=np.int64)
        perm[rows] = cols
        return perm
    plan = _pot().emd([], [], c, numItermax=10_000_000)
    return plan.argmax(1).astype(np.int64)  # a vertex of the assignment polytope: one 1/n per row


def assignment_w2(x: Any, y: Any) -> float:
    """Exact W2 between equal-size uniform sets through :func:`assignment`."""
    c = cost_matrix(x, y, 2)
    perm = assignment(cost=c)
    return math.sqrt(max(float(c[np.arange(len(perm)), perm].mean()), 0.0))


def sinkhorn(x: Any, y: Any, eps: float = 0.01, a: Any = None, b: Any = None, p: int = 2, *,
             relative: bool = True, max_iter: int = 10_000, tol: float = 1e-6) -> OTResult:
    """Entropic OT plan by log-domain Sinkhorn (``ot.sinkhorn(method="sinkhorn_log")``, stable
    for small eps). ``eps`` is relative to max(C) unless ``relative=False`` (module docstring).
    ``tol`` bounds the marginal error; iterations grow like 1/eps (about 4000 at eps = 1e-3)."""
    c = cost_matrix(x, y, p)
    reg = _regulariser(c, eps, relative)
    plan = _pot().sinkhorn(weights(a, c.shape[0]), weights(b, c.shape[1]), c, reg, method="sinkhorn_log",
                       numItermax=max_iter, stopThr=tol, warn=False)
    return OTResult(plan, float((plan * c).sum()), p, "sinkhorn", reg)


def unbalanced(x: Any, y: Any, reg_m: float = 1.0, eps: float | None = 0.01, a: Any = None, b: Any = None,
               p: int = 2, *, relative: bool = True, max_iter: int = 10_000) -> OTResult:
    """Unbalanced OT: the marginals are only penalised (KL with weight ``reg_m``, relative to the
    cost scale like eps when ``relative``), so mass may be created or destroyed where moving it
    costs more. ``eps`` > 0: entropic, stabilised Sinkhorn (``sinkhorn_unbalanced``); None:
    no entropy, majorisation-minimisation (``mm_unbalanced``). reg_m -> inf gives balanced OT."""
    c = cost_matrix(x, y, p)
    scale = float(c.max()) if relative and c.max() > 0 else 1.0
    ua, ub = weights(a, c.shape[0]), weights(b, c.shape[1])
    if eps is None:
        plan = _pot().unbalanced.mm_unbalanced(ua, ub, c, reg_m * scale, div="kl", numItermax=max_iter)
        return OTResult(plan, float((plan * c).sum()), p, "unbalanced")
    reg = _regulariser(c, eps, relative)
    plan = _pot().unbalanced.sinkhorn_unbalanced(ua, ub, c, reg, reg_m * scale, method="sinkhorn_stabilized",
                                             numItermax=max_iter, stopThr=1e-6)
    return OTResult(plan, float((plan * c).sum()), p, "unbalanced", reg)


def sliced(x: Any, y: Any, a: Any = None, b: Any = None, n_projections: int = 200, p: int = 2,
           seed: int = 0) -> float:
    """Sliced W_p (mean over random directions of the 1-D W_p^p, then the p-th root), seeded; it
    costs O(n log n) per direction, so it scales to high dimensions and large n."""
    xa, yb = as_array(x), as_array(y)
    return float(_pot().sliced_wasserstein_distance(xa, yb, weights(a, len(xa)), weights(b, len(yb)),
                                                n_projections=n_projections, p=p, seed=seed))


def gaussian_w2(mu1: Any, cov1: Any, mu2: Any, cov2: Any) -> float:
    """Closed-form W2 between N(mu1, cov1) and N(mu2, cov2): the square root of the project's
    Fréchet distance (which is W2^2 between Gaussians)."""
    return math.sqrt(frechet_distance(mu1, cov1, mu2, cov2))


def solve(method: str, x: Any, y: Any, eps: float = 0.01, reg_m: float = 1.0, p: int = 2,
          max_iter: int = 10_000) -> OTResult:
    """One of METHODS by name (what the explorer's method box takes)."""
    if method == "exact":
        return exact(x, y, p=p)
    if method == "sinkhorn":
        return sinkhorn(x, y, eps, p=p, max_iter=max_iter)
    if method == "unbalanced":
        return unbalanced(x, y, reg_m, eps, p=p, max_iter=max_iter)
    raise ValueError(f"unknown OT method {method!r}; known: {', '.join(METHODS)}")


def report(x: Any, y: Any, eps: float = 0.01, seed: int = 0) -> dict[str, float]:
    """The explorer's and ``genstudio ot``'s numbers: exact W1 and W2, the Sinkhorn transport cost
    at ``eps`` (relative) as a distance comparable with W2, and sliced W2."""
    return {"w1": w1(x, y), "w2": w2(x, y), "sinkhorn": sinkhorn(x, y, eps).distance,
            "sliced": sliced(x, y, seed=seed)}


# -- plans as pictures ------------------------------------------------------------------------
def plan_pairs(plan: np.ndarray, rel_tol: float = 1e-9, top: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (i, j, mass) of the plan's entries above ``rel_tol`` x its largest one, heaviest first;
    ``top`` keeps only that many (drawing a 10k-line plan shows nothing)."""
    flat = plan.ravel()
    keep = np.flatnonzero(flat > rel_tol * flat.max()) if flat.size and flat.max() > 0 else np.array([], int)
    if top is not None and len(keep) > top:
        keep = keep[np.argpartition(flat[keep], -top)[-top:]]
    keep = keep[np.argsort(-flat[keep], kind="stable")]
    i, j = np.divmod(keep, plan.shape[1])
    return i, j, flat[keep]


def plan_entropy(plan: np.ndarray) -> float:
    """Shannon entropy (nats) of the plan as a distribution over pairs: log n for a permutation of
    n points, up to log(n m) for the independent coupling."""
    q = plan.ravel() / plan.sum()
    q = q[q > 0]
    return float(-(q * np.log(q)).sum())


def displacement(x: Any, y: Any, plan: np.ndarray, t: float, rel_tol: float = 1e-9, top: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """McCann's displacement interpolation at time t in [0, 1]: one point (1 - t) x_i + t y_j of
    mass P_ij per pair of the plan. For a permutation plan (uniform equal-size exact OT) these are
    the n points x_i moving straight to y_perm(i); ``top`` keeps the heaviest pairs of a blurred
    plan. Returns (points, masses)."""
    xa, yb = as_array(x), as_array(y)
    i, j, m = plan_pairs(plan, rel_tol, top)
    return (1.0 - t) * xa[i] + t * yb[j], m


def interpolation_frames(x: Any, y: Any, plan: np.ndarray, frames: int = 24, top: int | None = None
                         ) -> list[np.ndarray]:
    """The displacement interpolation's points at ``frames`` equally spaced t in [0, 1] (ends in)."""
    return [displacement(x, y, plan, float(t), top=top)[0] for t in np.linspace(0.0, 1.0, max(frames, 2))]


def interpolation_images(x: Any, y: Any, plan: np.ndarray, frames: int = 24, size: int = 320,
                         lim: float | None = None, top: int | None = None) -> list[np.ndarray]:
    """RGB frames of the displacement interpolation for a GIF/MP4: A and B faint, the moving
    points bright, t written in the corner (``imaging.save_animation`` writes them)."""
    from genstudio.core.imaging import _label, data_lim, scatter_image

    xa, yb = as_array(x), as_array(y)
    lim = lim if lim is not None else data_lim(np.concatenate([xa, yb]))
    r = max(1.5, size / 160)
    base = np.maximum(scatter_image(xa, size, lim, (50, 80, 130), r), scatter_image(yb, size, lim, (130, 90, 50), r))
    ts = np.linspace(0.0, 1.0, max(frames, 2))
    return [_label(np.maximum(base, scatter_image(pts, size, lim, (120, 230, 140), r)), f"t = {t:.2f}")
            for t, pts in zip(ts, interpolation_frames(xa, yb, plan, frames, top), strict=True)]


# -- point sets by name ------------------------------------------------------------------------
RUN_PREFIX = "run:"


def points_source(name: str) -> str:
    """'' if ``name`` names a 2-D point source (a built-in 2-D dataset or ``run:RUN``), else why not."""
    if name.startswith(RUN_PREFIX):
        return "" if name[len(RUN_PREFIX):] else "run: needs a run id"
    from genstudio.core.data import UnknownDataset, get_dataset

    try:
        kind = get_dataset(name).spec.kind
    except UnknownDataset as e:
        return str(e.args[0])
    return "" if kind == "points2d" else f"dataset {name!r} is {kind}, not 2-D points"


def dataset_points(name: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` reproducible points of a built-in 2-D dataset."""
    from genstudio.core.data import get_dataset

    why = points_source(name)
    if why:
        raise ValueError(why)
    return get_dataset(name).fixed(n, seed)[0].double().numpy()


def run_points(run: Any, n: int, seed: int = 0, control: Any = None) -> Iterator[Any]:
    """Draw ``n`` samples from a 2-D run's newest checkpoint (a generator: yields each sampling
    state, checks ``control`` between them, returns the (n, 2) array). Writes nothing to the run."""
    import torch

    from genstudio.core.jobs import load_model

    model, ds, _ = load_model(run)
    if ds.spec.kind != "points2d":
        raise ValueError(f"run {run.id} is trained on {ds.spec.kind} data, not 2-D points")
    last = None
    with torch.no_grad():
        for last in model.sample(n, seed=seed, every=10**9):
            if control is not None:
                control.check()
            yield last
    if last is None:
        raise RuntimeError("the sampler produced no state")
    return last.x.detach().cpu().double().numpy().reshape(n, -1)


def drain(gen: Iterator[Any]) -> Any:
    """Run a generator to its end and return its return value (for callers without a worker)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


__all__: Sequence[str] = (
    "ASSIGNMENT_MAX", "METHODS", "OTResult", "assignment", "assignment_w2", "cost_matrix", "dataset_points",
    "displacement", "exact", "gaussian_w2", "interpolation_frames", "interpolation_images", "plan_entropy", "plan_pairs",
    "points_source", "report", "run_points", "sinkhorn", "sliced", "solve", "unbalanced",
    "w1", "w2", "wasserstein", "weights",
)
