"""Consistency training from scratch (Song et al. 2023; improved recipe of Song & Dhariwal 2023)
and consistency distillation from a trained DDPM run:
a network f(x, sigma) that maps any point of a PF-ODE trajectory straight to its clean end, so one
evaluation (or a few, re-noising in between) draws a sample.

f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, t(sigma)) with EDM's scalings shifted so
f(x, sigma_min) = x exactly (the boundary condition). Training (iCT): the noise ladder is Karras
rho=7 with N(k) levels doubling from ``levels_start`` to ``levels_end`` over training; a level i is
drawn with lognormal weights, and the loss is the pseudo-Huber distance between f(x + sigma_{i+1} z)
and the stop-gradient f(x + sigma_i z) (same z; no EMA teacher), weighted 1 / (sigma_{i+1} - sigma_i).

Distillation (CD, Song et al. 2023 alg. 2): on a fixed Karras ladder of ``levels_start`` levels, the
target point is no longer x + sigma_i z but one Euler or Heun step of the *teacher's* PF-ODE from
x_{i+1} = x + sigma_{i+1} z down to sigma_i, so the student learns the teacher's own trajectories
(levels drawn uniformly; same stop-gradient target and loss as above). The teacher is a DDPM run
(``teacher_run``), read as a VE denoiser through ``vp_denoiser``; the job loads that run and hands
it over (``use_run``) before ``setup``. The teacher is not part of the student's checkpoint: a
student built without it (``set_teacher`` never called) still samples. On 8 Gaussians (energy distance, 2000 samples;
2000 steps each, one CPU thread): the DDPM teacher scores 0.0036 with 50 DDIM steps but 0.97 with 1;
distilled from it (Heun, 18 levels): 0.0041 in 1 step, 0.0017 in 2; consistency training: 0.092 / 0.0057.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from genstudio.core.config import param
from genstudio.core.data import DataSpec
from genstudio.core.diffusion.ksamplers import Denoiser, sigmas_karras, vp_denoiser
from genstudio.core.diffusion.sde import VESDE
from genstudio.core.nn import NetConfig, ema_decay_at, ema_update, net_ema_adam
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState


@dataclass
class ConsistencyConfig(NetConfig):
    """sigma_data 0.5 as in EDM/iCT (images in [-1, 1]); ~1.4 suits the 2-D toys' spread."""

    sigma_min: float = param(0.002, "Smallest noise level (boundary f(x, sigma_min) = x)", range=(1e-5, 1.0),
                             log=True)
    sigma_max: float = param(80.0, "Largest noise level (the 1-step sampler starts here)", range=(1.0, 1000.0),
                             log=True)
    sigma_data: float = param(0.5, "Data scale in the EDM preconditioning", range=(0.01, 10.0))
    levels_start: int = param(10, "iCT: discretisation levels at the start of training; distillation: "
                              "the fixed number of levels (18 in Song et al.)", range=(2, 10000))
    levels_end: int = param(1280, "iCT: levels at the end of the curriculum", range=(2, 100000))
    total_steps: int = param(5000, "iCT: steps over which the levels double from start to end",
                             range=(1, 10_000_000))
    sample_steps: int = param(1, "Network evaluations per sample (1 = one-step generation)", range=(1, 100))
    mode: str = param("training", "training: consistency training from scratch; distillation: distil the "
                      "PF-ODE of a trained DDPM run (teacher_run) on a fixed ladder of levels_start levels",
                      choices=("training", "distillation"))
    teacher_run: str = param("", "Distillation: the DDPM teacher's run id (or unique prefix, or run folder)",
                             runs_of=("ddpm",))
    teacher_solver: str = param("heun", "Distillation: the teacher's ODE step between adjacent levels",
                                choices=("euler", "heun"))

    @classmethod
    def tiny(cls) -> ConsistencyConfig:
        return cls(batch_size=16, hidden=32, depth=1, channels=8, total_steps=10, sample_steps=2)


