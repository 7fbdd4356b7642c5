"""Unified text+image model (Show-o / Chameleon-style, small): ONE decoder-only transformer
(``genstudio.core.nn.seq``) over a shared vocabulary of markers, caption ids and VQ image codes,
trained on every direction at each step:

* caption -> image, autoregressive: [T2I, caption, IMG, codes] (causal; the null caption by dropout
  is the unconditional image model) -- the DALL-E-style plugin's objective, inherited;
* caption -> image, masked (MaskGIT): the same sequence with a cosine-scheduled random part of the
  codes replaced by MASK, bidirectional attention within the image segment, the masked codes scored;
* image -> caption: [I2T, IMG, codes, TXT, caption] (causal), caption ids scored up to EOS;
* unconditional caption: [CAP, caption] (a caption language model: caption completion).

Sample option ``mode``: text2image (``decoding`` autoregressive or maskgit: confidence-based
unmasking on the cosine schedule, ``steps`` iterations), image2caption (input images from the
dataset's test set, or ``images=``; extras "caption" grows word by word and stops at EOS) and
caption_completion (the prompt's words continued, then its image drawn).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from genstudio_plugins.dalle import DalleConfig, DallePlugin
from torch import Tensor

from genstudio.core.config import param
from genstudio.core.data import get_dataset
from genstudio.core.nn.seq import attention_mask, maskgit_keep_masked, pick, segment_logp
from genstudio.core.plugin import PluginInfo, SampleOption, SampleState

MODES = ("text2image", "image2caption", "caption_completion")
DECODINGS = ("autoregressive", "maskgit")


@dataclass
class UnifiedConfig(DalleConfig):
    """The DALL-E-style settings plus the weights of the other directions."""

    w_masked: float = param(1.0, "Weight of the masked-token (MaskGIT) image loss", range=(0.0, 100.0))
    w_caption: float = param(1.0, "Weight of the image -> caption loss", range=(0.0, 100.0))
    w_lm: float = param(0.5, "Weight of the unconditional caption loss", range=(0.0, 100.0))
    maskgit_steps: int = param(8, "MaskGIT decoding iterations when sampling leaves steps unset", range=(1, 1024))

    @classmethod
    def tiny(cls) -> UnifiedConfig:
        return cls(batch_size=4, width=16, layers=1, heads=2, vqvae_steps=3, vqvae_codebook=8)


class UnifiedPlugin(DallePlugin):
    info: ClassVar[PluginInfo] = PluginInfo(
        "unified", "Unified text+image (Show-o-style)", "autoregressive", UnifiedConfig, ("captioned",),
        ("ancestral",),
        "One transformer over caption ids and VQ image tokens, trained caption->image (autoregressive and "
        "masked), image->caption and caption-only; modes text2image / image2caption / caption_completion")
    sample_options: ClassVar[tuple[SampleOption, ...]] = (
        SampleOption("mode", "What to generate: an image for the prompt, a caption for test images, or the "
                     "prompt's caption completed (then drawn)", "text2image", choices=MODES),
        SampleOption("decoding", "Image tokens one by one (autoregressive) or all at once, unmasked by "
                     "confidence over `steps` iterations (maskgit)", "autoregressive", choices=DECODINGS),
        *DallePlugin.sample_options,
    )
    MARKERS: ClassVar[tuple[str, ...]] = ("t2i", "img", "i2t", "txt", "cap")
    config: UnifiedConfig

    # -- sequences of the other directions ----------------------------------------------------
    def _marks(self, b: int, *names: str) -> Tensor:
        return torch.tensor([[self.vocab.marker(m) for m in names]], device=self.device).expand(b, -1)

    def i2t_prefix(self, codes: Tensor) -> Tensor:
        """[I2T, IMG, codes, TXT] (B, h*w + 3)."""
        b = codes.shape[0]
        return torch.cat([self._marks(b, "i2t", "img"), codes.to(self.device) + self.vocab.image_offset,
                          self._marks(b, "txt")], 1)

    def text_terms(self, prefix: Tensor, ids: Tensor) -> Tensor:
        """log p(caption id_i | prefix, ids_<i) (B, L) under the causal mask, 0 at padding: the caption
        is scored up to and including its EOS."""
        seq = torch.cat([prefix, ids.to(self.device) + self.vocab.text_offset], 1)
        t = seq.shape[1] - 1
        pad = self.tokenizer.padding_mask(ids).to(self.device)
        kp = torch.cat([torch.zeros_like(prefix, dtype=torch.bool), pad], 1)[:, :-1]
        logits = self.net(seq[:, :-1], attention_mask(t, device=self.device), kp)
        start = prefix.shape[1] - 1
        lp = segment_logp(logits[:, start:], seq[:, start + 1:], self.vocab.text_range())
        return lp.masked_fill(pad, 0.0)

    def caption_log_prob(self, codes: Tensor, ids: Tensor) -> Tensor:
        """Exact log P(caption | image codes) in nats (B,): the sum of its per-token terms."""
        return self.text_terms(self.i2t_prefix(codes), ids).sum(1)

    def image_span(self) -> tuple[int, int]:
        s0 = self.text_len + 2
        return s0, s0 + self.n_image

    def masked_logits(self, ids: Tensor, codes: Tensor, masked: Tensor, keep_attn: bool = False) -> Tensor:
        """Logits (B, h*w, V) at the image positions of [T2I, caption, IMG, codes with ``masked`` -> MASK],
        bidirectional within the image segment."""
        prefix, pad = self.t2i_prefix(ids)
        img = torch.where(masked, torch.full_like(codes, self.vocab.mask_id), codes + self.vocab.image_offset)
        seq = torch.cat([prefix, img], 1)
        kp = torch.cat([pad, torch.zeros_like(masked)], 1)
        allowed = attention_mask(seq.shape[1], self.image_span(), True, device=self.device)
        return self.net(seq, allowed, kp, keep_attn)[:, prefix.shape[1]:]

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        if labels is None:
            raise ValueError("the unified model trains on captions (token ids as the batch's labels)")
        c = self.config
        self.net.train()
        codes = self.encode_images(batch)
        ids = labels.to(self.device).long()
        dropped = self.drop_captions(ids)
        parts = {"t2i": -self.token_terms(dropped, codes).mean()}
        if c.w_masked:
            b = codes.shape[0]
            ratio = torch.cos(math.pi / 2 * torch.rand(b, 1, device=self.device))  # MaskGIT's cosine schedule
            masked = torch.rand(codes.shape, device=self.device) < ratio
            masked[:, 0] |= ~masked.any(1)  # at least one masked code per row
            lp = segment_logp(self.masked_logits(dropped, codes, masked), codes + self.vocab.image_offset,
                              self.vocab.image_range())
            parts["masked"] = -(lp * masked).sum() / masked.sum()
        n_real = (~self.tokenizer.padding_mask(ids)).sum().clamp(min=1)
        if c.w_caption:
            parts["i2t"] = -self.text_terms(self.i2t_prefix(codes), ids).sum() / n_real
        if c.w_lm:
            parts["lm"] = -self.text_terms(self._marks(ids.shape[0], "cap"), ids).sum() / n_real
        w = {"t2i": 1.0, "masked": c.w_masked, "i2t": c.w_caption, "lm": c.w_lm}
        loss = sum(w[k] * v for k, v in parts.items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        return {"loss": loss.item(), **{f"loss_{k}": v.item() for k, v in parts.items()}, "grad_norm": float(gn)}

    # -- decoding ----------------------------------------------------------------------------
    def ar_text(self, prefix: Tensor, words: Tensor, g: torch.Generator, temperature: float, top_k: int
                ) -> Iterator[tuple[Tensor, Tensor]]:
        """Caption ids after ``prefix`` (B, P) and the given first ``words`` (B, k, no EOS), one per
        yield: (ids so far (B, <=L) with PAD after each row's EOS, done (B,) bool). Stops when every
        row has emitted EOS or the caption is L ids long (the last id is then EOS)."""
        b = prefix.shape[0]
        ids = words.to(self.device)
        done = torch.zeros(b, dtype=torch.bool, device=self.device)
        lo, hi = self.vocab.text_range()
        eos, pad_id = self.tokenizer.eos_id, self.tokenizer.pad_id
        while ids.shape[1] < self.text_len and not bool(done.all()):
            seq = torch.cat([prefix, ids + lo], 1)
            kp = torch.cat([torch.zeros_like(prefix, dtype=torch.bool), self.tokenizer.padding_mask(ids)], 1)
            logits = self.net(seq, attention_mask(seq.shape[1], device=self.device), kp)[:, -1, lo:hi]
            nxt = eos if ids.shape[1] == self.text_len - 1 else None
            tok = torch.full((b,), nxt, device=self.device) if nxt is not None else pick(logits, g, temperature, top_k)
            tok = torch.where(done, torch.full_like(tok, pad_id), tok)
            done = done | (tok == eos)
            ids = torch.cat([ids, tok[:, None]], 1)
            yield ids, done

    def caption_text(self, ids: Tensor) -> list[str]:
        return self.tokenizer.decode(ids.cpu())

    def test_images(self, n: int, seed: int) -> Tensor:
        """``n`` images of the dataset's seen test set (every category; the seed picks the draw)."""
        ds = get_dataset(self.data.name)
        per = max(1, math.ceil(n / 6))
        s = ds.test_set("seen", per, seed=seed)
        order = torch.randperm(len(s), generator=torch.Generator().manual_seed(seed))[:n]
        return s.x[order].to(self.device)

    def image2caption(self, images: Tensor, g: torch.Generator, every: int, temperature: float, top_k: int
                      ) -> Iterator[SampleState]:
        codes = self.encode_images(images)
        prefix = self.i2t_prefix(codes)
        start = torch.zeros(images.shape[0], 0, dtype=torch.long, device=self.device)
        total = self.text_len
        ids = start
        for ids, done in self.ar_text(prefix, start, g, temperature, top_k):
            k = ids.shape[1]
            last = bool(done.all()) or k == total
            if k % every == 0 or last:
                yield SampleState(total if last else k, total, 0.0 if last else 1 - k / total, images,
                                  extras={"caption": self.caption_text(ids), "input": images, "words": k,
                                          "image_tokens": codes.view(-1, *self.grid),
                                          "pipeline": None})  # not the text -> image diagram

    def caption_images(self, images: Tensor, seed: int = 0, temperature: float = 0.0, top_k: int = 0) -> list[str]:
        """Captions of ``images`` (greedy by default): what the captioning metric scores."""
        from genstudio.core.plugin import final_state

        with torch.no_grad():
            self.net.eval()
            st = final_state(self.image2caption(images.to(self.device), self.generator(seed), 10**9,
                                                temperature, top_k))
        return st.extras["caption"]

    def maskgit_image(self, ids: Tensor, g: torch.Generator, every: int, temperature: float, top_k: int,
                      guidance: float, steps: int, extras: dict[str, Any] | None = None) -> Iterator[SampleState]:
        """All codes masked, then at each of ``steps`` iterations every masked code drawn and the most
        confident ones kept, so floor(N cos(pi/2 s/S)) stay masked after iteration s."""
        n, total = ids.shape[0], self.n_image
        codes = torch.zeros(n, total, dtype=torch.long, device=self.device)
        masked = torch.ones(n, total, dtype=torch.bool, device=self.device)
        attn = torch.zeros(n, self.text_len, total, device=self.device)
        null = self.tokenizer.encode([""]).to(self.device).expand_as(ids)
        lo, hi = self.vocab.image_range()
        for s in range(1, steps + 1):
            if guidance == 1:
                logits = self.masked_logits(ids, codes, masked, keep_attn=True)
            else:
                both = self.masked_logits(torch.cat([ids, null]), codes.repeat(2, 1), masked.repeat(2, 1), True)
                logits = both[n:] + guidance * (both[:n] - both[n:])
            flat = logits[..., lo:hi].reshape(n * total, -1)
            draw = pick(flat, g, temperature, top_k).view(n, total)
            conf = torch.softmax(flat, -1).gather(1, draw.view(-1, 1)).view(n, total)
            conf = conf.masked_fill(~masked, -1.0)
            keep = min(maskgit_keep_masked(total, s, steps), int(masked[0].sum()) - 1) if s < steps else 0
            n_new = int(masked[0].sum()) - max(keep, 0)
            new = torch.zeros_like(masked).scatter_(1, conf.topk(n_new, 1).indices, True) & masked
            codes = torch.where(new, draw, codes)
            a = self.net.attention()[:n]
            s0 = self.text_len + 2
            attn = torch.where(new[:, None], a[:, s0:s0 + total, 1:1 + self.text_len].transpose(1, 2), attn)
            masked = masked & ~new
            if s % every == 0 or s == steps:
                yield self._image_state(s, steps, codes, ~masked, attn, ids, extras or {})

    def text_to_image(self, ids: Tensor, g: torch.Generator, every: int, opts: tuple[float, float, int],
                      decoding: str, steps: int | None, extras: dict[str, Any] | None = None) -> Iterator[SampleState]:
        gd, temp, k = opts
        if decoding == "maskgit":
            return self.maskgit_image(ids, g, every, temp, k, gd, int(steps or self.config.maskgit_steps), extras)
        return self.ar_image(ids, g, every, temp, k, gd, extras)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1, prompt: str | Sequence[str] | None = None,
               guidance: float | None = None, temperature: float | None = None, top_k: int | None = None,
               mode: str = "text2image", decoding: str = "autoregressive", images: Tensor | None = None
               ) -> Iterator[SampleState]:
        """``mode`` text2image (``decoding``), image2caption (``images`` or test-set images) or
        caption_completion (the prompt's words continued, then the image of the finished caption)."""
        self.check_sampler(sampler)
        if mode not in MODES or decoding not in DECODINGS:
            raise ValueError(f"mode must be one of {MODES} and decoding one of {DECODINGS}")
        self.net.eval()
        opts = self._options(guidance, temperature, top_k)
        g, every = self.generator(seed), max(1, every)
        if mode == "image2caption":
            x = images.to(self.device) if images is not None else self.test_images(n, seed)
            yield from self.image2caption(x[:n], g, every, opts[1], opts[2])
            return
        ids = self.text_ids(prompt, n)
        if mode == "text2image":
            yield from self.text_to_image(ids, g, every, opts, decoding, steps)
            return
        real = (~self.tokenizer.padding_mask(ids)) & (ids != self.tokenizer.eos_id)
        k = int(real.sum(1).min())  # the shortest prompt's words start every row
        done_ids = ids[:, :k]
        # one trajectory, steps counting on: the caption streams word by word (on a black image),
        # then its image is drawn (a step that went back would start a new trajectory in the Sampler)
        blank = torch.full((n, *self.data.shape), -1.0, device=self.device)
        drawn = int(steps or self.config.maskgit_steps) if decoding == "maskgit" else self.n_image
        text_max, said = self.text_len - k, 0
        for done_ids, done in self.ar_text(self._marks(n, "cap"), ids[:, :k], g, opts[1], opts[2]):
            said = done_ids.shape[1] - k
            if said % every == 0 or bool(done.all()):
                yield SampleState(said, text_max + 1 + drawn, 1.0, blank, extras={
                    "caption": self.caption_text(done_ids), "words": done_ids.shape[1], "pipeline": None})
        captions = self.caption_text(done_ids)
        for st in self.text_to_image(self.tokenizer.encode(captions).to(self.device), g, every, opts, decoding, steps,
                                     {"caption": captions}):
            # the image's step 0 (nothing drawn yet) comes after the caption's last word
            yield SampleState(said + 1 + st.step, said + 1 + st.total, st.t, st.x, st.x0, st.extras)
