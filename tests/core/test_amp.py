"""The ``amp`` run option: bf16 autocast around train steps (mixed precision), recorded in run.json."""

from __future__ import annotations

import pytest
import torch

from genstudio.core import jobs
from genstudio.core.runs import RunStore


def test_bf16_autocast_run_trains_and_records_it(tmp_path):
    store = RunStore(tmp_path)
    run = jobs.create_run(store, jobs.TrainSpec("ddpm", "moons", steps=3, sample_every=0, checkpoint_every=0,
                                                amp="bf16", overrides=["timesteps=20"]))
    assert run.info()["amp"] == "bf16"
    seen = []
    real = torch.autocast

    def spy(device_type, dtype=None, **kw):
        seen.append(dtype)
        return real(device_type, dtype=dtype, **kw)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch, "autocast", spy)
        assert list(jobs.train(run)) == [1, 2, 3]
    assert seen == [torch.bfloat16] * 3 and run.info()["status"] == "completed"


def test_unknown_amp_mode_is_refused_before_a_run_exists(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match="amp must be one of"):
        jobs.create_run(store, jobs.TrainSpec("ddpm", "moons", amp="fp8"))
    assert store.list() == []
