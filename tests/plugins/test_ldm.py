"""Latent diffusion: the DDPM runs on standardised VAE latents, samples are decoded, the VAE comes
from a run (loaded by the job and handed over) or is trained on the fly, and checkpoints carry the VAE."""

from __future__ import annotations

from dataclasses import replace

import torch
from genstudio_plugins.ldm import LDMConfig, LDMPlugin
from genstudio_plugins.vae import VAEConfig, VAEPlugin

from genstudio.core import jobs
from genstudio.core.config import to_dict
from genstudio.core.data import get_dataset
from genstudio.core.plugin import final_state
from genstudio.core.runs import RunStore
from tests.restoring import trained_and_reloaded


def _ldm(**kw) -> tuple[LDMPlugin, object]:
    ds = get_dataset("digits")
    m = LDMPlugin(replace(LDMConfig.tiny(), **kw), torch.device("cpu"))
    m.setup(ds.spec)
    return m, ds


def test_vae_from_run_latents_standardised_and_decoded(tmp_path) -> None:
    ds = get_dataset("digits")
    torch.manual_seed(0)
    vae = VAEPlugin(VAEConfig(latent_dim=4, hidden=32, depth=1, batch_size=32), torch.device("cpu"))
    vae.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for s in range(1, 21):
        vae.train_step(ds.batch(32, g)[0], None, s)
    store = RunStore(tmp_path)
    run = store.create(plugin="vae", dataset="digits", config=to_dict(vae.config), seed=0, device="cpu", steps=20)
    run.save_checkpoint(20, vae.state_dict())

    ldm_run = jobs.create_run(store, jobs.TrainSpec("ldm", "digits", device="cpu",
                                                    config=to_dict(replace(LDMConfig.tiny(), vae_run=run.id))))
    m, _, _ = jobs.load_model(ldm_run)
    assert type(m.runs["vae_run"]) is VAEPlugin
    x, _ = ds.fixed(512, seed=0)
    assert torch.allclose(m.vae.encode(x), vae.encode(x))  # the run's weights
    z = m.to_latent(x)
    assert z.shape == (512, 4) and abs(float(z.std()) - 1.0) < 1e-5  # standardised by the dataset std
    assert m.net(z[:3], torch.rand(3)).shape == (3, 4)  # the DDPM's net works on latent vectors
    g = torch.Generator().manual_seed(1)
    for s in range(1, 6):
        assert torch.isfinite(torch.tensor(m.train_step(ds.batch(16, g)[0], None, s)["loss"]))
    for sampler in ("ddim", "euler"):
        st = final_state(m.sample(3, seed=0, sampler=sampler, steps=3))
        assert st.x.shape == (3, 1, 8, 8) and st.extras["latent"].shape == (3, 4)
        assert torch.allclose(st.x, vae.decode(st.extras["latent"] * m.latent_std))


def test_on_the_fly_vae_is_reproducible_and_checkpointed() -> None:
    a, ds = _ldm(vae_steps=5)
    b, _ = _ldm(vae_steps=5)
    x, _ = ds.fixed(8, seed=0)
    assert torch.equal(a.vae.encode(x), b.vae.encode(x))  # seeded: the same VAE every setup
    state = a.state_dict()
    assert "vae_enc" in state and "vae_dec" in state
    c, _ = _ldm(vae_steps=1)  # a different VAE ...
    assert not torch.equal(c.vae.encode(x), a.vae.encode(x))
    c.load_state_dict(state)  # ... replaced by the checkpoint's, with its latent std
    assert c.latent_std == a.latent_std
    assert torch.equal(final_state(c.sample(4, seed=3)).x, final_state(a.sample(4, seed=3)).x)


def test_loading_a_checkpoint_does_not_retrain_the_on_the_fly_vae(tmp_path, monkeypatch) -> None:
    """Sampling or evaluating a run restores the VAE from its checkpoint: training it again in setup
    (1500 steps for sd) cost minutes per load and was thrown away."""
    store = RunStore(tmp_path)
    run = jobs.create_run(store, jobs.TrainSpec("ldm", "digits", device="cpu", steps=2, checkpoint_every=2,
                                                sample_every=0, config=to_dict(replace(LDMConfig.tiny(), vae_steps=4))))
    trained, again, step, calls = trained_and_reloaded(run, VAEPlugin, monkeypatch)
    assert step == 2 and calls == [] and again.restoring is False
    assert torch.equal(final_state(again.sample(3, seed=1, steps=3)).x, final_state(trained.sample(3, seed=1, steps=3)).x)
    fresh, _, _ = jobs.load_model(run, checkpoint=False)  # no checkpoint to restore: trained in setup
    assert calls == [1] * 4 and fresh.restoring is False
