"""Live 2-D views of the score families (issue 4): the quiver helper's geometry, the NCSN / score-SDE
``views()`` pictures, and the Fokker-Planck check that the reverse SDE and the PF-ODE driven by the
exact score of a Gaussian mixture have the same marginal at t = 0.5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from genstudio_plugins.ncsn import NCSNConfig, NCSNPlugin
from genstudio_plugins.score_sde import FP_SIGMA, FP_TIME, ScoreSDEConfig, ScoreSDEPlugin

from genstudio.core import jobs
from genstudio.core.data import get_dataset
from genstudio.core.imaging import data_density_image, histogram_image, quiver_image
from genstudio.core.runs import RunStore


def lit(img: np.ndarray) -> np.ndarray:
    """Pixels an arrow drew (white) on the dark default background."""
    return img.astype(int).sum(-1) > 600


def test_quiver_arrow_points_the_right_way():
    img = quiver_image(np.zeros((1, 2)), np.array([[1.0, 0.0]]), size=129, lim=3.0)
    assert img.shape == (129, 129, 3) and img.dtype == np.uint8
    ys, xs = np.nonzero(lit(img))
    assert xs.min() >= 64 and xs.max() > 70  # right of centre, nothing left of it
    assert abs(ys.mean() - 64) < 1.5  # horizontal
    up = quiver_image(np.zeros((1, 2)), np.array([[0.0, 2.0]]), size=129)  # +y is up: smaller rows
    ys, xs = np.nonzero(lit(up))
    assert ys.max() <= 64 and ys.min() < 58 and abs(xs.mean() - 64) < 1.5


def test_quiver_normalises_lengths_and_keeps_background():
    bg = np.full((32, 32, 3), 50, np.uint8)
    pts = np.array([[-1.5, 0.0], [1.5, 0.0]])
    img = quiver_image(pts, np.array([[100.0, 0.0], [50.0, 0.0]]), background=bg, size=121, lim=3.0, length=1.0)
    assert (img[0, 0] == 50).all()  # the resized background shows through
    rows = lit(img)
    left = np.nonzero(rows[:, :60].any(0))[0]
    right = np.nonzero(rows[:, 61:].any(0))[0]
    # longest arrow = `length` (1 unit = 20 px); the half-size one is half as long
    assert left.max() - left.min() == pytest.approx(20, abs=1)
    assert right.max() - right.min() == pytest.approx(10, abs=1)


def test_histogram_image_orientation():
    img = histogram_image(np.tile([[2.0, 2.0]], (10, 1)), bins=6, lim=3.0)
    b = img.astype(int).sum(-1)
    assert np.unravel_index(b.argmax(), b.shape) == (0, 5)  # top right is x = +3, y = +3


def test_data_density_uses_exact_log_prob_or_histogram():
    exact = data_density_image(get_dataset("8gaussians"), 0.1, size=64)
    hist = data_density_image(get_dataset("moons"), size=64)
    for img in (exact, hist):
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    b = exact.astype(int).sum(-1)
    assert b[32, 32] < b[32, 53]  # the ring at radius 2 is bright, the centre dark


def _plugin(cls, cfg):
    m = cls(cfg, "cpu")
    m.setup(get_dataset("8gaussians").spec)
    return m


def test_views_shapes_and_types():
    m = _plugin(NCSNPlugin, NCSNConfig.tiny())
    v = m.views()
    assert set(v) == {"score"} and v["score"].shape == (256, 256, 3) and v["score"].dtype == np.uint8
    s = _plugin(ScoreSDEPlugin, ScoreSDEConfig.tiny())
    v = s.views()
    assert set(v) == {"score", "fokker_planck"}
    assert all(a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 for a in v.values())
    assert np.isfinite(s.fp_distance) and s.fp_distance >= 0
    img = _plugin(NCSNPlugin, NCSNConfig.tiny())
    img.setup(get_dataset("digits").spec)
    assert img.views() == {}


def test_view_noise_levels_are_config_fields():
    """view_sigma / fp_sigma move the score view's time: std(t)/m(t) there equals the setting."""
    s = _plugin(ScoreSDEPlugin, ScoreSDEConfig.tiny())
    for rel in (0.05, 0.3):
        s.config.view_sigma = rel
        t = torch.tensor([s.view_time()], dtype=torch.float64)
        assert float(s.sde.std(t) / s.sde.mean_coeff(t)) == pytest.approx(rel, rel=0.02)
    assert ScoreSDEConfig().fp_sigma == FP_SIGMA and NCSNConfig(view_sigma=0.2).view_sigma == 0.2


@pytest.mark.parametrize("sde", ["vp", "subvp", "ve"])
def test_fokker_planck_reverse_sde_and_pf_ode_agree_with_exact_score(sde):
    ds = get_dataset("8gaussians")
    m = _plugin(ScoreSDEPlugin, ScoreSDEConfig(sde=sde))
    exact = m.sde.score_from_data_score(ds.score)
    for t in (0.5, min(FP_TIME, m.view_time(FP_SIGMA))):  # the t, and the view's (modes visible)
        img, d = m.fokker_planck(score_fn=exact, n=1000, steps=100, t=t)
        assert img.dtype == np.uint8 and img.shape[1] > img.shape[0]  # two panels side by side
        assert d < 0.02, (t, d)
        # and the distance does see a wrong score: half the exact score moves the PF-ODE's marginal
        _, bad = m.fokker_planck(score_fn=lambda x, t: 0.5 * exact(x, t), n=1000, steps=100, t=t)
        assert bad > 5 * max(d, 0.005), (t, bad)


def test_training_writes_score_views(tmp_path):
    store = RunStore(tmp_path / "store")
    for plugin in ("ncsn", "score_sde"):
        run = jobs.create_run(store, jobs.TrainSpec(plugin=plugin, dataset="8gaussians", steps=4, sample_every=2,
                                                    checkpoint_every=0, n_preview=8,
                                                    overrides=["batch_size=16", "hidden=16", "depth=1",
                                                               "sample_steps=4"]))
        list(jobs.train(run))
        names = sorted(p.name for p in run.sample_dir().glob("view_*.png"))
        want = ["score"] + (["fokker_planck"] if plugin == "score_sde" else [])
        assert names == sorted(f"view_{v}_{s:08d}.png" for v in want for s in (2, 4)), names
