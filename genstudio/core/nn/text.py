"""Text blocks shared by the text-conditioned families: a small transformer text encoder and a
cross-attention block, both told which positions are padding (``genstudio.core.text.padding_mask``).

Padding positions get exactly zero attention (their scores are set to -inf before the softmax), so
what the pad positions hold changes no output at a real position; pooled text embeddings average
the real positions only. ``CrossAttention`` keeps its last attention weights (``last_attn``) for
the per-token attention maps of the text-to-image views.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.text import padding_mask


def masked_mean(tokens: Tensor, pad: Tensor) -> Tensor:
    """Mean over the real positions: (B, L, D) tokens, (B, L) bool ``pad`` (True = padding)."""
    keep = (~pad).to(tokens.dtype)[..., None]
    return (tokens * keep).sum(1) / keep.sum(1).clamp(min=1.0)


class TextEncoder(nn.Module):
    """Token + learned position embeddings, a pre-norm transformer encoder with the padding mask,
    a final LayerNorm. ``forward(ids)`` -> (tokens (B, L, width), pad mask (B, L));
    :meth:`pooled` -> (B, width)."""

    def __init__(self, vocab_size: int, max_len: int, width: int = 64, layers: int = 2, heads: int = 4,
                 eos_id: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.eos_id = eos_id
        self.width = width
        self.tok = nn.Embedding(vocab_size, width)
        self.pos = nn.Parameter(torch.randn(1, max_len, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        # no nested-tensor fast path: its outputs at pad positions would differ from the slow path's
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: Tensor, pad: Tensor | None = None) -> tuple[Tensor, Tensor]:
        pad = padding_mask(ids, self.eos_id) if pad is None else pad
        h = self.tok(ids) + self.pos[:, : ids.shape[1]]
        h = self.body(h, src_key_padding_mask=pad)
        return self.norm(h), pad

    def pooled(self, ids: Tensor, pad: Tensor | None = None) -> Tensor:
        tokens, pad = self(ids, pad)
        return masked_mean(tokens, pad)


class CrossAttention(nn.Module):
    """Queries x attend to context tokens: x (B, N, dim) or feature maps (B, dim, H, W), context
    (B, L, context_dim), ``pad`` (B, L) True where the context is padding. Residual and pre-norm:
    out = x + W_o softmax(q k^T / sqrt(d) masked) v, the output projection zero-initialised so a new
    block starts as the identity."""

    def __init__(self, dim: int, context_dim: int, heads: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(context_dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.last_attn: Tensor | None = None  # (B, heads, N, L) of the last call

    def attention(self, x: Tensor, context: Tensor, pad: Tensor | None) -> tuple[Tensor, Tensor]:
        """(attended values (B, N, dim), weights (B, heads, N, L)); pad weights are exactly 0."""
        b, n, d = x.shape
        h = self.heads
        q = self.q(self.norm(x)).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        w = torch.softmax(scores, -1).nan_to_num(0.0)  # an all-padding context attends to nothing
        return (w @ v).transpose(1, 2).reshape(b, n, d), w

    def forward(self, x: Tensor, context: Tensor, pad: Tensor | None = None) -> Tensor:
        spatial = x.dim() == 4
        if spatial:
            b, c, hh, ww = x.shape
            x = x.flatten(2).transpose(1, 2)
        att, w = self.attention(x, context, pad)
        self.last_attn = w.detach()
        y = x + self.out(att)
        return y.transpose(1, 2).reshape(b, c, hh, ww) if spatial else y


def info_nce(img: Tensor, txt: Tensor, logit_scale: Tensor, same: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE (CLIP) over a batch of matched unit-norm embeddings (B, D): cross-entropy
    of the scaled cosine logits both ways. ``same`` (B, B) bool marks pairs with identical captions:
    each row's target is then spread evenly over its true matches (repeated captions are positives,
    not negatives)."""
    logits = logit_scale.exp() * img @ txt.T
    target = torch.eye(len(img), device=img.device) if same is None else same.float()
    target = target / target.sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))  # same is symmetric
