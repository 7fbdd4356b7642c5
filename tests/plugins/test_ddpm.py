"""DDPM plugin beyond the shared contract: it learns, its conditioning and respacing work, and it
runs end to end through the jobs and the run store."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin

from genstudio.core import jobs
from genstudio.core.config import replace, to_dict
from genstudio.core.data import get_dataset
from genstudio.core.metrics import energy_distance
from genstudio.core.plugin import final_state
from genstudio.core.runs import RunStore


def _train(cfg: DDPMConfig, dataset: str, steps: int) -> tuple[DDPMPlugin, object]:
    ds = get_dataset(dataset)
    torch.manual_seed(0)
    m = DDPMPlugin(cfg, "cpu")
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for s in range(1, steps + 1):
        x, y = ds.batch(cfg.batch_size, g)
        m.train_step(x, y, s)
    return m, ds


def test_learns_8gaussians_quickly():
    cfg = replace(DDPMConfig(), hidden=64, depth=2, batch_size=128, timesteps=200)
    m, ds = _train(cfg, "8gaussians", 400)
    ref = ds.fixed(1000, 5)[0]
    noise = energy_distance(torch.randn(1000, 2, generator=torch.Generator().manual_seed(1)), ref)
    for sampler in ("ddpm", "ddim"):
        x = final_state(m.sample(1000, seed=0, sampler=sampler, steps=20)).x
        e = energy_distance(x, ref)
        near = (torch.cdist(x.double(), ds.means).min(1).values < 0.5).float().mean()
        assert e < 0.06 * noise, (sampler, e, noise)
        assert near > 0.8, (sampler, near)  # 0.996 for the data itself


def test_class_conditioning_steers_samples():
    cfg = replace(DDPMConfig(), hidden=64, depth=2, batch_size=128, timesteps=200, class_cond=True)
    m, ds = _train(cfg, "8gaussians", 400)
    for k in (0, 3, 6):
        x = final_state(m.sample(200, seed=1, sampler="ddim", steps=20, cond=k)).x
        comp = torch.cdist(x.double(), ds.means).argmin(1)
        assert (comp == k).float().mean() > 0.7, k
    with pytest.raises(RuntimeError):
        DDPMPlugin(DDPMConfig.tiny()).sample(2, seed=0)  # before setup: fails at the call


def test_sample_states_respacing_and_every():
    m, _ = _train(DDPMConfig.tiny(), "8gaussians", 2)
    full = list(m.sample(3, seed=0))
    assert [s.step for s in full] == list(range(1, 21)) and full[-1].t == 0.0
    assert full[0].t == pytest.approx(19 / 20) and all(a.t > b.t for a, b in zip(full, full[1:]))
    short = list(m.sample(3, seed=0, sampler="ddpm", steps=4))
    assert [s.total for s in short] == [4] * 4 and [s.t for s in short] == pytest.approx([0.75, 0.5, 0.25, 0.0])
    ddim = list(m.sample(3, seed=0, sampler="ddim", every=2))
    assert [s.step for s in ddim] == [2, 4, 5]  # every 2nd, plus the final one
    with pytest.raises(ValueError):
        m.sample(3, seed=0, sampler="no_such_sampler")
    with pytest.raises(ValueError):
        m.sample(3, seed=0, cond=1)  # trained without class_cond
    eta1 = final_state(m.sample(3, seed=0, sampler="ddim", eta=1.0)).x
    assert not torch.equal(eta1, ddim[-1].x)


def test_runs_through_jobs_and_run_store(tmp_path):
    store = RunStore(tmp_path / "store")
    spec = jobs.TrainSpec(plugin="ddpm", dataset="8gaussians", steps=30, device="cpu", log_every=10,
                          sample_every=20, checkpoint_every=20, n_preview=16, config=to_dict(DDPMConfig.tiny()))
    run = jobs.create_run(store, spec)
    assert list(jobs.train(run)) == list(range(1, 31))
    info = run.info()
    assert info["status"] == "completed" and info["step"] == 30
    assert [r["step"] for r in run.metrics()] == [10, 20, 30] and all(np.isfinite(r["loss"]) for r in run.metrics())
    assert [s for s, _ in run.checkpoints()] == [20, 30]
    assert (run.sample_dir() / "step_00000020.png").exists()

    gen = jobs.sample(run, n=16, steps=5, sampler="ddim", seed=3)
    states = []
    while True:
        try:
            states.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert len(states) == 5 and result.x.shape == (16, 2)
    assert result.png.endswith(".png") and (run.sample_dir() / result.png.split("/")[-1]).exists()
    arrays = np.load(result.npz)
    assert arrays["x"].shape == (16, 2) and arrays["traj_x0"].shape == (5, 16, 2)
    # a model rebuilt from the run reproduces the job's samples
    model, _, step = jobs.load_model(run, "cpu")
    assert step == 30
    assert torch.equal(final_state(model.sample(16, seed=3, steps=5, sampler="ddim")).x, result.x)
