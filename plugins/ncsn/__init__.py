"""Noise-conditional score networks (Song & Ermon 2019, 2020) trained by denoising, sliced or exact
score matching, sampled by annealed Langevin dynamics or, through the denoiser D = x + sigma^2 s, by
any k-diffusion sampler (Euler, Heun, DPM-Solver++) on the same sigma range.

The net sees the noise level as t = log(sigma / sigma_min) / log(sigma_max / sigma_min) in [0, 1]
and its output is divided by sigma (NCSNv2's technique 3), so score = net(x, t) / sigma. Training
draws sigma log-uniformly from [sigma_min, sigma_max], which contains the L-level geometric ladder
annealed Langevin walks down. Every objective is weighted by lambda(sigma) = sigma^2:

- "dsm": denoising score matching, || sigma s(x + sigma z) + z ||^2 (Vincent 2011);
- "ssm": sliced score matching on the noised data, (v.s)^2 / 2 + v.grad(v.s) (Song et al. 2019);
- "exact": the Hyvarinen objective ||s||^2 / 2 + tr(grad s), with the exact Jacobian trace (one
  backward pass per dimension: meant for 2-D data).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from genstudio.core.config import param
from genstudio.core.data import DataSpec
from genstudio.core.diffusion.ksamplers import KSAMPLERS, sigmas_exponential
from genstudio.core.diffusion.sde import VESDE
from genstudio.core.imaging import data_background, score_field_image
from genstudio.core.nn import NetConfig, ema_decay_at, ema_update, net_ema_adam
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState

VIEW_SIGMA = 0.1  # noise level of the score view: small, yet the field is smooth between modes


@dataclass
class NCSNConfig(NetConfig):
    """sigma_max ~ the largest distance between data points (Song & Ermon 2020, technique 1): 5 for
    the 2-D toys; sigma_min small enough that the last level looks like data."""

    objective: str = param("dsm", "Score matching objective: dsm (denoising), ssm (sliced), exact (2-D)",
                           choices=("dsm", "ssm", "exact"))
    sigma_min: float = param(0.05, "Smallest noise level", range=(1e-4, 1.0), log=True)
    sigma_max: float = param(5.0, "Largest noise level", range=(0.1, 500.0), log=True)
    levels: int = param(10, "Annealed Langevin: geometric noise levels", range=(1, 2000))
    langevin_steps: int = param(100, "Annealed Langevin: steps per level (sample steps= overrides)",
                                range=(1, 10000))
    step_lr: float = param(2e-4, "Annealed Langevin: step size at the smallest level (alpha_i = lr "
                           "sigma_i^2 / sigma_min^2)", range=(1e-8, 1.0), log=True)
    denoise: bool = param(True, "Finish annealed Langevin with one Tweedie step x + sigma_min^2 s (removes "
                          "the last level's noise)")
    sample_steps: int = param(20, "Steps of the ODE samplers (euler, heun, dpmpp_2m)", range=(1, 4000))
    view_sigma: float = param(VIEW_SIGMA, "2-D score view: the noise level whose score is drawn as arrows "
                              "(kept inside [sigma_min, sigma_max])", range=(1e-4, 500.0), log=True)

    @classmethod
    def tiny(cls) -> NCSNConfig:
        return cls(batch_size=16, hidden=32, depth=1, channels=8, levels=3, langevin_steps=2, sample_steps=3)


class NCSNPlugin(BasePlugin[NCSNConfig]):
    """Trains ``net`` (score times sigma); samples with its EMA copy."""
    ddp_grads = True  # many processes: gradients averaged (sliced score matching calls the net on a re-leafed input)

    info = PluginInfo(
        id="ncsn", name="NCSN (score matching)", family="diffusion",
        config_cls=NCSNConfig, data_kinds=("points2d", "image"),
        samplers=("annealed_langevin", *KSAMPLERS),
        description="Noise-conditional score network (Song & Ermon): denoising, sliced or exact score matching; "
                    "annealed Langevin dynamics, or Euler/Heun/DPM-Solver++ on the same sigmas.",
    )

    def setup(self, data: DataSpec) -> None:
        cfg = self.config
        if cfg.sigma_min >= cfg.sigma_max:
            raise ValueError("sigma_min must be below sigma_max")
        self.data = data
        self.net, self.ema, self.opt = net_ema_adam(data, cfg, self.device)

    def forward_process(self) -> VESDE:
        """ForwardProcess face: x + sigma eps over [sigma_min, sigma_max], i.e. the VE SDE."""
        return VESDE(sigma_min=float(self.config.sigma_min), sigma_max=float(self.config.sigma_max))

    def prior_scale(self) -> float:
        """NoisePrior face: sampling starts at sigma_max times unit noise."""
        return float(self.config.sigma_max)

    def _t(self, sigma: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        return (sigma / cfg.sigma_min).log() / math.log(cfg.sigma_max / cfg.sigma_min)

    def score(self, net: torch.nn.Module, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """s(x, sigma) = net(x, t(sigma)) / sigma; ``sigma`` is (B,)."""
        sig = sigma.to(x).reshape(-1, *([1] * (x.dim() - 1)))
        return net(x, self._t(sigma.to(x))) / sig

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        cfg = self.config
        x = batch.to(self.device)
        n = x.shape[0]
        u = torch.rand(n, device=self.device)
        sigma = cfg.sigma_min * (cfg.sigma_max / cfg.sigma_min) ** u
        sig = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        z = torch.randn_like(x)
        xt = x + sig * z
        w = sigma**2  # lambda(sigma)
        if cfg.objective == "dsm":
            loss = (sig * self.score(self.net, xt, sigma) + z).pow(2).flatten(1).sum(1).mean() / 2
        else:
            xt = xt.detach().requires_grad_(True)
            s = self.score(self.net, xt, sigma)
            if cfg.objective == "ssm":
                v = torch.randn_like(xt)
                vs = (v * s).flatten(1).sum(1)
                (g,) = torch.autograd.grad(vs.sum(), xt, create_graph=True)
                per = 0.5 * vs**2 + (v * g).flatten(1).sum(1)
            else:
                per = 0.5 * s.flatten(1).pow(2).sum(1) + _exact_trace(s, xt)
            loss = (w * per).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        self.opt.step()
        ema_update(self.ema, self.net, ema_decay_at(step, cfg.ema_decay))
        return {"loss": loss.item(), "grad_norm": float(gn)}

    def ladder(self) -> torch.Tensor:
        """The L geometric noise levels, largest first."""
        cfg = self.config
        return sigmas_exponential(cfg.levels, cfg.sigma_min, cfg.sigma_max)[:-1]

    def denoise_times(self, steps: int) -> torch.Tensor:
        """Denoiser face: ``steps`` geometric sigmas from sigma_max to sigma_min, then 0 (the
        noise levels the Euler sampler visits; the time is sigma itself)."""
        cfg = self.config
        return sigmas_exponential(int(steps), cfg.sigma_min, cfg.sigma_max)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoiser face: x_sigma = x_0 + sigma eps."""
        sig = torch.as_tensor(t, dtype=torch.float64).cpu()
        return torch.ones_like(sig), sig

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None,
                guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoiser face: Tweedie x0_hat = x + sigma^2 s(x, sigma), eps_hat = -sigma s."""
        sig = torch.as_tensor(t, dtype=torch.float64).to(x)
        s = self.score(self.ema, x, sig)
        b = sig.reshape(-1, *([1] * (x.dim() - 1)))
        return x + b**2 * s, -b * s

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               every: int = 1) -> Iterator[SampleState]:
        """"annealed_langevin": ``steps`` Langevin steps per level (default langevin_steps); the ODE
        samplers: ``steps`` steps from sigma_max down (default sample_steps). Starts from N(0, sigma_max^2)."""
        sampler = self.check_sampler(sampler)
        cfg = self.config
        g = self.generator(seed)
        x = cfg.sigma_max * torch.randn((n, *self.data.shape), generator=g, device=self.device)
        every = max(1, int(every))
        if sampler == "annealed_langevin":
            return self._langevin(x, int(steps or cfg.langevin_steps), g, every)

        def den(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                s = sigma.to(x).reshape(-1)
                return x + s.reshape(-1, *([1] * (x.dim() - 1))) ** 2 * self.score(self.ema, x, s)

        total = int(steps or cfg.sample_steps)
        sigmas = sigmas_exponential(total, cfg.sigma_min, cfg.sigma_max)
        it = KSAMPLERS[sampler](den, x, sigmas, g)
        return (SampleState(i + 1, total, self._tfrac(sn), xs, d) for i, sn, xs, d in it
                if (i + 1) % every == 0 or i + 1 == total)

    def views(self) -> dict[str, Any]:
        """ViewsModel (2-D only): the EMA score at a small noise level (``view_sigma``, kept inside the
        trained sigma range) as arrows over the data density smoothed by that same noise."""
        if self.data is None or not self.data.modality.scatter2d:
            return {}
        cfg = self.config
        sigma = min(max(cfg.view_sigma, cfg.sigma_min), cfg.sigma_max)
        self.ema.eval()

        def score(x: torch.Tensor) -> torch.Tensor:
            return self.score(self.ema, x.to(self.device), torch.full((x.shape[0],), sigma, device=self.device))

        return {"score": score_field_image(score, data_background(self.data.name, sigma), label=f"sigma={sigma:.2g}")}

    def _tfrac(self, sigma: float) -> float:
        return 0.0 if sigma <= 0 else float(min(1.0, max(0.0, self._t(torch.tensor(sigma)))))

    def _langevin(self, x: torch.Tensor, k: int, g: torch.Generator, every: int) -> Iterator[SampleState]:
        cfg = self.config
        levels = self.ladder().tolist()
        total = len(levels) * k + (1 if cfg.denoise else 0)
        step = 0
        for sig in levels:
            alpha = cfg.step_lr * (sig / cfg.sigma_min) ** 2
            sv = torch.full((x.shape[0],), sig, device=self.device)
            for _ in range(k):
                with torch.no_grad():
                    s = self.score(self.ema, x, sv)
                x0 = x + sig**2 * s
                x = x + 0.5 * alpha * s + math.sqrt(alpha) * torch.randn(x.shape, generator=g, device=x.device)
                step += 1
                if step % every == 0 or step == total:
                    yield SampleState(step, total, self._tfrac(sig), x, x0)
        if cfg.denoise:
            sv = torch.full((x.shape[0],), cfg.sigma_min, device=self.device)
            with torch.no_grad():
                x = x + cfg.sigma_min**2 * self.score(self.ema, x, sv)
            yield SampleState(total, total, 0.0, x, x)


def _exact_trace(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """tr(ds/dx) per sample, one backward per dimension, keeping the graph for the loss."""
    sf = s.flatten(1)
    tr = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for j in range(sf.shape[1]):
        (g,) = torch.autograd.grad(sf[:, j].sum(), x, create_graph=True)
        tr = tr + g.flatten(1)[:, j]
    return tr

