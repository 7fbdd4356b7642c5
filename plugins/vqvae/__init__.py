"""VQ-VAE image tokenizer: a conv encoder, the shared EMA vector quantiser
(``genstudio.core.nn.vq``: k-means start, dead-code restart, commitment, straight-through) and a
conv decoder (``genstudio.core.nn.vqvae``). 16x16 images become 4x4 (downsample 4) or 8x8 token
grids over a 64-512 code book; the token models (DALL-E-style, unified) read its runs.

It is a tokenizer, not a generator: ``sample()`` reconstructs the dataset's reference images (a
seed picks them), so the sampler and the training previews show what the tokens keep. The
training monitor shows code use (sorted histogram), dead-code restarts over training and
reconstructions (Views), and logs perplexity / usage / reconstruction error (PreviewMetrics).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from genstudio.core.audioviews import usage_image
from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.imaging import _label, image_grid
from genstudio.core.nn.vq import code_stats
from genstudio.core.nn.vqvae import VQVAE
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState

PREVIEW_IMAGES = 64  # reference images the preview metrics and views are measured on


@dataclass
class VQVAEConfig(ModelConfig):
    batch_size: int = param(64, "Images per training step", range=(1, 4096))
    lr: float = param(2e-3, "Adam learning rate", range=(1e-6, 1.0), log=True)
    channels: int = param(64, "Conv channels of the encoder and decoder", range=(4, 512))
    downsample: int = param(4, "Image pixels per token side (a power of two): 16x16 -> 4x4 tokens at 4",
                            range=(2, 16))
    code_dim: int = param(32, "Dimension of the code vectors", range=(2, 512))
    codebook_size: int = param(64, "Codes in the code book", range=(2, 8192))
    commitment: float = param(0.25, "Weight of the commitment loss ||z - sg(q)||^2", range=(0.0, 100.0))
    ema_decay: float = param(0.9, "EMA decay of the codebook statistics", range=(0.0, 0.99999))
    dead_threshold: float = param(1.0, "A code whose EMA count per batch falls below this restarts at a random "
                                  "encoder output (0 = never)", range=(0.0, 1e6))

    @classmethod
    def tiny(cls) -> VQVAEConfig:
        return cls(batch_size=8, channels=8, code_dim=4, codebook_size=8)


def curve_image(xs: np.ndarray, ys: np.ndarray, label: str, size: tuple[int, int] = (96, 256)) -> np.ndarray:
    """A tiny line plot (H, W, 3) uint8 of ys over xs (both scaled to fit), label on top."""
    h, w = size
    img = np.full((h, w, 3), 24, np.uint8)
    if len(xs):
        x = (xs - xs.min()) / max(float(xs.max() - xs.min()), 1e-12) * (w - 1)
        y = (h - 1) - (ys - ys.min()) / max(float(ys.max() - ys.min()), 1e-12) * (h - 1)
        px = np.arange(w)
        py = np.interp(px, x, y) if len(xs) > 1 else np.full(w, y[0])
        for c, r in zip(px, py.round().astype(int)):
            img[r:, c] = (60, 90, 140)
            img[max(r - 1, 0):r + 1, c] = (120, 200, 255)
    return titled(img, label)


def titled(img: np.ndarray, label: str) -> np.ndarray:
    """``img`` under a dark 16 px title strip holding ``label`` (the label never hides the picture)."""
    strip = np.full((16, img.shape[1], 3), 20, np.uint8)
    return _label(np.ascontiguousarray(np.concatenate([strip, img], 0)), label)


class VQVAEPlugin(BasePlugin[VQVAEConfig]):
    info: ClassVar[PluginInfo] = PluginInfo(
        "vqvae", "VQ-VAE image tokenizer", "tokenizer", VQVAEConfig, ("image", "captioned"), ("reconstruct",),
        "Conv encoder, EMA vector quantiser (k-means start, dead-code restart), conv decoder: images <-> "
        "token grids for the token models; sampling reconstructs reference images")

    def setup(self, data: DataSpec) -> None:
        c = self.config
        self.data = data
        ch, hh, ww = data.shape
        if hh % c.downsample or ww % c.downsample:
            raise ValueError(f"images {hh}x{ww} do not split into tokens of {c.downsample} pixels")
        self.net = VQVAE(ch, c.channels, c.downsample, c.code_dim, c.codebook_size, decay=c.ema_decay,
                         commitment=c.commitment, dead_threshold=c.dead_threshold).to(self.device)
        self.opt = torch.optim.Adam([*self.net.enc.parameters(), *self.net.dec.parameters()], lr=c.lr)
        self.restart_history = torch.zeros(0, 2)  # (step, restarts so far) rows: the restarts view
        self._restarts_before = 0.0  # restarts of earlier processes (a resumed run)
        self._reference: Tensor | None = None

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of a token grid."""
        return self.data.shape[1] // self.config.downsample, self.data.shape[2] // self.config.downsample

    @property
    def codebook_size(self) -> int:
        return int(self.config.codebook_size)

    @property
    def restarts(self) -> float:
        return self._restarts_before + self.net.vq.restarts

    def encode_tokens(self, x: Tensor) -> Tensor:
        """(B, C, H, W) images -> (B, h, w) int64 tokens."""
        self.net.eval()
        return self.net.encode_tokens(x.to(self.device))

    def decode_tokens(self, tokens: Tensor) -> Tensor:
        """(B, h, w) tokens -> images in [-1, 1]."""
        self.net.eval()
        return self.net.decode_tokens(tokens.to(self.device))

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        self.net.train()
        loss, mse, q = self.net.loss(batch.to(self.device))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.restart_history = torch.cat([self.restart_history, torch.tensor([[float(step), self.restarts]])])
        return {"loss": loss.item(), "recon_mse": mse.item(), "commit": q.loss.item(),
                "perplexity": float(q.perplexity), "restarts": self.restarts}

    def reference(self) -> Tensor:
        if self._reference is None:
            self._reference = get_dataset(self.data.name).fixed(PREVIEW_IMAGES, seed=0)[0].to(self.device)
        return self._reference

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1) -> Iterator[SampleState]:
        """Reconstructions of ``n`` dataset images drawn with ``seed`` (one state; inputs and tokens in extras)."""
        self.check_sampler(sampler)
        x = get_dataset(self.data.name).fixed(n, seed)[0].to(self.device)
        tokens = self.encode_tokens(x)
        yield SampleState(1, 1, 0.0, self.decode_tokens(tokens), extras={"input": x, "image_tokens": tokens})

    @torch.no_grad()
    def preview_metrics(self) -> dict[str, float]:
        """Code perplexity, code-book usage and reconstruction MSE on the reference images."""
        x = self.reference()
        tokens = self.encode_tokens(x)
        ppl, usage = code_stats(tokens, self.codebook_size)
        return {"code_perplexity": ppl, "code_usage": usage,
                "recon_mse_ref": float(((self.decode_tokens(tokens) - x) ** 2).mean()), "restarts": self.restarts}

    @torch.no_grad()
    def views(self) -> dict[str, Any]:
        """Code use (EMA counts sorted, and this preview's histogram), restarts over training, recon."""
        x = self.reference()
        tokens = self.encode_tokens(x)
        counts = torch.bincount(tokens.reshape(-1), minlength=self.codebook_size).float()
        ppl, usage = code_stats(tokens, self.codebook_size)
        ema = self.net.vq.cluster_size.cpu()
        hist = titled(usage_image(torch.stack([ema, counts.cpu()]), row=24),
                      f"code use (sorted, log): EMA counts / reference · {usage:.0%} used · perplexity {ppl:.1f}")
        hist_rows = torch.sort(counts, descending=True).values.cpu().numpy()
        bars = curve_image(np.arange(len(hist_rows), dtype=float), hist_rows,
                           f"codes sorted by use ({self.codebook_size} codes)")
        rh = self.restart_history.numpy()
        restarts = curve_image(rh[:, 0], rh[:, 1], f"dead-code restarts so far: {self.restarts:.0f}") if len(rh) else \
            curve_image(np.zeros(0), np.zeros(0), "dead-code restarts: none yet")
        k = min(16, len(x))
        pair = torch.cat([x[:k], self.decode_tokens(tokens[:k])]).clamp(-1, 1)
        scale = max(1, 96 // x.shape[-1])
        recon = titled(image_grid(pair, ncol=k, scale=scale), "top: input · bottom: through the tokens")
        return {"codebook_usage": hist, "usage_histogram": bars, "restarts": restarts, "reconstruction": recon}

    def extra_state(self) -> dict[str, Any]:
        return {"restart_history": self.restart_history.clone(), "restarts": torch.tensor(self.restarts)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "restart_history" in state:
            self.restart_history = state["restart_history"].clone()
        self._restarts_before = float(state.get("restarts", 0.0)) - self.net.vq.restarts
