"""Exponential moving average of weights: the copy diffusion-style models sample from."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(net: nn.Module) -> nn.Module:
    """A frozen deep copy in eval mode (kept as a plugin attribute, so BasePlugin saves it)."""
    return copy.deepcopy(net).requires_grad_(False).eval()


def ema_decay_at(step: int, decay: float) -> float:
    """Warm-up min(decay, (1 + step) / (10 + step)): early on the average follows the weights
    closely, so previews after a few hundred steps are not dominated by the random init."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * net for parameters; buffers are copied."""
    e_params = [p for p in ema.parameters()]
    n_params = [p.detach() for p in net.parameters()]
    torch._foreach_lerp_(e_params, n_params, 1.0 - decay)
    for be, bn in zip(ema.buffers(), net.buffers()):
        be.copy_(bn)
