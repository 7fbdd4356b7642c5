"""Text blocks: padding gets exactly zero attention and its content changes nothing; attention and
InfoNCE match independent formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genstudio.core.nn.text import CrossAttention, TextEncoder, info_nce, masked_mean
from genstudio.core.text import padding_mask


def _ids() -> torch.Tensor:
    # two captions: 3 words + EOS, 1 word + EOS; padded with 0 to length 8
    return torch.tensor([[5, 6, 7, 1, 0, 0, 0, 0], [9, 1, 0, 0, 0, 0, 0, 0]])


def test_cross_attention_gives_padding_exactly_zero_weight_and_ignores_its_content():
    torch.manual_seed(0)
    att = CrossAttention(16, 12, heads=4)
    torch.nn.init.normal_(att.out.weight)  # zero-initialised output: make it count
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 8, 12)
    pad = padding_mask(_ids())
    y = att(x, ctx, pad)
    w = att.last_attn
    assert w.shape == (2, 4, 5, 8)
    assert torch.all(w.permute(0, 2, 3, 1)[pad[:, None, :].expand(2, 5, 8)] == 0)  # exactly zero
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 5))
    junk = ctx.clone()
    junk[pad] = torch.randn(int(pad.sum()), 12) * 100
    assert torch.equal(att(x, junk, pad), y)
    assert not torch.allclose(att(x, junk), y)  # without the mask the junk leaks in


def test_cross_attention_matches_scaled_dot_product_attention_and_takes_feature_maps():
    torch.manual_seed(1)
    att = CrossAttention(8, 6, heads=2)
    torch.nn.init.normal_(att.out.weight)
    x, ctx = torch.randn(2, 9, 8), torch.randn(2, 8, 6)
    pad = padding_mask(_ids())
    q = att.q(att.norm(x)).view(2, 9, 2, 4).transpose(1, 2)
    k, v = att.kv(ctx).view(2, 8, 2, 2, 4).permute(2, 0, 3, 1, 4)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=~pad[:, None, None, :])
    ref = x + att.out(ref.transpose(1, 2).reshape(2, 9, 8))
    assert torch.allclose(att(x, ctx, pad), ref, atol=1e-6)
    fmap = x.transpose(1, 2).reshape(2, 8, 3, 3)  # (B, C, H, W): the same 9 positions
    assert torch.allclose(att(fmap, ctx, pad).flatten(2).transpose(1, 2), ref, atol=1e-6)


def test_new_cross_attention_block_is_the_identity():
    att = CrossAttention(8, 6, heads=2)
    x = torch.randn(2, 4, 8)
    assert torch.equal(att(x, torch.randn(2, 8, 6)), x)


def test_text_encoder_ignores_what_the_padding_positions_hold():
    torch.manual_seed(0)
    enc = TextEncoder(vocab_size=12, max_len=8, width=16, layers=2, heads=4).eval()
    ids = _ids()
    tokens, pad = enc(ids)
    other = ids.clone()
    other[pad] = torch.randint(3, 12, (int(pad.sum()),))  # garbage where the padding was
    tokens2, pad2 = enc(other, pad)
    assert torch.equal(pad, pad2)
    assert torch.allclose(tokens[~pad], tokens2[~pad], atol=1e-6)
    assert torch.allclose(enc.pooled(ids), enc.pooled(other, pad), atol=1e-6)
    assert torch.allclose(masked_mean(tokens, pad)[1], tokens[1, :2].mean(0), atol=1e-6)
    assert not torch.allclose(enc.pooled(ids)[0], enc.pooled(torch.tensor([[5, 6, 8, 1, 0, 0, 0, 0]]))[0])


def test_info_nce_is_the_cross_entropy_of_scaled_cosines_both_ways():
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(5, 4), dim=-1), F.normalize(torch.randn(5, 4), dim=-1)
    scale = torch.tensor(math.log(10.0))
    logits = 10.0 * a @ b.T
    manual = 0.0
    for i in range(5):  # -log softmax of the matched pair, rows and columns
        manual += -torch.log_softmax(logits[i], 0)[i] - torch.log_softmax(logits[:, i], 0)[i]
    assert info_nce(a, b, scale) == pytest.approx(float(manual) / 10, rel=1e-5)
    same = torch.eye(5, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True  # items 0 and 1 share a caption: each is a positive of the other
    row0 = -0.5 * (torch.log_softmax(logits[0], 0)[0] + torch.log_softmax(logits[0], 0)[1])
    col0 = -0.5 * (torch.log_softmax(logits[:, 0], 0)[0] + torch.log_softmax(logits[:, 0], 0)[1])
    rest = sum(-torch.log_softmax(logits[i], 0)[i] - torch.log_softmax(logits[:, i], 0)[i] for i in range(2, 5))
    row1 = -0.5 * (torch.log_softmax(logits[1], 0)[0] + torch.log_softmax(logits[1], 0)[1])
    col1 = -0.5 * (torch.log_softmax(logits[:, 1], 0)[0] + torch.log_softmax(logits[:, 1], 0)[1])
    want = float(row0 + col0 + row1 + col1 + rest) / 10
    assert info_nce(a, b, scale, same) == pytest.approx(want, rel=1e-5)
