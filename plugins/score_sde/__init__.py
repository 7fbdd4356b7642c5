"""Score SDEs (Song et al. 2021): a noise-conditional network trained by denoising score matching
in continuous time for a VP, sub-VP or VE SDE; reverse-SDE, predictor-corrector and
probability-flow ODE samplers; exact log-likelihood through the PF-ODE.

The network predicts the noise z of x_t = m(t) x_0 + std(t) z (the DSM loss weighted by std^2, the
paper's lambda), so score = -z_hat / std. Its input is scaled by 1 / sqrt(m^2 + std^2) so a VE
state of size sigma_max reaches the net at unit scale (Karras' c_in); time enters as t in (0, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from genstudio.core.config import param
from genstudio.core.data import DataSpec
from genstudio.core.diffusion.sde import (
    SDE,
    SDE_SAMPLERS,
    ScoreFn,
    SDEStep,
    em_steps,
    make_sde,
    ode_euler_steps,
    ode_log_prob,
)
from genstudio.core.imaging import data_background, histogram_image, score_field_image
from genstudio.core.metrics.functional import energy_distance
from genstudio.core.nn import NetConfig, ema_decay_at, ema_update, net_ema_adam
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState

VIEW_SIGMA = 0.1  # score view: noise std relative to the data's scale (std(t) / m(t))
FP_TIME = 0.5  # Fokker-Planck check: the latest time at which the reverse SDE and the PF-ODE are compared
FP_SIGMA = 0.3  # ... or earlier, where std/m is this: under VP, p_0.5 is a near-Gaussian blob that hides modes


@dataclass
class ScoreSDEConfig(NetConfig):
    """Defaults mirror the DDPM plugin's nets; sigma_max 10 covers the spread of the 2-D toys (Song
    & Ermon's rule: about the largest distance between data points), use ~50 for digits."""

    sde: str = param("vp", "Forward SDE: vp (DDPM's limit), subvp (tighter likelihoods), ve (NCSN's limit)",
                     choices=("vp", "subvp", "ve"))
    beta_min: float = param(0.1, "VP/sub-VP: beta(0)", range=(1e-4, 10.0))
    beta_max: float = param(20.0, "VP/sub-VP: beta(1)", range=(0.1, 100.0))
    sigma_min: float = param(0.01, "VE: sigma(0)", range=(1e-4, 1.0), log=True)
    sigma_max: float = param(10.0, "VE: sigma(1)", range=(0.5, 500.0), log=True)
    sample_steps: int = param(200, "Steps of the fixed-step samplers (rk45: states shown)", range=(1, 4000))
    snr: float = param(0.16, "Predictor-corrector: Langevin corrector signal-to-noise ratio", range=(0.0, 1.0))
    rtol: float = param(1e-5, "RK45 / likelihood: relative and absolute tolerance", range=(1e-8, 1e-1), log=True)
    view_sigma: float = param(VIEW_SIGMA, "2-D score view: draw the score at the t where std/m (noise relative "
                              "to the data's scale) is this", range=(1e-3, 10.0), log=True)
    fp_sigma: float = param(FP_SIGMA, "2-D Fokker-Planck view: compare the reverse SDE and the PF-ODE where "
                            "std/m is this (at t <= 0.5)", range=(1e-3, 10.0), log=True)

    @classmethod
    def tiny(cls) -> ScoreSDEConfig:
        return cls(batch_size=16, hidden=32, depth=1, channels=8, sample_steps=4, rtol=1e-2)


