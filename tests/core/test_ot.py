"""genstudio.core.ot against independent routes: brute force over permutations, scipy's linear
program and assignment solver, closed forms (Gaussians, shifts), and the limits of the entropic
and unbalanced problems."""

from __future__ import annotations

import itertools
import math

import numpy as np
import ot as pot
import pytest
import torch
from scipy.optimize import linear_sum_assignment, linprog

from genstudio.core import ot
from genstudio.core.metrics import functional as M


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- exact OT ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 5, 7])
@pytest.mark.parametrize("p", [1, 2])
def test_exact_equals_brute_force_over_permutations(n, p):
    r = rng(n * 10 + p)
    x, y = r.normal(size=(n, 2)), r.normal(size=(n, 2)) + [1.0, 0.0]
    c = ot.cost_matrix(x, y, p)
    brute = min(c[np.arange(n), list(perm)].mean() for perm in itertools.permutations(range(n)))
    res = ot.exact(x, y, p=p)
    assert res.cost == pytest.approx(brute, rel=1e-12)
    assert ot.wasserstein(x, y, p=p) == pytest.approx(brute ** (1 / p), rel=1e-12)
    assert np.allclose(res.plan.sum(1), 1 / n) and np.allclose(res.plan.sum(0), 1 / n)
    perm = ot.assignment(x, y)
    assert sorted(perm) == list(range(n))
    if p == 2:
        assert ot.assignment_w2(x, y) == pytest.approx(math.sqrt(brute), rel=1e-12)


def test_weighted_exact_equals_linear_program():
    r = rng(3)
    x, y = r.normal(size=(5, 2)), r.normal(size=(4, 2))
    a, b = r.uniform(0.2, 1.0, 5), r.uniform(0.2, 1.0, 4)
    a, b = a / a.sum(), b / b.sum()
    c = ot.cost_matrix(x, y, 1)
    n, m = c.shape
    rows = np.kron(np.eye(n), np.ones(m))  # sum_j P_ij = a_i
    cols = np.kron(np.ones(n), np.eye(m))  # sum_i P_ij = b_j
    lp = linprog(c.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([a, b]), bounds=(0, None),
                 method="highs")
    assert lp.success
    res = ot.exact(x, y, a, b, p=1)
    assert res.cost == pytest.approx(lp.fun, rel=1e-9)
    assert ot.w1(x, y, a, b) == pytest.approx(lp.fun, rel=1e-9)
    assert np.allclose(res.plan.sum(1), a) and np.allclose(res.plan.sum(0), b)


def test_inputs_checked():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="equal-size"):
        ot.assignment(x, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="dimensions"):
        ot.w2(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="weights"):
        ot.w2(x, x, a=[1, 2, 3])
    with pytest.raises(ValueError, match="epsilon"):
        ot.sinkhorn(x, x, eps=0)
    with pytest.raises(ValueError, match="unknown OT method"):
        ot.solve("magic", x, x)


# -- assignment routes: the faster one is the implementation, the other its check ------------------
@pytest.mark.parametrize("n", [256, 1024])
def test_assignment_routes_agree(n):
    """Both sides of ASSIGNMENT_MAX (scipy's solver below, POT's emd above) give the optimal
    permutation: checked against the route not taken."""
    r = rng(n)
    z, x = r.normal(size=(n, 2)), r.normal(size=(n, 2)) * 0.5 + [2.0, 0.0]
    c = ot.cost_matrix(z, x)
    perm = ot.assignment(cost=c)
    if n < ot.ASSIGNMENT_MAX:
        other = pot.emd([], [], c).argmax(1)
    else:
        rows, other = linear_sum_assignment(c)
    assert sorted(perm) == list(range(n))
    assert c[np.arange(n), perm].sum() == pytest.approx(c[np.arange(n), other].sum(), rel=1e-10)


def test_ot_pairing_goes_through_core_ot():
    from genstudio_plugins.flow_matching import ot_pairing

    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(64, 1, 4, 4, generator=g), torch.randn(64, 1, 4, 4, generator=g) + 1
    perm = ot_pairing(x0, x1)
    assert perm.dtype == torch.long
    assert torch.equal(perm, torch.as_tensor(ot.assignment(x0.flatten(1), x1.flatten(1))))


def test_w2_exact_is_core_ot_and_agrees_with_scipy_assignment():
    """The metric's w2 takes POT's route at the eval's n (>= ASSIGNMENT_MAX); scipy's assignment
    (its old implementation) is the check."""
    r = rng(5)
    n = 600
    x, y = r.normal(size=(n, 2)), r.normal(size=(n, 2)) + [1.0, 0.5]
    c = ot.cost_matrix(x, y)
    rows, cols = linear_sum_assignment(c)
    assert M.w2_exact(x, y) == pytest.approx(math.sqrt(c[rows, cols].mean()), rel=1e-12)
    assert M.w2_exact(x, y) == pytest.approx(ot.w2(x, y), rel=1e-12)


