"""Energy-based model on 2-D points: an MLP energy E(x), p(x) ~ exp(-E(x)), trained by contrastive
divergence with short-run Langevin chains started from a replay buffer (Du & Mordatch 2019).

The gradient of the NLL is E_data[grad E] - E_model[grad E]; the model expectation uses the
chains' end points. ``sample`` runs a longer Langevin chain and yields its states, so the GUI
shows the particles sliding down the energy landscape; :meth:`EBMPlugin.energy` gives the heat map.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec
from genstudio.core.imaging import density_image
from genstudio.core.nn.flows import StaticMLP
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState


def langevin(energy: Callable[[Tensor], Tensor], x: Tensor, n_steps: int, step_size: float,
             noise_scale: float = 1.0, generator: torch.Generator | None = None,
             callback: Callable[[int, Tensor], Any] | None = None) -> Tensor:
    """Unadjusted Langevin: x <- x - eps grad E(x) + noise_scale sqrt(2 eps) xi.
    With ``noise_scale = 1`` it targets exp(-E) (up to O(eps) bias); smaller noise is the usual
    short-run EBM shortcut. ``callback(i, x)`` sees every state. Works under ``torch.no_grad``."""
    x = x.detach()
    with torch.enable_grad():
        for i in range(n_steps):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(x).sum(), x)
            noise = torch.randn(x.shape, generator=generator, device=x.device if generator is None
                                else generator.device).to(x.device)
            x = (x - step_size * grad + noise_scale * math.sqrt(2 * step_size) * noise).detach()
            if callback is not None:
                callback(i + 1, x)
    return x


@dataclass
class EBMConfig(ModelConfig):
    batch_size: int = param(256, "Samples per training step", range=(1, 4096))
    lr: float = param(1e-3, "Adam learning rate", range=(1e-6, 1.0), log=True)
    hidden: int = param(128, "Energy MLP width", range=(4, 2048))
    depth: int = param(3, "Residual blocks in the energy MLP", range=(1, 16))
    langevin_steps: int = param(20, "Langevin steps per training step (short run)", range=(1, 10000))
    step_size: float = param(0.005, "Langevin step size eps", range=(1e-6, 1.0), log=True)
    noise_scale: float = param(1.0, "Langevin noise multiplier (1 = exact Langevin)", range=(0.0, 10.0))
    buffer_size: int = param(10000, "Replay buffer of past chain states", range=(1, 10**7))
    reinit_prob: float = param(0.05, "Chance a chain restarts from uniform noise", range=(0.0, 1.0))
    init_range: float = param(3.0, "Uniform noise box [-r, r] for fresh chains", range=(0.1, 100.0))
    energy_reg: float = param(0.1, "Penalty on squared energies (keeps them bounded)", range=(0.0, 100.0))
    sample_steps: int = param(400, "Langevin steps when sampling", range=(1, 100000))

    @classmethod
    def tiny(cls) -> EBMConfig:
        return cls(batch_size=16, hidden=8, depth=1, langevin_steps=2, buffer_size=64, sample_steps=4)


class EBMPlugin(BasePlugin[EBMConfig]):
    info: ClassVar[PluginInfo] = PluginInfo(
        "ebm", "Energy-based model", "energy",
        EBMConfig, ("points2d",),
        ("langevin", "buffer"),
        "MLP energy trained with short-run Langevin contrastive divergence and a replay buffer")

    def setup(self, data: DataSpec) -> None:
        self.data = data
        c = self.config
        self.net = StaticMLP(data.dim, 1, c.hidden, c.depth).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=c.lr, betas=(0.0, 0.999))
        self.buffer = self._noise(c.buffer_size)

    def _noise(self, n: int, g: torch.Generator | None = None) -> Tensor:
        r = self.config.init_range
        u = torch.rand(n, self.data.dim, generator=g, device=self.device if g is None else g.device)
        return (u.to(self.device) * 2 - 1) * r

    def energy(self, x: Tensor) -> Tensor:
        """E(x) per point (B,); exp(-E) is the unnormalised density (the GUI's heat map)."""
        return self.net(x.to(self.device)).squeeze(1)

    def views(self) -> dict[str, Any]:
        """ViewsModel: the energy landscape as the unnormalised density exp(-E) (bright = low energy)."""
        self.net.eval()
        return {"energy": density_image(lambda x: -self.energy(x), device=self.device)}

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        c = self.config
        n = batch.shape[0]
        idx = torch.randint(0, len(self.buffer), (n,), device=self.device)
        start = self.buffer[idx]
        fresh = torch.rand(n, 1, device=self.device) < c.reinit_prob
        start = torch.where(fresh, self._noise(n), start)
        self.net.eval()
        neg = langevin(self.energy, start, c.langevin_steps, c.step_size, c.noise_scale)
        self.buffer[idx] = neg
        self.net.train()
        e_pos, e_neg = self.energy(batch), self.energy(neg)
        cd = e_pos.mean() - e_neg.mean()
        loss = cd + c.energy_reg * (e_pos**2 + e_neg**2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "cd": cd.item(), "energy_data": e_pos.mean().item(),
                "energy_model": e_neg.mean().item()}

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1) -> Iterator[SampleState]:
        """A Langevin chain from uniform noise ("langevin") or from replay-buffer states ("buffer")."""
        c = self.config
        g = self.generator(seed)
        total = steps or c.sample_steps
        if sampler == "buffer":
            x = self.buffer[torch.randint(0, len(self.buffer), (n,), generator=g, device=g.device).to(self.device)]
        else:
            x = self._noise(n, g)
        self.net.eval()
        every = max(1, every)
        yield SampleState(0, total, 1.0, x.clone())
        for i in range(1, total + 1):
            x = langevin(self.energy, x, 1, c.step_size, c.noise_scale, g)
            if i % every == 0 or i == total:
                yield SampleState(i, total, 1 - i / total, x.clone())

    def extra_state(self) -> dict[str, Any]:
        return {"buffer": self.buffer.detach().cpu()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "buffer" in state:
            self.buffer = state["buffer"].to(self.device)
