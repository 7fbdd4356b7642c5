"""Metric functions against closed forms and independent implementations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from sklearn.metrics.pairwise import rbf_kernel

from genstudio.core.metrics import functional as M

RNG = np.random.default_rng


def random_spd(d: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d + (0 if rank else 0.1 * np.eye(d))


# -- Fréchet distance ---------------------------------------------------------------------------
def test_frechet_diagonal_closed_form():
    rng = RNG(0)
    d = 7
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_commuting_and_rank_deficient():
    """Shared eigenvectors: FD = |dmu|^2 + sum (sqrt a_i - sqrt b_i)^2, zero eigenvalues included."""
    rng = RNG(1)
    d = 6
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = np.array([2.0, 1.0, 0.5, 0.0, 0.0, 3.0])  # rank-deficient S1
    b = np.array([1.0, 0.0, 4.0, 2.0, 0.3, 3.0])
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu = rng.normal(size=d)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    # sqrt of a round-off eigenvalue (~1e-16) is ~1e-8: that, not 1e-12, is the attainable accuracy
    assert M.frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-7)


def test_frechet_general_against_scipy_sqrtm():
    rng = RNG(2)
    d = 12
    s1, s2 = random_spd(d, rng), random_spd(d, rng)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    tr = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)


def test_frechet_1d_gaussians():
    # W2^2(N(m1, s1^2), N(m2, s2^2)) = (m1 - m2)^2 + (s1 - s2)^2
    assert M.frechet_distance([1.0], [[4.0]], [-0.5], [[0.25]]) == pytest.approx(1.5**2 + 1.5**2)


def test_fid_of_a_set_with_itself_is_zero():
    rng = RNG(3)
    f = rng.normal(size=(500, 32)) @ rng.normal(size=(32, 32))
    assert M.fid_from_features(f, f) < 1e-8 * np.trace(np.cov(f.T))
    small = rng.normal(size=(20, 64))  # n < d: rank-deficient covariance, still exactly 0
    assert M.fid_from_features(small, small) < 1e-8 * np.trace(np.cov(small.T))


def test_fid_from_features_matches_scipy_reference():
    rng = RNG(4)
    f1 = rng.normal(size=(800, 16))
    f2 = rng.normal(size=(700, 16)) * 1.3 + 0.2
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert M.fid_from_features(f1, f2) == pytest.approx(ref, rel=1e-9)
    assert M.fid_from_features(torch.from_numpy(f1).float(), f2) == pytest.approx(ref, rel=1e-5)


def test_fid_low_rank_route_matches_covariance_route():
    rng = RNG(13)
    a, b = rng.normal(size=(30, 50)), rng.normal(size=(25, 50)) * 1.2 + 0.1  # n < d: Gram route
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = M.frechet_distance(mu1, s1, mu2, s2)
    assert M.fid_from_features(a, b) == pytest.approx(ref, rel=1e-7)


def test_fid_reliability_warns_when_rank_deficient():
    msg = M.fid_reliability(100, 128)
    assert msg and "KID" in msg and "rank" in msg
    assert M.fid_reliability(1000, 128) is None


# -- KID -------------------------------------------------------------------------------------
def test_kid_matches_naive_double_loop():
    rng = RNG(5)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(5, 3)) + 0.3

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    mean, std = M.kid(x, y, subsets=1, subset_size=100)
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert std == 0.0


def test_kid_unbiased_for_same_distribution_and_positive_otherwise():
    rng = RNG(6)
    same = [M.kid(rng.normal(size=(100, 8)), rng.normal(size=(100, 8)), subsets=1)[0] for _ in range(60)]
    se = np.std(same, ddof=1) / math.sqrt(len(same))
    assert abs(np.mean(same)) < 3 * se  # unbiased: mean ~0 (a biased V-statistic would be > 0)
    assert min(same) < 0 < max(same)
    diff = M.kid(rng.normal(size=(500, 8)), rng.normal(size=(500, 8)) + 0.5, subsets=20, subset_size=200)
    assert diff[0] > 20 * se and diff[1] > 0


# -- Inception-style score -----------------------------------------------------------------------
def test_inception_score_extremes():
    k = 7
    one_hot = np.eye(k)[np.arange(700) % k]
    assert M.inception_score(one_hot, splits=10)[0] == pytest.approx(k, rel=1e-6)
    flat = np.full((300, k), 1.0 / k)
    assert M.inception_score(flat, splits=3) == pytest.approx((1.0, 0.0), abs=1e-9)


# -- precision / recall -------------------------------------------------------------------------
def test_precision_recall_constructed_cases():
    rng = RNG(7)
    a = rng.normal(size=(200, 4))
    b = rng.normal(size=(200, 4)) + 10.0  # a second, far-away mode
    real = np.concatenate([a, b])
    assert M.precision_recall(real, real, k=3) == (1.0, 1.0)  # identical
    assert M.precision_recall(real, real + 100.0, k=3) == (0.0, 0.0)  # disjoint
    # fake = one of the two real modes (a subset): every fake is real, half the real mass is missed
    assert M.precision_recall(real, a, k=3) == (1.0, 0.5)
    # and the mirror image: fake covers real plus an extra mode -> precision 0.5, recall 1
    assert M.precision_recall(a, real, k=3) == (0.5, 1.0)


# -- likelihoods -------------------------------------------------------------------------------------
def test_bits_per_dim_on_uniform_models():
    d = 3 * 8 * 8
    # uniform on [-1, 1]^D: log p = -D log 2 -> exactly 1 bit/dim for a continuous density
    u = torch.distributions.Uniform(-torch.ones(d), torch.ones(d))
    x = u.sample((50,))
    nll = float(-u.log_prob(x).sum(1).mean())
    assert M.bits_per_dim(nll, d) == pytest.approx(1.0)
    # 8-bit data on x = u/127.5 - 1: a density uniform over the 256 dequantisation bins of width
    # 2/255 is the uniform discrete model -> exactly 8 bits/dim after the log-det offset
    half = 1.0 / 255
    q = torch.distributions.Uniform(-(1 + half) * torch.ones(d), (1 + half) * torch.ones(d))
    nll8 = float(-q.log_prob(x).sum(1).mean())
    assert M.discrete_bits_per_dim(nll8, d, levels=256) == pytest.approx(8.0, rel=1e-6)
    half17 = 1.0 / 16  # sklearn digits: 17 levels
    q17 = torch.distributions.Uniform(-(1 + half17) * torch.ones(d), (1 + half17) * torch.ones(d))
    assert M.discrete_bits_per_dim(float(-q17.log_prob(x).sum(1).mean()), d, 17) == pytest.approx(math.log2(17))


def test_infer_levels():
    from genstudio.core.data import get_dataset

    assert M.infer_levels(get_dataset("digits").x) == 17
    u8 = torch.randint(0, 256, (10, 3, 4, 4)).float() / 127.5 - 1
    assert M.infer_levels(u8) == 256
    assert M.infer_levels(torch.rand(100) * 2 - 1) is None


# -- 2-D distances ----------------------------------------------------------------------------
def test_energy_distance_1d_matches_scipy():
    rng = RNG(8)
    x, y = rng.normal(size=300), rng.normal(size=250) * 1.5 + 0.3
    assert M.energy_distance(x, y) == pytest.approx(scipy.stats.energy_distance(x, y) ** 2, rel=1e-10)


def test_energy_distance_2d_direct_formula():
    rng = RNG(9)
    x, y = rng.normal(size=(120, 2)), rng.normal(size=(90, 2)) + [0.5, -0.2]

    def mean_dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).mean()

    expected = 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)
    assert M.energy_distance(x, y) == pytest.approx(expected, rel=1e-10)
    assert M.energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)


def test_mmd_rbf_against_sklearn_kernels():
    rng = RNG(10)
    x, y = rng.normal(size=(80, 2)), rng.normal(size=(60, 2)) * 0.8 + 0.4
    bws = (0.3, 1.0, 2.5)

    def k(a, b):
        return sum(rbf_kernel(a, b, gamma=1 / (2 * h * h)) for h in bws)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    expected = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                - 2 * kxy.mean())
    assert M.mmd_rbf(x, y, bws) == pytest.approx(expected, rel=1e-10)
    assert M.mmd_rbf(x, y) > 0  # median-heuristic bandwidths


def test_w2_exact_shift_and_brute_force():
    rng = RNG(11)
    x = rng.normal(size=(300, 2))
    shift = np.array([0.7, -1.2])
    assert M.w2_exact(x, x + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-12)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    brute = min(np.mean(np.sum((a - b[list(p)]) ** 2, 1)) for p in itertools.permutations(range(6)))
    assert M.w2_exact(a, b) == pytest.approx(math.sqrt(brute), rel=1e-12)
    with pytest.raises(ValueError):
        M.w2_exact(a, b[:5])


# -- uncertainty ------------------------------------------------------------------------------------
def test_bootstrap_ci_contains_full_sample_value():
    rng = RNG(12)
    f1, f2 = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)) + 0.3
    for fn in (M.fid_from_features, lambda a, b: M.kid(a, b, subsets=1, subset_size=400)[0]):
        ci = M.bootstrap_ci(fn, f1, f2, n_boot=60, alpha=0.05, seed=0)
        assert ci.low <= ci.value <= ci.high
        assert ci.high - ci.low > 0
    fid_pct = M.bootstrap_ci(M.fid_from_features, f1, f2, n_boot=60, seed=0, method="percentile")
    fid_cen = M.bootstrap_ci(M.fid_from_features, f1, f2, n_boot=60, seed=0)
    assert fid_pct.bias > 0  # resampling duplicates inflate the plug-in Fréchet distance
    assert fid_cen.high - fid_cen.low == pytest.approx(fid_pct.high - fid_pct.low)
    one = M.bootstrap_ci(np.mean, rng.normal(size=500), n_boot=200)  # one-sample form
    assert one.low < one.value < one.high and one.high - one.low == pytest.approx(2 * 1.96 / math.sqrt(500), rel=0.3)
    none = M.bootstrap_ci(M.fid_from_features, f1, f2, n_boot=0)
    assert none.value == fid_cen.value and math.isnan(none.low)


def test_wilson_interval_known_values():
    lo, hi = M.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = M.wilson_interval(50, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)


# -- feature extractors ------------------------------------------------------------------------------
def test_inception_random_weights_shape_and_reload(tmp_path):
    from genstudio.core.metrics.features import InceptionExtractor
    from genstudio.core.metrics.inception import FIDInceptionV3

    torch.manual_seed(0)
    net = FIDInceptionV3().eval()
    path = tmp_path / "pt_inception-random.pth"
    torch.save(net.state_dict(), path)
    ex = InceptionExtractor(path)
    x = torch.rand(2, 3, 32, 32) * 2 - 1  # resized to 299 inside
    f, p = ex.features_and_probs(x)
    assert f.shape == (2, 2048) and p.shape == (2, 1008)
    assert np.allclose(p.sum(1), 1.0)
    with torch.no_grad():
        ref = net(x)[0].double().numpy()
    assert np.allclose(f, ref, atol=1e-5)  # the reloaded weights are the saved ones
    grey = ex.features_and_probs(torch.rand(1, 1, 8, 8))[0]  # 1 channel -> repeated to RGB
    assert grey.shape == (1, 2048)
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(ValueError, match="not an FID Inception"):
        InceptionExtractor(bad)


def test_classifier_extractor_trains_once_and_caches(tmp_path):
    from genstudio.core.data import get_dataset
    from genstudio.core.metrics.features import classifier_for

    ds = get_dataset("digits")
    ex = classifier_for(ds, root=tmp_path)
    assert ex.name == "cnn-digits" and ex.num_classes == 10 and ex.dim == 128
    assert ex.meta["val_acc"] > 0.9
    files = list((tmp_path / "extractors").glob("*.safetensors"))
    assert len(files) == 1 and ex.hash in files[0].name
    again = classifier_for(ds, root=tmp_path)  # loads from the cache, same weights
    assert again.hash == ex.hash and again.meta["train_seconds"] == ex.meta["train_seconds"]
    x = ds.x[:64]
    f1, p1 = ex.features_and_probs(x)
    f2, p2 = again.features_and_probs(x)
    assert np.array_equal(f1, f2) and p1.shape == (64, 10)
    assert (p1.argmax(1) == ds.y[:64].numpy()).mean() > 0.9


def test_unlabelled_folder_gets_a_rotation_extractor(tmp_path):
    from PIL import Image

    from genstudio.core.data import get_dataset
    from genstudio.core.metrics.features import classifier_for

    rng = RNG(0)
    (tmp_path / "imgs").mkdir()
    for i in range(24):
        a = np.zeros((8, 8, 3), np.uint8)
        a[: rng.integers(2, 7), : rng.integers(1, 4)] = 255  # top-left blobs: rotation is visible
        Image.fromarray(a).save(tmp_path / "imgs" / f"{i}.png")
    ds = get_dataset(f"folder:{tmp_path / 'imgs'}:8")
    ex = classifier_for(ds, root=tmp_path, steps=60)
    assert ex.name.endswith("-rot") and ex.num_classes == 0
    f, p = ex.features_and_probs(ds.x)
    assert f.shape == (24, 128) and p is None
