"""Issue 11, maths: the index -1 convention of the discrete chain holds everywhere (or is refused),
and the Fréchet docstrings claim only what the numbers show."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genstudio.core.diffusion import ddim_step, ddpm_step, linear_schedule, predict_eps, predict_x0, q_sample
from genstudio.core.diffusion.schedules import coeffs, gather
from genstudio.core.metrics.functional import fid_from_features, frechet_distance, mean_cov


def test_index_minus_one_is_clean_data_everywhere():
    s = linear_schedule(1000)
    x, eps = torch.tensor([[0.5, -0.3]]), torch.tensor([[0.1, 0.2]])
    out, x0 = ddim_step(eps, -1, 99, x, s)  # the example: from clean data up to t = 99
    ab = s.alphas_cumprod[99]
    torch.testing.assert_close(out, (ab.sqrt() * x + (1 - ab).sqrt() * eps).float())
    torch.testing.assert_close(x0, x)
    assert torch.equal(q_sample(x, -1, eps, s), x)  # abar(-1) = 1: no noise
    assert torch.equal(predict_x0(eps, -1, x, s), x)
    a, sig = coeffs(s, torch.tensor([-1, 0, 999]), x)
    assert a.shape == (3, 1) and float(a[0]) == 1.0 and float(sig[0]) == 0.0
    torch.testing.assert_close(a[2, 0].double(), s.alphas_cumprod[999].sqrt(), rtol=1e-6, atol=0)
    with pytest.raises(IndexError, match="clean data"):
        gather(s.betas, -1, x)  # would silently read the noisiest entry
    with pytest.raises(ValueError, match="clean data"):
        ddpm_step(eps, -1, x, s)
    assert torch.isinf(predict_eps(x, -1, x, s)).all() or torch.isnan(predict_eps(x, -1, x, s)).all()


def test_frechet_routes_agree_where_the_docstrings_say():
    """n < d: the eigh route is within the documented ~1e-8 relative of the exact SVD route."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 64)), rng.normal(size=(12, 64)) + 0.3
    exact = fid_from_features(a, b)
    eig = frechet_distance(*mean_cov(a), *mean_cov(b))
    assert abs(eig - exact) / exact < 1e-7
    full_a, full_b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))  # n > d: both exact
    assert frechet_distance(*mean_cov(full_a), *mean_cov(full_b)) == pytest.approx(
        fid_from_features(full_a, full_b), rel=1e-10)
