"""Neural audio codec (SoundStream / Encodec in miniature): a strided conv encoder, a residual
vector quantiser of N codebooks (``genstudio.core.nn.vq``: EMA codebooks, k-means start, dead-code
restart, commitment loss, straight-through) trained with quantiser dropout so one model serves
every bitrate, and a mirrored decoder; losses are waveform MSE plus lightly weighted multi-resolution
STFT + log-mel L1 (heavier, they trade SI-SDR for mel distance); a negative SI-SDR term is available.

Bitrate = frames/s x codebooks x log2(codebook size): 200 frames/s x 8 bits = 1.6 kbps per codebook
at the defaults (8 kHz, hop 40, 256 codes). ``sample()`` is not generation: it reconstructs the
dataset's reference clips (a seed picks them) through the first ``codebooks`` levels, so the
sampler, ``genstudio sample --option codebooks=K`` and the training previews all hear the codec.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from genstudio_plugins.codec.nets import Decoder, Encoder
from torch import Tensor

from genstudio.core.audioviews import code_grid_image, comparison_image, usage_image
from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.data.audio import SAMPLE_RATE
from genstudio.core.metrics.audio import mel_distance, multi_resolution_stft_loss, si_sdr, si_sdr_loss
from genstudio.core.nn.vq import ResidualVQ
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleOption, SampleState

PREVIEW_CLIPS = 8  # reference clips the SI-SDR / mel curves are measured on at each preview


@dataclass
class CodecConfig(ModelConfig):
    batch_size: int = param(8, "Clips per training step", range=(1, 1024))
    lr: float = param(3e-3, "Adam learning rate", range=(1e-6, 1.0), log=True, live=True)
    channels: int = param(8, "Width of the first conv layer (doubles at each downsampling, up to 8x)", range=(2, 512))
    strides: str = param("2,4,5", "Downsampling strides; their product is the hop (40: 200 frames/s at 8 kHz; "
                          "2,4,4,5 = 160 is 50 frames/s but learns far slower on a CPU)")
    latent_dim: int = param(64, "Dimension of each frame's latent vector (= codebook vectors)", range=(2, 1024))
    n_codebooks: int = param(8, "Residual quantiser levels: the highest bitrate", range=(1, 32))
    codebook_size: int = param(256, "Codes per codebook (log2 of it = bits per level per frame)", range=(2, 65536))
    quantizer_dropout: bool = param(True, "Train with a random number of levels per batch, so every "
                                    "bitrate decodes well (SoundStream)")
    commitment: float = param(0.25, "Weight of the commitment loss ||z - sg(q)||^2", range=(0.0, 100.0))
    ema_decay: float = param(0.9, "EMA decay of the codebook statistics (low: the codes keep up with an encoder that "
                             "still moves fast in a short CPU run; 0.99 in long runs)", range=(0.0, 0.99999))
    dead_threshold: float = param(2.0, "A code whose EMA count per batch falls below this restarts at a "
                                  "random encoder output (0 = never)", range=(0.0, 1e6))
    # measured: unquantised, the same nets reach +8 dB SI-SDR in ~500 steps, but k-means codebooks fitted to
    # a random encoder's outputs (and chased by EMA while it moves) cost them 15-20 dB: warm up, then quantise
    quantize_from: int = param(200, "Steps of plain autoencoder training (no quantiser) before the residual "
                               "quantiser joins, its codebooks k-means-initialised on the trained latents",
                               range=(0, 10**7))
    # from an untrained (near-silent) decoder the log-spectral losses pull towards silence (most bins of a
    # synthetic clip are empty: measured, even at weight 0.1), so the waveform MSE trains alone first
    spectral_from: int = param(500, "Steps of waveform-only training before the STFT and mel losses join "
                               "(ramped in over as many steps again)", range=(0, 10**7))
    # measured (crops of 2000, 16 held-out tones, SI-SDR over 1 ... 8 codebooks): ramped in at 0.1 each, these
    # phase-blind losses pull the 1-2 kHz tones off phase (those clips -15 ... -74 dB; mean -4.6 ... +1.2 dB
    # at 75 CPU-s); without them the waveform is right but the spectrum is not (300 CPU-s: +9.7 ... dB, mel
    # distance 4.3); at 0.01 each both are good (300 CPU-s: +13.3 ... +18.9 dB, mel 1.8 ... 1.6)
    w_stft: float = param(0.01, "Weight of the multi-resolution STFT loss", range=(0.0, 100.0), live=True)
    w_mel: float = param(0.01, "Weight of the log-mel L1 loss", range=(0.0, 100.0), live=True)
    w_wave: float = param(1.0, "Weight of the waveform MSE loss", range=(0.0, 100.0), live=True)
    # measured: weight 1 (and 0.01 without the tanh) collapsed training (SI-SDR -18 ... -83 dB at 75 CPU-s,
    # against +3.5 ... +8.3 dB without it). Why: the loss ignores scale and offset, so both drift (by step 20
    # the output mean is 0.55, by 160 its std 0.68 against the clips' ~0.3, 9 % of samples saturate the tanh,
    # the waveform MSE 0.46 against ~0.06) and saturated or clipped outputs lose the tone; off by default
    w_sisdr: float = param(0.0, "Weight of the negative SI-SDR loss (in dB; scale-invariant, so quiet clips "
                           "count as much as loud ones)", range=(0.0, 100.0), live=True)
    # measured: 2000-sample crops run ~2.7x the steps per CPU second of whole 8000-sample clips (950 vs 358 in
    # 75 CPU-s) and the tones are stationary, so a crop teaches as much as a clip: at 75 CPU-s, both with the
    # waveform loss only, SI-SDR rose from +3.5 ... +8.3 dB to +6.4 ... +10.9 dB (1 ... 8 codebooks) and the
    # unquantised autoencoder's from 8.6 to 11.3 dB
    crop: int = param(2000, "Train on random crops of this many samples (a multiple of the hop; 0 or "
                      "longer than a clip = whole clips): more steps per CPU second", range=(0, 10**7))
    squash: bool = param(True, "tanh on the decoder output (keeps it in [-1, 1])")

    @classmethod
    def tiny(cls) -> CodecConfig:
        return cls(batch_size=4, channels=4, strides="4,5", latent_dim=8, n_codebooks=3, codebook_size=16,
                   spectral_from=2, quantize_from=0, w_stft=0.1, w_mel=0.1)


def parse_strides(text: str) -> tuple[int, ...]:
    """"2,4,4,5" -> (2, 4, 4, 5); a ValueError naming the setting otherwise."""
    try:
        out = tuple(int(s) for s in str(text).replace(" ", "").split(",") if s)
    except ValueError:
        out = ()
    if not out or any(s < 1 or s > 16 for s in out):
        raise ValueError(f"strides must be a comma list of integers in 1..16, got {text!r}")
    return out


def random_crops(x: Tensor, n: int, hop: int) -> Tensor:
    """One random window of ``n`` samples per clip of ``x`` (B, C, T), starting on a frame boundary."""
    starts = torch.randint(0, (x.shape[-1] - n) // hop + 1, (x.shape[0],)) * hop
    idx = starts[:, None] + torch.arange(n)
    return torch.gather(x, -1, idx[:, None].expand(-1, x.shape[1], -1).to(x.device))


class CodecPlugin(BasePlugin[CodecConfig]):
    info: ClassVar[PluginInfo] = PluginInfo(
        "codec", "Neural audio codec (RVQ)", "codec", CodecConfig, ("audio",), ("reconstruct",),
        "Encodec/SoundStream-style codec: conv encoder, residual vector quantiser with quantiser dropout, "
        "conv decoder; a bitrate slider hears what each codebook adds")

    sample_options: ClassVar[tuple[SampleOption, ...]] = (
        SampleOption("codebooks", "Residual levels to decode with (0 = all): fewer codebooks, lower bitrate",
                     0, (0, 32), step=1),
    )

    def setup(self, data: DataSpec) -> None:
        if data.kind != "audio":
            raise ValueError(f"the codec trains on audio, not {data.kind}")
        c = self.config
        self.data = data
        self.sr = int(data.sample_rate or SAMPLE_RATE)
        self.strides = parse_strides(c.strides)
        self.hop = math.prod(self.strides)
        if data.shape[-1] % self.hop:
            raise ValueError(f"clips of {data.shape[-1]} samples do not split into frames of hop {self.hop} "
                             f"(strides {c.strides}); change the strides or the clip length")
        self.enc = Encoder(c.channels, self.strides, c.latent_dim).to(self.device)
        if c.crop % self.hop:
            raise ValueError(f"crop {c.crop} must be a multiple of the hop {self.hop} (0 = whole clips)")
        self.dec = Decoder(c.channels, self.strides, c.latent_dim, squash=c.squash).to(self.device)
        self.rvq = ResidualVQ(c.n_codebooks, c.latent_dim, c.codebook_size, dropout=c.quantizer_dropout,
                              decay=c.ema_decay, commitment=c.commitment,
                              dead_threshold=c.dead_threshold).to(self.device)
        self.opt = torch.optim.Adam([*self.enc.parameters(), *self.dec.parameters()], lr=c.lr)
        self.perplexity = torch.ones(c.n_codebooks)  # last measured per level (a level sits out some batches)
        self._reference: dict[tuple[int, int], Tensor] = {}

    # -- the Codec face -------------------------------------------------------------------------
    @property
    def n_codebooks(self) -> int:
        return int(self.config.n_codebooks)

    def bitrate_kbps(self, n_q: int) -> float:
        return self.sr / self.hop * n_q * math.log2(self.config.codebook_size) / 1000

    @torch.no_grad()
    def encode_tokens(self, x: Tensor) -> Tensor:
        self.enc.eval()
        return self.rvq.encode(self.enc(x.to(self.device)))

    @torch.no_grad()
    def decode_tokens(self, tokens: Tensor) -> Tensor:
        self.dec.eval()
        return self.dec(self.rvq.decode(tokens.to(self.device)))

    # -- training -------------------------------------------------------------------------------
    def losses(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The reconstruction losses of ``y`` against ``x`` (unweighted)."""
        return {"stft": multi_resolution_stft_loss(x, y), "mel": mel_distance(x, y, self.sr).mean(),
                "wave": F.mse_loss(y, x), "sisdr": si_sdr_loss(x, y)}

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        c = self.config
        self.enc.train()
        self.dec.train()
        self.rvq.train()
        if c.crop and c.crop < batch.shape[-1]:
            batch = random_crops(batch, c.crop, self.hop)
        z = self.enc(batch)
        warm = step <= c.quantize_from
        q = None if warm else self.rvq(z)
        y = self.dec(z if q is None else q.quantized)
        parts = self.losses(batch, y)
        commit = z.new_zeros(()) if q is None else q.loss
        ramp = min(1.0, max(0.0, step / c.spectral_from - 1)) if c.spectral_from else 1.0
        loss = ramp * (c.w_stft * parts["stft"] + c.w_mel * parts["mel"]) + c.w_wave * parts["wave"] + commit
        if c.w_sisdr:
            loss = loss + c.w_sisdr * parts["sisdr"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if q is not None:
            self.perplexity[: q.n_q] = q.perplexity.cpu()
        out = {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}, "commit": commit.item(),
               "n_q": 0.0 if q is None else float(q.n_q), "spectral_weight": ramp}
        out.update({f"perplexity_q{i + 1}": float(p) for i, p in enumerate(self.perplexity)})
        return out

    # -- sampling = reconstruction -----------------------------------------------------------------
    def reference(self, n: int, seed: int = 0) -> Tensor:
        """The dataset's reference clips for ``seed`` (cached): what sample() and the views reconstruct."""
        key = (n, seed)
        if key not in self._reference:
            self._reference[key] = get_dataset(self.data.name).fixed(n, seed)[0].to(self.device)
        return self._reference[key]

    @torch.no_grad()
    def reconstruct(self, x: Tensor, codebooks: int = 0) -> tuple[Tensor, Tensor]:
        """(reconstruction through the first ``codebooks`` levels (0 = all), their tokens)."""
        k = int(codebooks) or self.n_codebooks
        if not 1 <= k <= self.n_codebooks:
            raise ValueError(f"codebooks must be in 0..{self.n_codebooks}, got {codebooks}")
        tokens = self.encode_tokens(x)[:, :k]
        return self.decode_tokens(tokens), tokens

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1, codebooks: int = 0) -> Iterator[SampleState]:
        """Reconstructions of ``n`` reference clips drawn with ``seed`` (one state); ``extras`` holds
        the input clips, the tokens and the bitrate."""
        self.check_sampler(sampler)
        x = self.reference(n, seed)
        y, tokens = self.reconstruct(x, codebooks)
        k = tokens.shape[1]
        yield SampleState(1, 1, 0.0, y, extras={"input": x, "tokens": tokens, "codebooks": k,
                                                "kbps": self.bitrate_kbps(k)})

    # -- what the training monitor shows ---------------------------------------------------------
    @torch.no_grad()
    def preview_metrics(self) -> dict[str, float]:
        """Mean SI-SDR (dB) and mel distance of the reference clips at every number of codebooks."""
        x = self.reference(PREVIEW_CLIPS)
        tokens = self.encode_tokens(x)
        out: dict[str, float] = {}
        for k in range(1, self.n_codebooks + 1):
            y = self.decode_tokens(tokens[:, :k])
            out[f"si_sdr_q{k}"] = float(si_sdr(x, y).mean())
            out[f"mel_q{k}"] = float(mel_distance(x, y, self.sr).mean())
        return out

    @torch.no_grad()
    def views(self) -> dict[str, Any]:
        """Clip 0 in vs out at 1 codebook and at all, the code grid of the first clips, code use per level."""
        x = self.reference(PREVIEW_CLIPS)
        tokens = self.encode_tokens(x)
        n = self.n_codebooks
        rows = [comparison_image(x[0], self.decode_tokens(tokens[:1, :k])[0],
                                 f"{k} codebook{'s' * (k > 1)} · {self.bitrate_kbps(k):.3g} kbps")
                for k in sorted({1, n})]
        grids = [code_grid_image(tokens[i], self.config.codebook_size, label=f"clip {i}") for i in range(min(4, len(x)))]
        usage = torch.stack([layer.cluster_size for layer in self.rvq.layers]).cpu()
        return {"reconstruction": np.concatenate(rows, 0), "codes": np.concatenate(grids, 0),
                "usage": usage_image(usage, label="code use per level (sorted, log)")}

    def extra_state(self) -> dict[str, Any]:
        return {"perplexity": self.perplexity.clone()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "perplexity" in state:
            self.perplexity = state["perplexity"].clone()

