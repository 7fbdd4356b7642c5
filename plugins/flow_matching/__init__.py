"""Flow matching (Lipman et al. 2023), OT-CFM (Tong et al. 2023) and rectified flow with reflow
(Liu et al. 2023): a velocity field v(x, t) regressed onto x1 - x0 along straight paths
x_t = (1 - t) x0 + t x1 from noise x0 (t = 0) to data x1 (t = 1).

- "cfm": independent pairs (noise and data drawn separately), optional path noise sigma_min.
- "ot_cfm": each minibatch's pairs re-matched by exact optimal transport (squared Euclidean cost,
  Hungarian algorithm), which straightens the learned paths.
- "rectified": independent pairs for a first stage, then ``reflow_rounds`` rounds, each training on
  pairs (z, ODE(z)) produced by the previous model; each round makes paths straighter, so fewer
  Euler steps suffice.

Straightness (mean ||x1 - x0 - v(x_t, t)||^2 along the model's own ODE paths; 0 for perfectly
straight flows that one Euler step solves) is reported every ``straightness_every`` steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from genstudio.core.config import param
from genstudio.core.data import DataSpec
from genstudio.core.diffusion.paths import StraightPath
from genstudio.core.imaging import data_background, paths_image
from genstudio.core.nn import NetConfig, ema_decay_at, ema_update, net_ema_adam
from genstudio.core.ot import assignment
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ot_pairing(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Permutation p minimising sum_i ||x0[i] - x1[p[i]]||^2: exact minibatch OT through
    genstudio.core.ot.assignment (scipy's assignment solver at small batches, POT's network
    simplex from 512 on, where it is 2-3x faster)."""
    cost = torch.cdist(x0.flatten(1).double(), x1.flatten(1).double()).pow(2).cpu().numpy()
    return torch.as_tensor(assignment(cost=cost), dtype=torch.long, device=x1.device)


def ode_steps(v: VelocityFn, x: torch.Tensor, steps: int, method: str = "euler"
              ) -> Iterator[tuple[int, float, torch.Tensor, torch.Tensor]]:
    """Integrate dx/dt = v(x, t) from t = 0 to 1 with Euler (1 NFE/step) or Heun (2 NFE/step).
    Yields (i, t_next, x, x1_hat) with x1_hat = x_t + (1 - t) v, the endpoint if the path were straight."""
    ts = torch.linspace(0, 1, steps + 1, dtype=torch.float64).tolist()
    for i in range(steps):
        t, tn = ts[i], ts[i + 1]
        tv = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
        d = v(x, tv)
        x1_hat = x + (1 - t) * d
        xn = x + (tn - t) * d
        if method == "heun":
            d2 = v(xn, torch.full_like(tv, tn))
            xn = x + (tn - t) * 0.5 * (d + d2)
        elif method != "euler":
            raise ValueError(f"unknown ODE method {method!r} (euler | heun)")
        x = xn
        yield i, tn, x, x1_hat


def straightness(v: VelocityFn, x0: torch.Tensor, steps: int = 20) -> float:
    """Liu et al.'s S(Z) = E int_0^1 ||(Z_1 - Z_0) - v(Z_t, t)||^2 dt along Euler paths of v from
    x0, averaged per dimension (0: straight paths)."""
    vs, xs = [], x0
    ts = torch.linspace(0, 1, steps + 1, dtype=torch.float64).tolist()
    for i in range(steps):
        tv = torch.full((x0.shape[0],), ts[i], device=x0.device, dtype=x0.dtype)
        d = v(xs, tv)
        vs.append(d)
        xs = xs + (ts[i + 1] - ts[i]) * d
    chord = xs - x0
    return float(torch.stack([(chord - d).pow(2).flatten(1).mean(1) for d in vs]).mean())


