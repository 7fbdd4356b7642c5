"""What every GAN family shares, so a variant only writes its objective: the two networks and
their optimisers, the critic/generator step schedule (``n_critic`` critic steps per generator
step, or one player per step for watching each move), latent sampling with BigGAN's truncation
trick, and the 2-D decision-surface view (critic heat map, real and generated points, and the
gradient each generated point receives).

Subclasses implement :meth:`AdversarialPlugin.critic_loss` and :meth:`AdversarialPlugin.generator_loss`
and may override :meth:`critic_map` (what the heat map shows), :meth:`make_optimizers` and
:meth:`after_critic_step` (WGAN's weight clipping), :meth:`build_nets` (StyleGAN/BigGAN bodies).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec
from genstudio.core.gan.nets import gan_nets, latent_noise
from genstudio.core.imaging import dots_on, grid_points, heatmap_image, quiver_image
from genstudio.core.plugin import BasePlugin, SampleOption, SampleState

VIEW_LIM = 3.0  # the 2-D toys live in [-3, 3]^2, as scatter_image and the density views draw them


@dataclass
class AdversarialConfig(ModelConfig):
    """Defaults that learn 8 Gaussians in a few thousand steps on a CPU (Adam with beta1 = 0.5,
    the DCGAN recipe)."""

    batch_size: int = param(256, "Samples per training step (real and generated each)", range=(2, 4096))
    lr: float = param(2e-4, "Learning rate of both players", range=(1e-6, 1.0), log=True, live=True)
    critic_lr_ratio: float = param(1.0, "Critic learning rate / generator learning rate (TTUR when > 1)",
                                   range=(0.01, 100.0), log=True)
    latent_dim: int = param(16, "Latent noise dimensions", range=(1, 1024))
    hidden: int = param(128, "MLP width (2-D data)", range=(8, 4096), kinds=("points2d", "latent"))
    depth: int = param(3, "MLP layers (2-D data)", range=(1, 16), kinds=("points2d", "latent"))
    channels: int = param(16, "Base channels of the convolutional nets (images; doubled at each coarser level)",
                          range=(4, 512), kinds=("image",))
    n_critic: int = param(1, "Critic steps per generator step", range=(1, 100), live=True)
    players: str = param("both", "both: each step trains the critic then the generator; alternate: odd steps "
                         "train only the critic, even steps only the generator (pause and step to watch each move)",
                         choices=("both", "alternate"), live=True)
    grad_clip: float = param(0.0, "Clip each player's gradient norm (0 = off)", range=(0.0, 1000.0), live=True)

    @classmethod
    def tiny(cls) -> AdversarialConfig:
        return cls(batch_size=16, latent_dim=4, hidden=16, depth=1, channels=4)


class AdversarialPlugin(BasePlugin[AdversarialConfig]):
    """The shared body of the GAN families (the Adversarial face, Views and truncated sampling)."""

    sample_options: ClassVar[tuple[SampleOption, ...]] = (
        SampleOption("truncation", "Truncation trick: latent entries beyond this |z| are redrawn (0 = off); lower "
                     "trades diversity for fidelity", 0.0, range=(0.0, 4.0), step=0.1),
    )
    latent_dim: int = 0  # set in setup; declared here so the class lists the Adversarial face
    keep_checkpoints: ClassVar[int] = -1  # every one: the sampler's step slider replays the fixed-noise grid
    ddp_grads = True  # many processes: two optimisers, detached halves: gradients averaged, not DDP

    # -- set-up ------------------------------------------------------------------------------------
    def setup(self, data: DataSpec) -> None:
        self.data = data
        c = self.config
        self.latent_dim = int(c.latent_dim)
        self.gen, self.disc = (m.to(self.device) for m in self.build_nets(data))
        self.opt_g, self.opt_d = self.make_optimizers()
        self._real: Tensor | None = None  # the last real batch (drawn in the 2-D view)
        self._last: dict[str, float] = {}

    def build_nets(self, data: DataSpec) -> tuple[nn.Module, nn.Module]:
        c = self.config
        return gan_nets(data, c.latent_dim, c.hidden, c.depth, c.channels)

    def make_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        c = self.config
        return (torch.optim.Adam(self.gen.parameters(), lr=c.lr, betas=(0.5, 0.999)),
                torch.optim.Adam(self.disc.parameters(), lr=c.lr * c.critic_lr_ratio, betas=(0.5, 0.999)))

    # -- the Adversarial face ------------------------------------------------------------------------
    def generate(self, z: Tensor, cond: Any = None) -> Tensor:
        return self.gen(z.to(self.device))

    def critic(self, x: Tensor, cond: Any = None) -> Tensor:
        return self.disc(x.to(self.device))

    # -- what a family writes --------------------------------------------------------------------------
    def critic_loss(self, real_out: Tensor, fake_out: Tensor, real: Tensor, fake: Tensor
                    ) -> tuple[Tensor, dict[str, float]]:
        """The critic's loss to minimise, and the scalars to log (the live divergence estimate)."""
        raise NotImplementedError

    def generator_loss(self, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def after_critic_step(self) -> None:
        """Runs after every critic update (WGAN clips its weights here)."""

    def critic_map(self, out: Tensor) -> tuple[Tensor, float | None, float | None]:
        """Critic outputs -> (values shown in the heat map, fixed colour range lo, hi or None for the
        values' own range)."""
        return out, None, None

    # -- training ------------------------------------------------------------------------------------
    def _step(self, opt: torch.optim.Optimizer, loss: Tensor, params: Any) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        opt.step()

    def critic_step(self, real: Tensor, labels: Tensor | None) -> dict[str, float]:
        """One critic update against fresh generated samples."""
        with torch.no_grad():
            fake = self.generate(self.noise(real.shape[0]), labels)
        loss, logged = self.critic_loss(self.critic(real, labels), self.critic(fake, labels), real, fake)
        self._step(self.opt_d, loss, self.disc.parameters())
        self.after_critic_step()
        return {"d_loss": float(loss.detach()), **logged}

    def generator_step(self, n: int, labels: Tensor | None) -> dict[str, float]:
        loss = self.generator_loss(self.critic(self.generate(self.noise(n), labels), labels))
        self._step(self.opt_g, loss, self.gen.parameters())
        return {"g_loss": float(loss.detach())}

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        c = self.config
        self.gen.train()
        self.disc.train()
        self._real = batch.detach()
        alternate = c.players == "alternate"
        if not alternate or step % 2 == 1:
            for _ in range(max(1, int(c.n_critic))):
                self._last.update(self.critic_step(batch, labels))
        if not alternate or step % 2 == 0:
            self._last.update(self.generator_step(batch.shape[0], labels))
        out = {"loss": self._last.get("d_loss", 0.0), **self._last}
        if alternate:
            out["player"] = 1.0 if step % 2 == 1 else 2.0  # 1 = the critic moved this step, 2 = the generator
        return out

    # -- sampling --------------------------------------------------------------------------------------
    def noise(self, n: int, generator: torch.Generator | None = None, truncation: float = 0.0) -> Tensor:
        """z ~ N(0, I); with ``truncation`` > 0 every entry beyond |z| = truncation is redrawn
        (BigGAN's truncation trick: the samples lie nearer the mode, less diverse)."""
        z = latent_noise(n, self.latent_dim, generator, self.device)
        if truncation > 0:
            for _ in range(100):
                bad = z.abs() > truncation
                if not bad.any():
                    break
                z = torch.where(bad, latent_noise(n, self.latent_dim, generator, self.device), z)
            z = z.clamp(-truncation, truncation)
        return z

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1, truncation: float = 0.0) -> Iterator[SampleState]:
        """One generator pass: a GAN has no trajectory, so its only state is the final one. The
        same seed gives the same latent noise at every checkpoint (the fixed-noise grid)."""
        self.check_sampler(sampler)
        self.gen.eval()
        with torch.no_grad():
            z = self.noise(n, self.generator(seed), float(truncation))
            x = self.generate(z, cond)
        yield SampleState(1, 1, 0.0, x, x, extras={"z": z})

    # -- the 2-D view ----------------------------------------------------------------------------------
    def views(self) -> dict[str, np.ndarray]:
        """2-D data: the critic's decision surface (heat map) with the last real batch (white),
        generated points (orange) and, on those, arrows along the gradient the generator's loss
        sends each one (where the generator is about to move it)."""
        if self.data is None or self.data.shape != (2,):
            return {}
        self.gen.eval()
        self.disc.eval()
        size = 96
        pts = grid_points(size, VIEW_LIM).to(self.device)
        with torch.no_grad():
            field, lo, hi = self.critic_map(self.critic(pts))
            fake = self.generate(self.noise(256, self.generator(0)))
        img = heatmap_image(field.reshape(size, size).cpu(), lo, hi)
        img = np.asarray(np.kron(img, np.ones((3, 3, 1), np.uint8)))  # 288 px: the points read at full size
        if self._real is not None:
            img = dots_on(img, self._real[:256].cpu(), VIEW_LIM, (235, 235, 235), radius=1.6)
        img = dots_on(img, fake.cpu(), VIEW_LIM, (255, 140, 40), radius=2.0)
        with torch.enable_grad():
            x = fake.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(self.generator_loss(self.critic(x)), x)
        img = quiver_image(fake[:64].cpu(), -g[:64].cpu(), img, size=img.shape[0], lim=VIEW_LIM,
                           gamma=0.5, color=(255, 90, 200))
        return {"decision": img}

    def extra_state(self) -> dict[str, Any]:
        return {"last_logged": {k: torch.tensor(v) for k, v in self._last.items()}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self._last = {k: float(v) for k, v in (state.get("last_logged") or {}).items()}


class GANInversion:
    """The Latent face for unconditional GANs, so the latent explorer maps, decodes and walks their
    latent space: ``decode`` is the generator, ``encode`` *inverts* it by gradient descent on z
    (GAN inversion: min_z |G(z) - x|^2 + prior * |z|^2 from a fixed start), approximate by nature:
    the explorer's reconstructions say how close it got. Mixed into plugins whose generator needs
    no label (a class-conditional one would decode differently per position in the batch)."""

    invert_steps: ClassVar[int] = 150
    invert_prior: ClassVar[float] = 1e-3

    def decode(self, z: Tensor) -> Tensor:
        self.gen.eval()
        return self.generate(z)

    def encode(self, x: Tensor) -> Tensor:
        self.gen.eval()
        x = x.to(self.device)
        z = self.noise(len(x), self.generator(0)).clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=0.05)
        with torch.enable_grad():
            for _ in range(self.invert_steps):
                err = (self.generate(z) - x).flatten(1).pow(2).sum(1) + self.invert_prior * z.pow(2).sum(1)
                (z.grad,) = torch.autograd.grad(err.sum(), z)  # only z moves: the weights' .grad stay untouched
                opt.step()
        return z.detach()

