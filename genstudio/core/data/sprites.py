"""A procedural dSprites-like dataset with known generative factors, for disentanglement.

Every combination of six discrete factors (shape, scale, rotation, x, y, colour) is one example,
so the dataset is the full factorial grid (3*6*8*8*8*4 = 36864 images), like dSprites. Images are
rendered on demand from the factor indices with analytic anti-aliasing (a signed distance per
pixel), so nothing is stored or downloaded and any batch is reproducible from its generator.

``ds.factors`` (N, 6) holds every example's factor indices, ``ds.factor_values`` the physical
values behind them, and :meth:`SpritesDataset.fixed_with_factors` a reproducible
(images, labels, factors) reference set for the latent explorer and the MIG / DCI metrics.
"""

from __future__ import annotations

import math

import torch

from genstudio.core.data import Dataset, DataSpec, register_dataset

FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y", "colour")
SHAPES = ("square", "ellipse", "triangle")
COLOURS = {"white": (1.0, 1.0, 1.0), "red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "yellow": (1.0, 1.0, 0.0)}


class SpritesDataset(Dataset):
    """RGB sprites on black, pixels in [-1, 1]; labels are the shape index (3 classes)."""

    def __init__(self, size: int = 32, name: str = "sprites") -> None:
        self.size = size
        self.factor_names = FACTOR_NAMES
        self.factor_values: tuple[torch.Tensor, ...] = (
            torch.arange(len(SHAPES), dtype=torch.float32),
            torch.linspace(0.22, 0.42, 6),  # "radius" in image units ([-1, 1] spans the image)
            torch.arange(8) * (math.pi / 2 / 8),  # [0, 90) degrees: no rotation aliases across shapes
            torch.linspace(-0.5, 0.5, 8),
            torch.linspace(-0.5, 0.5, 8),
            torch.arange(len(COLOURS), dtype=torch.float32),
        )
        self.factor_sizes = tuple(len(v) for v in self.factor_values)
        grids = torch.meshgrid(*[torch.arange(s) for s in self.factor_sizes], indexing="ij")
        self.factors = torch.stack([g.reshape(-1) for g in grids], 1)  # (N, 6) long
        self.palette = torch.tensor(list(COLOURS.values()))
        n = len(self.factors)
        self.spec = DataSpec(name, "image", (3, size, size), num_classes=len(SHAPES), size=n,
                             description=f"procedural sprites {size}x{size}, factors {', '.join(FACTOR_NAMES)}")

    def render(self, factors: torch.Tensor) -> torch.Tensor:
        """(B, 6) factor indices -> (B, 3, S, S) images in [-1, 1]."""
        f = factors.long()
        shape = f[:, 0]
        scale = self.factor_values[1][f[:, 1]]
        rot = self.factor_values[2][f[:, 2]]
        cx = self.factor_values[3][f[:, 3]]
        cy = self.factor_values[4][f[:, 4]]
        s = self.size
        pix = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2 - 1  # pixel centres
        py, px = torch.meshgrid(pix, pix, indexing="ij")  # image row = -y (y points up)
        dx = px[None] - cx[:, None, None]
        dy = -py[None] - cy[:, None, None]
        cos, sin = rot.cos()[:, None, None], rot.sin()[:, None, None]
        u = (cos * dx + sin * dy) / scale[:, None, None]  # shape-local coordinates, radius 1
        v = (-sin * dx + cos * dy) / scale[:, None, None]
        sd_square = torch.maximum(u.abs(), v.abs()) - 0.8
        sd_ellipse = (torch.sqrt(u**2 + (v / 0.55) ** 2) - 1) * 0.55
        sd_tri = torch.stack([nx * u + ny * v for nx, ny in
                              [(math.cos(a), math.sin(a)) for a in (math.pi / 2, 7 * math.pi / 6, 11 * math.pi / 6)]],
                             0).amax(0) - 0.6
        sd = torch.where(shape[:, None, None] == 0, sd_square, torch.where(shape[:, None, None] == 1, sd_ellipse, sd_tri))
        dist = sd * scale[:, None, None]  # back to image units
        cover = (0.5 - dist / (2.0 / s)).clamp(0, 1)  # area coverage of a one-pixel-wide edge
        colour = self.palette[f[:, 5]]
        img = cover[:, None] * colour[:, :, None, None]
        return img * 2 - 1

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.factors), (n,), generator=generator)
        f = self.factors[idx]
        return self.render(f), f[:, 0].clone()

    def fixed_with_factors(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A reproducible subset without repeats: (images, shape labels, factor indices (n, 6))."""
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self.factors), generator=g)[: min(n, len(self.factors))]
        f = self.factors[idx]
        return self.render(f), f[:, 0].clone(), f

    def fixed(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, _ = self.fixed_with_factors(n, seed)
        return x, y


@register_dataset("sprites", "procedural dSprites-like sprites 3x32x32 with 6 known factors", kind="image")
def sprites() -> SpritesDataset:
    return SpritesDataset(32, "sprites")


@register_dataset("sprites16", "the sprites dataset at 3x16x16 (fast on CPU)", kind="image")
def sprites16() -> SpritesDataset:
    return SpritesDataset(16, "sprites16")
