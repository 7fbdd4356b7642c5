"""Procedural 2-D toy distributions. Each draws fresh points from a torch.Generator, so the
supply is infinite and reproducible. The Gaussian mixtures also give their exact density and
score, which tests and samplers use as ground truth."""

from __future__ import annotations

import math

import torch

from genstudio.core.data import Dataset, DataSpec, register_dataset


class GaussianMixture2D(Dataset):
    """Isotropic 2-D Gaussian mixture with exact ``log_prob`` and ``score``."""

    def __init__(self, name: str, means: torch.Tensor, std: float, weights: torch.Tensor | None = None,
                 description: str = "") -> None:
        self.means = means.double()
        self.std = float(std)
        k = len(means)
        self.weights = (weights if weights is not None else torch.full((k,), 1.0 / k)).double()
        self.spec = DataSpec(name, "points2d", (2,), num_classes=k, description=description)

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self.means[comp] + self.std * noise).float(), comp

    def log_prob(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """Exact log-density of the mixture convolved with N(0, sigma^2 I)."""
        var = self.std**2 + sigma**2
        d = x.double()[:, None, :] - self.means[None]
        logn = -0.5 * (d**2).sum(-1) / var - math.log(2 * math.pi * var)
        return torch.logsumexp(logn + self.weights.log()[None], dim=1).to(x.dtype)

    def score(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """Exact grad_x log p_sigma(x) of the noised mixture (closed form, no autograd)."""
        var = self.std**2 + sigma**2
        d = x.double()[:, None, :] - self.means[None]
        logn = -0.5 * (d**2).sum(-1) / var + self.weights.log()[None]
        r = torch.softmax(logn, dim=1)
        return (-(r[..., None] * d).sum(1) / var).to(x.dtype)


@register_dataset("8gaussians", "8 Gaussians on a circle of radius 2 (exact density)", kind="points2d")
def eight_gaussians() -> GaussianMixture2D:
    ang = torch.arange(8) * (2 * math.pi / 8)
    means = 2.0 * torch.stack([ang.cos(), ang.sin()], 1)
    return GaussianMixture2D("8gaussians", means, 0.15, description="8 Gaussians on a circle")


@register_dataset("gmm2d", "2-D Gaussian mixture, 3 unequal components (exact density)", kind="points2d")
def gmm2d() -> GaussianMixture2D:
    means = torch.tensor([[-1.5, -0.8], [1.2, -1.0], [0.0, 1.4]])
    return GaussianMixture2D("gmm2d", means, 0.35, torch.tensor([0.5, 0.3, 0.2]), "3-component mixture")


class _Procedural(Dataset):
    def __init__(self, name: str, fn, description: str, num_classes: int = 0) -> None:
        self.fn = fn
        self.spec = DataSpec(name, "points2d", (2,), num_classes=num_classes, description=description)

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.fn(n, generator)


def _moons(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    label = torch.randint(0, 2, (n,), generator=g)
    t = torch.rand(n, generator=g) * math.pi
    x = torch.where(label == 0, t.cos(), 1 - t.cos())
    y = torch.where(label == 0, t.sin(), 0.5 - t.sin())
    pts = torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=g)
    return (pts - torch.tensor([0.5, 0.25])) * 1.6, label


def _swiss_roll(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, None]:
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    pts = torch.stack([t * t.cos(), t * t.sin()], 1) / 5.0
    return pts + 0.05 * torch.randn(n, 2, generator=g), None


def _checkerboard(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, None]:
    x1 = torch.rand(n, generator=g) * 4 - 2
    x2 = torch.rand(n, generator=g) - torch.randint(0, 2, (n,), generator=g) * 2.0
    x2 = x2 + (torch.floor(x1) % 2)
    return torch.stack([x1, x2], 1), None


def _rings(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    ring = torch.randint(0, 4, (n,), generator=g)
    r = (ring + 1).float() * 0.5
    a = torch.rand(n, generator=g) * 2 * math.pi
    pts = torch.stack([r * a.cos(), r * a.sin()], 1) + 0.04 * torch.randn(n, 2, generator=g)
    return pts, ring


register_dataset("moons", "two interleaved half moons", kind="points2d")(lambda: _Procedural("moons", _moons, "two moons", 2))
register_dataset("swissroll", "2-D swiss roll", kind="points2d")(lambda: _Procedural("swissroll", _swiss_roll, "swiss roll"))
register_dataset("checkerboard", "4x4 checkerboard (uniform on 8 squares)", kind="points2d")(
    lambda: _Procedural("checkerboard", _checkerboard, "checkerboard"))
register_dataset("rings", "4 concentric rings", kind="points2d")(lambda: _Procedural("rings", _rings, "concentric rings", 4))