# -- Gaussians ----------------------------------------------------------------------------------
def test_gaussian_closed_form_exact_for_commuting_covariances():
    """Diagonal covariances commute: W2^2 = |m1 - m2|^2 + sum (sqrt s1 - sqrt s2)^2."""
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.5, 0.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    want = math.sqrt(((m1 - m2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum())
    assert ot.gaussian_w2(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(want, rel=1e-12)


def _gaussian_pair():
    mu1, mu2 = np.array([0.0, 0.0]), np.array([2.0, -1.0])
    c1 = np.array([[1.0, 0.6], [0.6, 0.8]])
    c2 = np.array([[0.5, -0.2], [-0.2, 1.5]])
    return mu1, c1, mu2, c2


def test_w2_between_gaussian_samples_matches_closed_form():
    """(1) The Gaussian OT map T(x) = mu2 + A (x - mu1) (A symmetric PD) is the gradient of a convex
    function, so x_i -> T(x_i) is optimal between the empirical sets too: exact OT must find that
    pairing (to round-off), and its cost tends to the closed form. (2) Independent samples agree
    with the closed form to sampling error."""
    mu1, c1, mu2, c2 = _gaussian_pair()
    r1 = M.sqrt_psd(c1)
    r1inv = np.linalg.inv(r1)
    a = r1inv @ M.sqrt_psd(r1 @ c2 @ r1) @ r1inv
    closed = ot.gaussian_w2(mu1, c1, mu2, c2)
    r = rng(0)
    x = r.multivariate_normal(mu1, c1, size=1500)
    tx = mu2 + (x - mu1) @ a.T
    direct = math.sqrt(((x - tx) ** 2).sum(1).mean())
    assert ot.w2(x, tx) == pytest.approx(direct, rel=1e-9)
    assert direct == pytest.approx(closed, rel=0.03)
    y = r.multivariate_normal(mu2, c2, size=1500)
    assert ot.w2(x, y) == pytest.approx(closed, rel=0.05)


# -- entropic and unbalanced ------------------------------------------------------------------------
def test_sinkhorn_converges_to_exact_as_eps_falls():
    r = rng(2)
    x, y = r.normal(size=(30, 2)), r.normal(size=(30, 2)) * 0.6 + [1.0, 1.0]
    exact = ot.exact(x, y).cost
    epss = [0.3, 0.1, 0.03, 0.01, 0.003]  # relative to max C; 1e-3 needs ~10^4 iterations (seconds)
    costs = [ot.sinkhorn(x, y, e).cost for e in epss]
    assert all(c1 > c2 for c1, c2 in zip(costs, costs[1:], strict=False))  # monotone in eps
    assert all(c >= exact - 1e-9 for c in costs)
    assert costs[-1] == pytest.approx(exact, rel=0.02)  # 1.6 % here; 0.3 % at eps = 3e-4
    assert costs[0] > 1.1 * exact
    # a blurrier plan: more pairs carry mass, higher entropy
    sharp, blur = ot.sinkhorn(x, y, 0.003).plan, ot.sinkhorn(x, y, 0.3).plan
    assert ot.plan_entropy(blur) > ot.plan_entropy(sharp) > math.log(30) - 0.5
    assert len(ot.plan_pairs(blur, 1e-3)[0]) > len(ot.plan_pairs(sharp, 1e-3)[0])


def test_sinkhorn_eps_absolute_or_relative():
    r = rng(4)
    x, y = r.normal(size=(20, 2)), r.normal(size=(20, 2))
    rel = ot.sinkhorn(x, y, 0.05)
    cmax = ot.cost_matrix(x, y).max()
    assert rel.eps == pytest.approx(0.05 * cmax)
    ab = ot.sinkhorn(x, y, 0.05 * cmax, relative=False)
    assert ab.cost == pytest.approx(rel.cost, rel=1e-9)
    # scale invariance of the relative eps: scaled data, scaled cost
    assert ot.sinkhorn(3 * x, 3 * y, 0.05).cost == pytest.approx(9 * rel.cost, rel=1e-6)


def test_unbalanced_with_huge_penalty_approaches_balanced():
    r = rng(6)
    x, y = r.normal(size=(25, 2)), r.normal(size=(25, 2)) + [2.0, 0.0]
    bal = ot.sinkhorn(x, y, 0.05)
    loose = ot.unbalanced(x, y, reg_m=0.05, eps=0.05)
    tight = ot.unbalanced(x, y, reg_m=1e4, eps=0.05)
    assert tight.cost == pytest.approx(bal.cost, rel=0.01)
    assert np.allclose(tight.plan.sum(1), 1 / 25, rtol=0.01)
    assert loose.plan.sum() < 0.9 * tight.plan.sum()  # a cheap penalty: mass is dropped, not moved
    # no entropy (majorisation-minimisation): the mass moved grows to 1 and the cost to exact OT's
    mm = [ot.unbalanced(x, y, reg_m=r, eps=None, max_iter=10_000) for r in (1.0, 10.0)]
    assert mm[0].plan.sum() < mm[1].plan.sum() < 1.0 and mm[1].plan.sum() > 0.99
    assert mm[1].cost == pytest.approx(ot.exact(x, y).cost, rel=0.02)


# -- sliced -----------------------------------------------------------------------------------------
def test_sliced_identical_zero_and_shift():
    r = rng(7)
    x = r.normal(size=(400, 2))
    assert ot.sliced(x, x) == pytest.approx(0.0, abs=1e-12)
    x1 = r.normal(size=(300, 1))
    assert ot.sliced(x1, x1 + 0.7) == pytest.approx(0.7, rel=1e-9)  # 1-D: every direction is +-1
    # 2-D: the shift's projections average to |s|^2 E[cos^2] = |s|^2 / 2
    s = np.array([1.2, -0.5])
    assert ot.sliced(x, x + s, n_projections=4000, seed=1) == pytest.approx(np.linalg.norm(s) / math.sqrt(2),
                                                                            rel=0.03)
    assert ot.sliced(x, x + s, seed=3) == ot.sliced(x, x + s, seed=3)  # seeded


# -- McCann interpolation ------------------------------------------------------------------------
def test_mccann_interpolation_ends_and_midpoints():
    r = rng(8)
    x, y = r.normal(size=(40, 2)), r.normal(size=(40, 2)) + [3.0, 0.0]
    res = ot.exact(x, y)
    perm = ot.assignment(x, y)
    p0, m0 = ot.displacement(x, y, res.plan, 0.0)
    p1, _ = ot.displacement(x, y, res.plan, 1.0)
    ph, _ = ot.displacement(x, y, res.plan, 0.5)
    i, j, _ = ot.plan_pairs(res.plan)
    assert len(i) == 40 and np.array_equal(j, perm[i])  # the exact uniform plan is the permutation
    assert np.allclose(np.sort(p0, 0), np.sort(x, 0)) and np.allclose(np.sort(p1, 0), np.sort(y, 0))
    assert np.allclose(ph, (x[i] + y[perm[i]]) / 2)
    assert m0.sum() == pytest.approx(1.0)
    frames = ot.interpolation_frames(x, y, res.plan, 5)
    assert len(frames) == 5 and np.allclose(frames[0], p0) and np.allclose(frames[-1], p1)


def test_mccann_general_plan_uses_weighted_pairs():
    x, y = np.array([[0.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 2.0]])
    res = ot.exact(x, y, b=[0.25, 0.75])
    pts, m = ot.displacement(x, y, res.plan, 0.5)
    assert np.allclose(m, [0.75, 0.25]) and np.allclose(pts, [[0.0, 1.0], [0.5, 0.0]])


def test_plan_pairs_top_k_keeps_heaviest():
    plan = np.array([[0.1, 0.4], [0.3, 0.2]])
    i, j, m = ot.plan_pairs(plan, top=2)
    assert list(zip(i, j, strict=True)) == [(0, 1), (1, 0)] and np.allclose(m, [0.4, 0.3])


# -- named sources ---------------------------------------------------------------------------------
def test_point_sources():
    assert all(ot.points_source(d) == "" for d in ("8gaussians", "moons", "rings", "run:abc"))
    assert ot.points_source("digits").endswith("not 2-D points")
    assert "unknown dataset" in ot.points_source("nope")
    pts = ot.dataset_points("moons", 50, seed=1)
    assert pts.shape == (50, 2) and np.array_equal(pts, ot.dataset_points("moons", 50, seed=1))
    rep = ot.report(pts, ot.dataset_points("8gaussians", 50))
    assert set(rep) == {"w1", "w2", "sinkhorn", "sliced"} and rep["sinkhorn"] >= rep["w2"] - 1e-9


def test_eval_offers_w1_and_sliced_w_with_real_vs_real_floors(tmp_path, monkeypatch):
    """The metrics dashboard's OT metrics: exact W1 and sliced W2 per run, each with its floor."""
    from genstudio.core import jobs
    from genstudio.core.eval import run_eval
    from genstudio.core.runs import RunStore

    run = jobs.create_run(RunStore(tmp_path / "s"), jobs.TrainSpec(
        plugin="ddpm", dataset="8gaussians", steps=2, sample_every=0, overrides=["timesteps=10", "hidden=16"]))
    list(jobs.train(run))
    rec = run_eval(run, ["w1", "sliced", "w2"], n=200, n_boot=5)
    m = rec["metrics"]
    for k in ("w1", "sliced"):
        assert m[k]["value"] > m[k]["reference"] >= 0, (k, m[k])
    assert m["w1"]["value"] <= m["w2"]["value"] + 1e-9  # W1 <= W2 for the same sets
