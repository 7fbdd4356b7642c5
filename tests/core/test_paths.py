"""Forward-process views: the histogram is a probability mass, paths match the closed-form marginals."""

import numpy as np
import pytest
import torch

from genstudio.core.diffusion.paths import forward_paths, marginal_histogram
from genstudio.core.diffusion.schedules import NoiseSchedule, linear_schedule
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


# -- the run's own forward process (its model's ForwardProcess face) ---------------------------

def forward_process_for(plugin: str, cfg):
    """What the Compare panel asks: the face of a fresh (not set-up) instance, or None."""
    from genstudio.core.faces import ForwardProcessFace, has_face
    from genstudio.core.registry import registry

    m = registry().get(plugin)(cfg, "cpu")
    return m.forward_process() if has_face(m, ForwardProcessFace) else None


def _cfg(plugin: str, **kw):
    from dataclasses import replace

    from genstudio.core.registry import registry

    return replace(registry().get(plugin).info.config_cls(), **kw)


def test_forward_process_per_plugin():
    from genstudio.core.diffusion.paths import StraightPath
    from genstudio.core.diffusion.sde import VESDE, SubVPSDE

    p = forward_process_for("ddpm", _cfg("ddpm", schedule="linear", timesteps=40))
    assert isinstance(p, NoiseSchedule) and p.T == 40
    assert torch.allclose(p.betas, linear_schedule(40).betas)
    ve = forward_process_for("score_sde", _cfg("score_sde", sde="ve", sigma_min=0.02, sigma_max=7.0))
    assert type(ve) is VESDE and (ve.sigma_min, ve.sigma_max) == (0.02, 7.0)
    sub = forward_process_for("score_sde", _cfg("score_sde", sde="subvp", beta_min=0.2, beta_max=10.0))
    assert type(sub) is SubVPSDE and (sub.beta_min, sub.beta_max) == (0.2, 10.0)
    vp = forward_process_for("score_sde", _cfg("score_sde", sde="vp"))
    assert type(vp) is VPSDE
    for plugin in ("ncsn", "consistency"):
        c = _cfg(plugin)
        p = forward_process_for(plugin, c)
        assert type(p) is VESDE and (p.sigma_min, p.sigma_max) == (c.sigma_min, c.sigma_max)
    assert isinstance(forward_process_for("flow_matching", _cfg("flow_matching")), StraightPath)
    assert forward_process_for("vae", _cfg("vae")) is None
    assert forward_process_for("ldm", _cfg("ldm")) is None  # diffuses in latent space


def _check_marginal(process, x0, t_end, steps, mean, std, seed=3, n=20000, rtol=0.05):
    """Simulated paths at t_end against N(mean, std^2): closed forms given by the caller."""
    from genstudio.core.diffusion.paths import forward_marginal

    t, p = forward_paths(x0, process, n_paths=n, steps=steps, seed=seed)
    k = int(np.argmin(np.abs(t - t_end)))
    assert abs(t[k] - t_end) < 1e-9
    np.testing.assert_allclose(p[k].mean(0), mean, atol=0.03 * max(1.0, std))
    np.testing.assert_allclose(p[k].std(0), std, rtol=rtol)
    m, s = forward_marginal(process, t_end)  # the helper agrees with the independent closed form
    np.testing.assert_allclose(m * x0, mean, rtol=1e-9, atol=1e-12)
    assert s == pytest.approx(std, rel=1e-9)


def test_ve_paths_of_ncsn_and_consistency_match_sigma_range():
    """x_t = x_0 + N(0, sigma(t)^2 - sigma_min^2): Euler-Maruyama on the VE SDE over each plugin's range."""
    x0 = np.array([1.5, -0.5])
    for plugin, smin, smax in (("ncsn", 0.05, 5.0), ("consistency", 0.002, 80.0)):
        p = forward_process_for(plugin, _cfg(plugin, sigma_min=smin, sigma_max=smax))
        for t_end in (0.5, 1.0):
            sig = smin * (smax / smin) ** t_end
            _check_marginal(p, x0, t_end, 400, x0, np.sqrt(sig**2 - smin**2))


def test_subvp_paths_match_closed_form():
    p = forward_process_for("score_sde", _cfg("score_sde", sde="subvp", beta_min=0.1, beta_max=20.0))
    x0 = np.array([2.0, 1.0])
    for t_end in (0.3, 1.0):
        m = np.exp(-0.25 * t_end**2 * 19.9 - 0.5 * t_end * 0.1)
        _check_marginal(p, x0, t_end, 300, m * x0, 1 - m**2)


def test_straight_path_lines_and_marginal():
    """Flow matching: every path is a straight segment from x_0 to its eps; x_t ~ N((1-t) x_0, t^2)."""
    from genstudio.core.diffusion.paths import StraightPath, describe_process

    x0 = np.array([-1.0, 2.0])
    for t_end in (0.25, 1.0):
        _check_marginal(StraightPath(), x0, t_end, 20, (1 - t_end) * x0, t_end)
    t, p = forward_paths(x0, StraightPath(), n_paths=5, steps=10, seed=0)
    eps = p[-1]
    np.testing.assert_allclose(p, (1 - t)[:, None, None] * x0 + t[:, None, None] * eps[None], atol=1e-12)
    assert "not an SDE" in describe_process(StraightPath())


def test_ddpm_forward_marginal_is_alphas_cumprod():
    from genstudio.core.diffusion.paths import forward_marginal

    s = linear_schedule(50)
    m, sd = forward_marginal(s, 30 / 50)
    ab = float(torch.prod(1 - s.betas[:30]))
    assert m == pytest.approx(np.sqrt(ab)) and sd == pytest.approx(np.sqrt(1 - ab))
    assert forward_marginal(s, 0.0) == (1.0, 0.0)