@dataclass
class FlowMatchingConfig(NetConfig):
    """Defaults learn 8 Gaussians in ~2000 steps; one reflow round then brings 1-step Euler close to
    the many-step result."""

    method: str = param("ot_cfm", "Coupling: cfm (independent), ot_cfm (minibatch OT), rectified (reflow)",
                        choices=("cfm", "ot_cfm", "rectified"))
    sigma_min: float = param(0.0, "Std of Gaussian noise around the straight path (cfm / ot_cfm)", range=(0.0, 1.0))
    reflow_rounds: int = param(1, "Rectified flow: reflow rounds after the first stage", range=(0, 10))
    stage_steps: int = param(2000, "Rectified flow: training steps per stage (stage 0 on data, then reflow)",
                             range=(1, 1_000_000))
    reflow_pairs: int = param(4096, "Rectified flow: (noise, sample) pairs generated per reflow round",
                              range=(16, 1_000_000))
    reflow_steps: int = param(50, "Rectified flow: Euler steps used to generate the reflow pairs", range=(1, 1000))
    sample_steps: int = param(20, "ODE steps when a sample asks for none", range=(1, 4000))
    straightness_every: int = param(200, "Report straightness every this many steps (0 = never)",
                                    range=(0, 1_000_000))

    @classmethod
    def tiny(cls) -> FlowMatchingConfig:
        return cls(batch_size=16, hidden=32, depth=1, channels=8, sample_steps=3, stage_steps=2,
                   reflow_pairs=32, reflow_steps=2, straightness_every=2)


