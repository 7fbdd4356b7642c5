"""Imagen-style cascade (Saharia et al. 2022) at small scale: pixel-space text-conditioned diffusion
at half resolution (16x16 on ``captions``), then a text-conditioned super-resolution diffusion to
full resolution (32x32), sampled end to end, with dynamic thresholding.

- Both stages are cross-attention U-Nets (``genstudio.core.nn.text_unet``) on the same text context
  (a frozen ``clip`` run's encoder, or one trained jointly) and share the conditioning / CFG code of
  the sd plugin (:class:`~genstudio_plugins.sd.TextDiffusion`).
- The SR stage sees the noisy full-resolution image concatenated with the bilinearly upsampled
  low-res image after noise-conditioning augmentation (Gaussian noise of std ``aug`` drawn in
  [0, ``aug_max``] in training, fixed ``aug_level`` when sampling) and a constant channel holding
  that std, so it learns not to trust every low-res pixel.
- Both stages train in one run, both losses every step (one optimiser): one checkpoint samples
  the whole cascade, and the SR stage always matches the base stage it was trained with. Training
  feeds the SR stage ground-truth low-res images (average-pooled), as Imagen does.
- Dynamic thresholding (sample option ``threshold`` = percentile p; 0 = static clip to [-1, 1]):
  s = max(1, quantile_p |x0_hat|) per sample, x0_hat <- clamp(x0_hat, -s, s) / s.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin
from genstudio_plugins.sd import TextDiffusion
from torch import Tensor

from genstudio.core.config import param
from genstudio.core.data import DataSpec
from genstudio.core.diffusion import ddim_steps, predict_eps, predict_x0, spaced_timesteps
from genstudio.core.nn.ema import ema_copy
from genstudio.core.plugin import PluginInfo, SampleOption, SampleState


def dynamic_threshold(x0: Tensor, p: float) -> Tensor:
    """Saharia et al.: s = max(1, the p-quantile of |x0| per sample); clamp to [-s, s], divide by s.
    p <= 0 is the static clip to [-1, 1]."""
    if p <= 0:
        return x0.clamp(-1.0, 1.0)
    s = torch.quantile(x0.abs().flatten(1), float(p), dim=1).clamp(min=1.0).view(-1, *([1] * (x0.dim() - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


@dataclass
class ImagenConfig(DDPMConfig):
    text_run: str = param("", "Trained CLIP run whose text encoder is used frozen (empty = a small text "
                          "encoder trained jointly)", runs_of=("clip",))
    text_width: int = param(64, "Jointly trained text encoder: width", range=(8, 512))
    text_layers: int = param(2, "Jointly trained text encoder: transformer layers", range=(1, 8))
    heads: int = param(4, "Cross-attention heads", range=(1, 16))
    channels: int = param(32, "U-Net base channels (both stages)", range=(4, 512))
    cond_drop: float = param(0.1, "Caption dropout: probability a caption is replaced by the null caption",
                             range=(0.0, 1.0), live=True)
    guidance: float = param(3.0, "Classifier-free guidance scale when a sample asks for none", range=(0.0, 20.0))
    aug_max: float = param(0.3, "SR stage: largest noise-augmentation std of the low-res input in training",
                           range=(0.0, 2.0))
    aug_level: float = param(0.1, "SR stage: noise-augmentation std of the low-res input when sampling",
                             range=(0.0, 2.0))
    threshold: float = param(0.95, "Dynamic thresholding percentile (0 = static clip to [-1, 1])",
                             range=(0.0, 1.0))

    @classmethod
    def tiny(cls) -> ImagenConfig:
        return cls(batch_size=8, timesteps=20, sample_steps=3, channels=8, text_width=16, text_layers=1, heads=2)


class ImagenPlugin(TextDiffusion, DDPMPlugin):
    info = PluginInfo(
        id="imagen", name="Imagen-style cascade", family="diffusion", config_cls=ImagenConfig,
        data_kinds=("captioned",), samplers=("ddim",),
        description="Text-conditioned pixel diffusion at half resolution + text-conditioned super-resolution "
                    "(noise-conditioning augmentation), dynamic thresholding; frozen CLIP or joint text encoder.",
    )
    config: ImagenConfig
    preview_steps = 25
    forward_process = None  # two chains at two resolutions: no single forward process / prior in data space
    prior_scale = None
    denoise = None
    sample_options = (
        SampleOption("guidance", "Classifier-free guidance scale over the prompt (both stages)", 3.0, (0.0, 20.0)),
        SampleOption("threshold", "Dynamic thresholding percentile p (0 = static clip)", 0.95, (0.0, 1.0)),
        SampleOption("aug_level", "Noise-augmentation std of the low-res image fed to the SR stage", 0.1,
                     (0.0, 2.0)),
        DDPMPlugin.sample_options[0],
    )

    def setup(self, data: DataSpec) -> None:
        c, (ch, h, w) = self.config, data.shape
        if h != w or h % 16:
            raise ValueError(f"imagen needs square images of 16 or 32 px, got {data.shape}")
        super().setup(data)  # the schedule and DDPM state (its plain net is replaced below)
        self._setup_text(data)
        self.low = h // 2
        self.net = self.text_net(ch, self.low)
        self.sr = self.text_net(2 * ch + 1, h, out_ch=ch)
        self.ema, self.sr_ema = ema_copy(self.net), ema_copy(self.sr)
        trainable = [p for p in self.text.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam([*self.net.parameters(), *self.sr.parameters(), *trainable], lr=c.lr)

    def low_res(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2)

    def sr_input(self, low: Tensor, aug: Tensor, noise: Tensor) -> Tensor:
        """The SR stage's conditioning channels: upsampled low-res + aug noise, and the aug std."""
        up = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
        a = aug.view(-1, 1, 1, 1)
        return torch.cat([up + a * noise, a.expand(-1, 1, *up.shape[-2:])], 1)

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        if labels is None or labels.dim() != 2:
            raise ValueError("imagen needs caption token ids as labels (a captioned dataset)")
        x = batch.to(self.device)
        ctx, pad = self.text(self.drop_captions(labels.to(self.device), self.config.cond_drop))
        low = self.low_res(x)
        aug = torch.rand(x.shape[0], device=self.device) * self.config.aug_max
        cond = self.sr_input(low, aug, torch.randn_like(x))
        base = self.eps_loss(self.net, low, ctx, pad)
        sr = self.eps_loss(self.sr, x, ctx, pad, cond)
        out = self.optimise(base + sr, step, [(self.ema, self.net), (self.sr_ema, self.sr)])
        return {**out, "loss_base": float(base.detach()), "loss_sr": float(sr.detach())}

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Any = None, every: int = 1, prompt: Sequence[str] | str | None = None,
               guidance: float | None = None, threshold: float | None = None, aug_level: float | None = None,
               eta: float | None = None) -> Iterator[SampleState]:
        """DDIM through the base stage, then the SR stage on its output; ``total`` counts both.
        Base-stage states are shown upsampled to full size (the raw ones in extras["stages"])."""
        self.check_sampler(sampler)
        c = self.config
        g = self.generator(seed)
        ids = self.prompt_ids(prompt, n)
        w = c.guidance if guidance is None else float(guidance)
        p = c.threshold if threshold is None else float(threshold)
        aug = c.aug_level if aug_level is None else float(aug_level)
        ks = spaced_timesteps(self.sched.T, steps or c.sample_steps)
        e = c.eta if eta is None else float(eta)
        ch, h, _ = self.data.shape
        x_low = torch.randn((n, ch, self.low, self.low), generator=g, device=self.device)
        noise_sr = torch.randn((n, ch, h, h), generator=g, device=self.device)
        x_hi = torch.randn((n, ch, h, h), generator=g, device=self.device)
        return self._cascade(ids, w, p, aug, ks, e, g, x_low, noise_sr, x_hi, max(1, int(every)))

    def _eps_fn(self, net: Any, ids: Tensor, w: float, p: float, extra: Tensor | None = None) -> Any:
        def eps_fn(x: Tensor, t: Tensor) -> Tensor:
            with torch.no_grad():
                eps = self.guided(net, x, self._time(t), ids, w, extra)
                x0 = dynamic_threshold(predict_x0(eps, t, x, self.sched), p)
                return predict_eps(x0, t, x, self.sched)
        return eps_fn

    def _cascade(self, ids: Tensor, w: float, p: float, aug: float, ks: Tensor, eta: float, g: torch.Generator,
                 x_low: Tensor, noise_sr: Tensor, x_hi: Tensor, every: int) -> Iterator[SampleState]:
        steps, total, T = len(ks), 2 * len(ks), self.sched.T  # noqa: N806
        up = lambda v: F.interpolate(v, scale_factor=2, mode="nearest")  # noqa: E731
        low = x_low
        for i, t, xt, x0 in ddim_steps(self._eps_fn(self.ema, ids, w, p), x_low, self.sched, ks, eta, g):
            low = xt
            if (i + 1) % every == 0 or i + 1 == steps:
                yield SampleState(i + 1, total, 0.5 + 0.5 * (t + 1) / T, up(xt), up(x0), {
                    **self.text_extras(ids), "stage": "base", "stages": {"base 16x16": x0.cpu()}})
        low = low.clamp(-1, 1)
        extra = self.sr_input(low, torch.full((low.shape[0],), aug, device=low.device), noise_sr)
        for i, t, xt, x0 in ddim_steps(self._eps_fn(self.sr_ema, ids, w, p, extra), x_hi, self.sched, ks, eta, g):
            k = steps + i + 1
            if (k % every == 0) or k == total:
                yield SampleState(k, total, 0.5 * (t + 1) / T, xt, x0, {
                    **self.text_extras(ids), "stage": "super-res",
                    "stages": {"base 16x16": low.cpu(), "super-res 32x32": x0.cpu()}})

    def pipeline_stages(self) -> list[tuple[str, str]]:
        c = self.config
        text = f"clip run {c.text_run} (frozen)" if c.text_run else \
            f"transformer {c.text_layers}x{c.text_width}, trained jointly"
        return [("prompt", "text"), ("tokens", f"WordLevel, {self.tokenizer.max_len} ids"), ("text encoder", text),
                ("base 16x16", f"pixel U-Net + cross-attention at {self.low}x{self.low}, ddim"),
                ("super-res 32x32", f"U-Net + cross-attention, {self.low}->{2 * self.low}, noise aug "
                                    f"{c.aug_level}, dynamic threshold p={c.threshold}")]


PLUGIN = ImagenPlugin
