"""Guidance sweep: exact posterior, data accuracy, and accuracy up / diversity down with the scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin

from genstudio.core.data import get_dataset
from genstudio.core.plugin import SampleState
from genstudio.core.tools.guidance import guidance_sweep, mean_pairwise_distance, responsibilities, score


def test_exact_quantities():
    ds = get_dataset("8gaussians")
    x, y = ds.batch(800, torch.Generator().manual_seed(0))
    r = responsibilities(ds, x)
    assert torch.allclose(r.sum(1), torch.ones(800, dtype=torch.float64))
    # Modes 2*sin(pi/8)=0.77 apart with std 0.15 (>2.5 std to the boundary): data accuracy is ~1.
    acc, div = score(x.double().numpy(), r.numpy(), y.numpy(), 8)
    assert acc > 0.99
    # Mean distance of two independent N(0, s^2 I_2) points is s*sqrt(pi) (Rayleigh with scale s*sqrt2).
    assert abs(div - 0.15 * np.sqrt(np.pi)) < 0.02
    f = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert abs(mean_pairwise_distance(f) - (5 + 5 + 0) / 3) < 1e-12


def test_guidance_sweep_trend():
    torch.manual_seed(0)
    ds = get_dataset("8gaussians")
    cfg = DDPMConfig(hidden=64, depth=2, timesteps=50, lr=2e-3, ema_decay=0.99, class_cond=True, cond_drop=0.2)
    m = DDPMPlugin(cfg, torch.device("cpu"))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 301):
        x, y = ds.batch(cfg.batch_size, g)
        m.train_step(x, y, step)
    seen = []
    rows = guidance_sweep(m, ds, (0, 1, 4), n_per_class=40, callback=seen.append)
    assert [r["scale"] for r in rows] == [0.0, 1.0, 4.0] and seen == rows
    a = {r["scale"]: r["accuracy"] for r in rows}
    d = {r["scale"]: r["diversity"] for r in rows}
    assert a[4.0] >= a[0.0] and a[0.0] < 0.5  # unconditional: ~1/8 land in the requested class
    assert d[4.0] < d[0.0]
    assert rows[0]["data_accuracy"] > 0.99


class _Oracle:
    """Stands in for a class-conditional model: returns real digits of the requested class, all of
    them (full diversity) at scale <= 1 and one image repeated (no diversity) above."""

    num_classes = 10
    device = "cpu"

    def __init__(self, ds):
        self.ds = ds

    def sample(self, n, *, seed, steps=None, cond=None, guidance=1.0, every=1):
        g = torch.Generator().manual_seed(seed)
        out = []
        for c in cond.tolist():
            idx = (self.ds.y == c).nonzero().flatten()
            out.append(self.ds.x[idx[0 if guidance > 1 else int(torch.randint(len(idx), (1,), generator=g))]])
        yield SampleState(1, 1, 0.0, torch.stack(out))


def test_image_path_uses_the_dataset_classifier():
    ds = get_dataset("digits")
    rows = guidance_sweep(_Oracle(ds), ds, (1, 2), n_per_class=20)
    assert rows[0]["data_accuracy"] > 0.9 and rows[0]["accuracy"] > 0.9
    assert 0.8 < rows[0]["diversity"] < 1.2  # real digits are as varied as real digits
    assert rows[1]["diversity"] == pytest.approx(0.0, abs=1e-3)  # one image per class
    with pytest.raises(ValueError, match="no classifier"):
        guidance_sweep(_Oracle(ds), get_dataset("moons"), (1,), n_per_class=2)
