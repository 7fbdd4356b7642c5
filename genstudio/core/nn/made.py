"""MADE (Germain et al. 2015): an MLP whose weight masks make output i depend only on the inputs
that come before i in a chosen order. One pass gives every conditional's parameters, which is
what makes MAF density evaluation (and IAF sampling) a single network call.

Degrees are assigned deterministically (hidden unit k gets degree 1 + k mod (D-1)), so the same
config always builds the same masks and checkpoints stay loadable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLinear(nn.Linear):
    """``nn.Linear`` with a fixed 0/1 connectivity mask (a buffer, saved with the weights)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def made_masks(order: Tensor, hidden: tuple[int, ...]) -> list[Tensor]:
    """Masks (out, in) for input -> hidden... -> output, where output block i sees inputs whose
    rank in ``order`` is strictly smaller than rank(i). ``order[r]`` is the input placed r-th."""
    d = len(order)
    rank = torch.empty(d, dtype=torch.long)
    rank[order] = torch.arange(1, d + 1)  # degree of each input (1-based position in the order)
    degrees = [rank]
    for h in hidden:
        degrees.append(1 + torch.arange(h) % max(d - 1, 1))
    masks = [(degrees[i + 1][:, None] >= degrees[i][None, :]) for i in range(len(hidden))]
    masks.append(rank[:, None] > degrees[-1][None, :])
    return masks


class MADE(nn.Module):
    """``forward(x) -> (B, n_out, D)``: ``n_out`` parameters per dimension (e.g. shift and log-scale),
    each a function of the preceding dimensions only. The last layer starts at zero, so a flow
    built from MADEs starts as the identity."""

    def __init__(self, dim: int, hidden: tuple[int, ...] = (128, 128), n_out: int = 2,
                 order: Tensor | None = None) -> None:
        super().__init__()
        self.dim, self.n_out = dim, n_out
        order = torch.arange(dim) if order is None else torch.as_tensor(order, dtype=torch.long)
        self.register_buffer("order", order.clone())
        masks = made_masks(order, tuple(hidden))
        sizes = [dim, *hidden]
        layers: list[nn.Module] = []
        for i, h in enumerate(hidden):
            layers += [MaskedLinear(sizes[i], h, masks[i]), nn.ELU()]
        self.body = nn.Sequential(*layers)
        # one output block per parameter, each with the same autoregressive mask
        out_mask = masks[-1].repeat(n_out, 1)
        self.out = MaskedLinear(sizes[-1], dim * n_out, out_mask)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x)).view(x.shape[0], self.n_out, self.dim)