class ConsistencyPlugin(BasePlugin[ConsistencyConfig]):
    """Trains ``net`` by consistency training; samples with its EMA copy."""

    info = PluginInfo(
        id="consistency", name="Consistency model", family="diffusion",
        config_cls=ConsistencyConfig, data_kinds=("points2d", "image"), samplers=("multistep", "onestep"),
        description="Consistency training from scratch (improved recipe) or distillation of a trained DDPM: "
                    "one-step or few-step generation.",
    )

    def setup(self, data: DataSpec) -> None:
        cfg = self.config
        self.data = data
        self.net, self.ema, self.opt = net_ema_adam(data, cfg, self.device)
        self.teacher: Denoiser | None = None  # distillation only; sampling never needs it
        teacher = self.runs.get("teacher_run")
        if teacher is not None:
            self.set_teacher(teacher)

    def forward_process(self) -> VESDE:
        """ForwardProcess face: x + sigma eps over [sigma_min, sigma_max], i.e. the VE SDE."""
        return VESDE(sigma_min=float(self.config.sigma_min), sigma_max=float(self.config.sigma_max))

    def prior_scale(self) -> float:
        """NoisePrior face: sampling starts at sigma_max times unit noise."""
        return float(self.config.sigma_max)

    def set_teacher(self, model: Any) -> None:
        """Use a set-up DDPM plugin (its EMA eps-net, unconditional) as the teacher denoiser."""
        if self.data is not None and tuple(model.data.shape) != tuple(self.data.shape):
            raise ValueError(f"teacher data shape {tuple(model.data.shape)} != {tuple(self.data.shape)}")
        if not hasattr(model, "sched") or not hasattr(model, "ema"):
            raise ValueError(f"teacher {type(model).__name__} is not an epsilon-prediction diffusion model")
        model.ema.eval()

        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return model.ema(x, (t.to(x) + 1.0) / model.sched.T)

        self.teacher = vp_denoiser(eps_fn, model.sched)

    def _teacher(self) -> Denoiser:
        if self.teacher is None:
            self.run_model("teacher_run")  # a teacher_run that no job handed over: says so
            raise ValueError("consistency distillation needs a teacher_run (a trained DDPM run)")
        return self.teacher

    def teacher_step(self, x: torch.Tensor, s_from: torch.Tensor, s_to: torch.Tensor) -> torch.Tensor:
        """One Euler or Heun step of the teacher's PF-ODE dx/dsigma = (x - D(x, sigma)) / sigma,
        per sample from ``s_from`` down to ``s_to`` (both (B,), > 0)."""
        den = self._teacher()
        b = lambda s: s.to(x).reshape(-1, *([1] * (x.dim() - 1)))  # noqa: E731
        with torch.no_grad():
            d = (x - den(x, s_from)) / b(s_from)
            x_next = x + b(s_to - s_from) * d
            if self.config.teacher_solver == "heun":
                d2 = (x_next - den(x_next, s_to)) / b(s_to)
                x_next = x + b(s_to - s_from) * (d + d2) / 2
        return x_next

    def levels(self, step: int) -> int:
        """iCT's N(k): start * 2^floor(k / K'), K' = K / (log2(end / start) + 1), capped at end."""
        cfg = self.config
        kp = max(1, math.floor(cfg.total_steps / (math.log2(max(cfg.levels_end / cfg.levels_start, 1)) + 1)))
        return min(cfg.levels_start * 2 ** (step // kp), cfg.levels_end) + 1

    def f(self, net: torch.nn.Module, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The consistency function with the boundary condition built in."""
        cfg = self.config
        sd, smin = cfg.sigma_data, cfg.sigma_min
        s = sigma.to(x).reshape(-1, *([1] * (x.dim() - 1)))
        c_skip = sd**2 / ((s - smin) ** 2 + sd**2)
        c_out = (s - smin) * sd / (sd**2 + s**2).sqrt()
        c_in = 1 / (sd**2 + s**2).sqrt()
        t = (sigma.to(x).log() - math.log(smin)) / math.log(cfg.sigma_max / smin)
        return c_skip * x + c_out * net(c_in * x, t)

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        cfg = self.config
        x = batch.to(self.device)
        distil = cfg.mode == "distillation"
        n_lv = cfg.levels_start + 1 if distil else self.levels(step)
        sig = sigmas_karras(n_lv, cfg.sigma_min, cfg.sigma_max)[:-1].flip(0).to(x)  # ascending
        if distil:  # CD: levels uniform
            w = torch.ones(len(sig) - 1, device=x.device)
        else:  # lognormal level weights (P_mean -1.1, P_std 2.0) via erf on the interval midpoints
            lo, hi = sig[:-1].log(), sig[1:].log()
            w = torch.erf((hi + 1.1) / (2.0 * math.sqrt(2))) - torch.erf((lo + 1.1) / (2.0 * math.sqrt(2)))
        i = torch.multinomial(w.clamp(min=1e-12), x.shape[0], replacement=True)
        s0, s1 = sig[i], sig[i + 1]
        z = torch.randn_like(x)
        b = lambda s: s.reshape(-1, *([1] * (x.dim() - 1)))  # noqa: E731
        x1 = x + b(s1) * z
        x0 = self.teacher_step(x1, s1, s0) if distil else x + b(s0) * z
        with torch.no_grad():
            target = self.f(self.net, x0, s0)
        pred = self.f(self.net, x1, s1)
        c = 0.00054 * math.sqrt(x[0].numel())
        huber = ((pred - target).flatten(1).pow(2).sum(1) + c**2).sqrt() - c
        loss = (huber / (s1 - s0)).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        self.opt.step()
        ema_update(self.ema, self.net, ema_decay_at(step, cfg.ema_decay))
        return {"loss": loss.item(), "grad_norm": float(gn), "levels": float(n_lv)}

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               every: int = 1) -> Iterator[SampleState]:
        """"onestep": f(sigma_max z, sigma_max). "multistep": ``steps`` evaluations at Karras-spaced
        noise levels, re-noising the clean estimate to each next level in between (Song et al. alg. 1)."""
        sampler = self.check_sampler(sampler)
        cfg = self.config
        total = 1 if sampler == "onestep" else int(steps or cfg.sample_steps)
        g = self.generator(seed)
        # Karras-spaced levels without sigma_min itself (f there is the identity: a wasted evaluation)
        sigmas = sigmas_karras(total + 1, cfg.sigma_min, cfg.sigma_max)[:total].tolist()
        x = cfg.sigma_max * torch.randn((n, *self.data.shape), generator=g, device=self.device)
        every = max(1, int(every))
        return self._run(x, sigmas, g, every)

    def _run(self, x: torch.Tensor, sigmas: list[float], g: torch.Generator, every: int) -> Iterator[SampleState]:
        cfg, total = self.config, len(sigmas)
        x0 = x
        for k, s in enumerate(sigmas):
            if k > 0:
                x = x0 + math.sqrt(max(s**2 - cfg.sigma_min**2, 0.0)) * torch.randn(
                    x.shape, generator=g, device=x.device)
            with torch.no_grad():
                x0 = self.f(self.ema, x, torch.full((x.shape[0],), s, device=x.device))
            if (k + 1) % every == 0 or k + 1 == total:
                t = math.log(s / cfg.sigma_min) / math.log(cfg.sigma_max / cfg.sigma_min)
                yield SampleState(k + 1, total, 0.0 if k + 1 == total else min(1.0, t), x0 if k + 1 == total else x, x0)
