"""Many-process training (genstudio.core.distributed): two CPU processes under torchrun (gloo)
train DDPM like one process on the doubled batch, and only rank 0 writes the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genstudio import cli
from genstudio.core import jobs
from genstudio.core.distributed import NotDistributable, Ranks, parallel_mode, require_parallel
from genstudio.core.registry import registry
from genstudio.core.runs import RunStore

ROOT = Path(__file__).resolve().parents[2]
STEPS = 80
TINY = ["timesteps=20", "hidden=32", "depth=1", "lr=0.003"]


def _losses(run) -> np.ndarray:
    return np.array([r["loss"] for r in run.metrics() if "loss" in r])


def test_two_processes_train_like_one_on_the_doubled_batch_and_only_rank0_writes(tmp_path):
    torch.set_num_threads(1)
    one = RunStore(tmp_path / "one")
    spec = jobs.TrainSpec("ddpm", "moons", steps=STEPS, overrides=[*TINY, "batch_size=64"], log_every=1,
                          sample_every=0, checkpoint_every=STEPS, preview_steps=2, n_preview=16, device="cpu")
    single = jobs.create_run(one, spec)
    for _ in jobs.train(single):
        pass

    tmp = tmp_path / "tmp"  # where rank 1 keeps its private copy of the run: gone afterwards
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENSTUDIO_DATA_DIR": str(tmp_path / "two"), "TMPDIR": str(tmp)}
    argv = ["train", "ddpm", "--data", "moons", "--steps", str(STEPS), "--log-every", "1", "--sample-every", "0",
            "--checkpoint-every", str(STEPS // 2), "--preview-steps", "2", "--n-preview", "16", "--device", "cpu",
            *(a for kv in [*TINY, "batch_size=32"] for a in ("--set", kv)), "--nproc", "2"]
    r = subprocess.run([sys.executable, "-m", "genstudio", *argv], env=env, capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = RunStore(tmp_path / "two").list()
    assert str(run.path) in r.stdout
    info = run.info()
    assert info["status"] == "completed" and info["step"] == STEPS and info["processes"] == 2

    # the same global batch, gradients averaged: the loss curves agree (only the noise draws differ)
    a, b = _losses(single), _losses(run)
    assert len(a) == len(b) == STEPS
    assert abs(a[STEPS // 2:].mean() - b[STEPS // 2:].mean()) < 0.12 * a[STEPS // 2:].mean()
    assert b[-20:].mean() < 0.8 * b[:5].mean()  # and it learned

    # rank 0 alone wrote: one row per step, one start in the log, one preview, its pid as owner
    rows, bad = run.read_metrics()
    assert bad == 0 and [row["step"] for row in rows] == list(range(1, STEPS + 1))
    assert run.read_log().count("[running] training ddpm") == 1
    assert len(list((run.path / "samples").glob("*.png"))) == 1
    assert [s for s, _ in run.checkpoints()] == [STEPS // 2, STEPS]
    assert list(tmp.glob("genstudio-rank*")) == []

    # resume with another world size: one process takes the checkpoint DDP wrote (no "module." keys)
    for _ in jobs.train(run, extra_steps=5, device="cpu"):
        pass
    assert run.info()["step"] == STEPS + 5 and run.info()["processes"] == 1


def test_lone_process_is_untouched():
    class Batches:
        def batch(self, n, gen):
            return torch.arange(n * 10.0).reshape(n, 10)[:n], None

    r = Ranks()
    assert (r.writer, r.many, r.seed(7), r.device("cuda")) == (True, False, 7, "cuda")
    model = object()
    assert r.wrap(model) is model and r.average({"loss": 1}) == {"loss": 1}
    x, _ = r.batch(Batches(), 4, torch.Generator())
    assert x.shape == (4, 10)


def test_rank_slices_of_one_global_batch():
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    from genstudio.core.data import get_dataset

    moons = get_dataset("moons")
    whole, _ = moons.batch(8, torch.Generator().manual_seed(3))
    half0, _ = Ranks(0, 2).batch(moons, 4, gen_a)
    half1, _ = Ranks(1, 2).batch(moons, 4, gen_b)
    assert torch.equal(torch.cat([half0, half1]), whole)
    assert Ranks(1, 2).seed(10) == 21 and Ranks(0, 2).seed(10) == 20


def test_plugins_say_whether_they_split():
    assert parallel_mode(registry().get("ddpm")) == "ddp"
    no = [e.id for e in registry().ok() if parallel_mode(e.cls) is None]
    assert no, "some plugin must stay single-process for this test"
    with pytest.raises(NotDistributable, match="cannot train on several processes"):
        require_parallel(registry().get(no[0]))


def test_cli_refuses_many_processes_for_a_plugin_that_cannot(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(tmp_path))
    no = next(e.id for e in registry().ok() if parallel_mode(e.cls) is None)
    assert cli.main(["train", no, "--data", "moons", "--nproc", "2"]) == 2
    assert "cannot train on several processes" in capsys.readouterr().err
    assert RunStore(tmp_path).list() == []


def test_fsdp_shards_trains_like_one_process_and_writes_plain_checkpoints(tmp_path):
    """--sharding fsdp: each of 2 processes holds half of the nets, the loss follows a lone process
    on the doubled batch, the checkpoint is a plain state dict (no DTensor) that one process
    resumes from, and the 2-process job resumes from it as well (optimiser state re-sharded)."""
    torch.set_num_threads(1)
    steps = 60
    one = RunStore(tmp_path / "one")
    single = jobs.create_run(one, jobs.TrainSpec("ddpm", "moons", steps=steps, overrides=[*TINY, "batch_size=64"],
                                                 log_every=1, sample_every=0, checkpoint_every=steps, device="cpu"))
    for _ in jobs.train(single):
        pass
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENSTUDIO_DATA_DIR": str(tmp_path / "two")}
    argv = ["train", "ddpm", "--data", "moons", "--steps", str(steps), "--log-every", "1", "--sample-every",
            str(steps // 2), "--checkpoint-every", str(steps // 2), "--preview-steps", "2", "--n-preview", "16",
            "--device", "cpu", *(a for kv in [*TINY, "batch_size=32"] for a in ("--set", kv)), "--nproc", "2",
            "--sharding", "fsdp"]
    r = subprocess.run([sys.executable, "-m", "genstudio", *argv], env=env, capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = RunStore(tmp_path / "two").list()
    info = run.info()
    assert info["status"] == "completed" and info["sharding"] == "fsdp" and info["processes"] == 2
    log = run.read_log()
    assert "FSDP: net, ema sharded across 2 processes; rank 0 holds" in log
    held, total = (int(v.replace(",", "")) for v in log.split("rank 0 holds ")[1].split(" parameters")[0].split(" of "))
    assert 0.4 * total <= held <= 0.6 * total  # about half each
    a, b = _losses(single), _losses(run)
    assert abs(a[steps // 2:].mean() - b[steps // 2:].mean()) < 0.15 * a[steps // 2:].mean()
    assert len(list((run.path / "samples").glob("*.png"))) == 2  # rank 0 previewed from the gathered weights
    _, state = run.load_checkpoint()
    flat = [v for part in state.values() if isinstance(part, dict) for v in part.values() if torch.is_tensor(v)]
    assert flat and all(type(v) is torch.Tensor for v in flat)
    r = subprocess.run([sys.executable, "-m", "genstudio", "resume", str(run.path), "--steps", "4", "--nproc", "2"],
                       env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    for _ in jobs.train(run, extra_steps=3, device="cpu"):  # and one process from the plain checkpoint
        pass
    assert run.info()["step"] == steps + 7


def test_fsdp_is_refused_for_a_plugin_that_declares_no_fsdp_modules():
    assert parallel_mode(registry().get("ddpm"), "fsdp") == "fsdp"
    vae = registry().get("vae")
    assert parallel_mode(vae) == "ddp" and parallel_mode(vae, "fsdp") is None
    with pytest.raises(NotDistributable, match="cannot shard"):
        require_parallel(vae, "fsdp")
    with pytest.raises(ValueError, match="sharding must be one of"):
        require_parallel(vae, "zero3")