class FlowMatchingPlugin(BasePlugin[FlowMatchingConfig]):
    """Trains ``net`` as a velocity field; samples with its EMA copy."""
    ddp_modules = ("net",)  # many processes: DDP wraps the trained net (genstudio.core.distributed)
    fsdp_modules = ("net", "ema")  # or FSDP shards it, and its EMA the same way (ema_update runs on the shards)

    info = PluginInfo(
        id="flow_matching", name="Flow matching", family="diffusion",
        config_cls=FlowMatchingConfig, data_kinds=("points2d", "image"), samplers=("euler", "heun"),
        description="Conditional flow matching, OT-CFM (exact minibatch OT) and rectified flow with reflow; "
                    "Euler/Heun sampling at any step count; path straightness.",
    )

    def setup(self, data: DataSpec) -> None:
        cfg = self.config
        self.data = data
        self.net, self.ema, self.opt = net_ema_adam(data, cfg, self.device)
        self.stage = 0
        self.pairs: tuple[torch.Tensor, torch.Tensor] | None = None  # reflow coupling (noise, sample)

    def forward_process(self) -> StraightPath:
        """ForwardProcess face: the straight path x_t = (1 - t) x_0 + t eps (not an SDE)."""
        return StraightPath()

    def prior_scale(self) -> float:
        """NoisePrior face: Euler/Heun start from unit noise at t = 1."""
        return 1.0

    def extra_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": torch.tensor(self.stage)}
        if self.pairs is not None:
            out["pair_noise"], out["pair_sample"] = self.pairs
        return out

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.stage = int(state.get("stage", 0))
        if "pair_noise" in state:
            self.pairs = (state["pair_noise"].to(self.device), state["pair_sample"].to(self.device))

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The EMA net's velocity, without gradients (sampling, straightness, reflow pairs)."""
        with torch.no_grad():
            return self.ema(x, t)

    def denoise_times(self, steps: int) -> torch.Tensor:
        """Denoiser face: the Euler sampler's times, 0 (noise) to 1 (data)."""
        return torch.linspace(0, 1, int(steps) + 1, dtype=torch.float64)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoiser face: x_t = t x_data + (1 - t) noise in the sampler's time."""
        tt = torch.as_tensor(t, dtype=torch.float64).cpu()
        return tt, 1 - tt

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None,
                guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoiser face: with v = data - noise, x0_hat = x + (1 - t) v and eps_hat = x - t v."""
        tt = torch.as_tensor(t).to(x)
        v = self.velocity(x, tt)
        b = tt.reshape(-1, *([1] * (x.dim() - 1)))
        return x + (1 - b) * v, x - b * v

    def _reflow(self, g: torch.Generator | None = None) -> None:
        """New coupling: noise z and the current model's ODE endpoint from it."""
        cfg = self.config
        z = torch.randn((cfg.reflow_pairs, *self.data.shape), generator=g, device=self.device)
        x = z
        for _, _, x, _ in ode_steps(self.velocity, z, cfg.reflow_steps):  # noqa: B007
            pass
        self.pairs = (z, x)

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        cfg = self.config
        x1 = batch.to(self.device)
        n = x1.shape[0]
        metrics: dict[str, float] = {}
        if cfg.method == "rectified":
            stage = min((step - 1) // cfg.stage_steps, cfg.reflow_rounds)
            if stage > self.stage or (stage > 0 and self.pairs is None):
                self.stage = stage
                self._reflow()
            metrics["stage"] = float(self.stage)
        if cfg.method == "rectified" and self.stage > 0:
            idx = torch.randint(0, self.pairs[0].shape[0], (n,), device=self.device)
            x0, x1 = self.pairs[0][idx], self.pairs[1][idx]
        else:
            x0 = torch.randn_like(x1)
            if cfg.method == "ot_cfm":
                x1 = x1[ot_pairing(x0, x1)]
        t = torch.rand(n, device=self.device)
        tb = t.reshape(-1, *([1] * (x1.dim() - 1)))
        xt = (1 - tb) * x0 + tb * x1
        if cfg.sigma_min > 0 and cfg.method != "rectified":
            xt = xt + cfg.sigma_min * torch.randn_like(xt)
        loss = F.mse_loss(self.net(xt, t), x1 - x0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        self.opt.step()
        ema_update(self.ema, self.net, ema_decay_at(step, cfg.ema_decay))
        metrics.update(loss=loss.item(), grad_norm=float(gn))
        if cfg.straightness_every and step % cfg.straightness_every == 0:
            g = torch.Generator(device=self.device).manual_seed(0)
            z = torch.randn((min(256, cfg.batch_size * 4), *self.data.shape), generator=g, device=self.device)
            metrics["straightness"] = straightness(self.velocity, z)
        return metrics

    def views(self) -> dict[str, Any]:
        """ViewsModel (2-D only): "paths", 64 Euler paths of the EMA field (20 steps, from fixed
        noise) coloured by time over the data density, each with its straight chord in grey and the
        straightness S written in: the picture of what reflow and OT couplings buy (S -> 0, one
        Euler step suffices)."""
        if self.data is None or not self.data.modality.scatter2d:
            return {}
        g = torch.Generator(device=self.device).manual_seed(0)
        z = torch.randn((64, *self.data.shape), generator=g, device=self.device)
        hist = [z.cpu()] + [x.cpu() for _, _, x, _ in ode_steps(self.velocity, z, 20)]
        s = straightness(self.velocity, z)
        return {"paths": paths_image(torch.stack(hist), data_background(self.data.name),
                                     label=f"ODE paths, straightness S={s:.4f} (0 = straight)")}

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               every: int = 1) -> Iterator[SampleState]:
        """Euler or Heun from noise (t = 1 in SampleState terms) to data (t = 0) in ``steps`` steps;
        x0 of each state is the straight-line endpoint guess x_t + (1 - t) v."""
        sampler = self.check_sampler(sampler)
        total = int(steps or self.config.sample_steps)
        x = torch.randn((n, *self.data.shape), generator=self.generator(seed), device=self.device)
        return _states(ode_steps(self.velocity, x, total, sampler), total, max(1, int(every)))


def _states(it: Iterator[tuple[int, float, torch.Tensor, torch.Tensor]], total: int, every: int,
            ) -> Iterator[SampleState]:
    for i, t, x, x1 in it:
        if (i + 1) % every == 0 or i + 1 == total:
            yield SampleState(i + 1, total, max(0.0, 1.0 - t), x, x1)
