"""The cross-attention U-Net: padding tokens change nothing, attention maps have the contract's shape."""

import torch

from genstudio.core.nn.text_unet import TextUNet


def _net() -> TextUNet:
    torch.manual_seed(0)
    net = TextUNet(3, 16, base=8, mults=(1, 2), heads=2)
    for cb in net.cross_blocks:  # the zero-initialised output projections would hide the text path
        torch.nn.init.normal_(cb.cross.out.weight, std=0.5)
    torch.nn.init.normal_(net.conv_out.weight, std=0.5)
    return net


def test_padding_is_masked_and_attention_maps_have_the_contract_shape():
    net = _net()
    x, t = torch.randn(2, 3, 8, 8), torch.rand(2)
    ctx = torch.randn(2, 5, 16)
    pad = torch.tensor([[False, False, True, True, True], [False, False, False, True, True]])
    a = net(x, t, ctx, pad)
    maps = net.attention_maps()
    ctx2 = ctx.clone()
    ctx2[pad] = torch.randn(int(pad.sum()), 16) * 100  # garbage in the padded positions
    b = net(x, t, ctx2, pad)
    assert torch.allclose(a, b, atol=1e-6)
    assert maps.shape == (2, 5, 8, 8)  # (B, L, h, w) at the finest wrapped level
    assert torch.all(maps[pad] == 0)
    assert torch.allclose(maps.sum(1), torch.ones(2, 8, 8), atol=1e-5)  # weights over real tokens sum to 1
    # and the text reaches the output
    ctx3 = ctx.clone()
    ctx3[~pad] = torch.randn(int((~pad).sum()), 16)
    assert not torch.allclose(a, net(x, t, ctx3, pad))


def test_cross_attention_at_every_level_by_default_for_two_levels():
    net = TextUNet(1, 8, base=8, mults=(1, 2))
    assert len(net.cross_blocks) == sum(1 for _ in net.cross_blocks) >= 3
