"""StyleGAN-style generator at small scale (Karras et al. 2019; StyleGAN2's modulated convolution).

A mapping network z -> w, a learned constant 4x4 input, one style per resolution block applied by
**modulated convolution with demodulation** (not AdaIN), per-pixel noise with learned per-channel
scales, mixing regularisation while training, and the non-saturating logistic loss with R1 on a
DCGAN critic (``nets.ConvCritic``) that also sees the batch's standard deviation (StyleGAN's
minibatch-std channel, without which the small generator collapsed to one digit in 1000 steps), on
images (digits 8x8, digits16, sprites16).

2-D points (8 Gaussians, rings): the same mapping network, w_mean EMA, truncation and mixing drive
an MLP synthesis (``blocks.StyleMLPGenerator``): a learned constant vector of ``hidden`` features
through ``depth`` modulated linear layers (a 1x1 modulated convolution on (B, hidden, 1, 1): the
style scales the weights per input feature, demodulation renormalises each output unit), each
with a learned-scale noise scalar per sample and its own style, then a plain linear to (x, y).
The critic is the plain ``nets.MLPCritic`` (no minibatch-std feature), so the base's
decision-surface view applies unchanged; a "block" is a layer there (crossover counts layers),
and there is no style-mixing grid (points do not read as a grid of images).

Sampling options: ``truncation`` is StyleGAN's psi **in w space**, w = w_mean + psi (w - w_mean)
with w_mean tracked by EMA while training: 1 = off (the base's |z| threshold, where 0 = off, does
not apply here), 0 = every sample is the mean image (2-D: one point). ``mix_seed`` (0 = off) draws a
second w whose styles take over from block ``crossover`` on (0 = all from the mixing seed, blocks = all
from the main seed; on 2-D data the blocks are the MLP's layers); ``noise`` is const (fixed noise
images: a sample is a function of z), random or none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor, nn

from genstudio.core.config import param
from genstudio.core.data import DataSpec
from genstudio.core.gan import losses
from genstudio.core.gan.base import AdversarialConfig, AdversarialPlugin, GANInversion
from genstudio.core.gan.blocks import (
    NOISE_MODES,
    MinibatchStd,
    StyleGenerator,
    StyleMLPGenerator,
    mix_styles,
    r1_penalty,
)
from genstudio.core.gan.nets import ConvCritic, MLPCritic
from genstudio.core.imaging import image_grid, readable_scale
from genstudio.core.plugin import PluginInfo, SampleOption, SampleState

MAX_BLOCKS = 6  # 4x4 .. 128x128: the crossover slider's upper end (clamped to the run's blocks)
GRID_SEEDS = (101, 102, 103, 104)  # rows of the style-mixing view (coarse styles)
GRID_MIX = (201, 202, 203, 204)  # columns (fine styles)


@dataclass
class StyleGANConfig(AdversarialConfig):
    latent_dim: int = param(32, "Latent noise z dimensions", range=(1, 1024))
    w_dim: int = param(64, "Style space w dimensions", range=(2, 1024))
    mapping_depth: int = param(3, "Mapping network layers z -> w", range=(1, 8))
    mixing_prob: float = param(0.9, "Mixing regularisation: probability a training sample switches to a second "
                               "w at a random block (2-D data: layer)", range=(0.0, 1.0))
    r1_gamma: float = param(0.5, "R1 penalty weight gamma (gamma/2 E|grad D(x_real)|^2; 0 = off)",
                            range=(0.0, 100.0), live=True)
    lr: float = param(1e-3, "Learning rate of both players", range=(1e-6, 1.0), log=True, live=True)

    @classmethod
    def tiny(cls) -> StyleGANConfig:
        return cls(batch_size=16, latent_dim=4, channels=4, hidden=16, depth=2, w_dim=8, mapping_depth=1)


class StyleGANPlugin(GANInversion, AdversarialPlugin):
    info: ClassVar[PluginInfo] = PluginInfo(
        "stylegan", "StyleGAN (small)", "adversarial", StyleGANConfig, ("points2d", "image"), ("generator",),
        "Mapping network, modulated convolutions, noise inputs and style mixing (coarse/fine swap grid), "
        "truncation in w space")

    sample_options: ClassVar[tuple[SampleOption, ...]] = (
        SampleOption("truncation", "Truncation psi in w space: w = w_mean + psi (w - w_mean); 1 = off, 0 = the "
                     "mean image", 1.0, range=(0.0, 1.0), step=0.05),
        SampleOption("mix_seed", "Style mixing: seed of a second latent whose styles take over from the crossover "
                     "block (0 = off)", 0, range=(0, 10**6), step=1),
        SampleOption("crossover", "Block (images: resolution 4x4 = 0, 8x8 = 1, ...; 2-D: MLP layer) from which "
                     "the mixing seed's styles are used: lower = more of the mixing seed", 1,
                     range=(0, MAX_BLOCKS), step=1),
        SampleOption("noise", "Per-pixel noise inputs: const (fixed), random (from the seed) or none", "const",
                     choices=NOISE_MODES),
    )

    def build_nets(self, data: DataSpec) -> tuple[nn.Module, nn.Module]:
        c = self.config
        if len(data.shape) == 1:  # vectors: the modulated-linear synthesis and a plain MLP critic
            gen = StyleMLPGenerator(c.latent_dim, data.shape, c.hidden, c.depth, c.w_dim, c.mapping_depth,
                                    c.mixing_prob, bounded=data.modality.value_range is not None)
            return gen, MLPCritic(data.shape, c.hidden, c.depth)
        gen = StyleGenerator(c.latent_dim, data.shape, c.channels, c.w_dim, c.mapping_depth, c.mixing_prob)
        return gen, nn.Sequential(MinibatchStd(), ConvCritic((data.shape[0] + 1, *data.shape[1:]), c.channels))

    def critic_loss(self, real_out: Tensor, fake_out: Tensor, real: Tensor, fake: Tensor
                    ) -> tuple[Tensor, dict[str, float]]:
        loss = losses.minimax_d_loss(real_out, fake_out)
        logged = {"d_real": float(torch.sigmoid(real_out.detach()).mean()),
                  "d_fake": float(torch.sigmoid(fake_out.detach()).mean())}
        if self.config.r1_gamma > 0:
            r1 = r1_penalty(self.disc, real)
            loss = loss + 0.5 * self.config.r1_gamma * r1
            logged["r1"] = float(r1.detach())
        return loss, logged

    def generator_loss(self, fake_out: Tensor) -> Tensor:
        return losses.minimax_g_loss(fake_out)

    # -- sampling ------------------------------------------------------------------------------------
    def styles(self, seed: int, n: int, psi: float) -> tuple[Tensor, Tensor]:
        """(z, per-block w) of ``seed``: the same seed gives the same styles at every checkpoint."""
        z = self.noise(n, self.generator(seed))
        return z, self.gen.styles(z, psi)

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1, truncation: float = 1.0, mix_seed: float = 0,
               crossover: float = 1, noise: str = "const") -> Iterator[SampleState]:
        """One synthesis pass from the seed's styles, optionally mixed with ``mix_seed``'s from block
        ``crossover`` on (see the module docstring for the options)."""
        self.check_sampler(sampler)
        self.gen.eval()
        with torch.no_grad():
            z, ws = self.styles(seed, n, float(truncation))
            if int(mix_seed):
                _, ws2 = self.styles(int(mix_seed), n, float(truncation))
                ws = mix_styles(ws, ws2, min(int(crossover), self.gen.n_blocks))
            g = self.generator(seed + 7919)  # the random noise images: their own stream, so z is unchanged
            x = self.gen.synthesis(ws, noise, g)
        yield SampleState(1, 1, 0.0, x, x, extras={"z": z, "w": ws[:, 0]})

    # -- the style-mixing view -----------------------------------------------------------------------
    def mixing_grid(self, crossover: int | None = None) -> tuple[Tensor, int]:
        """The classic coarse/fine swap grid as (R+1)(C+1) images, row-major: the top-left blank,
        the first row the column sources, the first column the row sources, and cell (i, j) the
        row source's styles before block ``crossover`` (coarse: pose, stroke layout) with the column
        source's from it on (fine: thickness, texture, colour). Default crossover: the first half of the
        blocks, rounded up, are coarse (16x16 images: 4x4 and 8x8; on sprites16 a 4x4-only coarse
        set left the columns deciding nearly everything)."""
        cut = (self.gen.n_blocks + 1) // 2 if crossover is None else int(crossover)
        self.gen.eval()
        rows = torch.cat([self.styles(s, 1, 1.0)[1] for s in GRID_SEEDS])
        cols = torch.cat([self.styles(s, 1, 1.0)[1] for s in GRID_MIX])
        r, c = len(rows), len(cols)
        cells = mix_styles(rows.repeat_interleave(c, 0), cols.repeat(r, 1, 1), cut)
        x = self.gen.synthesis(torch.cat([rows, cols, cells]))
        blank = torch.full_like(x[:1], -1.0)
        src_r, src_c, mixed = x[:r], x[r:r + c], x[r + c:].reshape(r, c, *x.shape[1:])
        out = [blank, src_c]
        for i in range(r):
            out += [src_r[i:i + 1], mixed[i]]
        return torch.cat(out), cut

    def views(self) -> dict[str, Any]:
        """Images: "style_mixing", the coarse/fine swap grid under a label saying which blocks are
        coarse. 2-D points: the base's decision surface instead."""
        if not isinstance(self.gen, StyleGenerator):
            return super().views()
        x, cut = self.mixing_grid()
        size = self.data.shape[-1]
        grid = image_grid(x.cpu(), ncol=len(GRID_MIX) + 1, pad=2, scale=readable_scale(size, size, 40))
        label = f"rows: coarse styles ({_res(0, cut)}); columns: fine ({_res(cut, self.gen.n_blocks)})"
        return {"style_mixing": _with_header(grid, label)}


def _res(first: int, stop: int) -> str:
    """The resolutions of blocks first..stop-1, e.g. "4x4-8x8"."""
    sides = [f"{4 * 2 ** b}x{4 * 2 ** b}" for b in (first, stop - 1)]
    return sides[0] if first == stop - 1 else "-".join(sides)


def _with_header(img: np.ndarray, text: str) -> np.ndarray:
    """``img`` under a dark strip holding ``text`` (wrapped to the picture's width)."""
    words, lines, line = text.split(), [], ""
    per_line = max(10, img.shape[1] // 6)
    for w in words:
        if len(line) + len(w) + 1 > per_line and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    head = Image.new("RGB", (img.shape[1], 6 + 12 * len(lines)), (20, 22, 28))
    d = ImageDraw.Draw(head)
    for i, ln in enumerate(lines):
        d.text((3, 3 + 12 * i), ln, fill=(255, 255, 255))
    return np.concatenate([np.asarray(head), img], 0)
