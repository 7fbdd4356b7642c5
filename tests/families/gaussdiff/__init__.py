"""A model family written as one folder, outside the built-ins, with no edit to core or qt: exact
Gaussian diffusion. Training fits each class's mean and per-dimension variance by moments; the
denoiser is then the closed-form eps of N(mu, diag var) data under a cosine VP chain,
eps*(x_t, t) = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar var + 1 - abar).

It grows faces, not names: Sampling (generic DDIM of core.diffusion.denoiser), NoisePrior,
Denoiser, Conditional (with class_cond) and a declared guidance SampleOption. The tests load it
through GENSTUDIO_PLUGIN_PATH and check that the Sampler (incl. inversion), Compare/NFE, guidance
and Metrics panels and tools take it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec
from genstudio.core.diffusion import make_schedule
from genstudio.core.diffusion.denoiser import ddim_steps
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleOption, SampleState


@dataclass
class GaussDiffConfig(ModelConfig):
    batch_size: int = param(256, "Points per moment update", range=(1, 65536))
    timesteps: int = param(1000, "Chain length T", range=(2, 4000))
    sample_steps: int = param(20, "DDIM steps when a sample asks for none", range=(1, 4000))
    class_cond: bool = param(False, "One Gaussian per class (labelled datasets)")

    @classmethod
    def tiny(cls) -> GaussDiffConfig:
        return cls(batch_size=64, timesteps=100, sample_steps=5)


class GaussStats(torch.nn.Module):
    """Running moments per class (row ``k`` = the pooled data, the unconditional model) and the
    exact eps they imply; an nn.Module so checkpoints and NFE counting see it like a network."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.register_buffer("n", torch.zeros(classes + 1, dtype=torch.float64))
        self.register_buffer("s1", torch.zeros(classes + 1, dim, dtype=torch.float64))
        self.register_buffer("s2", torch.zeros(classes + 1, dim, dtype=torch.float64))
        self.null = classes

    def update(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        rows = torch.full((len(x),), self.null, dtype=torch.long) if y is None else y.long()
        for r in (rows, torch.full_like(rows, self.null)) if y is not None else (rows,):
            self.n.index_add_(0, r, torch.ones(len(x), dtype=torch.float64))
            self.s1.index_add_(0, r, x.double())
            self.s2.index_add_(0, r, x.double() ** 2)

    def moments(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n[rows].clamp(min=1)[:, None]
        mu = self.s1[rows] / n
        return mu, (self.s2[rows] / n - mu**2).clamp(min=1e-4)

    def forward(self, x: torch.Tensor, abar: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        mu, var = self.moments(rows)
        ab = abar.double()[:, None]
        return ((1 - ab).sqrt() * (x.double() - ab.sqrt() * mu) / (ab * var + 1 - ab)).to(x.dtype)


class GaussDiffPlugin(BasePlugin[GaussDiffConfig]):
    info = PluginInfo(
        id="gaussdiff", name="Exact Gaussian diffusion (test family)", family="diffusion",
        config_cls=GaussDiffConfig, data_kinds=("points2d",), samplers=("ddim",),
        description="Closed-form Gaussian denoiser per class; DDIM through the Denoiser face.")
    sample_options = (SampleOption("guidance", "Classifier-free guidance scale with a class", 1.0, (0.0, 20.0),
                                   needs="Conditional"),)

    def setup(self, data: DataSpec) -> None:
        self.data = data
        self.num_classes = int(data.num_classes or 0) if self.config.class_cond else 0
        self.sched = make_schedule("cosine", self.config.timesteps)
        self.net = GaussStats(data.dim, self.num_classes)

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        y = labels if self.num_classes and labels is not None else None
        self.net.update(batch.flatten(1).cpu(), None if y is None else y.cpu())
        mu, var = self.net.moments(torch.tensor([self.net.null]))
        return {"loss": float(var.sum())}  # the pooled variance: what a fixed-noise sampler must undo

    # -- NoisePrior and Denoiser faces -----------------------------------------------------------
    def prior_scale(self) -> float:
        return 1.0

    def denoise_times(self, steps: int) -> torch.Tensor:
        """Denoiser face: the chain's spaced timesteps, then -1 (clean), as the "ddim" sampler visits."""
        return self.sched.denoise_times(steps)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoiser face: (sqrt(abar_t), sqrt(1 - abar_t)) with abar_{-1} = 1."""
        return self.sched.alpha_sigma(t)

    def _eps(self, x: torch.Tensor, abar: torch.Tensor, cond: Any) -> torch.Tensor:
        flat = x.flatten(1)
        rows = torch.full((len(x),), self.net.null, dtype=torch.long)
        if cond is not None:
            if not self.num_classes:
                raise ValueError("this run was trained without class_cond")
            rows = torch.as_tensor(cond, dtype=torch.long).reshape(-1).expand(len(x))
        return self.net(flat, abar, rows).reshape(x.shape)

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None,
                guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        a, s = self.alpha_sigma(t)
        abar = a**2
        eps = self._eps(x, abar, cond)
        if cond is not None and guidance != 1.0:
            eps_u = self._eps(x, abar, None)
            eps = eps_u + guidance * (eps - eps_u)
        b = (-1, *([1] * (x.dim() - 1)))
        a, s = a.to(x).reshape(b), s.to(x).reshape(b)
        return (x - s * eps) / a, eps

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Any = None, every: int = 1, guidance: float = 1.0) -> Iterator[SampleState]:
        self.check_sampler(sampler)
        x = torch.randn((n, *self.data.shape), generator=self.generator(seed), device=self.device)
        total = int(steps or self.config.sample_steps)
        it = ddim_steps(self, x, total, cond, guidance)
        every = max(1, int(every))
        return (SampleState(i + 1, total, (t + 1) / self.sched.T, xs, x0)
                for i, t, xs, x0 in it if (i + 1) % every == 0 or i + 1 == total)


PLUGIN = GaussDiffPlugin
