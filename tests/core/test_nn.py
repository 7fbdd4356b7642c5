"""Shared network blocks: shapes, conditioning, zero-initialised outputs, EMA maths."""

from __future__ import annotations

import math

import pytest
import torch

from genstudio.core.data import DataSpec
from genstudio.core.nn import (
    ClassEmbedding,
    ResidualMLP,
    UNet,
    default_mults,
    ema_copy,
    ema_decay_at,
    ema_update,
    net_for,
    sinusoidal_embedding,
)


def test_sinusoidal_embedding_closed_form():
    t = torch.tensor([0.0, 3.0])
    e = sinusoidal_embedding(t, 8, max_period=10000.0)
    assert e.shape == (2, 8)
    assert torch.allclose(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = [10000 ** (-k / 4) for k in range(4)]
    want = [math.cos(3 * f) for f in freqs] + [math.sin(3 * f) for f in freqs]
    assert torch.allclose(e[1], torch.tensor(want), atol=1e-6)
    assert sinusoidal_embedding(t, 7).shape == (2, 7)


def _randomise(net: torch.nn.Module) -> None:
    """Give zero-initialised output layers weights so conditioning effects become visible."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if not p.abs().sum():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize("size,ch", [(8, 1), (16, 1), (32, 3), (16, 3)])
def test_unet_shapes_and_conditioning(size, ch):
    assert 2 ** (len(default_mults(size)) - 1) * 4 == size  # bottleneck is 4x4
    net = UNet(ch, base=8, mults=default_mults(size), num_classes=10)
    x, t = torch.randn(3, ch, size, size), torch.rand(3)
    out = net(x, t)
    assert out.shape == x.shape and out.abs().max() == 0  # zero-initialised output: stable start
    _randomise(net)
    a, b = net(x, t), net(x, t, torch.tensor([1, 2, 3]))
    assert a.shape == x.shape and not torch.allclose(a, b)
    assert torch.allclose(net(x, t, torch.tensor([-1, -1, -1])), a)  # -1 and None = null class
    assert not torch.allclose(net(x, t * 0.5), a)  # depends on time
    assert net(x, torch.tensor(0.3)).shape == x.shape  # scalar time broadcasts


def test_unet_rejects_indivisible_size_and_trains():
    net = UNet(1, base=8, mults=(1, 2, 2))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(1, 1, 6, 6), torch.rand(1))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x = torch.randn(4, 1, 8, 8)
    loss = (net(x, torch.rand(4)) - x).pow(2).mean()
    loss.backward()
    opt.step()
    assert (net(x, torch.rand(4)) - x).pow(2).mean() < loss


def test_mlp_and_factory():
    net = ResidualMLP(2, hidden=16, depth=2, num_classes=3)
    x = torch.randn(5, 2)
    assert net(x, torch.rand(5)).shape == (5, 2)
    assert net(x, torch.rand(5), torch.tensor([0, 1, 2, -1, 0])).shape == (5, 2)
    assert isinstance(net_for(DataSpec("p", "points2d", (2,)), hidden=16, depth=1), ResidualMLP)
    u = net_for(DataSpec("d", "image", (1, 8, 8)), channels=8)
    assert isinstance(u, UNet) and u.factor == 2
    odd = net_for(DataSpec("f", "image", (3, 25, 25)), channels=8)  # odd sizes: no down-sampling
    assert odd(torch.randn(2, 3, 25, 25), torch.rand(2)).shape == (2, 3, 25, 25)
    assert net_for(DataSpec("p", "points2d", (2,)), hidden=8, out_mult=2)(x, torch.rand(5)).shape == (5, 4)


def test_class_embedding_null_and_drop():
    emb = ClassEmbedding(4, 6)
    y = torch.arange(4).repeat(250)
    dropped = emb.drop(y, 0.3, torch.Generator().manual_seed(0))
    frac = (dropped == emb.null).float().mean().item()
    assert 0.25 < frac < 0.35 and torch.equal(dropped[dropped != emb.null], y[dropped != emb.null])
    assert torch.equal(emb(None, 2, torch.device("cpu")), emb(torch.tensor([-1, 4]), 2, torch.device("cpu")))


def test_ema_update_formula():
    net = torch.nn.Linear(3, 2)
    ema = ema_copy(net)
    assert not any(p.requires_grad for p in ema.parameters())
    old = ema.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema_update(ema, net, 0.9)
    assert torch.allclose(ema.weight, 0.9 * old + 0.1 * net.weight)
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1) and ema_decay_at(10**6, 0.999) == 0.999