class ScoreSDEPlugin(BasePlugin[ScoreSDEConfig]):
    """Trains ``net`` on continuous-time DSM; samples and scores with its EMA copy."""
    ddp_modules = ("net",)  # many processes: DDP wraps the trained net (genstudio.core.distributed)
    fsdp_modules = ("net", "ema")  # or FSDP shards it, and its EMA the same way (ema_update runs on the shards)

    info = PluginInfo(
        id="score_sde", name="Score SDE", family="diffusion",
        config_cls=ScoreSDEConfig, data_kinds=("points2d", "image"), samplers=tuple(SDE_SAMPLERS),
        description="Score-based SDE (Song et al. 2021): VP / sub-VP / VE; reverse SDE, predictor-corrector, "
                    "probability-flow ODE (Euler, Heun, RK45); exact PF-ODE log-likelihood.",
    )

    log_prob_kind = "ode"  # Likelihood face: exact up to the PF-ODE solve

    def setup(self, data: DataSpec) -> None:
        cfg = self.config
        self.data = data
        self.sde: SDE = self.forward_process()
        self.net, self.ema, self.opt = net_ema_adam(data, cfg, self.device)

    def forward_process(self) -> SDE:
        """ForwardProcess face: the configured VP / sub-VP / VE SDE (from the config alone)."""
        cfg = self.config
        kw = ({"sigma_min": cfg.sigma_min, "sigma_max": cfg.sigma_max} if cfg.sde == "ve"
              else {"beta_min": cfg.beta_min, "beta_max": cfg.beta_max})
        return make_sde(cfg.sde, **kw)

    def prior_scale(self) -> float:
        """NoisePrior face: the SDE's prior std (VP 1, VE sigma_max)."""
        return float(self.forward_process().prior_std())

    def _coeffs(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1, *([1] * (like.dim() - 1)))
        tt = t.double().cpu()
        m, s = self.sde.mean_coeff(tt), self.sde.std(tt)
        return m.to(like).reshape(shape), s.to(like).reshape(shape)

    def _eps(self, net: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m, s = self._coeffs(t, x)
        return net(x / (m**2 + s**2).sqrt(), t.to(x.dtype))

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        cfg = self.config
        x0 = batch.to(self.device)
        t = self.sde.eps + (1 - self.sde.eps) * torch.rand(x0.shape[0], device=self.device)
        z = torch.randn_like(x0)
        m, s = self._coeffs(t, x0)
        loss = F.mse_loss(self._eps(self.net, m * x0 + s * z, t), z)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        self.opt.step()
        ema_update(self.ema, self.net, ema_decay_at(step, cfg.ema_decay))
        return {"loss": loss.item(), "grad_norm": float(gn)}

    def denoise_times(self, steps: int) -> torch.Tensor:
        """Denoiser face: ``steps`` equal steps of t from 1 to the SDE's eps, then t = 0 (data)."""
        return torch.cat([torch.linspace(self.sde.T, self.sde.eps, int(steps), dtype=torch.float64),
                          torch.zeros(1, dtype=torch.float64)])

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoiser face: (mean_coeff(t), std(t)); t = 0 is the data itself (std 0, also for VE)."""
        tt = torch.as_tensor(t, dtype=torch.float64).cpu()
        return self.sde.mean_coeff(tt), torch.where(tt > 0, self.sde.std(tt), torch.zeros_like(tt))

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None,
                guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoiser face: eps_hat of the EMA net and its Tweedie x0_hat = (x - std eps_hat) / m."""
        t = torch.as_tensor(t, dtype=torch.float64).to(x.device)
        m, s = self._coeffs(t, x)
        eps = self._eps(self.ema, x, t)
        return (x - s * eps) / m, eps

    def score_fn(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """grad log p_t(x) from the EMA net (differentiable, for the likelihood's divergence)."""
        _, s = self._coeffs(t, x)
        return -self._eps(self.ema, x, t) / s

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               every: int = 1) -> Iterator[SampleState]:
        """Reverse SDE ("em"), predictor-corrector ("pc"), PF-ODE Euler/Heun ("ode_euler"/"ode_heun") or
        adaptive RK45 ("rk45", whose ``steps`` only sets how many states are shown). x0 in a state is the
        Tweedie estimate (x - std z_hat) / m at the start of that step."""
        sampler = self.check_sampler(sampler)
        cfg = self.config
        g = self.generator(seed)
        x = self.sde.prior_sample((n, *self.data.shape), g, device=self.device)
        last: dict[str, torch.Tensor] = {}

        def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                m, s = self._coeffs(t, x)
                eps = self._eps(self.ema, x, t)
                last["x0"] = (x - s * eps) / m
                return -eps / s

        total = int(steps or cfg.sample_steps)
        kw = {"rtol": cfg.rtol, "atol": cfg.rtol} if sampler == "rk45" else {}
        if sampler == "pc":
            kw = {"snr": cfg.snr}
        it = SDE_SAMPLERS[sampler](self.sde, score, x, total, g, **kw)
        return _states(it, total, max(1, int(every)), last)

    # -- views (2-D) ------------------------------------------------------------------------------
    def view_time(self, rel_sigma: float | None = None) -> float:
        """The t at which std(t) / m(t) (the noise relative to the data's scale) is ``rel_sigma``
        (default: the config's ``view_sigma``)."""
        rel_sigma = self.config.view_sigma if rel_sigma is None else rel_sigma
        ts = torch.linspace(self.sde.eps, self.sde.T, 2001, dtype=torch.float64)
        rel = self.sde.std(ts) / self.sde.mean_coeff(ts)
        return float(ts[(rel - rel_sigma).abs().argmin()])

    def views(self) -> dict[str, Any]:
        """ViewsModel (2-D only): "score", the EMA score at std/m = ``view_sigma`` as arrows over the data density
        smoothed by that noise; "fokker_planck", see :meth:`fokker_planck`. The Fokker-Planck energy
        distance is kept in ``self.fp_distance``."""
        if self.data is None or not self.data.modality.scatter2d:
            return {}
        self.ema.eval()
        t = self.view_time()
        tv = torch.full((1,), t, dtype=torch.float64)
        rel = float(self.sde.std(tv) / self.sde.mean_coeff(tv))

        def score(x: torch.Tensor) -> torch.Tensor:
            return self.score_fn(x.to(self.device), torch.full((x.shape[0],), t, device=self.device))

        img = score_field_image(score, data_background(self.data.name, rel), label=f"t={t:.3g}  std/m={rel:.2g}")
        # 60 steps keep the view near 0.3 s on a CPU; the exact-score distance stays ~0.01 (tests: 100 steps)
        fp, self.fp_distance = self.fokker_planck(t=min(FP_TIME, self.view_time(self.config.fp_sigma)), steps=60)
        return {"score": img, "fokker_planck": fp}

    def fokker_planck(self, score_fn: ScoreFn | None = None, t: float = FP_TIME, n: int = 1000, steps: int = 100,
                      seed: int = 0, lim: float = 3.0) -> tuple[np.ndarray, float]:
        """The reverse SDE (Euler-Maruyama) and the PF-ODE (Euler) run from the SAME prior samples on
        the same ``steps``-step time grid (T -> eps), stopped at the first grid time <= ``t``: both
        must have the marginal p_t (the Fokker-Planck equation), so their energy distance measures
        the score's (and the discretisation's) inconsistency. Returns (two histograms side by side
        with the distance written in, the distance). ``score_fn`` defaults to the EMA net."""
        if self.data is None:
            raise RuntimeError("call setup() before fokker_planck()")
        score_fn = score_fn or self.score_fn
        x0 = self.sde.prior_sample((n, *self.data.shape), self.generator(seed), device=self.device)
        outs, t_end = [], t
        for run in (em_steps, ode_euler_steps):
            g = self.generator(seed + 1)
            with torch.no_grad():
                for _, t_end, x, _ in run(self.sde, score_fn, x0, steps, g):  # noqa: B007 - x is kept
                    if t_end <= t + 0.5 / steps:
                        break
            outs.append(x.detach().cpu())  # the state itself (not the SDE's noise-free mean) has marginal p_t
        dist = energy_distance(outs[0], outs[1])
        bins = 40
        hists = [np.histogram2d(o[:, 0].numpy(), o[:, 1].numpy(), bins=bins, range=[[-lim, lim]] * 2)[0] for o in outs]
        hi = max(1.0, *(float(h.max()) for h in hists))
        panels = [histogram_image(o, bins=bins, lim=lim, size=192, hi=hi) for o in outs]
        return _side_by_side(panels, ["reverse SDE (EM)", "PF-ODE (Euler)"],
                             f"t={t_end:.3g}  energy distance {dist:.4f}"), dist

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact PF-ODE log-density in nats per sample (exact trace up to 16 dims, Hutchinson above,
        with a fixed probe seed so repeated calls agree)."""
        if self.data is None:
            raise RuntimeError("call setup() before log_prob()")
        g = torch.Generator().manual_seed(0)
        lp, _, _ = ode_log_prob(self.sde, self.score_fn, x.to(self.device).float(), generator=g,
                                rtol=self.config.rtol, atol=self.config.rtol)
        return lp.float()


def _states(it: Iterator[SDEStep], total: int, every: int, last: dict[str, torch.Tensor]) -> Iterator[SampleState]:
    """Sampler steps -> SampleStates every ``every`` steps and at the end (the noise-free mean there)."""
    for i, t, x, mean in it:
        if (i + 1) % every == 0 or i + 1 == total:
            out = mean if i + 1 == total else x
            yield SampleState(i + 1, total, min(max(t, 0.0), 1.0), out, last.get("x0"))


def _side_by_side(panels: list[np.ndarray], titles: list[str], caption: str) -> np.ndarray:
    """Equal-size panels in a row on a dark strip, a title over each and a caption below."""
    h, w = panels[0].shape[:2]
    gap, top, bottom = 6, 16, 18
    im = Image.new("RGB", (len(panels) * w + (len(panels) + 1) * gap, h + top + bottom), (20, 22, 28))
    d = ImageDraw.Draw(im)
    for i, (p, title) in enumerate(zip(panels, titles)):
        x = gap + i * (w + gap)
        im.paste(Image.fromarray(p), (x, top))
        d.text((x + 2, 2), title, fill=(230, 230, 230))
    d.text((gap + 2, top + h + 3), caption, fill=(255, 255, 255))
    return np.asarray(im)
