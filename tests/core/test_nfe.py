"""NFE-vs-quality: budgets, counted evaluations per sampler, and quality improving with NFE."""

from __future__ import annotations

import pytest
import torch
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin
from genstudio_plugins.flow_matching import FlowMatchingConfig, FlowMatchingPlugin

from genstudio.core.data import get_dataset
from genstudio.core.tools.nfe import budgets, nfe_curve, steps_for


def _trained(cls, cfg, steps=300):
    torch.manual_seed(0)
    ds = get_dataset("8gaussians")
    m = cls(cfg, torch.device("cpu"))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        x, y = ds.batch(cfg.batch_size, g)
        m.train_step(x, y, step)
    return m, ds


def test_budgets_and_steps():
    assert budgets(20) == [1, 2, 4, 8, 16, 20] and budgets(8) == [1, 2, 4, 8]
    assert steps_for("heun", 1) == 1 and steps_for("heun", 8) == 4 and steps_for("ddim", 8) == 8


def test_counted_nfe_and_quality_trend():
    m, ds = _trained(DDPMPlugin, DDPMConfig(hidden=64, depth=2, timesteps=100, lr=2e-3, ema_decay=0.99))
    rows = nfe_curve(m, ds, ["ddim", "heun", "dpmpp_2m", "ddpm"], max_nfe=16, n=500)
    got = {(r["sampler"], r["steps"]): r["nfe"] for r in rows}
    assert got[("ddim", 16)] == 16 and got[("dpmpp_2m", 4)] == 4 and got[("ddpm", 16)] == 16
    assert got[("heun", 8)] == 15 and got[("heun", 1)] == 1  # 2 per step, the last step to sigma=0 once
    assert all(r["nfe"] <= max(2, r["steps"] * 2) for r in rows)
    q = {(r["sampler"], r["nfe"]): r["quality"] for r in rows}
    assert q[("dpmpp_2m", 16)] < q[("dpmpp_2m", 1)] / 3  # more steps, better samples
    with pytest.raises(ValueError):
        nfe_curve(m, ds, ["nope"], max_nfe=2, n=10)


def test_flow_matching_heun_costs_two_per_step():
    m, ds = _trained(FlowMatchingPlugin, FlowMatchingConfig(hidden=32, depth=1, batch_size=64,
                                                            straightness_every=0), steps=20)
    rows = nfe_curve(m, ds, ["euler", "heun"], max_nfe=4, n=50)
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in rows] == [
        ("euler", 1, 1), ("euler", 2, 2), ("euler", 4, 4), ("heun", 1, 2), ("heun", 2, 4)]


def test_explicit_budgets_replace_the_ladder():
    m, ds = _trained(FlowMatchingPlugin, FlowMatchingConfig(hidden=32, depth=1, batch_size=64,
                                                            straightness_every=0), steps=5)
    rows = nfe_curve(m, ds, ["euler", "heun"], n=20, nfes=[6, 1, 3])
    assert [(r["sampler"], r["nfe"]) for r in rows] == [
        ("euler", 1), ("euler", 3), ("euler", 6), ("heun", 2), ("heun", 6)]  # heun: 1 step = 2 NFE, 3 = 6
