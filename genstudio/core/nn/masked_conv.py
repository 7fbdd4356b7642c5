"""Masked convolutions and the gated PixelCNN (van den Oord et al. 2016) for images.

Raster-order causality: the prediction for pixel (r, c) may use only pixels above row r and
pixels left of c in row r. A single masked kxk conv (type A first, type B after) has a blind
spot above-right, so the gated model uses two stacks:

* vertical stack: kxk convs masked to rows <= centre; it may see the *current* row, but it only
  reaches the horizontal stack after a one-row down-shift, so it contributes rows < r;
* horizontal stack: 1xk convs masked to columns < c (type A, first layer) or <= c (type B).

Channels of one pixel are modelled as conditionally independent given the previous pixels
(exact for grey images, a simplification for colour), which keeps every mask spatial.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def raster_mask(kh: int, kw: int, mask_type: str) -> Tensor:
    """(kh, kw) 0/1 mask. "A"/"B": full raster mask without/with the centre; "V": rows <= centre;
    "HA"/"HB": centre row only, columns left of / up to the centre."""
    m = torch.zeros(kh, kw)
    cr, cc = kh // 2, kw // 2
    if mask_type in ("A", "B"):
        m[:cr] = 1
        m[cr, :cc + (mask_type == "B")] = 1
    elif mask_type == "V":
        m[:cr + 1] = 1
    elif mask_type in ("HA", "HB"):
        m[cr, :cc + (mask_type == "HB")] = 1
    else:
        raise ValueError(f"unknown mask type {mask_type!r}")
    return m


class MaskedConv2d(nn.Conv2d):
    """Same-size conv whose kernel is multiplied by a fixed :func:`raster_mask`."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int | tuple[int, int], mask_type: str) -> None:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        super().__init__(in_ch, out_ch, (kh, kw), padding=(kh // 2, kw // 2))
        self.mask_type = mask_type
        self.register_buffer("mask", raster_mask(kh, kw, mask_type)[None, None])

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def shift_down(x: Tensor) -> Tensor:
    """Row r receives row r-1 (row 0 receives zeros)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def gate(x: Tensor) -> Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedBlock(nn.Module):
    """One gated layer with both stacks; ``first`` makes the horizontal mask type A (excludes the
    current pixel) and drops the residual, since its input is the image itself."""

    def __init__(self, in_ch: int, ch: int, kernel: int, first: bool = False, cond_dim: int = 0) -> None:
        super().__init__()
        self.first = first
        self.v = MaskedConv2d(in_ch, 2 * ch, kernel, "V")
        self.h = MaskedConv2d(in_ch, 2 * ch, (1, kernel), "HA" if first else "HB")
        self.v_to_h = nn.Conv2d(2 * ch, 2 * ch, 1)
        self.h_out = nn.Conv2d(ch, ch, 1)
        self.cond = nn.Linear(cond_dim, 4 * ch) if cond_dim else None

    def forward(self, v: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v_pre = self.v(v)
        h_pre = self.h(h) + self.v_to_h(shift_down(v_pre))
        if self.cond is not None and c is not None:
            cv, ch = self.cond(c)[:, :, None, None].chunk(2, dim=1)
            v_pre, h_pre = v_pre + cv, h_pre + ch
        h_new = self.h_out(gate(h_pre))
        return gate(v_pre), h_new if self.first else h + h_new


class GatedPixelCNN(nn.Module):
    """``forward(x, y=None) -> (B, C, n_params, H, W)``: per-pixel, per-channel output parameters
    (K logits for a categorical, 3M for a discretised logistic mixture) for pixel i from pixels < i."""

    def __init__(self, channels: int, n_params: int, hidden: int = 64, layers: int = 5,
                 kernel: int = 7, num_classes: int = 0) -> None:
        super().__init__()
        self.channels, self.n_params = channels, n_params
        self.embed = nn.Embedding(num_classes, hidden) if num_classes else None
        cd = hidden if num_classes else 0
        self.blocks = nn.ModuleList(
            [GatedBlock(channels, hidden, kernel, first=True, cond_dim=cd)]
            + [GatedBlock(hidden, hidden, 3, cond_dim=cd) for _ in range(layers - 1)]
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, 4 * hidden, 1), nn.ReLU(),
                                  nn.Conv2d(4 * hidden, channels * n_params, 1))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.embed(y) if (self.embed is not None and y is not None) else None
        v = h = x
        for b in self.blocks:
            v, h = b(v, h, c)
        out = self.head(h)
        return out.view(x.shape[0], self.channels, self.n_params, *x.shape[2:])
