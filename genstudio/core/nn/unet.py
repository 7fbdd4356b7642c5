"""A small DDPM/ADM-style U-Net for 8x8 .. 64x64 images with 1 or 3 channels.

Residual blocks with GroupNorm and scale-shift conditioning (time + optional class), self-attention
at the lowest resolution, skip connections by concatenation. Output convolutions start at zero so
every residual block is the identity at initialisation (training starts stable at any depth).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.nn.embed import ClassEmbedding, TimeEmbedding


def _groups(ch: int, max_groups: int = 8) -> int:
    return math.gcd(ch, max_groups)


def _zero(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


def default_mults(size: int) -> tuple[int, ...]:
    """Channel multipliers that bring ``size`` down to a 4x4 (or smaller) bottleneck:
    8 -> (1, 2), 16 -> (1, 2, 2), 32 -> (1, 2, 2, 2), 64 -> (1, 2, 2, 2, 2)."""
    levels = max(1, int(math.log2(max(size, 4) // 4)) + 1)
    return (1,) + (2,) * (levels - 1)


class ResBlock(nn.Module):
    takes_emb = True  # called as block(h, e); UNet.forward asks this, so wrappers (cross-attention) can too

    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(e)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map (residual)."""

    def __init__(self, ch: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads if ch % heads == 0 else 1
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """``forward(x, t, y=None)``: x (B, C, H, W), t (B,) in [0, 1], y (B,) labels or None.

    H and W must be divisible by 2^(len(mults) - 1). ``num_classes > 0`` adds a class embedding with
    a null class for classifier-free guidance (y None or -1 = unconditional).
    """

    def __init__(self, in_ch: int = 1, base: int = 32, mults: tuple[int, ...] = (1, 2, 2), num_res: int = 1,
                 num_classes: int = 0, out_ch: int | None = None, dropout: float = 0.0, attn_heads: int = 4) -> None:
        super().__init__()
        emb_dim = 4 * base
        self.factor = 2 ** (len(mults) - 1)
        self.time = TimeEmbedding(emb_dim, freq_dim=base)
        self.cls = ClassEmbedding(num_classes, emb_dim) if num_classes > 0 else None
        self.conv_in = nn.Conv2d(in_ch, base, 3, padding=1)
        chans = [base * m for m in mults]
        lowest = len(mults) - 1

        self.down = nn.ModuleList()
        skips = [base]
        ch = base
        for lvl, cout in enumerate(chans):
            for _ in range(num_res):
                self.down.append(ResBlock(ch, cout, emb_dim, dropout))
                ch = cout
                skips.append(ch)
            if lvl != lowest:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)

        self.mid1 = ResBlock(ch, ch, emb_dim, dropout)
        self.mid_attn = Attention(ch, attn_heads)
        self.mid2 = ResBlock(ch, ch, emb_dim, dropout)

        self.up = nn.ModuleList()
        for lvl in reversed(range(len(mults))):
            cout = chans[lvl]
            for _ in range(num_res + 1):
                self.up.append(ResBlock(ch + skips.pop(), cout, emb_dim, dropout))
                ch = cout
                if lvl == lowest:
                    self.up.append(Attention(ch, attn_heads))
            if lvl != 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
                self.up.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = _zero(nn.Conv2d(ch, out_ch or in_ch, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by {self.factor}")
        e = self.time(t.expand(x.shape[0]) if t.dim() == 0 else t)
        if self.cls is not None:
            e = e + self.cls(y, x.shape[0], x.device)
        e = F.silu(e)
        h = self.conv_in(x)
        hs = [h]
        for m in self.down:
            h = m(h, e) if getattr(m, "takes_emb", False) else m(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, e)), e)
        for m in self.up:
            if getattr(m, "takes_emb", False):
                h = m(torch.cat([h, hs.pop()], dim=1), e)
            else:
                h = m(h)
        return self.conv_out(F.silu(self.norm_out(h)))
