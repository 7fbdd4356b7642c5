"""Consistency distillation from a tiny DDPM teacher trained here: the teacher's ODE step against
its closed form (Euler = DDIM eta 0; Heun) in float64, the teacher run loaded by the job and handed
over, and distillation steps that give finite losses and one-step samples."""

from __future__ import annotations

import pytest
import torch
from genstudio_plugins.consistency import ConsistencyConfig, ConsistencyPlugin
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin

from genstudio.core import jobs
from genstudio.core.config import to_dict
from genstudio.core.data import get_dataset
from genstudio.core.plugin import final_state
from genstudio.core.runs import RunStore


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    ds = get_dataset("8gaussians")
    cfg = DDPMConfig(batch_size=64, timesteps=50, hidden=32, depth=1, ema_decay=0.9)
    m = DDPMPlugin(cfg, torch.device("cpu"))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for s in range(30):
        m.train_step(ds.batch(64, g)[0], None, s)
    return m, ds


def _student(**kw) -> ConsistencyPlugin:
    ds = get_dataset("8gaussians")
    m = ConsistencyPlugin(ConsistencyConfig(mode="distillation", hidden=32, depth=1, sigma_data=1.4, **kw),
                          torch.device("cpu"))
    m.setup(ds.spec)
    return m


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_teacher_step_matches_closed_form_float64(teacher, solver: str) -> None:
    t_model, _ = teacher
    ema64 = t_model.ema.double()
    try:
        st = _student(teacher_solver=solver)
        st.set_teacher(t_model)
        sch = t_model.sched
        k = 30  # step from the model's own sigma_k to sigma_{k-1}: t(sigma) is exactly k, k-1
        s_from, s_to = sch.sigmas[k].double(), sch.sigmas[k - 1].double()
        x = torch.randn(6, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * (1 + s_from**2).sqrt()
        out = st.teacher_step(x, s_from.expand(6), s_to.expand(6))
        assert out.dtype == torch.float64

        def eps(xv: torch.Tensor, s: torch.Tensor, idx: int) -> torch.Tensor:
            with torch.no_grad():
                return ema64(xv / (1 + s**2).sqrt(), torch.full((6,), (idx + 1) / sch.T, dtype=torch.float64))

        e1 = eps(x, s_from, k)
        euler = x + (s_to - s_from) * e1  # VE Euler on dx/dsigma = eps
        if solver == "euler":
            ref = euler
            # the same step is DDIM (eta 0) in the VP scale: sqrt(abar') x0_hat + sqrt(1 - abar') eps
            a, a2 = sch.alphas_cumprod[k].double(), sch.alphas_cumprod[k - 1].double()
            xv = x * a.sqrt()
            x0_hat = (xv - (1 - a).sqrt() * e1) / a.sqrt()
            ddim = a2.sqrt() * x0_hat + (1 - a2).sqrt() * e1
            assert torch.allclose(out * a2.sqrt(), ddim, atol=1e-10)
        else:
            ref = x + (s_to - s_from) * (e1 + eps(euler, s_to, k - 1)) / 2
        assert torch.allclose(out, ref, atol=1e-10, rtol=0)
        assert not torch.allclose(out, x, atol=1e-3)
        if solver == "heun":
            assert not torch.allclose(out, euler, atol=1e-6)
    finally:
        t_model.ema.float()


def test_distillation_from_a_teacher_run(teacher, tmp_path) -> None:
    t_model, ds = teacher
    store = RunStore(tmp_path)
    run = store.create(plugin="ddpm", dataset="8gaussians", config=to_dict(t_model.config), seed=0,
                       device="cpu", steps=30)
    run.save_checkpoint(30, t_model.state_dict())
    cfg = ConsistencyConfig(mode="distillation", hidden=32, depth=1, sigma_data=1.4, teacher_run=run.id,
                            levels_start=18, batch_size=64)
    st_run = jobs.create_run(store, jobs.TrainSpec("consistency", "8gaussians", device="cpu", config=to_dict(cfg)))
    st, _, _ = jobs.load_model(st_run)
    assert st.teacher is not None  # handed over by the job, before setup
    got, want = st.runs["teacher_run"].ema.parameters(), t_model.ema.parameters()
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))  # the run's checkpoint
    g = torch.Generator().manual_seed(1)
    losses = [st.train_step(ds.batch(64, g)[0], None, s)["loss"] for s in range(1, 21)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert final_state(st.sample(16, seed=0, sampler="onestep")).x.shape == (16, 2)
    assert final_state(st.sample(16, seed=0, steps=2)).x.shape == (16, 2)
    # a checkpoint of the student loads and samples without touching the teacher
    fresh = _student(teacher_run="no-such-run")
    fresh.load_state_dict(st.state_dict())
    assert torch.equal(final_state(fresh.sample(8, seed=0, sampler="onestep")).x,
                       final_state(st.sample(8, seed=0, sampler="onestep")).x)


def test_distillation_needs_a_teacher() -> None:
    st = _student()
    with pytest.raises(ValueError, match="teacher_run"):
        st.train_step(torch.randn(4, 2), None, 1)
