"""The shared sequence transformer: its attention masks match their design, padding keys get no
attention, a causal model's logits never see the future, and greedy picking."""

from __future__ import annotations

import torch

from genstudio.core.nn.seq import (
    SeqTransformer,
    Vocab,
    attention_mask,
    filter_logits,
    maskgit_keep_masked,
    pick,
    segment_logp,
)


def test_causal_mask_is_lower_triangular():
    m = attention_mask(6)
    assert torch.equal(m, torch.ones(6, 6, dtype=torch.bool).tril())


def test_masked_mode_is_bidirectional_only_within_the_image():
    m = attention_mask(10, image=(4, 8), bidirectional_image=True)
    i, j = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    in_img = (i >= 4) & (i < 8) & (j >= 4) & (j < 8)
    assert torch.equal(m, (j <= i) | in_img)
    assert not m[:4, 4:].any(), "text (before the image) never attends later positions"
    assert not m[8:, :].logical_and(j[8:] > i[8:]).any(), "after the image: causal"


def _net(seed: int = 0) -> SeqTransformer:
    torch.manual_seed(seed)
    return SeqTransformer(Vocab(("a", "b"), 5, 7), 12, width=16, layers=2, heads=2).eval()


def test_causal_logits_ignore_later_tokens_and_padding_gets_zero_attention():
    net = _net()
    ids = torch.randint(0, net.vocab.size, (2, 10))
    other = ids.clone()
    other[:, 6:] = (other[:, 6:] + 1) % net.vocab.size
    allowed = attention_mask(10)
    a, b = net(ids, allowed), net(other, allowed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6) and not torch.allclose(a[:, 6:], b[:, 6:])
    pad = torch.zeros(2, 10, dtype=torch.bool)
    pad[:, 2:4] = True
    net(ids, allowed, pad, keep_attn=True)
    w = net.attention()
    assert w.shape == (2, 10, 10)
    assert (w[:, 4:, 2:4] == 0).all(), "padding keys get exactly zero weight"
    # what the padding positions hold changes nothing at the real positions after them
    swapped = ids.clone()
    swapped[:, 2:4] = 0
    assert torch.allclose(net(ids, allowed, pad)[:, 4:], net(swapped, allowed, pad)[:, 4:], atol=1e-6)


def test_segment_logp_is_a_normalised_distribution_over_its_range():
    logits = torch.randn(3, 13)
    lo, hi = 2, 7
    all_lp = torch.stack([segment_logp(logits, torch.full((3,), k), (lo, hi)) for k in range(lo, hi)], -1)
    assert torch.allclose(all_lp.exp().sum(-1), torch.ones(3), atol=1e-6)


def test_pick_greedy_cases():
    logits = torch.randn(8, 20)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(pick(logits, g, temperature=0.0), logits.argmax(-1))
    assert torch.equal(pick(logits, g, temperature=1.0, top_k=1), logits.argmax(-1))
    kept = torch.isfinite(filter_logits(logits, 1.0, 3)).sum(-1)
    assert (kept == 3).all()


def test_maskgit_schedule_falls_to_zero():
    n = [maskgit_keep_masked(16, s, 8) for s in range(0, 9)]
    assert n[0] == 16 and n[-1] == 0 and all(a >= b for a, b in zip(n, n[1:]))
