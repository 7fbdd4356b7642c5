"""Consistency model: boundary condition, iCT curriculum, and few-step sampling after training."""

from __future__ import annotations

import torch
from genstudio_plugins.consistency import ConsistencyConfig, ConsistencyPlugin

from genstudio.core.data import get_dataset
from genstudio.core.metrics.functional import energy_distance
from genstudio.core.plugin import final_state


def _model(**kw):
    torch.manual_seed(0)
    ds = get_dataset("8gaussians")
    m = ConsistencyPlugin(ConsistencyConfig(**kw), torch.device("cpu"))
    m.setup(ds.spec)
    return m, ds


def test_boundary_condition_and_curriculum():
    m, _ = _model(total_steps=700, levels_start=10, levels_end=80)
    x = torch.randn(5, 2)
    out = m.f(m.net, x, torch.full((5,), m.config.sigma_min))
    assert torch.allclose(out, x, atol=1e-6)  # f(x, sigma_min) = x for any weights
    assert not torch.allclose(m.f(m.net, x, torch.full((5,), 1.0)), x)
    # N(k) = 10 * 2^floor(k / K'), K' = 700 / (log2(8) + 1) = 175, capped at 80 (+1 boundary point)
    assert [m.levels(k) for k in (0, 174, 175, 350, 525, 700, 5000)] == [11, 11, 21, 41, 81, 81, 81]


def test_training_gives_few_step_samples():
    m, ds = _model(hidden=64, depth=2, sigma_data=1.4, total_steps=600, ema_decay=0.99, batch_size=128)
    g = torch.Generator().manual_seed(0)
    ref = ds.fixed(800, seed=1)[0]
    before = energy_distance(final_state(m.sample(800, seed=0, steps=4)).x, ref)
    for s in range(1, 601):
        m.train_step(ds.batch(128, g)[0], None, s)
    one = final_state(m.sample(800, seed=0, sampler="onestep")).x
    four = final_state(m.sample(800, seed=0, steps=4)).x
    assert not torch.equal(final_state(m.sample(800, seed=0, steps=2)).x, one)
    after = energy_distance(four, ref)
    assert after < 0.05 and after < before / 10, (before, after)
    assert energy_distance(one, ref) < 0.3
