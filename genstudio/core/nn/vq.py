"""Vector quantisers, data-agnostic: a :class:`VectorQuantizer` (VQ-VAE with EMA codebooks) and a
:class:`ResidualVQ` over N of them (SoundStream / Encodec), shared by the audio codec and any
discrete-token model (a VQ-VAE image tokenizer uses the same block).

Inputs are channels-first ``(B, D, ...)`` (a conv feature map: (B, D, frames) or (B, D, H, W)) or
rows ``(N, D)``; codes come back shaped like the input without its D axis ((B, ...) or (N,)).
In training mode a forward pass also updates the codebook: k-means on the first batch, then EMA
of the assigned vectors (van den Oord et al. 2017, appendix; Razavi et al. 2019), and codes whose
EMA count fell below ``dead_threshold`` restart at random vectors of the batch. Gradients reach
the encoder by the straight-through estimator plus the commitment loss; the codebook gets none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class VQOutput:
    """``quantized``: like the input (straight-through: its gradient is the identity to the input);
    ``codes``: int64 indices; ``loss``: commitment loss (weighted); ``perplexity``: exp(entropy) of
    the batch's code use, (n_q,) for a residual VQ; ``n_q``: levels used."""

    quantized: Tensor
    codes: Tensor
    loss: Tensor
    perplexity: Tensor
    n_q: int = 1


def _flatten(x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor], tuple[int, ...]]:
    """(rows (N, D), rows -> input layout, shape of the codes)."""
    if x.dim() == 2:
        return x, lambda f: f, (x.shape[0],)
    moved = x.movedim(1, -1)
    shape = moved.shape
    return moved.reshape(-1, shape[-1]), lambda f: f.reshape(shape).movedim(-1, 1), tuple(shape[:-1])


