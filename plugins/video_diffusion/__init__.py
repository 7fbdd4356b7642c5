"""Video diffusion: the DDPM plugin's schedules, samplers (DDPM, DDIM, k-samplers) and
classifier-free guidance on clips (B, C, T, H, W), with a space-time DiT or a factorised 3-D U-Net
(``genstudio.core.nn.video``).

Subclasses :class:`DDPMPlugin`: only the network, the condition and the clip length differ.
``cond``: "none", "class" (motion labels of ``video:moving16``; Conditional face, ``sample(cond=)``)
or "caption" (``video:captions16``; TextConditional face, ``sample(prompt=[...])``), both with
condition dropout for CFG. ``sample(frames=F)`` draws clips of F frames from a model trained on T:
the U-Net's convolutions take any length; the DiT interpolates its sin-cos temporal positions onto
the trained range 0..T'-1 (so F > T is a denser sampling of the trained time span, not new time).
``predict`` (auto): a DiT whose patch holds more numbers than its width (2x4x4x3 = 96 > 64) cannot
pass per-pixel noise through its tokens -- eps-prediction stalls at loss ~0.38 and samples noise --
so it predicts the clean clip instead (x0; as in Li & He 2025, "Back to Basics: Let Denoising
Generative Models Denoise"); the samplers still get the eps that clip implies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin

from genstudio.core.config import param
from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.diffusion import make_schedule, q_sample
from genstudio.core.diffusion.samplers import predict_eps
from genstudio.core.nn import ema_decay_at, ema_update
from genstudio.core.nn.ema import ema_copy
from genstudio.core.nn.video import SpaceTimeDiT, UNet3D, VideoCond
from genstudio.core.plugin import PluginInfo, SampleOption, SampleState
from genstudio.core.text import Tokenizer


@dataclass
class VideoDiffusionConfig(DDPMConfig):
    """Defaults fit 16-frame 16x16 clips on a CPU: a 64-wide DiT on 2x4x4 patches (8 x 16 tokens)."""

    arch: str = param("dit", "Network: space-time patch DiT or factorised 3-D U-Net (2-D convs + temporal convs)",
                      choices=("dit", "unet3d"))
    attention: str = param("factorised", "DiT attention: factorised (within a frame, then across frames at one "
                           "location) or joint (all space-time tokens)", choices=("factorised", "joint"))
    cond: str = param("none", "Condition: none, class (motion labels) or caption (text, video:captions16)",
                      choices=("none", "class", "caption"))
    width: int = param(64, "DiT width", range=(16, 512))
    blocks: int = param(4, "DiT blocks (factorised: a spatial and a temporal attention each)", range=(1, 16))
    patch_t: int = param(2, "DiT patch length in frames", range=(1, 8))
    patch_s: int = param(4, "DiT patch side in pixels", range=(1, 8))
    base: int = param(16, "3-D U-Net base channels", range=(4, 256))
    predict: str = param("auto", "What the network outputs: the noise (eps, DDPM) or the clean clip (x0); auto: "
                         "x0 for a DiT whose patch holds more numbers than its width (noise does not fit "
                         "through it, clean clips do), else eps", choices=("auto", "eps", "x0"))

    @classmethod
    def tiny(cls) -> VideoDiffusionConfig:
        return cls(batch_size=4, timesteps=20, sample_steps=3, width=16, blocks=1, base=8)


class VideoDiffusionPlugin(DDPMPlugin):
    """DDPM on clips; see the module docstring."""

    info = PluginInfo(
        id="video_diffusion", name="Video diffusion", family="diffusion", config_cls=VideoDiffusionConfig,
        data_kinds=("video",), samplers=DDPMPlugin.info.samplers,
        description="Diffusion on 16-frame clips: space-time DiT (factorised or joint attention) or factorised "
                    "3-D U-Net; class or caption conditioning with CFG; frame-count extrapolation.")
    preview_steps = 20
    sample_options = (*DDPMPlugin.sample_options,
                      SampleOption("frames", "Frames per clip (0 = as trained; DiT: multiples of its patch length)",
                                   0.0, (0.0, 64.0), step=1.0))

    def setup(self, data: DataSpec) -> None:
        cfg = self.config
        if cfg.arch not in ("dit", "unet3d"):
            raise ValueError(f"unknown arch {cfg.arch!r}: dit or unet3d")
        if cfg.predict not in ("auto", "eps", "x0"):
            raise ValueError(f"unknown predict {cfg.predict!r}: auto, eps or x0")
        self.data = data
        self.sched = make_schedule(cfg.schedule, cfg.timesteps)
        self.x_absmax = 0.0
        self.tokenizer: Tokenizer | None = None
        ch, frames, size = data.shape[0], data.shape[1], data.shape[-1]
        narrow = cfg.arch == "dit" and cfg.patch_t * cfg.patch_s ** 2 * ch > cfg.width
        self.predict = cfg.predict if cfg.predict != "auto" else ("x0" if narrow else "eps")
        self.num_classes = data.num_classes if cfg.cond == "class" else 0
        if cfg.cond == "class" and not self.num_classes:
            raise ValueError(f"cond=class needs labelled clips (video:moving16); {data.name} has no classes")
        if cfg.cond == "caption":
            ds = get_dataset(data.name)
            self.tokenizer = getattr(ds, "tokenizer", None) if getattr(ds, "captioned", True) else None
            if self.tokenizer is None:
                raise ValueError(f"cond=caption needs captioned clips (video:captions16); {data.name} has none")
        dim = cfg.width if cfg.arch == "dit" else 4 * cfg.base
        vc = VideoCond(cfg.cond, dim, self.num_classes, self.tokenizer.vocab_size if self.tokenizer else 0,
                       self.tokenizer.max_len if self.tokenizer else 0)
        if cfg.arch == "dit":
            net: torch.nn.Module = SpaceTimeDiT(ch, frames, size, (cfg.patch_t, cfg.patch_s, cfg.patch_s), cfg.width,
                                                cfg.blocks, attention=cfg.attention, cond=vc)
        else:
            net = UNet3D(ch, cfg.base, (1, 2, 2) if size >= 16 else (1, 2), cfg.num_res, cond=vc)
        self.net = net.to(self.device)
        self.ema = ema_copy(self.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)

    # -- conditions ------------------------------------------------------------------------------
    @property
    def text_tokenizer(self) -> Any:
        """TextConditional face, only for caption runs (hasattr is False otherwise)."""
        if self.tokenizer is None:
            raise AttributeError("text_tokenizer: this run is not caption-conditioned")
        return lambda: self.tokenizer

    def _labels(self, cond: Any, n: int) -> torch.Tensor | None:
        """Class labels (cond=class) or caption token ids (cond=caption: strings or ids, cycled to n)."""
        if cond is None or self.config.cond != "caption":
            return super()._labels(cond, n)
        ids = cond if isinstance(cond, torch.Tensor) else self.tokenizer.encode([cond] if isinstance(cond, str)
                                                                                 else list(cond))
        ids = ids.long().to(self.device)
        return ids[torch.arange(n, device=self.device) % len(ids)]

    def _eps(self, net: torch.nn.Module, x: torch.Tensor, time: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The network's noise estimate: its output (predict=eps) or the noise its clean clip implies
        (predict=x0), so every sampler and CFG stay written in eps."""
        out = net(x, time, y)
        if self.predict == "eps":
            return out
        k = (time * self.sched.T - 1).round().long().clamp(0, self.sched.T - 1).expand(x.shape[0])
        return predict_eps(out, k, x, self.sched)

    def guided_eps(self, x: torch.Tensor, time: torch.Tensor, y: torch.Tensor | None,
                   guidance: float = 1.0) -> torch.Tensor:
        """CFG as the DDPM's, with the null condition of the run's kind (null class or empty caption)."""
        if y is None or guidance == 1.0:
            return self._eps(self.ema, x, time, y)
        null = self.ema.cond.null_like(y)
        if guidance == 0.0:
            return self._eps(self.ema, x, time, null)
        eps_c, eps_u = self._eps(self.ema, torch.cat([x, x]), torch.cat([time, time]), torch.cat([y, null])).chunk(2)
        return eps_u + guidance * (eps_c - eps_u)

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        cfg = self.config
        x0 = batch.to(self.device)
        self.x_absmax = max(self.x_absmax, float(x0.detach().abs().max()))
        t = torch.randint(0, self.sched.T, (x0.shape[0],), device=self.device)
        noise = torch.randn_like(x0)
        y = None
        if cfg.cond != "none" and labels is not None:
            y = self.net.cond.drop(labels.to(self.device), cfg.cond_drop)
        out = self.net(q_sample(x0, t, noise, self.sched), self._time(t), y)
        loss = F.mse_loss(out, noise if self.predict == "eps" else x0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        self.opt.step()
        ema_update(self.ema, self.net, ema_decay_at(step, cfg.ema_decay))
        return {"loss": loss.item(), "grad_norm": float(gn)}

    def sample(self, n: int, *, seed: int, prompt: Any = None, frames: int | float | None = None,
               **kw: Any) -> Iterator[SampleState]:
        """DDPM sampling (every sampler and option of :meth:`DDPMPlugin.sample`) with ``prompt``
        (caption runs: one string or a list, cycled) and ``frames`` (clip length; 0/None = trained)."""
        if prompt is not None:
            if self.tokenizer is None:
                raise ValueError("prompt= needs a caption-conditioned run (cond=caption)")
            kw["cond"] = prompt
        frames = int(frames or 0)
        if frames and self.config.arch == "dit" and frames % self.config.patch_t:
            raise ValueError(f"frames={frames} must be a multiple of the DiT's patch length {self.config.patch_t}")
        trained = self.data
        if frames and frames != trained.shape[1]:
            self.data = dataclasses.replace(trained, shape=(trained.shape[0], frames, *trained.shape[2:]))
        try:  # the noise is drawn at the call, so the clip length only has to hold for it
            return super().sample(n, seed=seed, **kw)
        finally:
            self.data = trained

    def extra_state(self) -> dict[str, Any]:
        out = super().extra_state()
        if self.tokenizer is not None:
            out["tokenizer"] = self.tokenizer.to_json()  # JSON text: weights-only safe
        return out

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if "tokenizer" in state:
            self.tokenizer = Tokenizer.from_json(state["tokenizer"])


PLUGIN = VideoDiffusionPlugin
