"""Forward-process views: the histogram is a probability mass, paths match the closed-form marginals."""

import numpy as np
import torch

from genstudio.core.diffusion.paths import forward_paths, marginal_histogram
from genstudio.core.diffusion.schedules import linear_schedule
from genstudio.core.diffusion.sde import VPSDE


def test_marginal_histogram_mass_and_peak():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([1.6, -0.8]) + 0.01 * torch.randn(500, 2, generator=g)
    h = marginal_histogram(x, bins=12, lim=3.0)
    assert h.shape == (12, 12)
    assert abs(h.sum() - 1.0) < 1e-12
    ix, iy = np.unravel_index(h.argmax(), h.shape)
    edges = np.linspace(-3, 3, 13)
    assert edges[ix] <= 1.6 < edges[ix + 1] and edges[iy] <= -0.8 < edges[iy + 1]
    assert h.max() > 0.9


def test_discrete_chain_matches_q_xt_given_x0():
    s = linear_schedule(50)
    x0 = np.array([2.0, -1.0])
    t, p = forward_paths(x0, s, n_paths=20000, steps=30, seed=1)
    assert p.shape == (31, 20000, 2) and t[-1] == 30 / 50
    ab = float(s.alphas_cumprod[29])
    np.testing.assert_allclose(p[-1].mean(0), np.sqrt(ab) * x0, atol=0.03)
    np.testing.assert_allclose(p[-1].var(0), 1 - ab, rtol=0.05)


def test_vp_sde_em_matches_marginal():
    sde = VPSDE()
    x0 = np.array([1.0, 2.0])
    t, p = forward_paths(x0, sde, n_paths=20000, steps=200, seed=2)
    m = float(sde.mean_coeff(torch.tensor(1.0, dtype=torch.float64)))
    sd = float(sde.std(torch.tensor(1.0, dtype=torch.float64)))
    np.testing.assert_allclose(p[-1].mean(0), m * x0, atol=0.03)
    np.testing.assert_allclose(p[-1].var(0), sd**2, rtol=0.05)
