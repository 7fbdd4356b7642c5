"""The U-Net of ``genstudio.core.nn.unet`` with cross-attention to text tokens (Stable Diffusion's
denoiser shape), shared by the text-to-image diffusion families (sd, imagen).

Nothing of the U-Net is copied: after the plain U-Net is built, every residual block at the chosen
levels (and the middle one) is wrapped so that a :class:`~genstudio.core.nn.text.CrossAttention`
follows it. Padding tokens are masked (weight exactly 0) and each block keeps its last attention
weights, so :meth:`TextUNet.attention_maps` can report the contract's ``attn`` extras
(B, L, h, w), averaged over heads and layers at the finest wrapped resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.nn.text import CrossAttention
from genstudio.core.nn.unet import ResBlock, UNet


class CrossBlock(nn.Module):
    """A residual block, then cross-attention to the context the owning U-Net set for this call."""

    takes_emb = True

    def __init__(self, block: ResBlock, dim: int, context_dim: int, heads: int) -> None:
        super().__init__()
        self.block = block
        self.cross = CrossAttention(dim, context_dim, heads if dim % heads == 0 else 1)
        self.context: tuple[Tensor, Tensor | None] | None = None

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        h = self.block(h, e)
        if self.context is None:
            raise RuntimeError("CrossBlock called without a context (call TextUNet with context=...)")
        return self.cross(h, *self.context)


class TextUNet(UNet):
    """``forward(x, t, context, pad)``: x (B, C, H, W), t (B,) in [0, 1], context (B, L, context_dim)
    text tokens, pad (B, L) True at padding. ``cross_levels``: U-Net levels (0 = full resolution)
    whose residual blocks get cross-attention; None = every level but the full-resolution one (or
    all levels for a two-level net). The middle block always has it."""

    def __init__(self, in_ch: int, context_dim: int, base: int = 32, mults: tuple[int, ...] = (1, 2, 2),
                 num_res: int = 1, out_ch: int | None = None, dropout: float = 0.0, heads: int = 4,
                 cross_levels: tuple[int, ...] | None = None) -> None:
        super().__init__(in_ch, base, mults, num_res, 0, out_ch, dropout, heads)
        if cross_levels is None:
            cross_levels = tuple(range(1 if len(mults) > 2 else 0, len(mults)))
        self.cross_levels = tuple(cross_levels)
        self.cross_blocks: list[CrossBlock] = []

        def wrap(seq: nn.ModuleList, start: int, step: int) -> None:
            lvl = start
            for i, m in enumerate(seq):
                if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
                    lvl += step
                elif isinstance(m, nn.Upsample):
                    lvl += step
                elif isinstance(m, ResBlock) and lvl in self.cross_levels:
                    seq[i] = self._cross(m, context_dim, heads)

        wrap(self.down, 0, 1)
        wrap(self.up, len(mults) - 1, -1)
        self.mid1 = self._cross(self.mid1, context_dim, heads)

    def _cross(self, block: ResBlock, context_dim: int, heads: int) -> CrossBlock:
        dim = block.conv2.out_channels
        cb = CrossBlock(block, dim, context_dim, heads)
        self.cross_blocks.append(cb)
        return cb

    def forward(self, x: Tensor, t: Tensor, context: Tensor | None = None,  # type: ignore[override]
                pad: Tensor | None = None) -> Tensor:
        if context is None:
            raise ValueError("TextUNet needs text context tokens")
        for cb in self.cross_blocks:
            cb.context = (context, pad)
        try:
            return super().forward(x, t, None)
        finally:
            for cb in self.cross_blocks:
                cb.context = None

    def attention_maps(self, size: tuple[int, int] | None = None) -> Tensor | None:
        """(B, L, h, w): the last call's attention from each position to each token, averaged over
        heads and cross-attention layers, every layer resized to the finest wrapped resolution (or
        ``size``). Padding positions keep weight exactly 0 (a mean of zeros)."""
        maps = []
        for cb in self.cross_blocks:
            w = cb.cross.last_attn
            if w is None:
                continue
            b, _, n, length = w.shape
            side = int(round(n ** 0.5))
            maps.append(w.mean(1).transpose(1, 2).reshape(b, length, side, side))
        if not maps:
            return None
        hw = size or max((m.shape[-2:] for m in maps), key=lambda s: s[0])
        maps = [m if tuple(m.shape[-2:]) == tuple(hw) else F.interpolate(m, size=tuple(hw), mode="nearest")
                for m in maps]
        return torch.stack(maps).mean(0)
