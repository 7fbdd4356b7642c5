"""ONE contract test, run over every registered plugin and every data kind it trains on.

Convention: a plugin's config class may override ``ModelConfig.tiny()`` (a classmethod) to return
a test-sized config (small nets, few timesteps/steps). The test builds every plugin with
``info.config_cls.tiny()``, so big defaults never slow the suite; a plugin that does not override
it runs with its defaults. A new plugin gets setup / training / sampling / checkpoint checks
for free just by being registered (like diffusers' common scheduler tests).
"""

from __future__ import annotations

import math

import pytest
import torch

from genstudio.core.config import from_json, to_json
from genstudio.core.data import get_dataset
from genstudio.core.plugin import SampleState, final_state
from genstudio.core.registry import discover, registry
from genstudio.core.runs import atomic_torch_save

# one small dataset per data kind the contract knows how to feed
DATASETS = {"points2d": "8gaussians", "image": "digits", "scene": "scene:primitives", "field": "field:sdf-sphere",
            "captioned": "captions16",
            "audio": "audio:tones", "video": "video:moving16"}
# kinds whose samples are rendered pictures (N, 3, H, W) rather than rows shaped like the data
RENDERED_KINDS = {"scene", "field"}
N = 4


def _cases() -> list:
    out = []
    for e in registry().ok():
        if not e.source.startswith("entry point"):
            continue  # fakes that other test modules register are not plugins to hold to the contract
        for kind in e.info.data_kinds:
            if kind in DATASETS:
                out.append(pytest.param(e.id, DATASETS[kind], id=f"{e.id}-{kind}"))
    return out


def test_no_broken_plugins():
    broken = {e.id: e.error for e in discover().broken()}
    assert not broken, broken


def _build(cls, cfg, spec, device=torch.device("cpu")):
    model = cls(cfg, device)
    model.setup(spec)
    return model


def _check_states(states: list[SampleState], shape: tuple[int, ...]) -> None:
    assert states, "sample() yielded nothing"
    for st in states:
        assert isinstance(st, SampleState)
        assert tuple(st.x.shape) == shape and torch.isfinite(st.x).all()
        assert 0.0 <= st.t <= 1.0 and 0 <= st.step <= st.total
        if st.x0 is not None:
            assert tuple(st.x0.shape) == shape
    assert [s.step for s in states] == sorted(s.step for s in states)
    assert states[-1].step == states[-1].total, "the last state must be the final one"


@pytest.mark.parametrize("pid,dataset", _cases())
def test_plugin_contract(pid, dataset, tmp_path, device):
    cls = registry().get(pid)
    info = cls.info
    cfg = info.config_cls.tiny()
    assert from_json(info.config_cls, to_json(cfg)) == cfg
    ds = get_dataset(dataset)
    torch.manual_seed(0)
    model = _build(cls, cfg, ds.spec, device)
    g = torch.Generator().manual_seed(0)

    for step in range(1, 4):  # every plugin trains and samples (the contract's methods)
        x, y = ds.batch(cfg.batch_size, g)
        m = model.train_step(x.to(device), y.to(device) if y is not None else None, step)
        assert "loss" in m, f"train_step must report 'loss', got {sorted(m)}"
        assert all(math.isfinite(float(v)) for v in m.values()), m

    shape = (N, *ds.spec.shape)
    if ds.spec.kind in RENDERED_KINDS:
        shape = tuple(final_state(model.sample(N, seed=7)).x.shape)
        assert len(shape) == 4 and shape[:2] == (N, 3), shape
    states = list(model.sample(N, seed=7))
    _check_states(states, shape)
    sparse = list(model.sample(N, seed=7, every=1000))
    assert sparse[-1].step == sparse[-1].total and len(sparse) <= len(states)
    assert torch.equal(sparse[-1].x, states[-1].x), "every= must not change the samples"
    for name in info.samplers:
        _check_states(list(model.sample(N, seed=7, sampler=name)), shape)

    # reproducible per seed, different across seeds; drawn from the sampler's own generator, never
    # torch's global one (training previews run beside the training, whose steps draw from that)
    rng = torch.get_rng_state()
    a = final_state(model.sample(N, seed=11)).x
    assert torch.equal(rng, torch.get_rng_state()), "sample() must not draw from torch's global RNG"
    assert torch.equal(a, final_state(model.sample(N, seed=11)).x)
    assert not torch.equal(a, final_state(model.sample(N, seed=12)).x)

    # checkpoint round trip through the run store's writer and a weights-only load
    path = tmp_path / "ck.pt"
    atomic_torch_save(model.state_dict(), path)
    state = torch.load(path, weights_only=True, map_location=device)
    fresh = _build(cls, cfg, ds.spec, device)
    fresh.load_state_dict(state)
    assert torch.equal(final_state(fresh.sample(N, seed=11)).x, a)
