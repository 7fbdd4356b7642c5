"""DALL-E-style text-to-image (Ramesh et al. 2021, in miniature): a VQ-VAE turns images into a grid
of tokens, and a decoder-only transformer (``genstudio.core.nn.seq``) learns the sequence
[T2I marker, caption ids, IMG marker, image tokens in raster order] autoregressively; only the image
tokens are scored (the caption is given). Captions are dropped to the null caption ("" = [EOS]) for
``caption_dropout`` of the batch, so classifier-free guidance mixes the logits,
l = l_uncond + guidance (l_cond - l_uncond).

The VQ-VAE comes from a trained ``vqvae`` run (``vqvae_run``), or with that empty a small one is
trained on the fly in ``setup`` (``vqvae_steps``, seeded: the same every time); its weights are
saved in this plugin's checkpoints. Sampling yields a state after every ``every`` image tokens: x
is the partly decoded image (undecided tokens grey), extras "filled", "attn" (each decided image
token's attention to the caption positions, averaged over heads and layers, (B, L, h, w)),
"tokens" and "stages". ``token_log_prob`` is the exact log-likelihood of image tokens given a
caption: the sum of its per-token terms.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.data.captions import CaptionsDataset
from genstudio.core.nn.seq import SeqTransformer, Vocab, attention_mask, pick, segment_logp
from genstudio.core.nn.vqvae import VQVAE, grey_undecided
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleOption, SampleState
from genstudio.core.text import Tokenizer


@dataclass
class DalleConfig(ModelConfig):
    batch_size: int = param(64, "Caption-image pairs per step", range=(1, 4096))
    lr: float = param(1e-3, "AdamW learning rate", range=(1e-6, 1.0), log=True)
    width: int = param(128, "Transformer width", range=(8, 2048))
    layers: int = param(4, "Transformer blocks", range=(1, 48))
    heads: int = param(4, "Attention heads", range=(1, 32))
    caption_dropout: float = param(0.1, "Fraction of captions replaced by the null caption (for guidance)",
                                   range=(0.0, 1.0))
    guidance: float = param(1.0, "Default classifier-free guidance on the logits (1 = off)", range=(0.0, 20.0))
    temperature: float = param(1.0, "Default sampling temperature (0 = greedy)", range=(0.0, 5.0))
    top_k: int = param(0, "Default top-k filter of the image-token logits (0 = all codes)", range=(0, 8192))
    vqvae_run: str = param("", "Trained VQ-VAE run (id, unique prefix or folder); empty = train one on the fly",
                           runs_of=("vqvae",))
    vqvae_steps: int = param(600, "On-the-fly VQ-VAE: training steps in setup", range=(1, 1_000_000))
    vqvae_codebook: int = param(64, "On-the-fly VQ-VAE: codes in the code book", range=(2, 8192))
    vqvae_downsample: int = param(4, "On-the-fly VQ-VAE: pixels per token side", range=(2, 16))

    @classmethod
    def tiny(cls) -> DalleConfig:
        return cls(batch_size=4, width=16, layers=1, heads=2, vqvae_steps=3, vqvae_codebook=8)


def token_strings(tokenizer: Tokenizer, ids: Tensor) -> list[list[str]]:
    """Per sample, the string of every caption position: the word, "<eos>" at EOS, "" for padding."""
    pad = tokenizer.padding_mask(ids)
    return [["" if p else ("<eos>" if i == tokenizer.eos_id else (tokenizer.tok.id_to_token(i) or "?"))
             for i, p in zip(row, prow)] for row, prow in zip(ids.tolist(), pad.tolist())]


def train_vqvae(data: DataSpec, steps: int, codebook: int, downsample: int, batch_size: int,
                device: torch.device) -> Any:
    """A VQ-VAE plugin trained for ``steps`` steps on ``data`` (seeded, global RNG untouched)."""
    from genstudio_plugins.vqvae import VQVAEConfig, VQVAEPlugin

    ds = get_dataset(data.name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vq = VQVAEPlugin(VQVAEConfig(batch_size=batch_size, codebook_size=codebook, downsample=downsample), device)
        vq.setup(data)
        g = torch.Generator().manual_seed(0)
        for step in range(1, steps + 1):
            vq.train_step(ds.batch(batch_size, g)[0].to(device), None, step)
    return vq


class DallePlugin(BasePlugin[DalleConfig]):
    info: ClassVar[PluginInfo] = PluginInfo(
        "dalle", "DALL-E-style (VQ tokens + AR transformer)", "autoregressive", DalleConfig, ("captioned",),
        ("ancestral",),
        "VQ-VAE image tokens and a decoder-only transformer over [caption, image tokens]; image tokens "
        "appear one by one; temperature, top-k, classifier-free guidance on the logits")

    sample_options: ClassVar[tuple[SampleOption, ...]] = (
        SampleOption("guidance", "Classifier-free guidance on the logits: 0 = unconditional, 1 = conditional, "
                     ">1 = stronger prompt fidelity", 1.0, (0.0, 20.0)),
        SampleOption("temperature", "Softmax temperature of each image token (0 = greedy)", 1.0, (0.0, 5.0)),
        SampleOption("top_k", "Draw each token from its k most likely codes only (0 = all; 1 = greedy)",
                     0, (0, 8192), step=1),
    )
    MARKERS: ClassVar[tuple[str, ...]] = ("t2i", "img")
    config: DalleConfig

    # -- building ----------------------------------------------------------------------------
    def setup(self, data: DataSpec) -> None:
        ds = get_dataset(data.name)
        if not isinstance(ds, CaptionsDataset):
            raise ValueError(f"{data.name} has no captions; {self.info.name} trains on captioned data (captions16)")
        c = self.config
        self.data = data
        self.tokenizer = ds.tokenizer
        vq = self.run_model("vqvae_run")
        if vq is None:
            steps = 0 if self.restoring else c.vqvae_steps  # restoring: its weights are in the checkpoint
            vq = train_vqvae(data, steps, c.vqvae_codebook, c.vqvae_downsample, 64, self.device)
        elif tuple(vq.data.shape) != tuple(data.shape) or not isinstance(getattr(vq, "net", None), VQVAE):
            raise ValueError(f"run {c.vqvae_run!r} is not a VQ-VAE of {tuple(data.shape)} images")
        self.vq_source = f"vqvae run {c.vqvae_run}" if c.vqvae_run else f"vqvae trained in setup ({c.vqvae_steps} steps)"
        self.vq_net = vq.net  # an attribute: saved with this plugin's checkpoints
        self.vq_net.requires_grad_(False).eval()
        self.grid = (data.shape[1] // self.vq_net.downsample, data.shape[2] // self.vq_net.downsample)
        self.n_image = self.grid[0] * self.grid[1]
        self.text_len = self.tokenizer.max_len
        self.vocab = Vocab(self.MARKERS, self.tokenizer.vocab_size, self.vq_net.size)
        self.net = SeqTransformer(self.vocab, self.text_len + self.n_image + 2, c.width, c.layers,
                                  c.heads).to(self.device)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=c.lr, weight_decay=0.01)

    def text_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    def pipeline_stages(self) -> list[tuple[str, str]]:
        c = self.config
        return [("prompt", "text"), ("tokens", f"WordLevel, {self.text_len} ids"),
                ("transformer", f"decoder-only, {c.layers} layers x {c.width}, {self.n_image} image tokens in "
                                f"raster order"),
                ("VQ-VAE decoder", f"{self.vq_source}, {self.vocab.image} codes, {self.grid[0]}x{self.grid[1]} grid")]

    # -- sequences ---------------------------------------------------------------------------
    def encode_images(self, x: Tensor) -> Tensor:
        """Images -> (B, h*w) image codes (0..K-1) in raster order."""
        return self.vq_net.encode_tokens(x.to(self.device)).flatten(1)

    def decode_images(self, codes: Tensor) -> Tensor:
        return self.vq_net.decode_tokens(codes.view(-1, *self.grid).to(self.device))

    def text_ids(self, prompt: str | Sequence[str | None] | None, n: int) -> Tensor:
        """(n, L) caption ids, the prompts cycled; None / "" = the null caption [EOS]."""
        prompts = [prompt] if prompt is None or isinstance(prompt, str) else list(prompt) or [None]
        return self.tokenizer.encode([prompts[i % len(prompts)] or "" for i in range(n)]).to(self.device)

    def t2i_prefix(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """([T2I, caption, IMG] global ids (B, L+2), its key padding (B, L+2))."""
        b = ids.shape[0]
        mark = torch.full((b, 1), self.vocab.marker("t2i"), device=self.device)
        img = torch.full((b, 1), self.vocab.marker("img"), device=self.device)
        pad = self.tokenizer.padding_mask(ids).to(self.device)
        no = torch.zeros(b, 1, dtype=torch.bool, device=self.device)
        return (torch.cat([mark, ids.to(self.device) + self.vocab.text_offset, img], 1),
                torch.cat([no, pad, no], 1))

    def token_terms(self, ids: Tensor, codes: Tensor) -> Tensor:
        """Per-token log p(code_j | caption, code_<j) (B, h*w) under the causal mask, one pass."""
        prefix, pad = self.t2i_prefix(ids)
        seq = torch.cat([prefix, codes.to(self.device) + self.vocab.image_offset], 1)
        kp = torch.cat([pad, torch.zeros_like(codes, dtype=torch.bool, device=self.device)], 1)
        t = seq.shape[1] - 1
        logits = self.net(seq[:, :-1], attention_mask(t, device=self.device), kp[:, :-1])
        start = prefix.shape[1] - 1
        return segment_logp(logits[:, start:], seq[:, start + 1:], self.vocab.image_range())

    def token_log_prob(self, ids: Tensor, codes: Tensor) -> Tensor:
        """Exact log P(image codes | caption) in nats (B,): the sum of the per-token terms."""
        return self.token_terms(ids, codes).sum(1)

    def drop_captions(self, ids: Tensor) -> Tensor:
        """``caption_dropout`` of the rows replaced by the null caption (the unconditional branch)."""
        drop = torch.rand(ids.shape[0], device=ids.device) < self.config.caption_dropout
        null = self.tokenizer.encode([""]).to(ids.device).expand_as(ids)
        return torch.where(drop[:, None], null, ids)

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        if labels is None:
            raise ValueError("DALL-E-style training needs captions (token ids as the batch's labels)")
        self.net.train()
        codes = self.encode_images(batch)
        ids = self.drop_captions(labels.to(self.device).long())
        loss = -self.token_terms(ids, codes).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        return {"loss": loss.item(), "bits_per_token": loss.item() / 0.6931471805599453, "grad_norm": float(gn)}

    # -- sampling ----------------------------------------------------------------------------
    def guided_logits(self, seq: Tensor, kp: Tensor, allowed: Tensor, guidance: float, n: int) -> Tensor:
        """Logits (n, T, V) of the first n rows; with guidance != 1 the batch holds the conditional rows
        then the null-caption rows, mixed l_u + g (l_c - l_u). Attention is kept (conditional rows first)."""
        logits = self.net(seq, allowed, kp, keep_attn=True)
        if seq.shape[0] == n:
            return logits
        return logits[n:] + guidance * (logits[:n] - logits[n:])

    def _image_state(self, i: int, total: int, codes: Tensor, decided: Tensor, attn: Tensor, ids: Tensor,
                     extras: dict[str, Any]) -> SampleState:
        img = self.decode_images(codes)
        x = grey_undecided(img, decided.view(-1, *self.grid))
        return SampleState(i, total, 1 - i / total, x, extras={
            "filled": int(decided[0].sum()), "attn": attn.view(attn.shape[0], attn.shape[1], *self.grid).clone(),
            "tokens": token_strings(self.tokenizer, ids[: x.shape[0]].cpu()), "image_tokens": codes.view(-1, *self.grid),
            "stages": {"tokens": ids[: x.shape[0]], "transformer": codes.view(-1, *self.grid).float(),
                       "VQ-VAE decoder": x}, **extras})

    def ar_image(self, ids: Tensor, g: torch.Generator, every: int, temperature: float, top_k: int,
                 guidance: float, extras: dict[str, Any] | None = None) -> Iterator[SampleState]:
        """Image tokens one by one in raster order for captions ``ids`` (n, L)."""
        n = ids.shape[0]
        both = ids if guidance == 1 else torch.cat([ids, self.tokenizer.encode([""]).to(self.device).expand_as(ids)])
        prefix, pad = self.t2i_prefix(both)
        codes = torch.zeros(n, self.n_image, dtype=torch.long, device=self.device)
        decided = torch.zeros(n, self.n_image, dtype=torch.bool, device=self.device)
        attn = torch.zeros(n, self.text_len, self.n_image, device=self.device)
        lo, hi = self.vocab.image_range()
        for j in range(self.n_image):
            rows = codes[:, :j].repeat(both.shape[0] // n, 1) + lo
            seq = torch.cat([prefix, rows], 1)
            kp = torch.cat([pad, torch.zeros_like(rows, dtype=torch.bool)], 1)
            logits = self.guided_logits(seq, kp, attention_mask(seq.shape[1], device=self.device), guidance, n)
            codes[:, j] = pick(logits[:, -1, lo:hi], g, temperature, top_k)
            decided[:, j] = True
            attn[:, :, j] = self.net.attention()[:n, -1, 1:1 + self.text_len]
            if (j + 1) % every == 0 or j + 1 == self.n_image:
                yield self._image_state(j + 1, self.n_image, codes, decided, attn, ids, extras or {})

    def _options(self, guidance: float | None, temperature: float | None, top_k: int | None
                 ) -> tuple[float, float, int]:
        c = self.config
        return (float(c.guidance if guidance is None else guidance),
                float(c.temperature if temperature is None else temperature), int(c.top_k if top_k is None else top_k))

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1, prompt: str | Sequence[str] | None = None,
               guidance: float | None = None, temperature: float | None = None, top_k: int | None = None
               ) -> Iterator[SampleState]:
        """Image tokens for ``prompt`` (cycled over the n samples; None = unconditional), one by one."""
        self.check_sampler(sampler)
        self.net.eval()
        gd, temp, k = self._options(guidance, temperature, top_k)
        yield from self.ar_image(self.text_ids(prompt, n), self.generator(seed), max(1, every), temp, k, gd)

    def extra_state(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.to_json()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "tokenizer" in state:
            self.tokenizer = Tokenizer.from_json(state["tokenizer"])
