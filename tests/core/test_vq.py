"""Vector quantisers (genstudio.core.nn.vq) against closed forms: the residual chain, exact
reconstruction with exact codebooks, the EMA update on a toy batch, dead-code restart,
quantiser dropout depths, straight-through gradients and both input layouts."""

from __future__ import annotations

import math

import pytest
import torch

from genstudio.core.nn.vq import ResidualVQ, VectorQuantizer, code_stats


def _set_codebook(vq: VectorQuantizer, embed: torch.Tensor) -> None:
    vq.embed.copy_(embed)
    vq.embed_sum.copy_(embed)
    vq.cluster_size.fill_(1.0)
    vq.initted.fill_(True)


def test_residual_after_level_k_is_what_level_k_plus_1_quantises():
    torch.manual_seed(0)
    rvq = ResidualVQ(4, 3, 8, dropout=False)
    for layer in rvq.layers:
        _set_codebook(layer, torch.randn(8, 3))
    rvq.eval()
    seen = []
    hooks = [layer.register_forward_hook(lambda m, inp, out: seen.append((inp[0].clone(), out.quantized.detach())))
             for layer in rvq.layers]
    x = torch.randn(5, 3, 7)
    out = rvq(x)
    for h in hooks:
        h.remove()
    assert len(seen) == 4
    total = torch.zeros_like(x)
    for k, (inp, q) in enumerate(seen):
        assert torch.allclose(inp, x - total, atol=1e-6), f"level {k + 1} got something else than the residual"
        codes = rvq.layers[k].nearest(inp.movedim(1, -1).reshape(-1, 3))
        assert torch.equal(out.codes[:, k].reshape(-1), codes)
        total = total + q
    assert torch.allclose(out.quantized, total, atol=1e-6)
    assert torch.allclose(rvq.decode(rvq.encode(x)), total, atol=1e-6)


def test_exact_codebooks_reconstruct_exactly():
    """x = a + b with a in codebook 1 and b in codebook 2 (b much smaller): two levels give x back."""
    torch.manual_seed(1)
    c1, c2 = torch.randn(6, 4) * 10, torch.randn(6, 4) * 0.1
    rvq = ResidualVQ(2, 4, 6, dropout=False)
    _set_codebook(rvq.layers[0], c1)
    _set_codebook(rvq.layers[1], c2)
    rvq.eval()
    i, j = torch.randint(0, 6, (20,)), torch.randint(0, 6, (20,))
    x = c1[i] + c2[j]  # rows (N, D)
    out = rvq(x)
    assert torch.allclose(out.quantized, x, atol=1e-5)
    assert torch.equal(out.codes, torch.stack([i, j], 1))
    assert torch.allclose(rvq.decode(out.codes), x, atol=1e-5)


def test_ema_update_matches_closed_form():
    vq = VectorQuantizer(2, 3, decay=0.9, eps=1e-5, dead_threshold=0.0)
    e0 = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    _set_codebook(vq, e0)
    x = torch.tensor([[0.1, -0.1], [0.2, 0.0], [0.9, 1.2]])  # two rows to code 0, one to code 1, none to 2
    vq.train()
    vq(x)
    counts = torch.tensor([2.0, 1.0, 0.0])
    sums = torch.stack([x[0] + x[1], x[2], torch.zeros(2)])
    n = 0.9 * torch.ones(3) + 0.1 * counts
    m = 0.9 * e0 + 0.1 * sums
    smoothed = (n + 1e-5) / (n.sum() + 3 * 1e-5) * n.sum()
    assert torch.allclose(vq.cluster_size, n)
    assert torch.allclose(vq.embed_sum, m)
    assert torch.allclose(vq.embed, m / smoothed[:, None], atol=1e-6)


def test_dead_codes_restart_at_batch_vectors():
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 4, decay=0.5, dead_threshold=0.6)
    _set_codebook(vq, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [100.0, 100.0]]))
    x = torch.rand(32, 2)  # never near code 3: its count halves to 0.5 < 0.6 after one step
    vq.train()
    vq(x)
    assert vq.restarts >= 1
    assert (torch.cdist(vq.embed[3:4], x).min() < 1e-6), "the dead code must move onto a batch vector"
    assert vq.cluster_size[3] == pytest.approx(0.6)


def test_kmeans_init_on_first_training_batch():
    torch.manual_seed(0)
    centres = torch.tensor([[-5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    x = centres[torch.arange(300) % 3] + 0.01 * torch.randn(300, 2)
    vq = VectorQuantizer(2, 3, dead_threshold=0.0)
    vq.train()
    vq(x)
    assert bool(vq.initted)
    d = torch.cdist(centres, vq.embed).min(1).values
    assert (d < 0.05).all(), vq.embed


@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 5), (2, 4, 3, 3)])
def test_layouts_and_straight_through(shape):
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8)
    x = torch.randn(*shape, requires_grad=True)
    out = vq(x)
    assert out.quantized.shape == x.shape
    assert out.codes.shape == ((shape[0],) if len(shape) == 2 else (shape[0], *shape[2:]))
    (out.quantized * torch.arange(x.numel()).reshape(shape)).sum().backward()
    assert torch.equal(x.grad, torch.arange(x.numel()).reshape(shape).float()), "straight-through = identity"
    x2 = x.detach().clone().requires_grad_(True)
    vq.eval()
    vq(x2).loss.backward()
    q = vq.embed[vq.encode(x2)].movedim(-1, 1) if len(shape) > 2 else vq.embed[vq.encode(x2)]
    assert torch.allclose(x2.grad, 0.25 * 2 * (x2 - q).detach() / x2.numel(), atol=1e-6), "commitment gradient"


def test_quantizer_dropout_yields_every_depth():
    torch.manual_seed(0)
    rvq = ResidualVQ(5, 3, 4, dropout=True)
    rvq.train()
    x = torch.randn(4, 3, 6)
    depths = set()
    for _ in range(100):
        out = rvq(x)
        assert out.codes.shape == (4, out.n_q, 6) and out.perplexity.shape == (out.n_q,)
        depths.add(out.n_q)
    assert depths == {1, 2, 3, 4, 5}
    rvq.eval()
    assert rvq(x).n_q == 5 and rvq(x, n_q=2).n_q == 2
    with pytest.raises(ValueError):
        rvq(x, n_q=6)


def test_levels_left_out_by_dropout_are_not_updated():
    torch.manual_seed(0)
    rvq = ResidualVQ(3, 2, 4)
    rvq.train()
    before = rvq.layers[2].embed.clone()
    rvq(torch.randn(16, 2), n_q=1)
    assert torch.equal(rvq.layers[2].embed, before) and not bool(rvq.layers[2].initted)


def test_code_stats_perplexity_closed_form():
    ppl, use = code_stats(torch.tensor([0, 1, 2, 3]), 8)
    assert ppl == pytest.approx(4.0) and use == pytest.approx(0.5)
    ppl, use = code_stats(torch.tensor([0, 0, 0, 1]), 2)  # entropy of (3/4, 1/4)
    assert ppl == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    assert use == 1.0