def code_stats(codes: Tensor, size: int) -> tuple[float, float]:
    """(perplexity, utilisation) of a set of codes: exp(entropy of their histogram), between 1 and
    ``size``, and the fraction of the codebook used at least once."""
    counts = torch.bincount(codes.reshape(-1), minlength=size).double()
    p = counts / counts.sum().clamp(min=1)
    ent = -(p * torch.log(p.clamp(min=1e-30))).sum()
    return float(torch.exp(ent)), float((counts > 0).double().mean())


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantisation onto ``size`` codes of dimension ``dim``, EMA-updated.

    ``decay``: EMA decay of the code counts and sums; ``commitment``: weight of ||x - sg(q)||^2;
    ``kmeans_iters``: Lloyd iterations of the first-batch initialisation (0 = random batch rows);
    ``dead_threshold``: a code whose EMA count falls below it restarts at a random batch vector.
    """

    def __init__(self, dim: int, size: int, *, decay: float = 0.99, commitment: float = 0.25, eps: float = 1e-5,
                 kmeans_iters: int = 10, dead_threshold: float = 1.0) -> None:
        super().__init__()
        self.dim, self.size = int(dim), int(size)
        self.decay, self.commitment, self.eps = float(decay), float(commitment), float(eps)
        self.kmeans_iters, self.dead_threshold = int(kmeans_iters), float(dead_threshold)
        self.register_buffer("embed", torch.randn(size, dim))
        self.register_buffer("cluster_size", torch.ones(size))
        self.register_buffer("embed_sum", self.embed.clone())
        self.register_buffer("initted", torch.tensor(False))
        self.restarts = 0  # codes restarted so far in this process (a health statistic, not state)

    # -- maths --------------------------------------------------------------------------------
    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the closest code (squared Euclidean distance) for each row of ``flat`` (N, D)."""
        return self.nearest_to(flat, self.embed)

    @staticmethod
    def nearest_to(flat: Tensor, centres: Tensor) -> Tensor:
        d = (flat * flat).sum(1, keepdim=True) - 2 * flat @ centres.t() + (centres * centres).sum(1)[None]
        return d.argmin(1)

    @torch.no_grad()
    def kmeans_init(self, flat: Tensor) -> None:
        """Codebook = k-means centres of the first batch (random rows, then Lloyd iterations)."""
        n = flat.shape[0]
        idx = torch.randperm(n, device=flat.device)[: self.size] if n >= self.size else \
            torch.randint(0, n, (self.size,), device=flat.device)
        centres = flat[idx].clone()
        for _ in range(self.kmeans_iters):
            assign = self.nearest_to(flat, centres)
            counts = torch.bincount(assign, minlength=self.size).to(flat.dtype)
            sums = torch.zeros_like(centres).index_add_(0, assign, flat)
            used = counts > 0
            centres[used] = sums[used] / counts[used, None]
        counts = torch.bincount(self.nearest_to(flat, centres), minlength=self.size).to(flat.dtype)
        self.embed.copy_(centres)
        self.cluster_size.copy_(counts)  # EMA statistics start as this batch's: unused centres are dead at once
        self.embed_sum.copy_(centres * counts[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def ema_update(self, flat: Tensor, codes: Tensor) -> None:
        """N_k <- d N_k + (1-d) n_k, m_k <- d m_k + (1-d) sum_{x -> k} x, e_k = m_k / N~_k with the
        Laplace-smoothed counts N~_k = (N_k + eps) / (sum N + K eps) * sum N (no division by zero)."""
        onehot = F.one_hot(codes, self.size).to(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, flat: Tensor) -> int:
        """Move codes whose EMA count is below ``dead_threshold`` to random rows of ``flat``; returns how many."""
        dead = self.cluster_size < self.dead_threshold
        k = int(dead.sum())
        if k == 0 or self.dead_threshold <= 0:
            return 0
        pick = flat[torch.randint(0, flat.shape[0], (k,), device=flat.device)]
        self.embed[dead] = pick
        self.embed_sum[dead] = pick * self.dead_threshold
        self.cluster_size[dead] = self.dead_threshold
        self.restarts += k
        return k

    # -- module -------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> VQOutput:
        flat, back, code_shape = _flatten(x)
        if self.training and not bool(self.initted):
            self.kmeans_init(flat.detach())
        codes = self.nearest(flat.detach())
        q = self.embed[codes]
        if self.training:
            self.ema_update(flat.detach(), codes)
            self.restart_dead(flat.detach())
        loss = self.commitment * F.mse_loss(flat, q.detach())
        ppl, _ = code_stats(codes, self.size)
        out = flat + (q - flat).detach()
        return VQOutput(back(out), codes.reshape(code_shape), loss, torch.tensor(ppl), 1)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Codes of ``x`` (no codebook update)."""
        flat, _, code_shape = _flatten(x)
        return self.nearest(flat).reshape(code_shape)

    def decode(self, codes: Tensor, channels_first: bool = True) -> Tensor:
        """Code vectors: (B, ...) codes -> (B, D, ...) (or (N,) -> (N, D))."""
        q = self.embed[codes]
        return q.movedim(-1, 1) if channels_first and codes.dim() > 1 else q


class ResidualVQ(nn.Module):
    """``n_q`` quantisers in a chain: level k quantises what levels 1..k-1 left over, so each extra
    level refines the last and the first k codes alone decode at k / n_q of the bitrate.

    With ``dropout`` (quantiser dropout, SoundStream) a training forward uses a random depth
    1..n_q per batch, so one model serves every bitrate; evaluation uses all levels unless told.
    """

    def __init__(self, n_q: int, dim: int, size: int, *, dropout: bool = True, **vq_kw: float) -> None:
        super().__init__()
        self.n_q, self.dim, self.size, self.dropout = int(n_q), int(dim), int(size), bool(dropout)
        self.layers = nn.ModuleList(VectorQuantizer(dim, size, **vq_kw) for _ in range(n_q))

    def depth(self, n_q: int | None, generator: torch.Generator | None = None) -> int:
        """Levels a forward pass uses: ``n_q`` if given, a random 1..N in training with dropout, else N."""
        if n_q is not None:
            if not 1 <= n_q <= self.n_q:
                raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
            return int(n_q)
        if self.training and self.dropout:
            return int(torch.randint(1, self.n_q + 1, (1,), generator=generator))
        return self.n_q

    def forward(self, x: Tensor, n_q: int | None = None, generator: torch.Generator | None = None) -> VQOutput:
        k = self.depth(n_q, generator)
        residual, total = x, torch.zeros_like(x)
        codes, losses, ppl = [], [], []
        for layer in self.layers[:k]:
            out = layer(residual)
            q = out.quantized.detach()
            residual = residual - q
            total = total + q
            codes.append(out.codes)
            losses.append(out.loss)
            ppl.append(out.perplexity)
        quantized = x + (total - x).detach()  # one straight-through estimator for the sum
        return VQOutput(quantized, torch.stack(codes, 1), torch.stack(losses).sum(), torch.stack(ppl), k)

    @torch.no_grad()
    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """Codes (B, n_q, ...) (rows: (N, n_q)) of the first ``n_q`` levels (default all), no update."""
        residual, codes = x, []
        for layer in self.layers[: n_q or self.n_q]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, 1)

    def decode(self, codes: Tensor) -> Tensor:
        """The sum of the code vectors of levels 1..codes.shape[1]: (B, n_q, ...) -> (B, D, ...)."""
        return sum(self.layers[i].decode(codes[:, i]) for i in range(codes.shape[1]))
