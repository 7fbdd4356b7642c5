"""A small Diffusion Transformer (Peebles & Xie 2023) for 8x8 .. 64x64 images, same call as the U-Net.

Patchify (a strided convolution) -> fixed 2-D sin-cos position embedding -> transformer blocks with
adaLN-Zero conditioning on time (+ class, with a null class for classifier-free guidance) -> final
adaLN layer -> unpatchify. Every modulation and the output projection start at zero, so each block
is the identity at initialisation and the network outputs zeros: deep stacks start stable.

Transformers need more steps than the U-Net on small data: DDPM on 8x8 digits, 1500 steps of batch
128 on one CPU thread (~100 s each), classifier-feature Frechet distance with 50 DDIM steps: U-Net
(16 channels) 5.9, DiT (width 64, 4 blocks, patch 2) 26.6 at lr 1e-3 and 86 at lr 3e-4 (real vs
real: 1.5).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genstudio.core.nn.embed import ClassEmbedding, TimeEmbedding, sinusoidal_embedding


def sincos_pos_embed_2d(dim: int, gh: int, gw: int) -> Tensor:
    """(gh * gw, dim) fixed embedding: half the features encode the row, half the column."""
    if dim % 4:
        raise ValueError(f"DiT width {dim} must be divisible by 4 for the 2-D position embedding")
    rows = torch.arange(gh, dtype=torch.float32).repeat_interleave(gw)
    cols = torch.arange(gw, dtype=torch.float32).repeat(gh)
    return torch.cat([sinusoidal_embedding(rows, dim // 2), sinusoidal_embedding(cols, dim // 2)], dim=1)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


def _zero_linear(i: int, o: int) -> nn.Linear:
    lin = nn.Linear(i, o)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


class DiTBlock(nn.Module):
    """Pre-norm attention + MLP; the conditioning regresses shift, scale and a gate for each, gates
    initialised at zero (adaLN-Zero) so the block starts as the identity."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hid = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hid), nn.GELU(approximate="tanh"), nn.Linear(hid, dim))
        self.ada = nn.Sequential(nn.SiLU(), _zero_linear(dim, 6 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=1)
        h = _modulate(self.norm1(x), sh1, sc1)
        x = x + g1[:, None] * self.attn(h, h, h, need_weights=False)[0]
        return x + g2[:, None] * self.mlp(_modulate(self.norm2(x), sh2, sc2))


class DiT(nn.Module):
    """``forward(x, t, y=None)``: x (B, C, H, W), t (B,) in [0, 1], y (B,) labels or None (-1 = null).

    H and W must be divisible by ``patch``; the position table is built for ``size`` (H, W).
    """

    def __init__(self, in_ch: int = 1, size: tuple[int, int] = (8, 8), patch: int = 2, dim: int = 64,
                 depth: int = 4, heads: int = 4, num_classes: int = 0, out_ch: int | None = None,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        h, w = size
        if h % patch or w % patch:
            raise ValueError(f"image size {size} is not divisible by the patch size {patch}")
        self.patch, self.out_ch, self.grid = patch, out_ch or in_ch, (h // patch, w // patch)
        self.embed = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.register_buffer("pos", sincos_pos_embed_2d(dim, *self.grid)[None], persistent=False)
        self.time = TimeEmbedding(dim)
        self.cls = ClassEmbedding(num_classes, dim) if num_classes > 0 else None
        self.blocks = nn.ModuleList(DiTBlock(dim, heads if dim % heads == 0 else 1, mlp_ratio) for _ in range(depth))
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), _zero_linear(dim, 2 * dim))
        self.proj_out = _zero_linear(dim, patch * patch * self.out_ch)

    def cond(self, t: Tensor, y: Tensor | None, batch: int) -> Tensor:
        c = self.time(t.expand(batch) if t.dim() == 0 else t)
        if self.cls is not None:
            c = c + self.cls(y, batch, c.device)
        return c

    def tokens(self, x: Tensor) -> Tensor:
        """Patchify + position embedding: (B, C, H, W) -> (B, N, dim)."""
        if tuple(s // self.patch for s in x.shape[-2:]) != self.grid or x.shape[-1] % self.patch:
            raise ValueError(f"DiT built for a {self.grid} patch grid, got image {tuple(x.shape[-2:])}")
        return self.embed(x).flatten(2).transpose(1, 2) + self.pos

    def unpatchify(self, tok: Tensor) -> Tensor:
        """(B, N, p*p*C) -> (B, C, H, W)."""
        b, p, (gh, gw) = tok.shape[0], self.patch, self.grid
        return tok.reshape(b, gh, gw, p, p, self.out_ch).permute(0, 5, 1, 3, 2, 4).reshape(b, self.out_ch, gh * p,
                                                                                             gw * p)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.cond(t, y, x.shape[0])
        h = self.tokens(x)
        for blk in self.blocks:
            h = blk(h, c)
        shift, scale = self.ada_out(c).chunk(2, dim=1)
        return self.unpatchify(self.proj_out(_modulate(self.norm_out(h), shift, scale)))


def default_patch(h: int, w: int) -> int:
    """Largest of 4, 2, 1 dividing both sides that leaves at least a 4x4 token grid."""
    for p in (4, 2):
        if h % p == 0 and w % p == 0 and min(h, w) // p >= 4:
            return p
    return 1


__all__ = ["DiT", "DiTBlock", "default_patch", "sincos_pos_embed_2d"]
