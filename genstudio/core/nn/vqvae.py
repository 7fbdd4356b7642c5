"""A convolutional VQ-VAE image tokenizer (van den Oord et al. 2017) on the shared
:class:`~genstudio.core.nn.vq.VectorQuantizer`: stride-2 conv stages down by ``downsample``, a 1x1
projection to the code dimension, nearest-code quantisation (EMA codebook, k-means start, dead-code
restart, straight-through), and the mirrored decoder. Images (B, C, H, W) <-> token grids (B, h, w).

Shared by the VQ-VAE plugin and the token models that read its runs (DALL-E-style, unified).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.nn.vq import VectorQuantizer, VQOutput


def _res(ch: int) -> nn.Module:
    return nn.Sequential(nn.GELU(), nn.Conv2d(ch, ch, 3, padding=1), nn.GELU(), nn.Conv2d(ch, ch, 1))


class _Residual(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = _res(ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class VQVAE(nn.Module):
    """Encoder -> VectorQuantizer -> decoder. ``downsample`` a power of two (token grid = H / it)."""

    def __init__(self, in_ch: int, channels: int, downsample: int, dim: int, size: int, *, decay: float = 0.9,
                 commitment: float = 0.25, dead_threshold: float = 1.0) -> None:
        super().__init__()
        stages = int(round(math.log2(downsample)))
        if 2 ** stages != downsample or stages < 1:
            raise ValueError(f"downsample must be a power of two >= 2, got {downsample}")
        self.downsample = downsample
        enc: list[nn.Module] = [nn.Conv2d(in_ch, channels, 3, padding=1)]
        for _ in range(stages):
            enc += [nn.GELU(), nn.Conv2d(channels, channels, 4, stride=2, padding=1)]
        enc += [_Residual(channels), nn.GELU(), nn.Conv2d(channels, dim, 1)]
        self.enc = nn.Sequential(*enc)
        self.vq = VectorQuantizer(dim, size, decay=decay, commitment=commitment, dead_threshold=dead_threshold)
        dec: list[nn.Module] = [nn.Conv2d(dim, channels, 3, padding=1), _Residual(channels)]
        for _ in range(stages):
            dec += [nn.GELU(), nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)]
        dec += [nn.GELU(), nn.Conv2d(channels, in_ch, 3, padding=1)]
        self.dec = nn.Sequential(*dec)

    @property
    def size(self) -> int:
        return self.vq.size

    def forward(self, x: Tensor) -> tuple[Tensor, VQOutput]:
        """(reconstruction, the quantiser's output); training mode updates the codebook."""
        q = self.vq(self.enc(x))
        return self.dec(q.quantized), q

    def loss(self, x: Tensor) -> tuple[Tensor, Tensor, VQOutput]:
        """(total loss = recon MSE + commitment, recon MSE, quantiser output)."""
        y, q = self(x)
        mse = F.mse_loss(y, x)
        return mse + q.loss, mse, q

    @torch.no_grad()
    def encode_tokens(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, h, w) int64 codes (no codebook update)."""
        return self.vq.encode(self.enc(x))

    @torch.no_grad()
    def decode_tokens(self, tokens: Tensor) -> Tensor:
        """(B, h, w) codes -> images, clamped to the data range [-1, 1]."""
        return self.dec(self.vq.decode(tokens)).clamp(-1, 1)


def grey_undecided(images: Tensor, decided: Tensor) -> Tensor:
    """``images`` (B, C, H, W) with the pixel block of every undecided token (``decided`` (B, h, w)
    False) set to mid grey (0 in [-1, 1]): what a token-by-token sampler has fixed so far."""
    keep = F.interpolate(decided[:, None].float(), size=images.shape[-2:], mode="nearest") > 0.5
    return torch.where(keep, images, torch.zeros_like(images))
