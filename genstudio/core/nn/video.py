"""Video blocks: space-time patches, a space-time DiT and a factorised 3-D U-Net, both called
``net(x, t, y)`` with x (B, C, T, H, W), t (B,) in [0, 1] and y the condition (see :class:`VideoCond`).

* :func:`patchify` / :func:`unpatchify`: (B, C, T, H, W) <-> (B, T/pt, H/ph, W/pw, pt*ph*pw*C), exact
  inverses (pure reshapes).
* :class:`SpaceTimeDiT` reuses ``dit.DiTBlock``: "factorised" attention runs each block over the
  tokens of one frame (spatial) and then over the frames at one patch location (temporal);
  "joint" runs it over all space-time tokens. Temporal positions are sin-cos features of a
  *continuous* frame position, so a clip of another length is sampled by interpolating them onto
  the trained range (``frame_positions``) -- the frame-count extrapolation of the video plugin.
* :class:`UNet3D` is ``unet.UNet`` applied to every frame (2-D convolutions, spatial attention at the
  bottleneck) with a zero-initialised 1-D temporal convolution after every residual block, so it
  starts as a per-frame image U-Net and learns motion on top; convolutions take any frame count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.nn.dit import DiTBlock, _modulate, _zero_linear, sincos_pos_embed_2d
from genstudio.core.nn.embed import ClassEmbedding, TimeEmbedding, sinusoidal_embedding
from genstudio.core.nn.text import TextEncoder
from genstudio.core.nn.unet import ResBlock, UNet, _zero

Patch = tuple[int, int, int]


def patchify(x: Tensor, patch: Patch) -> Tensor:
    """(B, C, T, H, W) -> (B, T', H', W', pt*ph*pw*C) space-time patches."""
    b, c, t, h, w = x.shape
    pt, ph, pw = patch
    if t % pt or h % ph or w % pw:
        raise ValueError(f"clip {(t, h, w)} is not divisible by the patch {patch}")
    x = x.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, t // pt, h // ph, w // pw, pt * ph * pw * c)


def unpatchify(tok: Tensor, patch: Patch, channels: int) -> Tensor:
    """The inverse of :func:`patchify`."""
    b, gt, gh, gw, _ = tok.shape
    pt, ph, pw = patch
    x = tok.reshape(b, gt, gh, gw, pt, ph, pw, channels).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, channels, gt * pt, gh * ph, gw * pw)


def frame_positions(frames: int, trained: int) -> Tensor:
    """Continuous temporal positions of ``frames`` token frames for a model trained on ``trained``:
    0..trained-1 when equal, else spread evenly over that range (interpolated)."""
    if frames == trained or frames < 2:
        return torch.arange(frames, dtype=torch.float32)
    return torch.linspace(0, trained - 1, frames)


class VideoCond(nn.Module):
    """The condition as one embedding (B, dim): ``kind`` "none", "class" (labels, a learnt null
    class) or "caption" (token ids through a TextEncoder, mean-pooled over real tokens; the null
    caption is the empty one, [EOS])."""

    def __init__(self, kind: str, dim: int, num_classes: int = 0, vocab_size: int = 0, max_len: int = 0,
                 text_width: int = 64) -> None:
        super().__init__()
        if kind not in ("none", "class", "caption"):
            raise ValueError(f"unknown conditioning {kind!r}: none, class or caption")
        self.kind = kind
        if kind == "class":
            self.cls = ClassEmbedding(num_classes, dim)
        elif kind == "caption":
            self.text = TextEncoder(vocab_size, max_len, text_width, layers=2, heads=4)
            self.proj = nn.Linear(text_width, dim)

    def forward(self, y: Tensor | None, batch: int, device: torch.device) -> Tensor | None:
        if self.kind == "none":
            return None
        if self.kind == "class":
            return self.cls(y, batch, device)
        if y is None:
            y = self.null_like(torch.zeros(batch, self.text.pos.shape[1], dtype=torch.long, device=device))
        return self.proj(self.text.pooled(y))

    def null_like(self, y: Tensor) -> Tensor:
        """The unconditional condition in ``y``'s form."""
        if self.kind == "class":
            return torch.full_like(y, self.cls.null)
        out = torch.zeros_like(y)
        out[:, 0] = self.text.eos_id
        return out

    def drop(self, y: Tensor, p: float) -> Tensor:
        """Each condition replaced by the null one with probability ``p`` (training for CFG)."""
        if self.kind == "none" or p <= 0:
            return y
        mask = torch.rand(len(y), device=y.device) < p
        return torch.where(mask.view(-1, *([1] * (y.dim() - 1))), self.null_like(y), y)


