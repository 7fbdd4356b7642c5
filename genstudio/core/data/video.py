"""Video clips: procedural moving shapes with known trajectories, and the user's own GIF/MP4 folder.

Batch layout: ``x`` (B, C, T, H, W) float in [-1, 1] (C = 3 colour channels, T = 16 frames);
``DataSpec.shape`` is (C, T, H, W) and ``kind`` "video".

Procedural clips reuse the captioned shapes' renderer (``captions.render``, same shapes and colours):
one object moves in a straight line (right, left, up or down: the class label, ``MOTIONS``) while it
rotates (squares and triangles spin at a random rate) and may change colour half-way; a second,
still object sits elsewhere in half the clips. The moving object starts near one wall and travels
``TRAVEL`` image units, so it never leaves the frame. Every clip keeps its trajectory (per-frame
centres and colour names of each object, :class:`Clips`) and a caption ("a red circle moves right",
"a red circle moves right and turns blue"), so motion can be checked from the pixels
(``genstudio.core.metrics.video``). ``video:moving16`` batches are (clips, motion labels);
``video:captions16`` batches are (clips, caption token ids) with ``num_classes`` 0 (as ``captions``).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from genstudio.core.data import Dataset, DataSpec, TensorDataset, register_dataset
from genstudio.core.data import captions as C
from genstudio.core.text import Tokenizer

FRAMES = 16
MOTIONS = ("right", "left", "up", "down")
DIRECTIONS = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, 1.0), "down": (0.0, -1.0)}  # y up
TRAVEL = 1.1  # image units the moving object covers over the clip ([-1, 1] spans the frame)
CHANGE_P = 0.25  # probability the moving object changes colour half-way
SECOND_P = 0.5  # probability of a second, still object
MAX_LEN = 10  # "a red circle moves right and turns blue" is 8 words + EOS
VIDEO_SUFFIXES = {".gif", ".mp4", ".webm", ".avi", ".mov", ".mkv"}


def caption_for(shape: str, colour: str, motion: str, turns: str | None = None) -> str:
    return f"a {colour} {shape} moves {motion}" + (f" and turns {turns}" if turns else "")


def all_video_captions() -> list[str]:
    out = []
    for s, c, m in itertools.product(C.SHAPES, C.COLOUR_NAMES, MOTIONS):
        out.append(caption_for(s, c, m))
        out += [caption_for(s, c, m, t) for t in C.COLOUR_NAMES if t != c]
    return sorted(out)


@dataclass
class Clips:
    """A batch of procedural clips and what is in them: ``centres`` (B, T, k, 2) in image units
    (x right, y up; NaN where a clip has fewer objects), ``colours`` [clip][frame][object] names,
    object 0 the moving one."""

    x: torch.Tensor
    labels: torch.Tensor
    captions: list[str]
    centres: torch.Tensor
    colours: list[list[list[str]]] = field(default_factory=list)


def make_clips(rng: random.Random, n: int, size: int = 16, frames: int = FRAMES) -> Clips:
    """``n`` fresh clips (motion classes uniformly) rendered at ``size`` x ``size``."""
    k = 2
    centres = torch.full((n, frames, k, 2), float("nan"))
    angles = torch.zeros(n * frames, k)
    scenes, labels, caps, colours = [], [], [], []
    for i in range(n):
        motion = rng.choice(MOTIONS)
        dx, dy = DIRECTIONS[motion]
        shape, colour = rng.choice(C.SHAPES), rng.choice(C.COLOUR_NAMES)
        turns = rng.choice([c for c in C.COLOUR_NAMES if c != colour]) if rng.random() < CHANGE_P else None
        along, across = -TRAVEL / 2 + rng.uniform(-0.05, 0.05), rng.uniform(-0.45, 0.45)
        start = (along * dx + across * dy, along * dy + across * dx)  # (x, y): start side along the motion
        spin = rng.uniform(-0.35, 0.35) if shape != "circle" else 0.0
        second = None
        if rng.random() < SECOND_P:  # a still object on the far side of the path
            off = -0.6 if across > 0 else 0.6
            second = (rng.choice(C.SHAPES), rng.choice(C.COLOUR_NAMES),
                      (rng.uniform(-0.5, 0.5) * abs(dx) + off * abs(dy), rng.uniform(-0.5, 0.5) * abs(dy) + off * abs(dx)))
        clip_cols = []
        for f in range(frames):
            s = TRAVEL * f / (frames - 1)
            cx, cy = start[0] + s * dx, start[1] + s * dy
            col = turns if turns and f >= frames // 2 else colour
            objs = [C.Obj(shape, col, "small", 0, 0, cx + 0.5, cy - 0.5)]
            centres[i, f, 0] = torch.tensor([cx, cy])
            angles[i * frames + f, 0] = spin * f
            names = [col]
            if second is not None:
                objs.append(C.Obj(second[0], second[1], "small", 0, 0, second[2][0] + 0.5, second[2][1] - 0.5))
                centres[i, f, 1] = torch.tensor(second[2])
                names.append(second[1])
            scenes.append(C.SceneGraph(tuple(objs)))
            clip_cols.append(names)
        labels.append(MOTIONS.index(motion))
        caps.append(caption_for(shape, colour, motion, turns))
        colours.append(clip_cols)
    img = C.render(scenes, size, angles)  # (n * T, 3, H, W)
    x = img.reshape(n, frames, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()
    return Clips(x, torch.tensor(labels), caps, centres, colours)


class MovingShapes(Dataset):
    """Procedural clips (3, 16, size, size); ``captioned``: batches carry caption ids, not labels."""

    def __init__(self, size: int = 16, name: str = "video:moving16", captioned: bool = False) -> None:
        self.size, self.captioned = size, captioned
        self.spec = DataSpec(name, "video", (3, FRAMES, size, size), num_classes=0 if captioned else len(MOTIONS),
                             size=0, description=f"procedural clips of moving, spinning shapes, {FRAMES} frames "
                             f"{size}x{size}" + (", captions" if captioned else ", motion labels"))

    @cached_property
    def tokenizer(self) -> Tokenizer:
        return Tokenizer.train(all_video_captions(), MAX_LEN)

    def clips(self, n: int, generator: torch.Generator | None = None) -> Clips:
        return make_clips(random.Random(int(torch.randint(0, 2**62, (1,), generator=generator))), n, self.size)

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.clips(n, generator)
        return c.x, (self.tokenizer.encode(c.captions) if self.captioned else c.labels)

    def captions(self, tokens: torch.Tensor) -> list[str]:
        return self.tokenizer.decode(tokens)


for _size in (16, 32):
    register_dataset(f"video:moving{_size}", f"video: moving, spinning shapes, {FRAMES} frames {_size}x{_size}, "
                     "motion labels", kind="video")(lambda s=_size: MovingShapes(s, f"video:moving{s}"))
    register_dataset(f"video:captions{_size}", f"video: the moving shapes with captions ('a red circle moves "
                     f"right'), {_size}x{_size}", kind="video")(
        lambda s=_size: MovingShapes(s, f"video:captions{s}", captioned=True))


# -- the user's own clips -----------------------------------------------------------------------------
class VideoError(ValueError):
    """A video folder that cannot be used; the message names every bad file and why."""


def read_clip(path: Path, size: int, frames: int = FRAMES) -> torch.Tensor:
    """One file -> (3, frames, size, size) in [-1, 1]: the first ``frames`` frames (a short clip
    loops), centre-cropped to a square and resized (Pillow, area filter)."""
    import imageio.v3 as iio
    from PIL import Image

    arr = np.asarray(iio.imread(path, index=None))
    if arr.ndim == 3:  # one still frame (or greyscale frames) -> add the missing axis
        arr = arr[None] if arr.shape[-1] in (3, 4) else arr[..., None]
    if arr.ndim != 4 or len(arr) == 0:
        raise ValueError(f"not a sequence of frames (array {arr.shape})")
    arr = arr[..., :3] if arr.shape[-1] >= 3 else np.repeat(arr[..., :1], 3, -1)
    idx = np.arange(frames) % len(arr)
    out = []
    for fr in arr[idx]:
        h, w = fr.shape[:2]
        m = min(h, w)
        crop = fr[(h - m) // 2:(h - m) // 2 + m, (w - m) // 2:(w - m) // 2 + m].astype(np.uint8)
        out.append(np.asarray(Image.fromarray(crop).resize((size, size), Image.BOX)))
    x = torch.from_numpy(np.stack(out)).float() / 127.5 - 1  # (T, H, W, 3)
    return x.permute(3, 0, 1, 2).contiguous()


def load_video_folder(arg: str, frames: int = FRAMES) -> TensorDataset:
    """``PATH[:size]`` (size 16 by default): every GIF/MP4/WebM/... in the folder (recursively)."""
    from genstudio.core.data.folder import user_files

    path, size = arg, 16
    head, _, tail = arg.rpartition(":")
    if head and tail.isdigit():
        path, size = head, int(tail)
    _, files = user_files(path, VIDEO_SUFFIXES, "video folder", "video files (gif/mp4/webm)", VideoError)
    clips, bad = [], []
    for f in files:
        try:
            clips.append(read_clip(f, size, frames))
        except Exception as e:  # noqa: BLE001 - every bad file is reported, not just the first
            bad.append(f"{f.name}: {e}")
    if bad:
        raise VideoError(f"{len(bad)} of {len(files)} video files in {path} cannot be read:\n" + "\n".join(bad))
    x = torch.stack(clips)
    spec = DataSpec(f"video:{path}", "video", tuple(x.shape[1:]), size=len(x),
                    description=f"{len(x)} clips from {path}, {frames} frames {size}x{size}")
    return TensorDataset(spec, x)
