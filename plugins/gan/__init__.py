"""The GAN objectives of note on one shared body (genstudio.core.gan):

- ``gan``: Goodfellow et al.'s minimax game, with the saturating generator loss log(1 - D(G(z)))
  or the non-saturating -log D(G(z)); the critic's Jensen-Shannon estimate is logged.
- ``fgan``: f-GAN (Nowozin et al. 2016) for a chosen f-divergence (KL, reverse KL, JS, TV,
  Pearson chi^2, squared Hellinger, alpha); the variational lower bound is the live estimate.
- ``wgan``: Wasserstein GAN with weight clipping (Arjovsky et al. 2017) or a gradient penalty
  (Gulrajani et al. 2017); the critic's W1 estimate is logged beside the exact W1 between the
  real and generated minibatches (optimal transport), so a learner sees how good the critic is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from genstudio.core import ot
from genstudio.core.config import param
from genstudio.core.gan import losses
from genstudio.core.gan.base import AdversarialConfig, AdversarialPlugin, GANInversion
from genstudio.core.plugin import PluginInfo

DATA = ("points2d", "image")



@dataclass
class GANConfig(AdversarialConfig):
    loss: str = param("non_saturating", "Generator loss: non_saturating (-log D(G(z))) or minimax (log(1 - D(G(z))), "
                      "saturates when D wins)", choices=("non_saturating", "minimax"), live=True)


class GANPlugin(GANInversion, AdversarialPlugin):
    info: ClassVar[PluginInfo] = PluginInfo(
        "gan", "GAN (minimax)", "adversarial", GANConfig, DATA, ("generator",),
        "Goodfellow's minimax GAN, saturating or non-saturating generator loss; live JS estimate, "
        "decision surface and mode coverage")

    def critic_loss(self, real_out: Tensor, fake_out: Tensor, real: Tensor, fake: Tensor
                    ) -> tuple[Tensor, dict[str, float]]:
        return losses.minimax_d_loss(real_out, fake_out), {
            "js_estimate": losses.js_estimate(real_out.detach(), fake_out.detach()),
            "d_real": float(torch.sigmoid(real_out.detach()).mean()),
            "d_fake": float(torch.sigmoid(fake_out.detach()).mean())}

    def generator_loss(self, fake_out: Tensor) -> Tensor:
        return losses.minimax_g_loss(fake_out, saturating=self.config.loss == "minimax")

    def critic_map(self, out: Tensor) -> tuple[Tensor, float | None, float | None]:
        """D(x) = P(real), on a fixed [0, 1] scale so 0.5 (D cannot tell) always has one colour."""
        return torch.sigmoid(out), 0.0, 1.0


@dataclass
class FGANConfig(AdversarialConfig):
    divergence: str = param("js", "The f-divergence the critic estimates and the generator minimises",
                            choices=(*losses.DIVERGENCES, "alpha"))
    alpha: float = param(0.5, "alpha of the alpha-divergence (not 0 or 1)", range=(-5.0, 5.0))


class FGANPlugin(GANInversion, AdversarialPlugin):
    info: ClassVar[PluginInfo] = PluginInfo(
        "fgan", "f-GAN", "adversarial", FGANConfig, DATA, ("generator",),
        "f-GAN: KL, reverse KL, Jensen-Shannon, total variation, Pearson χ², squared Hellinger or α; "
        "the Fenchel lower bound is the live divergence estimate")

    def setup(self, data) -> None:  # noqa: ANN001 - DataSpec, as the base
        self.div = losses.divergence(self.config.divergence, self.config.alpha)
        super().setup(data)

    def critic_loss(self, real_out: Tensor, fake_out: Tensor, real: Tensor, fake: Tensor
                    ) -> tuple[Tensor, dict[str, float]]:
        bound = losses.f_bound(self.div, real_out, fake_out)
        return -bound, {"divergence": float(bound.detach())}

    def generator_loss(self, fake_out: Tensor) -> Tensor:
        return losses.f_g_loss(self.div, fake_out)

    def critic_map(self, out: Tensor) -> tuple[Tensor, float | None, float | None]:
        """T(x) = g_f(V(x)), the critic's estimate of f'(p/q): larger where data outweighs samples."""
        return self.div.activation(out), None, None


@dataclass
class WGANConfig(AdversarialConfig):
    lipschitz: str = param("gp", "How the critic is kept 1-Lipschitz: gp (gradient penalty) or clip (weight "
                           "clipping, the original WGAN)", choices=("gp", "clip"))
    lr: float = param(1e-4, "Learning rate of both players", range=(1e-6, 1.0), log=True, live=True)
    gp_weight: float = param(1.0, "Gradient-penalty weight lambda (10 in the paper's image runs; the 2-D toys "
                             "train steadier with less)", range=(0.0, 1000.0), live=True)
    clip: float = param(0.01, "Weight clipping bound c", range=(1e-5, 10.0), log=True)
    n_critic: int = param(5, "Critic steps per generator step", range=(1, 100), live=True)
    exact_every: int = param(50, "Log the exact minibatch W1 (optimal transport) every this many steps (0 = never)",
                             range=(0, 10**6))

    @classmethod
    def tiny(cls) -> WGANConfig:
        return cls(batch_size=16, latent_dim=4, hidden=16, depth=1, channels=4, n_critic=1, exact_every=1)


class WGANPlugin(GANInversion, AdversarialPlugin):
    info: ClassVar[PluginInfo] = PluginInfo(
        "wgan", "WGAN / WGAN-GP", "adversarial", WGANConfig, DATA, ("generator",),
        "Wasserstein GAN with weight clipping or gradient penalty; the critic's W1 estimate against the "
        "exact minibatch W1")

    def make_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        c = self.config
        if c.lipschitz == "clip":  # Arjovsky et al.: momentum-free RMSprop (Adam destabilises clipped critics)
            return (torch.optim.RMSprop(self.gen.parameters(), lr=c.lr),
                    torch.optim.RMSprop(self.disc.parameters(), lr=c.lr * c.critic_lr_ratio))
        return (torch.optim.Adam(self.gen.parameters(), lr=c.lr, betas=(0.5, 0.9)),
                torch.optim.Adam(self.disc.parameters(), lr=c.lr * c.critic_lr_ratio, betas=(0.5, 0.9)))

    def critic_loss(self, real_out: Tensor, fake_out: Tensor, real: Tensor, fake: Tensor
                    ) -> tuple[Tensor, dict[str, float]]:
        loss = losses.wasserstein_critic_loss(real_out, fake_out)
        logged = {"w1_critic": float(-loss.detach())}
        if self.config.lipschitz == "gp":
            gp = losses.gradient_penalty(self.disc, real, fake)
            loss = loss + self.config.gp_weight * gp
            logged["gp"] = float(gp.detach())
        return loss, logged

    def generator_loss(self, fake_out: Tensor) -> Tensor:
        return -fake_out.mean()

    def after_critic_step(self) -> None:
        if self.config.lipschitz == "clip":
            losses.clip_weights(self.disc, self.config.clip)

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        out = super().train_step(batch, labels, step)
        every = self.config.exact_every
        if every and step % every == 0:
            with torch.no_grad():
                fake = self.generate(self.noise(batch.shape[0]))
            out["w1_exact"] = ot.w1(batch.flatten(1), fake.flatten(1))
        return out