class SpaceTimeDiT(nn.Module):
    """DiT over space-time patches; ``attention`` "factorised" (spatial then temporal per block) or
    "joint"; ``frames`` is the trained clip length (temporal positions are set relative to it)."""

    def __init__(self, in_ch: int, frames: int, size: int, patch: Patch = (2, 2, 2), dim: int = 64, depth: int = 4,
                 heads: int = 4, attention: str = "factorised", cond: VideoCond | None = None) -> None:
        super().__init__()
        if attention not in ("factorised", "joint"):
            raise ValueError(f"attention must be factorised or joint, not {attention!r}")
        self.patch, self.ch, self.attention = tuple(patch), in_ch, attention
        self.trained_t = frames // patch[0]
        self.grid = (size // patch[1], size // patch[2])
        self.embed = nn.Linear(patch[0] * patch[1] * patch[2] * in_ch, dim)
        self.register_buffer("pos_s", sincos_pos_embed_2d(dim, *self.grid), persistent=False)
        self.time = TimeEmbedding(dim)
        self.cond = cond or VideoCond("none", dim)
        heads = heads if dim % heads == 0 else 1
        self.spatial = nn.ModuleList(DiTBlock(dim, heads) for _ in range(depth))
        self.temporal = nn.ModuleList(DiTBlock(dim, heads) for _ in range(depth)) if attention == "factorised" else None
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), _zero_linear(dim, 2 * dim))
        self.proj_out = _zero_linear(dim, patch[0] * patch[1] * patch[2] * in_ch)

    def tokens(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, T', N, dim) with space and (interpolated) time positions added."""
        tok = self.embed(patchify(x, self.patch))
        b, gt, gh, gw, d = tok.shape
        if (gh, gw) != self.grid:
            raise ValueError(f"built for a {self.grid} patch grid, got {(gh, gw)}")
        pos_t = sinusoidal_embedding(frame_positions(gt, self.trained_t).to(x.device), d)
        return tok.reshape(b, gt, gh * gw, d) + self.pos_s[None, None] + pos_t[None, :, None]

    def temporal_layer(self, i: int, h: Tensor, c: Tensor) -> Tensor:
        """Block i's temporal attention: (B, T', N, d) tokens attend across frames at one location."""
        b, gt, n, d = h.shape
        ht = h.permute(0, 2, 1, 3).reshape(b * n, gt, d)
        ht = self.temporal[i](ht, c.repeat_interleave(n, 0))
        return ht.reshape(b, n, gt, d).permute(0, 2, 1, 3)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        b = x.shape[0]
        c = self.time(t.expand(b) if t.dim() == 0 else t)
        e = self.cond(y, b, x.device)
        c = c if e is None else c + e
        h = self.tokens(x)
        _, gt, n, d = h.shape
        for i, blk in enumerate(self.spatial):
            if self.temporal is None:  # joint: every space-time token attends to every other
                h = blk(h.reshape(b, gt * n, d), c).reshape(b, gt, n, d)
            else:
                h = blk(h.reshape(b * gt, n, d), c.repeat_interleave(gt, 0)).reshape(b, gt, n, d)
                h = self.temporal_layer(i, h, c)
        shift, scale = self.ada_out(c).chunk(2, dim=1)
        out = self.proj_out(_modulate(self.norm_out(h.reshape(b, gt * n, d)), shift, scale))
        return unpatchify(out.reshape(b, gt, *self.grid, -1), self.patch, self.ch)


class _Frames:
    """The clip length of the current call, shared by the U-Net's temporal layers."""

    t = 1


class _TemporalRes(ResBlock):
    """A 2-D ResBlock of the image U-Net followed by a residual 1-D convolution over frames at
    each pixel (zero-initialised: the block starts as the per-frame image block). Subclasses
    ResBlock only so UNet.forward hands it the embedding."""

    def __init__(self, inner: ResBlock, frames: _Frames) -> None:
        nn.Module.__init__(self)
        self.inner, self.frames = inner, frames
        ch = inner.conv2.out_channels
        self.tconv = _zero(nn.Conv1d(ch, ch, 3, padding=1))

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.inner(x, e)
        bt, c, hh, ww = h.shape
        t = self.frames.t
        seq = h.reshape(bt // t, t, c, hh, ww).permute(0, 3, 4, 2, 1).reshape(-1, c, t)
        seq = self.tconv(F.silu(seq))
        return h + seq.reshape(bt // t, hh, ww, c, t).permute(0, 4, 3, 1, 2).reshape(bt, c, hh, ww)


class _Given(nn.Module):
    """Stands in for the U-Net's class embedding: the condition embedding is computed once per clip."""

    def forward(self, y: Tensor | None, batch: int, device: torch.device) -> Tensor:
        return torch.zeros((), device=device) if y is None else y


class UNet3D(nn.Module):
    """Factorised 3-D U-Net: ``unet.UNet`` per frame + temporal convolutions (see module doc)."""

    def __init__(self, in_ch: int, base: int = 32, mults: tuple[int, ...] = (1, 2, 2), num_res: int = 1,
                 cond: VideoCond | None = None) -> None:
        super().__init__()
        self.frames = _Frames()
        self.unet = UNet(in_ch, base, mults, num_res)
        self.unet.cls = _Given()
        self.cond = cond or VideoCond("none", 4 * base)
        for mods in (self.unet.down, self.unet.up):
            for i, m in enumerate(mods):
                if isinstance(m, ResBlock):
                    mods[i] = _TemporalRes(m, self.frames)
        self.unet.mid1 = _TemporalRes(self.unet.mid1, self.frames)
        self.unet.mid2 = _TemporalRes(self.unet.mid2, self.frames)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        b, c, tt, h, w = x.shape
        self.frames.t = tt
        t = t.expand(b) if t.dim() == 0 else t
        e = self.cond(y, b, x.device)
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * tt, c, h, w)
        out = self.unet(frames, t.repeat_interleave(tt), None if e is None else e.repeat_interleave(tt, 0))
        return out.reshape(b, tt, c, h, w).permute(0, 2, 1, 3, 4)


__all__ = ["SpaceTimeDiT", "UNet3D", "VideoCond", "frame_positions", "patchify", "unpatchify"]
