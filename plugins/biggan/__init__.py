"""BigGAN-style class-conditional GAN (Brock et al. 2019) at small scale, on the shared GAN body.

- Generator: class-conditional batch norm in every block, gains and biases from a shared class
  embedding concatenated with that block's chunk of z (the hierarchical latent); residual conv
  blocks for images, residual MLP blocks for 2-D data.
- Discriminator: the projection critic (Miyato & Koyama 2018), score = psi(phi(x)) + <embed(y), phi(x)>,
  spectral norm on every layer, on the DCGAN/MLP critic body of ``nets``.
- Hinge loss; BigGAN's orthogonal regulariser beta * sum ||W W^T ⊙ (1 - I)||_F^2 on the generator's
  weights (not the shared embedding).
- Truncation trick through the base's ``truncation`` option (latent entries beyond |z| > t are
  redrawn; 0 = off); :func:`genstudio.core.gan.fidelity.truncation_curve` is the readout.

Conditional: ``num_classes`` is the dataset's (8 Gaussians: the mixture component; digits: the
digit); ``sample(cond=labels)`` draws those classes, and without ``cond`` the samples cycle
through the classes (0, 1, ..., K-1, 0, ...) so a preview grid shows every class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from genstudio.core.config import param
from genstudio.core.data import DataSpec
from genstudio.core.gan.base import AdversarialConfig, AdversarialPlugin
from genstudio.core.gan.blocks import CondGenerator, ProjectionCritic, hinge_d_loss, orthogonal_penalty
from genstudio.core.gan.nets import gan_nets
from genstudio.core.imaging import readable_scale, to_uint8
from genstudio.core.latent import labelled_grid
from genstudio.core.plugin import PluginInfo

VIEW_COLUMNS = 8  # latents per class in the image view


@dataclass
class BigGANConfig(AdversarialConfig):
    embed_dim: int = param(16, "Shared class embedding dimensions (feeds every conditional batch norm)",
                           range=(1, 512))
    hierarchical: bool = param(True, "Hierarchical latent: z split into one chunk for the input layer and one "
                               "per block, concatenated with the class embedding")
    ortho_weight: float = param(1e-4, "Orthogonal regularisation weight beta (BigGAN: 1e-4; 0 = off)",
                                range=(0.0, 1.0), live=True)
    critic_lr_ratio: float = param(2.0, "Critic learning rate / generator learning rate (BigGAN: 4)",
                                   range=(0.01, 100.0), log=True)

    @classmethod
    def tiny(cls) -> BigGANConfig:
        return cls(batch_size=16, latent_dim=4, hidden=16, depth=1, channels=4, embed_dim=4)


class BigGANPlugin(AdversarialPlugin):
    info: ClassVar[PluginInfo] = PluginInfo(
        "biggan", "BigGAN (class-conditional)", "adversarial", BigGANConfig, ("points2d", "image"), ("generator",),
        "Conditional batch norm, projection discriminator with spectral norm, hinge loss, orthogonal "
        "regularisation and the truncation trick")

    def setup(self, data: DataSpec) -> None:
        self.num_classes = int(data.num_classes)
        super().setup(data)

    def build_nets(self, data: DataSpec) -> tuple[nn.Module, nn.Module]:
        c = self.config
        gen = CondGenerator(c.latent_dim, data.shape, self.num_classes, c.embed_dim, c.channels, c.hidden, c.depth,
                            data.modality.value_range is not None, c.hierarchical)
        body = gan_nets(data, c.latent_dim, c.hidden, c.depth, c.channels)[1].net[:-1]  # the critic minus its head
        with torch.no_grad():
            features = body(torch.zeros(1, *data.shape)).shape[1]
        return gen, ProjectionCritic(body, features, self.num_classes)

    def labels(self, cond: Any, n: int) -> Tensor:
        """``cond`` as n class indices: None cycles through the classes; one label is repeated."""
        k = max(1, self.num_classes)
        if cond is None:
            return torch.arange(n, device=self.device) % k
        if not self.num_classes:
            raise ValueError("this dataset has no class labels: sample without cond")
        y = torch.as_tensor(cond, dtype=torch.long, device=self.device).reshape(-1)
        if len(y) == 1:
            y = y.expand(n)
        if len(y) != n or int(y.min()) < 0 or int(y.max()) >= k:
            raise ValueError(f"cond must be {n} labels (or one) in [0, {k}), got {y.tolist()[:8]}")
        return y

    def generate(self, z: Tensor, cond: Any = None) -> Tensor:
        return self.gen(z.to(self.device), self.labels(cond, len(z)))

    def critic(self, x: Tensor, cond: Any = None) -> Tensor:
        return self.disc(x.to(self.device), None if cond is None else self.labels(cond, len(x)))

    def critic_loss(self, real_out: Tensor, fake_out: Tensor, real: Tensor, fake: Tensor
                    ) -> tuple[Tensor, dict[str, float]]:
        return hinge_d_loss(real_out, fake_out), {"d_real": float(real_out.detach().mean()),
                                                  "d_fake": float(fake_out.detach().mean())}

    def ortho_params(self) -> list[Tensor]:
        """The generator's weights BigGAN regularises: all but the shared class embedding."""
        skip = {id(p) for p in self.gen.embed.parameters()}
        return [p for p in self.gen.parameters() if id(p) not in skip]

    def generator_loss(self, fake_out: Tensor) -> Tensor:
        """-E D(G(z), y) (hinge's generator side) + beta * the orthogonal penalty (logged as ``ortho``)."""
        loss = -fake_out.mean()
        beta = float(self.config.ortho_weight)
        if beta > 0:
            ortho = orthogonal_penalty(self.ortho_params())
            self._last["ortho"] = float(ortho.detach())
            loss = loss + beta * ortho
        return loss

    def views(self) -> dict[str, Any]:
        """2-D: the base's decision surface (the critic scores each point as its likeliest class).
        Images: "classes", one row per class over the same 8 latents (a column is one z: the
        class changes the digit, z the style)."""
        if not self.data.modality.spatial:
            return super().views()
        self.gen.eval()
        k = max(1, self.num_classes)
        z = self.noise(VIEW_COLUMNS, self.generator(0)).repeat(k, 1)
        x = self.generate(z, torch.arange(k, device=self.device).repeat_interleave(VIEW_COLUMNS))
        side = self.data.shape[-1]
        s = readable_scale(side, side, 32)
        tiles = to_uint8(x.cpu()).repeat(3 // x.shape[1], axis=1).transpose(0, 2, 3, 1).repeat(s, 1).repeat(s, 2)
        rows = [f"class {c}" for c in range(k)]
        return {"classes": labelled_grid(np.ascontiguousarray(tiles), VIEW_COLUMNS, row_labels=rows,
                                         title="one row per class, one column per latent z")}
