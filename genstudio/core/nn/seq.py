"""A decoder-only transformer over one token sequence of [modality markers, text tokens, image
tokens] (DALL-E, Chameleon, Show-o in miniature), shared by the token families.

* :class:`Vocab`: one id space in ranges -- markers, then text ids, then image codes, then a MASK
  id (masked decoding) -- so one embedding table and one output head serve every modality, and a
  token's distribution is the softmax over its own range only (:func:`segment_logp`).
* :func:`attention_mask`: True where a query may attend a key: causal over the whole sequence
  (autoregressive), optionally bidirectional within the image segment (MaskGIT-style decoding).
  Padding keys (text after EOS) are masked on top, so their attention weight is exactly 0.
* :class:`SeqTransformer`: learned token + position embeddings, pre-norm blocks with explicit
  attention (its weights are kept for the attention-map views), a tied-free output head.
* The exact log-likelihood of a sequence is the sum of its per-token terms (chain rule under the
  causal mask); :func:`pick` draws a token with temperature and top-k (temperature 0 = greedy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class Vocab:
    """Id ranges of one shared vocabulary: ``markers`` (named), ``text`` ids, ``image`` codes, MASK."""

    markers: tuple[str, ...]
    text: int
    image: int

    @property
    def text_offset(self) -> int:
        return len(self.markers)

    @property
    def image_offset(self) -> int:
        return self.text_offset + self.text

    @property
    def mask_id(self) -> int:
        return self.image_offset + self.image

    @property
    def size(self) -> int:
        return self.mask_id + 1

    def marker(self, name: str) -> int:
        return self.markers.index(name)

    def text_range(self) -> tuple[int, int]:
        return self.text_offset, self.image_offset

    def image_range(self) -> tuple[int, int]:
        return self.image_offset, self.mask_id


def attention_mask(length: int, image: tuple[int, int] | None = None, bidirectional_image: bool = False,
                   device: torch.device | str = "cpu") -> Tensor:
    """(length, length) bool, True = query row may attend key column: causal (j <= i), and with
    ``bidirectional_image`` every position of the image segment ``image = (start, stop)`` also sees
    the whole segment (later image positions included); nothing outside it ever sees the future."""
    allowed = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    if bidirectional_image and image is not None:
        a, b = image
        allowed[a:b, a:b] = True
    return allowed


class Block(nn.Module):
    """Pre-norm self-attention + MLP; attention computed explicitly so its weights can be kept."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)
        self.last_attn: Tensor | None = None  # (B, heads, T, T) when kept

    def forward(self, h: Tensor, allowed: Tensor, keep: bool = False) -> Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        w = torch.softmax(scores.masked_fill(~allowed[:, None], float("-inf")), -1)
        self.last_attn = w.detach() if keep else None
        h = h + self.drop(self.proj((w @ v).transpose(1, 2).reshape(b, t, d)))
        return h + self.drop(self.mlp(self.norm2(h)))


class SeqTransformer(nn.Module):
    """``forward(ids, allowed, key_pad)`` -> logits (B, T, vocab.size); ``allowed`` (T, T) or
    (B, T, T) from :func:`attention_mask`, ``key_pad`` (B, T) True at keys nobody may attend."""

    def __init__(self, vocab: Vocab, max_len: int, width: int = 128, layers: int = 4, heads: int = 4,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.vocab, self.max_len = vocab, int(max_len)
        self.tok = nn.Embedding(vocab.size, width)
        self.pos = nn.Parameter(torch.randn(1, max_len, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab.size)

    def forward(self, ids: Tensor, allowed: Tensor, key_pad: Tensor | None = None, keep_attn: bool = False) -> Tensor:
        b, t = ids.shape
        if t > self.max_len:
            raise ValueError(f"sequence of {t} tokens is longer than the model's {self.max_len}")
        mask = allowed[None].expand(b, t, t) if allowed.dim() == 2 else allowed
        if key_pad is not None:
            mask = mask & ~key_pad[:, None, :]
        mask = mask | torch.eye(t, dtype=torch.bool, device=ids.device)  # a padding query sees itself only
        h = self.tok(ids) + self.pos[:, :t]
        for blk in self.blocks:
            h = blk(h, mask, keep_attn)
        return self.head(self.norm(h))

    def attention(self) -> Tensor | None:
        """(B, T, T) attention of the last ``keep_attn`` call, averaged over heads and layers."""
        maps = [blk.last_attn for blk in self.blocks if blk.last_attn is not None]
        return torch.stack([m.mean(1) for m in maps]).mean(0) if maps else None


def segment_logp(logits: Tensor, targets: Tensor, span: tuple[int, int]) -> Tensor:
    """log p(target) under the softmax over the vocabulary range ``span`` = (lo, hi) only:
    logits (..., V), targets (...) global ids in [lo, hi) -> (...) log-probabilities."""
    lo, hi = span
    return F.log_softmax(logits[..., lo:hi], -1).gather(-1, (targets - lo)[..., None])[..., 0]


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0) -> Tensor:
    """Logits divided by ``temperature`` with all but the ``top_k`` largest set to -inf (0 = all)."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(int(top_k), -1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits / max(float(temperature), 1e-8)


def pick(logits: Tensor, generator: torch.Generator | None, temperature: float = 1.0, top_k: int = 0) -> Tensor:
    """One draw per row of (B, K) logits: greedy (argmax) at temperature 0 or top_k 1, else a sample
    from softmax(logits / temperature) over the top-k."""
    if temperature <= 0 or top_k == 1:
        return logits.argmax(-1)
    probs = torch.softmax(filter_logits(logits, temperature, top_k), -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def maskgit_keep_masked(n_tokens: int, step: int, steps: int) -> int:
    """Tokens still masked after iteration ``step`` (1-based) of ``steps`` under MaskGIT's cosine
    schedule: floor(N cos(pi/2 * step/steps)), 0 at the last step."""
    return int(math.floor(n_tokens * math.cos(math.pi / 2 * step / steps)))
