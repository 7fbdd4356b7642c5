"""Flow matching: exact OT pairing, straightness and ODE steps against closed forms, and reflow
straightening a trained flow."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from genstudio_plugins.flow_matching import (
    FlowMatchingConfig,
    FlowMatchingPlugin,
    ode_steps,
    ot_pairing,
    straightness,
)

from genstudio.core.data import get_dataset
from genstudio.core.metrics.functional import energy_distance


def test_ot_pairing_is_optimal():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    p = ot_pairing(x0, x1)
    assert sorted(p.tolist()) == list(range(6))
    best = min(float((x0 - x1[list(q)]).pow(2).sum()) for q in itertools.permutations(range(6)))
    assert float((x0 - x1[p]).pow(2).sum()) == pytest.approx(best)


def test_straightness_closed_forms():
    x0 = torch.randn(50, 3, dtype=torch.float64)
    assert straightness(lambda x, t: torch.ones_like(x) * 2.0, x0) < 1e-28
    n, h = 20, 1 / 20  # v = -x: Euler path x_k = (1 - h)^k x0
    q = (1 - h) ** torch.arange(n, dtype=torch.float64)
    want = float((((1 - h) ** n - 1 + q) ** 2).mean() * x0.pow(2).mean())
    assert math.isclose(straightness(lambda x, t: -x, x0, steps=n), want, rel_tol=1e-9)


def test_ode_steps_orders():
    x = torch.ones(1, 1, dtype=torch.float64)
    exact = math.exp(-1)
    err = {m: [abs(float(list(ode_steps(lambda z, t: -z, x, s, m))[-1][2]) - exact) for s in (10, 20)]
           for m in ("euler", "heun")}
    assert 1.8 < err["euler"][0] / err["euler"][1] < 2.2  # first order
    assert 3.6 < err["heun"][0] / err["heun"][1] < 4.4  # second order


def test_reflow_straightens_paths():
    torch.manual_seed(0)
    ds = get_dataset("8gaussians")
    cfg = FlowMatchingConfig(method="rectified", hidden=64, depth=2, lr=2e-3, ema_decay=0.99, batch_size=128,
                             stage_steps=300, reflow_rounds=1, reflow_pairs=1024, straightness_every=300)
    m = FlowMatchingPlugin(cfg, torch.device("cpu"))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    ref = ds.batch(1000, g)[0]
    s, ed1 = [], []
    for step in range(1, 601):
        out = m.train_step(ds.batch(128, g)[0], None, step)
        if "straightness" in out:
            s.append(out["straightness"])
            ed1.append(energy_distance(list(m.sample(1000, seed=1, steps=1))[-1].x, ref))
    assert m.stage == 1 and s[1] < s[0] / 5, s  # measured ~0.7 -> ~0.01
    assert ed1[1] < ed1[0] / 5, ed1  # one Euler step works after one reflow


def test_paths_view_draws_the_ode_paths_and_straightness():
    """views(): a 2-D run gets a "paths" picture whose coloured pixels lie on its ODE paths;
    image runs get none. paths_image itself: a straight horizontal path lights its own row."""
    from genstudio.core.imaging import paths_image

    h = torch.tensor([[[-2.0, 0.0]], [[0.0, 0.0]], [[2.0, 0.0]]])  # one particle, left to right on y = 0
    img = paths_image(h, size=129, lim=3.0, chords=False)
    lit = img.astype(int).sum(-1) > 150
    ys, xs = lit.nonzero()
    assert set(ys.tolist()) <= {63, 64, 65} and xs.min() < 25 and xs.max() > 103
    assert (img[64, 30] != img[64, 100]).any()  # coloured by step: start and end differ

    m = FlowMatchingPlugin(FlowMatchingConfig.tiny(), torch.device("cpu"))
    m.setup(get_dataset("8gaussians").spec)
    v = m.views()
    assert set(v) == {"paths"} and v["paths"].shape == (256, 256, 3) and v["paths"].dtype.name == "uint8"
    img_model = FlowMatchingPlugin(FlowMatchingConfig.tiny(), torch.device("cpu"))
    img_model.setup(get_dataset("digits").spec)
    assert img_model.views() == {}
