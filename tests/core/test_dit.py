"""DiT backbone: shapes, adaLN-Zero identity at init, class conditioning, training; U-Net attention."""

from __future__ import annotations

import pytest
import torch

from genstudio.core.data import DataSpec
from genstudio.core.nn import DiT, UNet, net_for
from genstudio.core.nn.dit import default_patch, sincos_pos_embed_2d
from genstudio.core.nn.unet import Attention


@pytest.mark.parametrize("size", [8, 16])
@pytest.mark.parametrize("ch", [1, 3])
def test_shapes_and_net_for(size: int, ch: int) -> None:
    spec = DataSpec("x", "image", (ch, size, size), num_classes=10)
    net = net_for(spec, channels=8, num_classes=10, backbone="dit", dit_depth=2, out_mult=2)
    assert isinstance(net, DiT)
    x = torch.randn(3, ch, size, size)
    out = net(x, torch.rand(3), torch.tensor([0, 5, -1]))
    assert out.shape == (3, 2 * ch, size, size)
    assert torch.all(out == 0)  # zero-initialised output projection
    assert net(x, torch.tensor(0.5)).shape == (3, 2 * ch, size, size)  # scalar t, unconditional


def test_patchify_roundtrip_and_pos_embed() -> None:
    net = DiT(3, (8, 8), patch=2, dim=32, depth=1)
    x = torch.randn(2, 3, 8, 8)
    # unpatchify inverts the patch layout: reshape x into patches by hand, then back
    p = x.reshape(2, 3, 4, 2, 4, 2).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 12)
    assert torch.equal(net.unpatchify(p), x)
    pe = sincos_pos_embed_2d(32, 4, 4)
    assert pe.shape == (16, 32) and torch.unique(pe, dim=0).shape[0] == 16  # every position distinct
    assert default_patch(8, 8) == 2 and default_patch(16, 16) == 4 and default_patch(28, 28) == 4
    with pytest.raises(ValueError):
        net_for(DataSpec("x", "image", (1, 8, 8)), backbone="vit")


def test_adaln_zero_blocks_are_identity_at_init() -> None:
    net = DiT(1, (8, 8), patch=2, dim=32, depth=3, num_classes=4)
    x = torch.randn(4, 1, 8, 8)
    c = net.cond(torch.rand(4), torch.tensor([0, 1, 2, 3]), 4)
    h = net.tokens(x)
    for blk in net.blocks:
        assert torch.equal(blk(h, c), h)


def _train(net: torch.nn.Module, steps: int, seed: int = 0) -> list[float]:
    """Denoising-style regression: predict the class-dependent offset added to noise."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        y = torch.randint(0, 2, (16,), generator=g)
        x = torch.randn(16, 1, 8, 8, generator=g)
        target = (2.0 * y - 1.0)[:, None, None, None].expand_as(x)
        loss = (net(x, torch.rand(16, generator=g), y) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_class_conditioning_and_training() -> None:
    torch.manual_seed(0)
    net = DiT(1, (8, 8), patch=2, dim=32, depth=2, num_classes=2)
    x, t = torch.randn(2, 1, 8, 8), torch.full((2,), 0.3)
    with torch.no_grad():
        assert torch.equal(net(x, t, torch.tensor([0, 0])), net(x, t, torch.tensor([1, 1])))
    # step 1 only moves the (zero) output projection: every modulation's gradient passes through it
    # and is zero; from step 2 on the label reaches the output
    losses = _train(net, 2)
    with torch.no_grad():
        a = net(x, t, torch.tensor([0, 0]))
        b = net(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    losses += _train(net, 58, seed=1)
    assert sum(losses[-10:]) / 10 < 0.2 * losses[0]  # target variance 1: learnt the class offset
    with torch.no_grad():
        out = net(x, t, torch.tensor([0, 1]))
    assert out[0].mean() < -0.5 and out[1].mean() > 0.5


def test_unet_has_attention_at_lowest_resolution() -> None:
    net = UNet(1, base=8, mults=(1, 2))
    seen: list[tuple[int, int]] = []
    for m in net.modules():
        if isinstance(m, Attention):
            m.register_forward_hook(lambda _m, inp, _o: seen.append(tuple(inp[0].shape[-2:])))
    net(torch.randn(1, 1, 8, 8), torch.rand(1))
    assert seen and set(seen) == {(4, 4)}  # 8x8 input, one downsampling: attention only at 4x4


def test_ddpm_plugin_with_dit_backbone() -> None:
    from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin

    plugin = DDPMPlugin(DDPMConfig(batch_size=8, timesteps=20, channels=8, sample_steps=3, backbone="dit"))
    plugin.setup(DataSpec("x", "image", (1, 8, 8)))
    assert isinstance(plugin.net, DiT)
    for step in range(3):
        assert torch.isfinite(torch.tensor(plugin.train_step(torch.rand(8, 1, 8, 8) * 2 - 1, None, step)["loss"]))
    states = list(plugin.sample(2, seed=0, sampler="ddim", steps=3))
    assert states[-1].x.shape == (2, 1, 8, 8)


def test_flow_matching_with_dit_backbone() -> None:
    from genstudio_plugins.flow_matching import FlowMatchingConfig, FlowMatchingPlugin

    plugin = FlowMatchingPlugin(FlowMatchingConfig(batch_size=8, channels=8, sample_steps=2, backbone="dit"))
    plugin.setup(DataSpec("x", "image", (3, 16, 16)))
    assert isinstance(plugin.net, DiT) and plugin.net.patch == 4
    for step in range(3):
        assert torch.isfinite(torch.tensor(plugin.train_step(torch.rand(8, 3, 16, 16) * 2 - 1, None, step)["loss"]))
    assert list(plugin.sample(2, seed=0))[-1].x.shape == (2, 3, 16, 16)
