"""DDPM plugin: k-samplers through sample(), and classifier-free guidance limits."""

from __future__ import annotations

import pytest
import torch
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin

from genstudio.core.data import get_dataset
from genstudio.core.diffusion.ksamplers import KSAMPLERS


def _model(**kw):
    cfg = DDPMConfig.tiny()
    for k, v in kw.items():
        setattr(cfg, k, v)
    m = DDPMPlugin(cfg, torch.device("cpu"))
    ds = get_dataset("8gaussians")
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 4):
        x, y = ds.batch(cfg.batch_size, g)
        m.train_step(x, y, step)
    return m


@pytest.mark.parametrize("name", list(KSAMPLERS))
@pytest.mark.parametrize("sched", ["model", "karras", "exponential"])
def test_ksamplers_run_in_plugin(name, sched):
    m = _model()
    states = list(m.sample(6, seed=3, sampler=name, steps=4, sigma_schedule=sched))
    assert len(states) == 4 and states[-1].t == 0.0 and states[0].t <= 1.0
    assert all(torch.isfinite(s.x).all() for s in states)
    assert [s.extras["sigma"] for s in states][-1] == 0.0


def test_guidance_limits_are_exact():
    m = _model(class_cond=True)
    x = torch.randn(5, 2)
    time = torch.rand(5)
    y = torch.tensor([0, 1, 2, 3, 4])
    with torch.no_grad():
        cond, unc = m.ema(x, time, y), m.ema(x, time, None)
        assert torch.equal(m.guided_eps(x, time, y, 1.0), cond)
        assert torch.equal(m.guided_eps(x, time, y, 0.0), unc)
        assert torch.allclose(m.guided_eps(x, time, y, 3.0), unc + 3.0 * (cond - unc), atol=1e-5)
    a = list(m.sample(4, seed=1, sampler="ddim", cond=2, guidance=0.0))[-1].x
    b = list(m.sample(4, seed=1, sampler="ddim"))[-1].x
    assert torch.equal(a, b)  # scale 0 with labels = the unconditional model
