"""Normalising flows: RealNVP, Glow, MAF and IAF, one plugin each over shared maths in
:mod:`genstudio.core.nn.flows`. All train by exact maximum likelihood; on images the loss is the
dequantised negative log-likelihood in bits/dim, on 2-D points the NLL in nats.

``sample`` on 2-D data yields the points after every inverse layer (Gaussian noise morphing into
the data); on images it yields the base noise and the final images. MAF and IAF also expose
:func:`autoregressive_timing`, the measured cost of their one-pass and D-pass directions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec
from genstudio.core.imaging import density_image
from genstudio.core.nn.flows import (
    FlowModel,
    Quantization,
    autoregressive,
    bits_per_dim,
    default_levels,
    glow,
    realnvp,
)
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState

SAMPLERS = ("exact", "temperature")


@dataclass
class FlowConfig(ModelConfig):
    batch_size: int = param(128, "Samples per training step", range=(1, 4096))
    lr: float = param(1e-3, "Adam learning rate", range=(1e-6, 1.0), log=True)
    hidden: int = param(64, "Width of the coupling / MADE networks", range=(4, 1024))
    steps: int = param(4, "Flow steps (couplings or MADE layers) per scale", range=(1, 64))
    n_scales: int = param(0, "Squeezes for image flows (0 = auto: 1 up to 8 px, else 2)", range=(0, 4))
    levels: int = param(0, "Grey levels for dequantisation and bits/dim (0 = auto: 17 for digits, "
                           "256 otherwise)", range=(0, 65536))
    temperature: float = param(0.7, "Base-noise scale for the 'temperature' sampler", range=(0.0, 2.0))
    grad_clip: float = param(10.0, "Clip the gradient norm at this value (0 = off)", range=(0.0, 1e6))

    @classmethod
    def tiny(cls) -> FlowConfig:
        return cls(batch_size=16, hidden=8, steps=1)


class _FlowPlugin(BasePlugin[FlowConfig]):
    """Shared training / sampling; subclasses only choose the flow builder."""

    info: ClassVar[PluginInfo]

    def build(self, shape: tuple[int, ...], quant: Quantization | None) -> FlowModel:
        raise NotImplementedError

    def setup(self, data: DataSpec) -> None:
        self.data = data
        c = self.config
        if data.modality.spatial and (data.shape[1] % 2 or data.shape[2] % 2):
            raise ValueError(f"{self.info.name} needs even image sides; got {data.shape}")
        self.quant = Quantization(c.levels or default_levels(data.name)) if data.modality.quantised else None
        self.model = self.build(tuple(data.shape), self.quant).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=c.lr)

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        self.model.train()
        lp = self.model.log_prob_discrete(batch)
        loss = -lp.mean() / self.data.dim  # nats per dimension: the same scale for any data size
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip or float("inf"))
        self.opt.step()
        out = {"loss": loss.item(), "grad_norm": float(gn)}
        if self.quant is not None:
            out["bits_per_dim"] = float(bits_per_dim(lp.detach(), self.data.dim).mean())
        else:
            out["nll"] = float(-lp.detach().mean())
        return out

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: torch.Tensor | None = None, every: int = 1) -> Iterator[SampleState]:
        self.model.eval()
        g = self.generator(seed)
        temp = self.config.temperature if sampler == "temperature" else 1.0
        z = self.model.base_noise(n, g, temp)
        shape = (n, *self.data.shape)
        total = len(self.model.flow.layers)
        yield SampleState(0, total, 1.0, z.reshape(shape).clone(), extras={"layer": "base"})
        x = z
        for left, name, x in self.model.flow.inverse_iter(z):
            done = total - left
            if self.data.modality.scatter2d and left > 0 and done % max(1, every) == 0:
                yield SampleState(done, total, left / total, x.reshape(shape).clone(), extras={"layer": name})
        if self.quant is not None:
            x = x.clamp(-1, 1)
        yield SampleState(total, total, 0.0, x.reshape(shape), extras={"layer": "data"})

    # -- optional faces ---------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Base-space code z = f(x), flattened (the latent explorer's coordinates)."""
        self.model.eval()
        return self.model.encode(x.to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model.decode(z.to(self.device)).reshape(z.shape[0], *self.data.shape)

    def views(self) -> dict[str, Any]:
        """ViewsModel: the learned density exp(log p) on a grid over the data (2-D only)."""
        if not self.data.modality.scatter2d:
            return {}
        self.model.eval()
        return {"density": density_image(self.model.log_prob, device=self.device)}

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Images: dequantised bound on log P(discrete x) (fixed noise seed, so repeatable);
        2-D points: exact log-density. Nats per sample."""
        self.model.eval()
        g = torch.Generator(device=self.device).manual_seed(0)
        return self.model.log_prob_discrete(x.to(self.device), g)


class RealNVPPlugin(_FlowPlugin):
    info = PluginInfo("realnvp", "RealNVP", "flow", FlowConfig, ("points2d", "image"), SAMPLERS,
                      "Affine coupling flow with checkerboard / channel masks (Dinh et al. 2017)")

    def build(self, shape, quant):
        c = self.config
        return realnvp(shape, c.hidden, c.steps, c.n_scales, quant)


class GlowPlugin(_FlowPlugin):
    info = PluginInfo("glow", "Glow", "flow", FlowConfig, ("points2d", "image"), SAMPLERS,
                      "ActNorm + invertible 1x1 conv + affine coupling (Kingma & Dhariwal 2018)")

    def build(self, shape, quant):
        c = self.config
        return glow(shape, c.hidden, c.steps, c.n_scales, quant)


class MAFPlugin(_FlowPlugin):
    info = PluginInfo("maf", "MAF", "flow", FlowConfig, ("points2d", "image"), SAMPLERS,
                      "Masked autoregressive flow: density in one pass, sampling one dimension at a time "
                      "(Papamakarios et al. 2017)")
    iaf = False
    timing_every = 200  # steps between density / sampling timings logged as metrics

    def build(self, shape, quant):
        c = self.config
        return autoregressive(shape, 2 * c.hidden, c.steps, iaf=self.iaf, quant=quant)

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        """As every flow, plus the measured one-pass vs D-pass cost every ``timing_every`` steps
        (``density_ms``, ``sample_ms``), so the training monitor plots the asymmetry."""
        out = super().train_step(batch, labels, step)
        if step % self.timing_every == 0:
            t = self.timings()
            out.update(density_ms=1e3 * t["density_s"], sample_ms=1e3 * t["sample_s"])
        return out

    def timings(self, n: int = 64, repeats: int = 3) -> dict[str, float]:
        """Measured seconds for density evaluation and sampling of ``n`` points with this model."""
        return time_flow(self.model, n, repeats)


class IAFPlugin(MAFPlugin):
    info = PluginInfo("iaf", "IAF", "flow", FlowConfig, ("points2d", "image"), SAMPLERS,
                      "Inverse autoregressive flow: sampling in one pass, density one dimension at a time "
                      "(Kingma et al. 2016)")
    iaf = True


@torch.no_grad()
def time_flow(model: FlowModel, n: int = 64, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` wall time (s) of ``log_prob`` on n points and of drawing n samples."""
    model.eval()
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(0)
    x = model.decode(model.base_noise(n, g))

    def best(fn: Any) -> float:
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts)

    return {"density_s": best(lambda: model.log_prob(x)),
            "sample_s": best(lambda: model.decode(model.base_noise(n, g)))}


def autoregressive_timing(shape: tuple[int, ...] = (1, 8, 8), n: int = 64, hidden: int = 128,
                          steps: int = 4, repeats: int = 3) -> dict[str, dict[str, float]]:
    """MAF vs IAF of identical size on data of ``shape``: seconds for density and for sampling.
    MAF's density and IAF's sampling take one MADE pass per layer, the other direction D passes."""
    out = {}
    for name, iaf in (("maf", False), ("iaf", True)):
        torch.manual_seed(0)
        quant = Quantization(17) if len(shape) == 3 else None
        out[name] = time_flow(autoregressive(shape, hidden, steps, iaf=iaf, quant=quant), n, repeats)
    return out
