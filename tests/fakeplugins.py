"""Tiny plugins for tests of the machinery (not of any model family)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genstudio.core.config import ModelConfig, param
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState


@dataclass
class FakeConfig(ModelConfig):
    batch_size: int = param(32, "batch", range=(1, 4096))
    nan_at: int = param(0, "return a NaN loss at this step (0 = never)", range=(0, 10**9))
    raise_at: int = param(0, "raise at this step (0 = never)", range=(0, 10**9))
    sample_steps: int = param(5, "sampling steps", range=(1, 1000))


class GaussFit(BasePlugin):
    """Fits a mean vector by SGD; samples walk from noise to mean + noise in ``sample_steps``."""

    info = PluginInfo("gaussfit", "Gaussian fit (test)", "test", FakeConfig, ("points2d", "image"), ("walk",))

    def setup(self, data):
        self.data = data
        self.net = torch.nn.Linear(1, data.dim, bias=False).to(self.device)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=self.config.lr)

    def train_step(self, batch, labels, step):
        if self.config.raise_at and step >= self.config.raise_at:
            raise RuntimeError("deliberate failure in train_step")
        mean = self.net.weight[:, 0]
        loss = ((batch.flatten(1) - mean) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        if self.config.nan_at and step == self.config.nan_at and not getattr(self, "_nan_done", False):
            self._nan_done = True  # once per process, so a rolled-back run can get past it
            return {"loss": float("nan")}
        return {"loss": loss.item()}

    def sample(self, n, *, seed, steps=None, sampler=None, cond=None, every=1):
        g = self.generator(seed)
        total = steps or self.config.sample_steps
        mean = self.net.weight[:, 0].detach()
        z = torch.randn(n, self.data.dim, generator=g, device=self.device)
        for i in range(total + 1):
            a = i / total
            x = (a * mean + z * (1 - 0.5 * a)).reshape(n, *self.data.shape)
            if i % every == 0 or i == total:
                yield SampleState(i, total, 1 - a, x, mean.expand(n, -1).reshape(n, *self.data.shape))


@dataclass
class RefConfig(FakeConfig):
    base_run: str = param("", "a run this one builds on", runs_of=("gaussfit", "gaussref"))


class GaussRef(GaussFit):
    """GaussFit that starts from the mean of the run ``base_run`` names (handed over by the job)."""

    info = PluginInfo("gaussref", "Gaussian fit on a base run (test)", "test", RefConfig, ("points2d", "image"),
                      ("walk",))

    def setup(self, data):
        super().setup(data)
        self.base = self.run_model("base_run")
        if self.base is not None:
            with torch.no_grad():
                self.net.weight.copy_(self.base.net.weight)
