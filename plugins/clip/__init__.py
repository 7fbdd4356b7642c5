"""Contrastive text-image encoder (CLIP, Radford et al. 2021) at small scale, on captioned shapes.

- Image encoder: stride-2 conv stages down to 4x4, flattened (where an object is matters: "left
  of"), a linear map to the joint space. Text encoder: the shared transformer of
  ``genstudio.core.nn.text`` (padding masked), mean-pooled over real tokens, a linear map.
- Loss: symmetric InfoNCE on unit-norm embeddings with a learned temperature (logit scale
  initialised to 1 / ``init_temperature``, clamped at 100 as in CLIP). Captions repeat in a batch
  (the grammar has 123 of them), so identical captions count as positives, not negatives.
- Retrieval on held-out images (fixed test sets of the dataset, seen and held-out combinations):
  text -> image and image -> text, top-1 / top-5, logged at every preview and by ``genstudio eval``.

It is not a generator. ``sample(n, prompt=[...])`` *retrieves* real held-out images from its
gallery (copies of one prompt take its next-best images), which is what its TextConditional face
offers: a sanity baseline for the GenEval-like metric. ``embed_images`` / ``embed_text``
(TextImageEmbedding face) give the CLIPScore-like metric; later text-to-image families load a
CLIP run through a ``param(runs_of=("clip",))`` field and use its text encoder frozen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.data.captions import CaptionedSet, CaptionsDataset
from genstudio.core.imaging import heatmap_image, readable_scale, to_uint8
from genstudio.core.latent import labelled_grid
from genstudio.core.nn.text import TextEncoder, info_nce
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState
from genstudio.core.text import Tokenizer

MAX_LOGIT_SCALE = math.log(100.0)
VIEW_PROMPTS = ("a red circle", "a yellow square and a green circle", "three squares", "a triangle above a circle",
                "a green triangle", "a blue circle and a red square")  # the last two: held-out combinations


@dataclass
class CLIPConfig(ModelConfig):
    batch_size: int = param(128, "Caption-image pairs per step (the negatives of InfoNCE)", range=(2, 4096))
    embed_dim: int = param(64, "Joint embedding dimensions", range=(2, 1024))
    width: int = param(64, "Text transformer width", range=(8, 1024))
    text_layers: int = param(2, "Text transformer layers", range=(1, 12))
    heads: int = param(4, "Attention heads of the text transformer", range=(1, 16))
    channels: int = param(32, "Channels of the first image-encoder stage (doubling per stage, at most 128)",
                          range=(4, 256))
    init_temperature: float = param(0.07, "Initial softmax temperature (CLIP: 0.07); learned from there",
                                    range=(0.001, 10.0), log=True)
    gallery_per_category: int = param(20, "Held-out test images per prompt category in the retrieval gallery",
                                      range=(2, 500))

    @classmethod
    def tiny(cls) -> CLIPConfig:
        return cls(batch_size=16, embed_dim=16, width=16, text_layers=1, heads=2, channels=8, gallery_per_category=3)


class ImageEncoder(nn.Module):
    """(B, 3, S, S) -> (B, out): conv stages, stride 2 down to 4x4, flattened, linear."""

    def __init__(self, size: int, channels: int, out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.GELU()]
        ch, s = channels, size
        while s > 4:
            nxt = min(2 * ch, 128)
            layers += [nn.Conv2d(ch, nxt, 3, stride=2, padding=1), nn.GroupNorm(1, nxt), nn.GELU()]
            ch, s = nxt, math.ceil(s / 2)
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(ch * s * s, out)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class CLIPNet(nn.Module):
    """Both encoders and the learned logit scale."""

    def __init__(self, cfg: CLIPConfig, size: int, tok: Tokenizer) -> None:
        super().__init__()
        self.image = ImageEncoder(size, cfg.channels, cfg.embed_dim)
        self.text = TextEncoder(tok.vocab_size, tok.max_len, cfg.width, cfg.text_layers, cfg.heads, tok.eos_id)
        self.text_proj = nn.Linear(cfg.width, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def embed_images(self, x: Tensor) -> Tensor:
        return F.normalize(self.image(x), dim=-1)

    def embed_ids(self, ids: Tensor) -> Tensor:
        return F.normalize(self.text_proj(self.text.pooled(ids)), dim=-1)


def retrieval(img: Tensor, txt: Tensor, captions: Sequence[str], unique: Sequence[str], ks: tuple[int, ...] = (1, 5)
              ) -> dict[str, float]:
    """Top-k retrieval accuracy from unit-norm image embeddings (N, D) with their ``captions`` and
    the embeddings of the ``unique`` captions (U, D). image -> text: the image's own caption is
    among its k most similar captions; text -> image: one of a caption's k most similar images
    has that caption."""
    sim = img @ txt.T  # (N, U)
    col = {c: j for j, c in enumerate(unique)}
    own = torch.tensor([col[c] for c in captions], device=sim.device)
    out = {}
    for k in ks:
        top_t = sim.topk(min(k, sim.shape[1]), dim=1).indices  # (N, k) captions per image
        out[f"r{k}_i2t"] = float((top_t == own[:, None]).any(1).float().mean())
        top_i = sim.topk(min(k, sim.shape[0]), dim=0).indices  # (k, U) images per caption
        out[f"r{k}_t2i"] = float((own[top_i] == torch.arange(len(unique), device=sim.device)).any(0).float().mean())
    return out


class CLIPPlugin(BasePlugin[CLIPConfig]):
    info: ClassVar[PluginInfo] = PluginInfo(
        "clip", "CLIP-style contrastive encoder", "contrastive", CLIPConfig, ("captioned",), ("retrieval",),
        "Image and text encoders trained with InfoNCE and a learned temperature; retrieval accuracy on held-out "
        "images; sampling retrieves real images for prompts (it is an encoder, not a generator)")

    def setup(self, data: DataSpec) -> None:
        ds = get_dataset(data.name)
        if not isinstance(ds, CaptionsDataset):
            raise ValueError(f"{data.name} has no captions; CLIP trains on captioned data (captions, captions16)")
        self.data = data
        self.tokenizer = ds.tokenizer
        self.net = CLIPNet(self.config, data.shape[-1], self.tokenizer).to(self.device)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=self.config.lr, weight_decay=0.05)
        k = self.config.gallery_per_category
        self.sets: dict[str, CaptionedSet] = {s: ds.test_set(s, k) for s in ("seen", "heldout")}
        self.gallery = CaptionedSet(torch.cat([s.x for s in self.sets.values()]).to(self.device),
                                    torch.cat([s.tokens for s in self.sets.values()]),
                                    [sc for s in self.sets.values() for sc in s.scenes])

    # -- faces ---------------------------------------------------------------------------------
    def text_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    def embed_images(self, x: Tensor) -> Tensor:
        return self.net.embed_images(x.to(self.device).float())

    def embed_text(self, prompts: Sequence[str] | Tensor) -> Tensor:
        ids = prompts if isinstance(prompts, Tensor) else self.tokenizer.encode(list(prompts))
        return self.net.embed_ids(ids.to(self.device))

    # -- training --------------------------------------------------------------------------------
    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        if labels is None or labels.dim() != 2:
            raise ValueError("CLIP needs caption token ids as labels (a captioned dataset)")
        self.net.train()
        ids = labels.to(self.device)
        img, txt = self.net.embed_images(batch.to(self.device)), self.net.embed_ids(ids)
        same = (ids[:, None, :] == ids[None, :, :]).all(-1)
        loss = info_nce(img, txt, self.net.logit_scale, same)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.net.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
            hit = same[torch.arange(len(ids)), (img @ txt.T).argmax(1)].float().mean()
            temperature = float(1.0 / self.net.logit_scale.exp())
        self.net.eval()
        return {"loss": float(loss.detach()), "temperature": temperature, "batch_acc": float(hit)}

    @torch.no_grad()
    def retrieval_metrics(self) -> dict[str, float]:
        """Retrieval accuracy on the fixed test sets: seen combinations, and ``*_heldout``."""
        out = {}
        for split, s in self.sets.items():
            unique = sorted(set(s.captions))
            r = retrieval(self.embed_images(s.x), self.embed_text(unique), s.captions, unique)
            out.update({(k if split == "seen" else f"{k}_heldout"): v for k, v in r.items()})
        return out

    def preview_metrics(self) -> dict[str, float]:
        """What the training job logs at every preview (next to the samples)."""
        return self.retrieval_metrics()

    # -- "sampling" = retrieval --------------------------------------------------------------------
    @torch.no_grad()
    def caption_images(self, images: Tensor, seed: int = 0, **_: Any) -> list[str]:
        """Captions by retrieval: each image's most similar caption of the whole grammar -- the
        single-direction image -> caption baseline the unified model is compared with (``genstudio
        eval RUN --metrics captioning`` scores both the same way)."""
        from genstudio.core.data.captions import all_captions

        caps = all_captions()
        with torch.no_grad():
            sim = self.embed_images(images) @ self.embed_text(caps).T
        return [caps[i] for i in sim.argmax(1).tolist()]

    def ranked(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(indices (P, G), cosines (P, G)) of the gallery images by similarity to each prompt."""
        sim = self.embed_text(list(prompts)) @ self.embed_images(self.gallery.x).T
        cos, idx = sim.sort(1, descending=True)
        return idx, cos

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1, prompt: Sequence[str] | str | None = None
               ) -> Iterator[SampleState]:
        self.check_sampler(sampler)
        if isinstance(prompt, str):
            prompt = [prompt]
        if prompt:
            prompts = [prompt[i % len(prompt)] for i in range(n)]
        else:  # no prompt: captions of random gallery images (a seeded draw)
            pick = torch.randint(0, len(self.gallery), (n,), generator=torch.Generator().manual_seed(int(seed)))
            prompts = [self.gallery.captions[i] for i in pick.tolist()]
        unique = list(dict.fromkeys(prompts))
        idx, cos = self.ranked(unique)
        seen: dict[str, int] = {}
        rows, sims = [], []
        for p in prompts:  # the r-th copy of a prompt gets its r-th best image
            j, r = unique.index(p), seen.get(p, 0)
            seen[p] = r + 1
            rows.append(int(idx[j, r % idx.shape[1]]))
            sims.append(float(cos[j, r % idx.shape[1]]))
        x = self.gallery.x[rows]
        yield SampleState(1, 1, 0.0, x, x, {"prompts": prompts, "similarity": sims, "nfe": 0})

    # -- views -------------------------------------------------------------------------------------
    @torch.no_grad()
    def views(self) -> dict[str, Any]:
        """"retrieval": each prompt with its top-5 gallery images; "similarity": cosines of 16
        held-out images (rows) with their captions (columns), matched pairs on the diagonal."""
        scale = readable_scale(*self.data.shape[-2:], cell=48)
        idx, cos = self.ranked(VIEW_PROMPTS)
        top = self.gallery.x[idx[:, :5].reshape(-1)]
        tiles = to_uint8(top).transpose(0, 2, 3, 1).repeat(scale, 1).repeat(scale, 2)
        labels = [f"{p}\n(best cos {float(c[0]):.2f})" for p, c in zip(VIEW_PROMPTS, cos)]
        grid = labelled_grid(tiles, 5, labels, [f"#{k + 1}" for k in range(5)], "text -> image retrieval (held-out gallery)")
        s = self.sets["seen"]
        pick = torch.linspace(0, len(s) - 1, 16).long()
        sim = self.embed_images(s.x[pick]) @ self.embed_text([s.captions[i] for i in pick.tolist()]).T
        heat = np.kron(heatmap_image(sim, -1.0, 1.0), np.ones((16, 16, 1), np.uint8))
        return {"retrieval": grid, "similarity": heat}

    # -- state -------------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.to_json()}  # JSON text: weights-only safe, never pickled

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "tokenizer" in state:
            self.tokenizer = Tokenizer.from_json(state["tokenizer"])


PLUGIN = CLIPPlugin
