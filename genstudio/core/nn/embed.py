"""Conditioning embeddings shared by every network: sinusoidal time features and class labels.

Networks take time as a float tensor (B,) in [0, 1] (1 = most noise) so diffusion, score, flow
matching and consistency models share them; the embedding scales it by ``scale`` (1000) so the
frequencies cover the same range as the integer timesteps of Ho et al.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer-style features [cos(t w_k), sin(t w_k)], w_k = max_period^(-k / (dim/2)); (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class TimeEmbedding(nn.Module):
    """t in [0, 1] -> sinusoidal features -> 2-layer MLP (as in DDPM / ADM)."""

    def __init__(self, dim: int, freq_dim: int | None = None, scale: float = 1000.0) -> None:
        super().__init__()
        self.freq_dim = freq_dim or dim
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(self.freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        t = t.reshape(-1)
        return self.mlp(sinusoidal_embedding(t * self.scale, self.freq_dim).to(self.mlp[0].weight.dtype))


class ClassEmbedding(nn.Module):
    """Labels 0..K-1 plus a learned *null* label K (``None`` or -1 = unconditional), so one
    network can be trained with label dropout and sampled with classifier-free guidance."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.emb = nn.Embedding(num_classes + 1, dim)

    @property
    def null(self) -> int:
        return self.num_classes

    def forward(self, y: Tensor | None, batch: int, device: torch.device) -> Tensor:
        if y is None:
            y = torch.full((batch,), self.null, dtype=torch.long, device=device)
        y = torch.where(y < 0, torch.full_like(y, self.null), y.long())
        return self.emb(y)

    def drop(self, y: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
        """Replace each label by the null label with probability ``p`` (training for CFG)."""
        if p <= 0:
            return y
        mask = torch.rand(y.shape, generator=generator, device=y.device) < p
        return torch.where(mask, torch.full_like(y, self.null), y)
