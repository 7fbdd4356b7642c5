"""The GAN families through the job that trains them: mode coverage logged over time, the
decision-surface view saved at each preview, one-player-at-a-time step mode, WGAN's exact W1
beside the critic's estimate, and the truncation trick."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from genstudio.core import jobs
from genstudio.core.data import get_dataset
from genstudio.core.plugin import final_state
from genstudio.core.registry import registry
from genstudio.core.runs import RunStore

TINY = ["batch_size=32", "hidden=32", "depth=2", "latent_dim=4"]


def _run(tmp_path, plugin="gan", steps=20, overrides=(), **kw):
    spec = jobs.TrainSpec(plugin=plugin, dataset="8gaussians", steps=steps, log_every=1,
                          overrides=[*TINY, *overrides], **kw)
    return jobs.create_run(RunStore(tmp_path / "store"), spec)


@pytest.mark.parametrize("plugin", ["gan", "fgan", "wgan"])
def test_training_logs_losses_modes_and_saves_the_decision_surface(tmp_path, plugin):
    run = _run(tmp_path, plugin, steps=20, sample_every=10, checkpoint_every=20)
    list(jobs.train(run))
    rows, _ = run.read_metrics()
    names = set().union(*rows)
    assert {"d_loss", "g_loss"} <= names
    assert {"gan": "js_estimate", "fgan": "divergence", "wgan": "w1_critic"}[plugin] in names
    modes = [r for r in rows if "modes" in r]
    assert [r["step"] for r in modes] == [10, 20] and all(0 <= r["modes"] <= 8 and 0 <= r["hq"] <= 1 for r in modes)
    assert "the 500 samples drawn at each preview" in (run.path / "log.txt").read_text()  # not just the grid's
    views = sorted(p.name for p in run.sample_dir().glob("view_decision_*.png"))
    assert views == ["view_decision_00000010.png", "view_decision_00000020.png"]


def test_wgan_logs_the_exact_minibatch_w1_and_clipping_holds(tmp_path):
    run = _run(tmp_path, "wgan", steps=6, overrides=["lipschitz=clip", "clip=0.02", "exact_every=3", "n_critic=2"],
               sample_every=0, checkpoint_every=6)
    list(jobs.train(run))
    rows, _ = run.read_metrics()
    exact = [r["w1_exact"] for r in rows if "w1_exact" in r]
    assert len(exact) == 2 and all(e > 0 for e in exact)
    model, _, _ = jobs.load_model(run, "cpu")
    assert max(float(p.detach().abs().max()) for p in model.disc.parameters()) <= 0.02 + 1e-7
    assert isinstance(model.opt_d, torch.optim.RMSprop)


def test_alternate_players_move_one_at_a_time():
    cls = registry().get("gan")
    cfg = cls.info.config_cls.tiny()
    cfg.players = "alternate"
    m = cls(cfg)
    m.setup(get_dataset("8gaussians").spec)
    x, _ = get_dataset("8gaussians").batch(16)

    def snapshot():
        return ([p.detach().clone() for p in m.gen.parameters()], [p.detach().clone() for p in m.disc.parameters()])

    def moved(a, b):
        return any(not torch.equal(u, v) for u, v in zip(a, b))

    g0, d0 = snapshot()
    assert m.train_step(x, None, 1)["player"] == 1.0
    g1, d1 = snapshot()
    assert moved(d0, d1) and not moved(g0, g1)  # step 1: only the critic
    assert m.train_step(x, None, 2)["player"] == 2.0
    g2, d2 = snapshot()
    assert moved(g1, g2) and not moved(d1, d2)  # step 2: only the generator


def test_step_once_takes_one_step_previews_it_and_pauses(tmp_path):
    run = _run(tmp_path, steps=50, sample_every=0, checkpoint_every=50)
    control = jobs.Control()
    done: list[int] = []

    def work():
        for step in jobs.train(run, control=control):
            done.append(step)
            if step == 2 and not control.paused and len(done) == 2:
                control.pause()

    th = threading.Thread(target=work, daemon=True)
    th.start()

    def wait_paused_at(n):
        t0 = time.time()
        while time.time() - t0 < 20:
            if run.info().get("status") == "paused" and done and done[-1] == n:
                return
            time.sleep(0.02)
        raise AssertionError(f"not paused at {n}: {done[-3:]}, {run.info().get('status')}")

    wait_paused_at(2)
    control.step_once()
    wait_paused_at(3)
    control.step_once()
    wait_paused_at(4)
    assert sorted(p.name for p in run.sample_dir().glob("step_*.png")) == ["step_00000003.png", "step_00000004.png"]
    control.cancel()
    th.join(20)
    assert run.info()["status"] == "stopped" and run.info()["step"] == 4


def test_truncation_keeps_latents_inside_and_narrows_the_samples():
    cls = registry().get("gan")
    m = cls(cls.info.config_cls.tiny())
    m.setup(get_dataset("8gaussians").spec)
    full = final_state(m.sample(400, seed=0))
    tight = final_state(m.sample(400, seed=0, truncation=0.5))
    assert float(tight.extras["z"].abs().max()) <= 0.5
    assert float(full.extras["z"].abs().max()) > 2.0
    assert float(tight.extras["z"].std()) < float(full.extras["z"].std())
    assert np.isfinite(tight.x.numpy()).all()


def test_eval_reports_modes_for_adversarial_runs_with_the_real_data_as_reference(tmp_path):
    from genstudio.core.eval import run_eval

    run = _run(tmp_path, steps=5, sample_every=0, checkpoint_every=5)
    list(jobs.train(run))
    rec = run_eval(run, None, n=200, n_boot=5)
    modes = rec["metrics"]["modes"]
    assert 0 <= modes["value"] <= 8 and modes["reference"] == 8.0 and modes["total"] == 8.0
    assert 0.0 <= modes["hq"] <= 1.0 and "within 3 std" in modes["note"]
    # any run on data with modes can ask for it; data without known modes says why it is skipped
    ddpm = jobs.create_run(RunStore(tmp_path / "store"), jobs.TrainSpec(
        plugin="ddpm", dataset="moons", steps=2, sample_every=0, overrides=["timesteps=10", "hidden=16"]))
    list(jobs.train(ddpm))
    rec = run_eval(ddpm, ["energy", "modes"], n=100, n_boot=5)
    assert "modes" in rec["skipped"] and "no known modes" in rec["skipped"]["modes"]


def test_cli_trains_a_gan_and_samples_with_a_declared_option(capsys, tmp_path):
    """`genstudio train gan` and `genstudio sample RUN --option truncation=0.5`: the declared option
    reaches sample(), out-of-range and undeclared ones are one clear line (exit 2)."""
    from pathlib import Path

    from genstudio.cli import main

    assert main(["train", "gan", "--data", "8gaussians", "--steps", "6", *sum((["--set", s] for s in TINY), []),
                 "--sample-every", "0", "--checkpoint-every", "6"]) == 0
    rid = Path(capsys.readouterr().out.strip().splitlines()[-1]).name
    out = tmp_path / "s.png"
    assert main(["sample", rid, "--n", "16", "--option", "truncation=0.5", "--out", str(out)]) == 0
    assert out.exists()
    capsys.readouterr()
    assert main(["sample", rid, "--option", "truncation=9"]) == 2
    assert "--option truncation: 9 is outside [0, 4]" in capsys.readouterr().err
    assert main(["sample", rid, "--option", "mix_seed=3"]) == 2
    assert "does not take --option mix_seed" in capsys.readouterr().err
    assert main(["sample", rid, "--option", "truncation"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("plugin", ["gan", "wgan"])
def test_gan_inversion_gives_the_latent_face(plugin):
    """encode inverts the generator by gradient descent on z: the generator's own samples come back
    far closer than from random latents, and only z moves (the weights' gradients stay empty)."""
    from genstudio.core import faces as F

    cls = registry().get(plugin)
    torch.manual_seed(0)
    m = cls(cls.info.config_cls(hidden=32, depth=2, latent_dim=4))
    m.setup(get_dataset("8gaussians").spec)
    assert F.has_face(m, F.Latent)
    z = torch.randn(64, 4)
    with torch.no_grad():
        x = m.decode(z)
        scale = (x - x.mean(0)).norm(dim=1).mean()
    zh = m.encode(x)
    with torch.no_grad():
        err = (m.decode(zh) - x).norm(dim=1).mean()
        rand = (m.decode(torch.randn_like(z)) - x).norm(dim=1).mean()
    assert err < 0.25 * rand and err < 0.2 * scale, (float(err), float(rand), float(scale))
    assert all(p.grad is None for p in m.gen.parameters())
    assert not F.has_face(registry().get("biggan")(registry().get("biggan").info.config_cls.tiny()), F.Latent)
