"""Disentanglement metrics for latent codes against known discrete factors (e.g. the sprites
dataset): MIG (Chen et al. 2018), DCI (Eastwood & Williams 2018) and the FactorVAE score (Kim &
Mnih 2018). Pure functions of numpy/torch arrays; ``codes`` is (N, d), ``factors`` (N, K) ints.

Each is ~1 for a code whose dimensions are the factors themselves and ~0 (FactorVAE: chance) for
a code unrelated to them; the tests check both ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def _np(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def discretize(codes: Any, bins: int = 20) -> np.ndarray:
    """Each code dimension cut into ``bins`` equal-width bins (as in disentanglement_lib)."""
    c = _np(codes).astype(np.float64)
    out = np.zeros(c.shape, dtype=np.int64)
    for i in range(c.shape[1]):
        edges = np.histogram(c[:, i], bins)[1]
        out[:, i] = np.digitize(c[:, i], edges[:-1])
    return out


def mutual_info_matrix(codes: Any, factors: Any, bins: int = 20) -> np.ndarray:
    """(d, K) mutual information in nats between each discretised code and each factor."""
    from sklearn.metrics import mutual_info_score

    cd = discretize(codes, bins)
    f = _np(factors).astype(np.int64)
    return np.array([[mutual_info_score(f[:, j], cd[:, i]) for j in range(f.shape[1])]
                     for i in range(cd.shape[1])])


def mig(codes: Any, factors: Any, bins: int = 20) -> dict[str, Any]:
    """Mutual information gap: per factor, (top MI - second MI) / H(factor), averaged.
    Returns {"mig", "per_factor" (K,), "mi" (d, K)}."""
    from sklearn.metrics import mutual_info_score

    f = _np(factors).astype(np.int64)
    mi = mutual_info_matrix(codes, f, bins)
    ent = np.array([mutual_info_score(f[:, j], f[:, j]) for j in range(f.shape[1])])
    top = np.sort(mi, axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros_like(top[0])
    gaps = np.where(ent > 0, (top[0] - second) / np.maximum(ent, 1e-12), 0.0)
    return {"mig": float(gaps.mean()), "per_factor": gaps, "mi": mi}


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    p = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis) / np.log(max(base, 2))


def dci(codes: Any, factors: Any, train_frac: float = 0.8, seed: int = 0, n_trees: int = 20,
        max_depth: int | None = 12) -> dict[str, Any]:
    """Disentanglement, completeness, informativeness from the feature importances of one
    random-forest classifier per factor (all features tried at each split, so an irrelevant code
    gets importance only from overfitting). Returns the three scores and the (d, K) importances."""
    from sklearn.ensemble import RandomForestClassifier

    c = _np(codes).astype(np.float64)
    f = _np(factors).astype(np.int64)
    n, d = c.shape
    k = f.shape[1]
    perm = np.random.default_rng(seed).permutation(n)
    ntr = int(n * train_frac)
    tr, te = perm[:ntr], perm[ntr:]
    imp = np.zeros((d, k))
    acc = np.zeros(k)
    for j in range(k):
        clf = RandomForestClassifier(n_estimators=n_trees, max_features=None, max_depth=max_depth,
                                     random_state=seed, n_jobs=1)
        clf.fit(c[tr], f[tr, j])
        imp[:, j] = np.abs(clf.feature_importances_)
        acc[j] = clf.score(c[te], f[te, j]) if len(te) else clf.score(c[tr], f[tr, j])
    total = imp.sum()
    # disentanglement: each code should matter for one factor; weighted by the code's importance
    p_code = imp / np.maximum(imp.sum(1, keepdims=True), 1e-12)
    d_i = 1 - _entropy(p_code, k, axis=1)
    rho = imp.sum(1) / max(total, 1e-12)
    # completeness: each factor should be captured by one code
    p_fac = imp / np.maximum(imp.sum(0, keepdims=True), 1e-12)
    c_j = 1 - _entropy(p_fac, d, axis=0)
    return {"disentanglement": float((rho * d_i).sum()), "completeness": float(c_j.mean()),
            "informativeness": float(acc.mean()), "importance": imp}


def factorvae_score(codes: Any, factors: Any, n_votes: int = 800, group: int = 64, seed: int = 0,
                    min_std: float = 0.05) -> float:
    """Accuracy of the majority-vote classifier 'which factor was held fixed?' -> 'which code
    dimension has the least (normalised) variance in a group sharing that factor'. Groups come
    from the given examples, so pass a set where each factor value occurs several times. Codes
    with a std below ``min_std`` (relative to the largest) are ignored (collapsed dimensions)."""
    c = _np(codes).astype(np.float64)
    f = _np(factors).astype(np.int64)
    std = c.std(0)
    active = np.flatnonzero(std > min_std * max(std.max(), 1e-12))
    if len(active) == 0:
        return 0.0
    z = c[:, active] / std[active]
    rng = np.random.default_rng(seed)
    k = f.shape[1]
    votes = np.zeros((2, len(active), k), dtype=np.int64)  # train / eval votes
    varying = [j for j in range(k) if len(np.unique(f[:, j])) > 1]
    for v in range(2 * n_votes):
        j = varying[rng.integers(len(varying))]
        val = f[rng.integers(len(f)), j]
        pool = np.flatnonzero(f[:, j] == val)
        pick = rng.choice(pool, size=min(group, len(pool)), replace=len(pool) < 2)
        dim = int(np.argmin(z[pick].var(0)))
        votes[v % 2, dim, j] += 1
    winner = votes[0].argmax(1)
    return float(votes[1][np.arange(len(active)), winner].sum() / max(votes[1].sum(), 1))


@torch.no_grad()
def encode_all(encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([encode(x[i:i + batch]).detach().cpu() for i in range(0, len(x), batch)])


def evaluate_disentanglement(encode: Callable[[torch.Tensor], torch.Tensor], dataset: Any, n: int = 4000,
                             seed: int = 0) -> dict[str, float]:
    """MIG, DCI and FactorVAE score of ``encode`` on ``n`` examples of a dataset with
    ``fixed_with_factors`` (e.g. sprites). Only the scalar scores are returned."""
    x, _, f = dataset.fixed_with_factors(n, seed)
    codes = encode_all(encode, x)
    out = {"mig": mig(codes, f)["mig"]}
    d = dci(codes, f, seed=seed)
    out.update({f"dci_{k}": v for k, v in d.items() if k != "importance"})
    out["factorvae"] = factorvae_score(codes, f, seed=seed)
    return out
