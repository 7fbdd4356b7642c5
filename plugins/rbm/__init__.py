"""Binary restricted Boltzmann machine on binarised images, trained with CD-k or persistent CD
(Hinton 2002; Tieleman 2008). Sampling is a block Gibbs chain v -> h -> v, yielded step by step.

E(v, h) = -b.v - c.h - v'Wh;  free energy F(v) = -b.v - sum_j softplus(c_j + (v'W)_j), so
p(v) = exp(-F(v)) / Z. The training loss F(v_data) - F(v_model) has exactly the CD gradient.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec
from genstudio.core.imaging import tile_filters
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState


class RBM(nn.Module):
    def __init__(self, n_visible: int, n_hidden: int) -> None:
        super().__init__()
        self.W = nn.Parameter(0.01 * torch.randn(n_visible, n_hidden))
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(1)

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), hidden units summed out in closed form."""
        return -(v @ self.b) - F.softplus(v @ self.W + self.c).sum(1)

    def p_h(self, v: Tensor) -> Tensor:
        return torch.sigmoid(v @ self.W + self.c)

    def p_v(self, h: Tensor) -> Tensor:
        return torch.sigmoid(h @ self.W.T + self.b)

    def gibbs(self, v: Tensor, k: int = 1, g: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """k block-Gibbs sweeps; returns (binary v_k, its mean p(v | h_k))."""
        pv = v
        for _ in range(k):
            h = torch.bernoulli(self.p_h(v), generator=g)
            pv = self.p_v(h)
            v = torch.bernoulli(pv, generator=g)
        return v, pv

    def log_partition_exact(self) -> Tensor:
        """log Z by enumerating the smaller layer (feasible up to ~20 units on one side)."""
        n_v, n_h = self.W.shape
        if min(n_v, n_h) > 22:
            raise ValueError(f"exact log Z needs a layer of <= 22 units; this RBM is {n_v}x{n_h}")
        if n_h <= n_v:
            hs = _all_binary(n_h, self.W)
            return torch.logsumexp(hs @ self.c + F.softplus(hs @ self.W.T + self.b).sum(1), 0)
        return torch.logsumexp(-self.free_energy(_all_binary(n_v, self.W)), 0)


def _all_binary(n: int, like: Tensor) -> Tensor:
    """All 2^n binary vectors, with ``like``'s dtype and device."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=like.dtype,
                        device=like.device).reshape(-1, n)


@dataclass
class RBMConfig(ModelConfig):
    batch_size: int = param(64, "Samples per training step", range=(1, 4096))
    lr: float = param(0.05, "SGD learning rate", range=(1e-6, 10.0), log=True)
    momentum: float = param(0.5, "SGD momentum", range=(0.0, 0.999))
    weight_decay: float = param(1e-4, "L2 penalty on the weights", range=(0.0, 1.0), log=False)
    n_hidden: int = param(64, "Hidden units", range=(1, 4096))
    k: int = param(1, "Gibbs sweeps per update (CD-k)", range=(1, 1000))
    method: str = param("cd", "cd: chains restart at the data; pcd: persistent chains", choices=("cd", "pcd"))
    threshold: float = param(0.0, "Binarisation threshold on [-1, 1] pixels", range=(-1.0, 1.0))
    sample_steps: int = param(500, "Gibbs sweeps when sampling", range=(1, 100000))

    @classmethod
    def tiny(cls) -> RBMConfig:
        return cls(batch_size=16, n_hidden=8, sample_steps=4)


class RBMPlugin(BasePlugin[RBMConfig]):
    info: ClassVar[PluginInfo] = PluginInfo(
        "rbm", "RBM", "energy", RBMConfig,
        ("image",), ("gibbs", "from_bias"),
        "Binary restricted Boltzmann machine with CD-k / persistent CD; Gibbs chain sampling")

    def setup(self, data: DataSpec) -> None:
        self.data = data
        c = self.config
        self.rbm = RBM(data.dim, c.n_hidden).to(self.device)
        self.opt = torch.optim.SGD(self.rbm.parameters(), lr=c.lr, momentum=c.momentum)
        self.chains: Tensor | None = None
        self.initialized = False

    def binarize(self, x: Tensor) -> Tensor:
        return (x.to(self.device).flatten(1) > self.config.threshold).float()

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        c = self.config
        v0 = self.binarize(batch)
        if not self.initialized:  # visible biases at the data's log-odds (Hinton's practical guide)
            p = v0.mean(0).clamp(0.01, 0.99)
            with torch.no_grad():
                self.rbm.b.copy_(torch.log(p / (1 - p)))
            self.initialized = True
        with torch.no_grad():
            if c.method == "pcd":
                if self.chains is None or self.chains.shape != v0.shape:
                    self.chains = v0.clone()
                neg, _ = self.rbm.gibbs(self.chains, c.k)
                self.chains = neg
            else:
                neg, _ = self.rbm.gibbs(v0, c.k)
        f_data = self.rbm.free_energy(v0).mean()
        loss = f_data - self.rbm.free_energy(neg).mean() + 0.5 * c.weight_decay * (self.rbm.W**2).sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            recon = ((self.rbm.p_v(self.rbm.p_h(v0)) - v0) ** 2).mean()
        return {"loss": loss.item(), "free_energy": f_data.item(), "recon_error": recon.item()}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1) -> Iterator[SampleState]:
        """Block Gibbs chain from fair coin flips ("gibbs") or from bits drawn with the visible
        biases' probabilities ("from_bias", closer to the data's marginals). ``x`` holds the binary
        state, ``x0`` the mean p(v | h)."""
        g = self.generator(seed)
        total = steps or self.config.sample_steps
        shape = (n, *self.data.shape)
        if sampler == "from_bias":
            start = torch.sigmoid(self.rbm.b).expand(n, -1)
        else:
            start = torch.full((n, self.data.dim), 0.5, device=self.device)
        v = torch.bernoulli(start, generator=g)
        every = max(1, every)
        yield SampleState(0, total, 1.0, (v * 2 - 1).view(shape))
        for i in range(1, total + 1):
            v, pv = self.rbm.gibbs(v, 1, g)
            if i % every == 0 or i == total:
                yield SampleState(i, total, 1 - i / total, (v * 2 - 1).view(shape), (pv * 2 - 1).view(shape))

    def free_energy(self, x: Tensor) -> Tensor:
        """F(binarised x) per image (lower = more probable)."""
        return self.rbm.free_energy(self.binarize(x))

    def filters(self) -> Tensor:
        """Hidden units' weights as images (n_hidden, C, H, W), each scaled to [-1, 1]."""
        w = self.rbm.W.detach().T
        w = w / w.abs().amax(1, keepdim=True).clamp(min=1e-8)
        return w.reshape(-1, *self.data.shape)

    def views(self) -> dict[str, Any]:
        """ViewsModel: the hidden units' weight filters (grey = 0, light = positive)."""
        return {"filters": tile_filters(self.filters())}

    def extra_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"initialized": self.initialized}
        if self.chains is not None:
            out["chains"] = self.chains.detach().cpu()
        return out

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.initialized = bool(state.get("initialized", True))
        ch = state.get("chains")
        self.chains = ch.to(self.device) if ch is not None else None
