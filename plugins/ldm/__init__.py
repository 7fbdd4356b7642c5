"""Latent diffusion (Rombach et al. 2022): DDPM trained in the latent space of a VAE.

The plugin *is* the DDPM plugin (subclass: same loss, schedules, samplers, CFG) run on latent
vectors: a batch of images is encoded with the VAE plugin's ``encode`` (posterior means), divided
by the latents' dataset std (Rombach's scale factor, so the diffusion sees unit-scale data), and
samples are multiplied back and decoded with ``decode`` at every reported state (x_t and x0_hat).

The VAE comes from a trained run (``vae_run``; the job loads it and hands it over with
``use_run`` before ``setup``). With ``vae_run`` empty (e.g. the contract test, or
a quick try), ``setup`` trains a small VAE on the fly for ``vae_steps`` steps on the same dataset
(seeded, so it is reproducible). The VAE's encoder and decoder weights are saved in this plugin's
checkpoints, so a trained LDM samples exactly as trained.

Digits, one CPU thread, classifier-feature Frechet distance (real vs real 1.5): VAE (8 latents,
1500 steps) reconstructions 5.1 (the LDM's ceiling), its prior samples 20.5; LDM on it after 1500
DDPM steps (7.6 s: latents are 8 numbers) 14.7 with 50 DDIM steps; pixel DDPM U-Net 5.9 after the
same 1500 steps (99 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import torch
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin

from genstudio.core.config import param
from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.plugin import PluginInfo, SampleState


@dataclass
class LDMConfig(DDPMConfig):
    """DDPM settings (the MLP ones apply: latents are vectors) plus where the VAE comes from."""

    vae_run: str = param("", "Trained VAE run (id, unique prefix or folder); empty = train one on the fly",
                         runs_of=("vae", "betavae"))
    vae_latent: int = param(8, "On-the-fly VAE: latent dimensions", range=(1, 512))
    vae_steps: int = param(1000, "On-the-fly VAE: training steps in setup", range=(1, 1_000_000))
    fourier: int = param(0, "Fourier-feature octaves of the MLP input (0 = off; latents are not 2-D)",
                         range=(0, 12))

    @classmethod
    def tiny(cls) -> LDMConfig:
        base = DDPMConfig.tiny()
        return cls(**{f.name: getattr(base, f.name) for f in fields(DDPMConfig)} | {"fourier": 0},
                   vae_latent=2, vae_steps=3)


class LDMPlugin(DDPMPlugin):
    """``self.data`` is the latent spec the DDPM works in; ``self.image_spec`` the dataset's."""

    info = PluginInfo(
        id="ldm", name="Latent diffusion", family="diffusion",
        config_cls=LDMConfig, data_kinds=("image",), samplers=DDPMPlugin.info.samplers,
        description="DDPM in the latent space of a VAE (trained run or a small one trained on the fly); "
                    "samples decoded to images at every step.",
    )
    config: LDMConfig
    # its noise and forward process live in the VAE's latent space, not in data space
    forward_process = None
    prior_scale = None

    def setup(self, data: DataSpec) -> None:
        self.image_spec = data
        vae = self.run_model("vae_run")
        self.vae = self._check_vae(vae, data) if vae is not None else self._train_vae(data)
        # the VAE's nets as attributes: BasePlugin saves and restores them with the checkpoint
        self.vae_enc, self.vae_dec = self.vae.enc, self.vae.dec
        self.vae_enc.requires_grad_(False)
        self.vae_dec.requires_grad_(False)
        x, _ = get_dataset(data.name).fixed(512, seed=0)
        z = self.vae.encode(x)
        self.latent_std = float(z.std()) or 1.0
        latent = DataSpec(f"{data.name}:latent", "latent", (z.shape[1],), num_classes=data.num_classes)
        super().setup(latent)

    def _check_vae(self, vae: Any, data: DataSpec) -> Any:
        """The handed-over VAE run's model, if it fits: encode/decode and its enc/dec nets (saved
        in this plugin's checkpoints), trained on this data shape."""
        if not all(hasattr(vae, a) for a in ("encode", "decode", "enc", "dec")):
            raise ValueError(f"run {self.config.vae_run!r} ({type(vae).__name__}) has no encode/decode")
        if tuple(vae.data.shape) != tuple(data.shape):
            raise ValueError(f"VAE trained on shape {tuple(vae.data.shape)}, data is {tuple(data.shape)}")
        return vae

    def _train_vae(self, data: DataSpec) -> Any:
        from genstudio_plugins.vae import VAEConfig, VAEPlugin

        c = self.config
        ds = get_dataset(data.name)
        with torch.random.fork_rng(devices=[]):  # same VAE on every setup, global RNG untouched
            torch.manual_seed(0)
            vae = VAEPlugin(VAEConfig(latent_dim=c.vae_latent, batch_size=min(c.batch_size, 128)), self.device)
            vae.setup(data)
            g = torch.Generator().manual_seed(0)
            # restoring a checkpoint: the VAE's weights are in it, training would be thrown away
            for step in range(1, 0 if self.restoring else c.vae_steps + 1):
                vae.train_step(ds.batch(vae.config.batch_size, g)[0].to(self.device), None, step)
        return vae

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "latent_std": torch.tensor(self.latent_std, dtype=torch.float64)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.latent_std = float(state.get("latent_std", self.latent_std))

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x.to(self.device)) / self.latent_std

    def to_image(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z * self.latent_std)

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        return super().train_step(self.to_latent(batch), labels, step)

    def sample(self, n: int, *, seed: int, **kw: Any) -> Iterator[SampleState]:
        """The DDPM's samplers in latent space; each state's x and x0 decoded (the latent in extras)."""
        return self._decoded(super().sample(n, seed=seed, **kw))

    def _decoded(self, states: Iterator[SampleState]) -> Iterator[SampleState]:
        for st in states:
            x0 = None if st.x0 is None else self.to_image(st.x0)
            yield SampleState(st.step, st.total, st.t, self.to_image(st.x), x0, {**st.extras, "latent": st.x})
