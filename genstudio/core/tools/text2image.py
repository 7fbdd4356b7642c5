"""What the text-to-image views draw, without Qt, so the GUI and ``genstudio sample --attention``
show the same pictures.

They read the text-to-image contract of a :class:`SampleState` (sd, imagen, dalle, unified):
``extras["attn"]`` (B, L, h, w) cross-attention of each image position over the L text positions,
``extras["tokens"]`` one string per position ("" = padding, "<eos>"), ``extras["stages"]`` name ->
the live tensor of that pipeline stage, and the model's ``pipeline_stages()`` [(name, description)].

Attention maps are drawn on one colour scale per picture (0 .. the largest weight any word gets at
that step), not one per word: a word the image ignores then looks dark instead of being stretched
to full brightness, so the picture says *which* word drives *which* pixels.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from genstudio.core.imaging import _font, colormap, heatmap_image, to_uint8

BG = (28, 30, 36)
FG = (235, 235, 235)
DIM = (150, 155, 165)


def run_vocabulary(info: Mapping[str, Any]) -> list[str]:
    """The words a text run knows (prompt completion): recorded in run.json by its train job, else
    its dataset's tokenizer's; [] when neither is known."""
    words = info.get("vocabulary")
    if words:
        return list(words)
    try:
        from genstudio.core.data import get_dataset

        ds = get_dataset(info["dataset"])
        tok = getattr(ds, "tokenizer", None)  # a cached property of captioned datasets
        return list(tok.words) if tok is not None else []
    except (KeyError, ValueError, OSError):
        return []


def has_attention(state: Any) -> bool:
    """The state carries per-token cross-attention maps and the token strings."""
    ex = getattr(state, "extras", None) or {}
    return isinstance(ex.get("attn"), torch.Tensor) and ex["attn"].dim() == 4 and bool(ex.get("tokens"))


def word_positions(tokens: Sequence[str], eos: bool = False) -> list[int]:
    """Text positions worth a map: the words (padding never; the end token only with ``eos``)."""
    return [i for i, t in enumerate(tokens) if t and (eos or t != "<eos>")]


def sample_image(x: torch.Tensor, size: int) -> np.ndarray:
    """One sample (C, H, W) in [-1, 1] -> (size, size, 3) uint8, nearest-neighbour scaled."""
    a = to_uint8(x[:3] if x.shape[0] >= 3 else x[:1].expand(3, -1, -1)).transpose(1, 2, 0)
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((size, size), Image.NEAREST))


def attention_overlays(image: np.ndarray, attn: torch.Tensor, positions: Sequence[int],
                       hi: float | None = None) -> list[np.ndarray]:
    """Each position's map (of ``attn`` (L, h, w)) bilinearly upsampled to ``image``'s size and
    blended as a heat map over a grey copy of it; one colour scale ``0 .. hi`` for all (default:
    the largest weight among ``positions``)."""
    if not positions:  # an empty prompt (unconditional): no word to draw
        return []
    size = image.shape[:2]
    maps = attn[list(positions)].float()[None]
    up = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[0].clamp_min(0).numpy()
    top = float(hi) if hi is not None else (float(maps.max()) if maps.numel() else 1.0)
    grey = image.mean(2, keepdims=True).repeat(3, 2)
    return [(0.35 * grey + 0.65 * colormap(m / max(top, 1e-12))).astype(np.uint8) for m in up]


def _labelled(tiles: Sequence[np.ndarray], labels: Sequence[str], pad: int = 4, font_px: int = 12) -> np.ndarray:
    """Tiles in a row, each with its label centred under it, on the dark background."""
    h, w = tiles[0].shape[:2]
    band = font_px + 6
    im = Image.new("RGB", (len(tiles) * (w + pad) + pad, h + band + 2 * pad), BG)
    d, font = ImageDraw.Draw(im), _font(font_px)
    for k, (tile, lab) in enumerate(zip(tiles, labels, strict=True)):
        x0 = pad + k * (w + pad)
        im.paste(Image.fromarray(np.ascontiguousarray(tile)), (x0, pad))
        text = lab if d.textlength(lab, font=font) <= w + pad else lab[: max(1, w // 7)] + "…"
        d.text((x0 + w / 2, pad + h + 3), text, fill=FG, font=font, anchor="ma")
    return np.asarray(im)


def attention_strip(state: Any, index: int = 0, cell: int = 64, eos: bool = False) -> np.ndarray:
    """Sample ``index`` of the state (its x̂0 where known), labelled with the largest weight any word
    gets, followed by one heat map per word of its prompt, each labelled with the word."""
    ex = state.extras
    attn, tokens = ex["attn"][index], ex["tokens"][index]
    x = state.x0 if state.x0 is not None else state.x
    img = sample_image(x[index], cell)
    pos = word_positions(tokens, eos)
    tiles = [img, *attention_overlays(img, attn, pos)]
    hi = float(attn[pos].max()) if pos else 0.0
    return _labelled(tiles, [f"max {hi:.2f}", *(tokens[i] for i in pos)])


def attention_figure(states: Sequence[Any], index: int = 0, rows: int = 6, cell: int = 48,
                     eos: bool = False) -> np.ndarray:
    """The prompt-to-prompt figure: ``rows`` evenly spaced denoising steps (top = noisiest), each a
    strip of :func:`attention_strip`, labelled with its step and t."""
    have = [s for s in states if has_attention(s)]
    if not have:
        raise ValueError("these states carry no cross-attention maps (not a text-to-image run?)")
    picks = sorted({round(k) for k in np.linspace(0, len(have) - 1, min(rows, len(have)))})
    strips = [attention_strip(have[k], index, cell, eos) for k in picks]
    label_w, font = 96, _font(12)
    h, w = strips[0].shape[:2]
    im = Image.new("RGB", (label_w + w, h * len(strips)), BG)
    d = ImageDraw.Draw(im)
    for r, (k, strip) in enumerate(zip(picks, strips, strict=True)):
        st = have[k]
        im.paste(Image.fromarray(strip), (label_w, r * h))
        d.text((6, r * h + cell / 2), f"step {st.step}/{st.total}\nt = {st.t:.2f}", fill=FG, font=font)
    return np.asarray(im)


def _thumbnail(name: str, value: Any, index: int, cell: int) -> tuple[np.ndarray | None, str]:
    """A stage's live tensor as a picture and a line about it: images as images, token ids and
    (L, D) text features as heat maps (rows = positions), other grids by their first channels."""
    if not isinstance(value, torch.Tensor) or value.dim() < 2 or value.shape[0] <= index:
        return None, ""
    v = value[index].detach().float().cpu()
    shape = "x".join(map(str, v.shape))
    if v.dim() == 3 and v.shape[0] in (1, 3) and v.shape[1] == v.shape[2] and v.abs().max() <= 1.5:
        return sample_image(v, cell), shape
    if v.dim() == 3:  # a latent grid of C channels: the first three as RGB on their own range
        c = v[:3] if v.shape[0] >= 3 else v[:1].expand(3, -1, -1)
        lo, hi = float(c.min()), float(c.max())
        return sample_image((c - lo) / max(hi - lo, 1e-12) * 2 - 1, cell), shape
    if v.dim() == 1:
        v = v[None]
    img = heatmap_image(v)
    scale = max(1, cell // max(v.shape))
    img = img.repeat(scale, 0).repeat(scale, 1)
    return img, shape


def _arrow(d: ImageDraw.ImageDraw, x_from: float, x_to: float, y: float) -> None:
    """A horizontal arrow (the default font has no arrow glyphs)."""
    d.line((x_from, y, x_to, y), fill=FG, width=2)
    s = 1 if x_to > x_from else -1
    d.polygon([(x_to, y), (x_to - 6 * s, y - 4), (x_to - 6 * s, y + 4)], fill=FG)


def pipeline_image(stages: Sequence[tuple[str, str]], tensors: Mapping[str, Any], index: int = 0, *,
                   prompt: str = "", tokens: Sequence[str] = (), t: float | None = None, step: str = "",
                   cell: int = 56, box_w: int = 132) -> np.ndarray:
    """The pipeline as a left-to-right diagram, one box per stage with its description and the live
    tensor of sample ``index`` at this step; "denoiser ⇄ scheduler" is drawn as the loop it is."""
    font, small = _font(13), _font(11)
    wrap = max(8, box_w // 6)
    boxes = []
    for name, desc in stages:
        pic, shape = _thumbnail(name, tensors.get(name), index, cell)
        lines: list[str] = []
        if name == "prompt" and prompt:
            lines += textwrap.wrap(f'"{prompt}"', wrap)[:3]
        elif name == "tokens" and tokens:
            words = [w for w in tokens if w]
            lines += textwrap.wrap(" | ".join(words), wrap)[:3]
            pic = None  # the ids themselves say little; the words do
        elif name == "scheduler" and t is not None:
            lines.append(f"t = {t:.3f}  {step}")
        if shape:
            lines.append(shape)
        lines += textwrap.wrap(desc, wrap)[:2]
        boxes.append((name, pic, lines))
    gap, pad, line_h = 28, 6, 14
    height = 22 + cell + pad + line_h * max(len(b[2]) for b in boxes) + 2 * pad
    im = Image.new("RGB", (len(boxes) * (box_w + gap) - gap + 2 * pad, height + 2 * pad), BG)
    d = ImageDraw.Draw(im)
    for k, (name, pic, lines) in enumerate(boxes):
        x0 = pad + k * (box_w + gap)
        d.rounded_rectangle((x0, pad, x0 + box_w, pad + height), radius=6, outline=(90, 110, 140), width=2,
                            fill=(36, 40, 48))
        d.text((x0 + box_w / 2, pad + 4), name, fill=FG, font=font, anchor="ma")
        if pic is not None:
            ph, pw = pic.shape[:2]
            if ph > cell or pw > box_w - 8:  # a long (L, D) feature map: shrink to the box
                s = min(cell / ph, (box_w - 8) / pw)
                pic = np.asarray(Image.fromarray(pic).resize((max(1, int(pw * s)), max(1, int(ph * s))), Image.NEAREST))
                ph, pw = pic.shape[:2]
            im.paste(Image.fromarray(np.ascontiguousarray(pic)), (int(x0 + (box_w - pw) / 2), pad + 22))
        y = pad + 22 + cell + pad
        for line in lines:
            d.text((x0 + 6, y), line, fill=DIM, font=small)
            y += line_h
        if k + 1 < len(boxes):
            loop = name == "denoiser" and boxes[k + 1][0] == "scheduler"
            xa, xb, ym = x0 + box_w + 4, x0 + box_w + gap - 4, pad + height / 2
            for y, (u, v) in ((ym - 5, (xa, xb)), (ym + 5, (xb, xa))) if loop else ((ym, (xa, xb)),):
                _arrow(d, u, v, y)
    return np.asarray(im)


def state_pipeline_image(state: Any, stages: Sequence[tuple[str, str]], index: int = 0,
                         prompt: str = "", **kw: Any) -> np.ndarray:
    """:func:`pipeline_image` of one SampleState (its extras' stages, tokens and t); the prompt
    defaults to the words the tokenizer kept (an unknown word shows as the tokenizer saw it)."""
    ex = getattr(state, "extras", None) or {}
    toks = ex.get("tokens") or []
    mine = toks[index] if len(toks) > index else ()
    prompt = prompt or " ".join(w for w in mine if w and w != "<eos>")
    return pipeline_image(stages, ex.get("stages") or {}, index, prompt=prompt, tokens=mine, t=state.t,
                          step=f"(step {state.step}/{state.total})", **kw)
