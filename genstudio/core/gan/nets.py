"""Generator and critic bodies shared by the GAN families: MLPs for vectors, DCGAN-style
convolutions for square images whose side is 8 * 2^k (digits 8x8, 16x16 and sprites 32x32).

The critic outputs one unnormalised score per sample (a logit, an f-GAN V(x) or a WGAN critic
value); the loss decides what it means. Critics have no batch norm, so the gradient penalty's
per-sample gradients are well defined, and LeakyReLU so no unit dies.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genstudio.core.data import DataSpec


def conv_levels(shape: tuple[int, ...]) -> int:
    """Stride-2 stages between a 4x4 base and a square image side of 4 * 2^k (k >= 1); 0 for
    anything else (those images use the MLP bodies on flattened pixels)."""
    if len(shape) != 3 or shape[1] != shape[2]:
        return 0
    k = math.log2(shape[1] / 4)
    return int(k) if k >= 1 and k == int(k) else 0


class MLPGenerator(nn.Module):
    """z -> x for vectors (or flattened images, squashed by tanh into [-1, 1] when ``bounded``)."""

    def __init__(self, latent: int, shape: tuple[int, ...], hidden: int, depth: int, bounded: bool) -> None:
        super().__init__()
        self.shape = tuple(shape)
        layers: list[nn.Module] = [nn.Linear(latent, hidden), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden, math.prod(shape)))
        if bounded:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(z.shape[0], *self.shape)


class MLPCritic(nn.Module):
    """x -> (B,) score."""

    def __init__(self, shape: tuple[int, ...], hidden: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(math.prod(shape), hidden), nn.LeakyReLU(0.2)]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(hidden, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


class ConvGenerator(nn.Module):
    """DCGAN generator: z -> (C0, 4, 4) -> [upsample x2, conv, BN, ReLU] x levels -> tanh image."""

    def __init__(self, latent: int, shape: tuple[int, ...], channels: int) -> None:
        super().__init__()
        c, levels = shape[0], conv_levels(shape)
        widths = [channels * 2 ** (levels - i) for i in range(levels + 1)]  # halving towards the image
        self.base = widths[0]
        self.inp = nn.Sequential(nn.Linear(latent, widths[0] * 16), nn.ReLU())
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1),
                       nn.BatchNorm2d(b), nn.ReLU()]
        layers += [nn.Conv2d(widths[-1], c, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.inp(z).view(z.shape[0], self.base, 4, 4))


class ConvCritic(nn.Module):
    """DCGAN critic: [conv stride 2, LeakyReLU] x levels -> linear score."""

    def __init__(self, shape: tuple[int, ...], channels: int) -> None:
        super().__init__()
        c, levels = shape[0], conv_levels(shape)
        widths = [c] + [channels * 2 ** i for i in range(levels)]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2)]
        layers += [nn.Flatten(), nn.Linear(widths[-1] * 16, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


def gan_nets(spec: DataSpec, latent: int, hidden: int, depth: int, channels: int) -> tuple[nn.Module, nn.Module]:
    """(generator, critic) for this data: convolutional for square 8 * 2^k images, MLPs otherwise.
    Bounded data (images in [-1, 1]) get a tanh output."""
    bounded = spec.modality.value_range is not None
    if conv_levels(spec.shape):
        return ConvGenerator(latent, spec.shape, channels), ConvCritic(spec.shape, channels)
    return MLPGenerator(latent, spec.shape, hidden, depth, bounded), MLPCritic(spec.shape, hidden, depth)


def latent_noise(n: int, dim: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """z ~ N(0, I) drawn from ``generator`` (on its device) and moved to ``device``."""
    dev = generator.device if generator is not None else device
    return torch.randn(n, dim, generator=generator, device=dev).to(device)
