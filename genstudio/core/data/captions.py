"""Captioned shapes: procedural images of 1-3 objects with known shape, colour, size and position,
captions generated from the scene graph, and held-out (colour, shape) combinations.

Layout: the image is a 2x2 grid of cells; each object sits in its own cell (jittered a little), so
objects never overlap and "left of" / "above" are read from cell columns / rows. A caption belongs
to one of the GenEval-like categories and says exactly what is in the image:

=============  ==========================================  ===============================
category       caption                                     image
=============  ==========================================  ===============================
single         "a circle"                                  one circle, any colour
colour         "a red circle"                              one red circle
two            "a circle and a square"                     those two (different shapes)
counting       "three triangles"                           2 or 3 of that shape
position       "a circle left of a square"                 A's column < B's (above: row)
colour_attr    "a red circle and a blue square"            both, colours bound to shapes
=============  ==========================================  ===============================

Training batches never contain a :data:`HELD_OUT` combination (no green triangle anywhere, even
where the caption does not say its colour); the "heldout" test set's captions name one, so a
text-to-image model is tested on compositions it never saw. Batches are ``(images, token ids)``
(ids from :attr:`CaptionsDataset.tokenizer`, see ``genstudio.core.text``); ``spec.num_classes`` is
0, so class-conditional code never mistakes ids for labels. Scene graphs and caption strings come
with :meth:`CaptionsDataset.scene_batch` and the fixed test sets of :meth:`CaptionsDataset.test_set`.
:func:`parse_prompt` and :func:`satisfies` turn any caption into checkable constraints (GenEval).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import torch

from genstudio.core.data import Dataset, DataSpec, register_dataset
from genstudio.core.text import Tokenizer

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (1.0, 0.15, 0.15), "green": (0.15, 0.85, 0.2), "blue": (0.25, 0.4, 1.0), "yellow": (1.0, 0.9, 0.1)}
COLOUR_NAMES = tuple(COLOURS)
SIZES = {"small": 0.27, "large": 0.40}  # radius in image units ([-1, 1] spans the image; a cell is 1 wide)
SIZE_NAMES = tuple(SIZES)
HELD_OUT = (("green", "triangle"), ("blue", "circle"))  # (colour, shape) never in a training image
CATEGORIES = ("single", "colour", "two", "counting", "position", "colour_attr")
HELDOUT_CATEGORIES = ("colour", "colour_attr")  # the ones whose captions name a colour
RELATIONS = ("left of", "right of", "above", "below")
NUMBERS = {2: "two", 3: "three"}
GRID = 2  # cells per side
JITTER = 0.05  # max offset of an object's centre inside its cell (image units)
MAX_LEN = 12  # token ids per caption (the longest has 7 words + EOS)
TEST_SEED = 1_000_003  # the fixed test sets are drawn from their own seed stream


@dataclass(frozen=True)
class Obj:
    """One object of a scene graph: attributes and its cell (row 0 = top, col 0 = left)."""

    shape: str
    colour: str
    size: str
    row: int
    col: int
    dx: float = 0.0  # jitter inside the cell (image units), only for rendering
    dy: float = 0.0

    @property
    def centre(self) -> tuple[float, float]:
        """(x, y) in image units, y up."""
        return -0.5 + self.col + self.dx, 0.5 - self.row + self.dy


@dataclass(frozen=True)
class SceneGraph:
    """What is in one image, the caption that describes it, and the caption's category."""

    objects: tuple[Obj, ...]
    caption: str = ""
    category: str = ""

    def to_dict(self) -> dict:
        return {"caption": self.caption, "category": self.category,
                "objects": [{k: v for k, v in asdict(o).items() if k not in ("dx", "dy")} for o in self.objects]}


@dataclass(frozen=True)
class ObjSpec:
    shape: str
    colour: str | None = None


@dataclass(frozen=True)
class Prompt:
    """A caption as constraints: exactly these objects (colours where said), and a relation
    between the first and the second (``"and"`` for none)."""

    category: str
    objects: tuple[ObjSpec, ...]
    relation: str = "and"


def plural(shape: str) -> str:
    return shape + "s"


def _phrase(o: ObjSpec) -> str:
    return "a " + (f"{o.colour} " if o.colour else "") + o.shape


def caption_of(p: Prompt) -> str:
    """The caption text of a prompt (the inverse of :func:`parse_prompt`)."""
    if p.category == "counting":
        return f"{NUMBERS[len(p.objects)]} {plural(p.objects[0].shape)}"
    if len(p.objects) == 1:
        return _phrase(p.objects[0])
    return f"{_phrase(p.objects[0])} {p.relation} {_phrase(p.objects[1])}"


_SHAPE = "|".join(SHAPES)
_COL = "|".join(COLOUR_NAMES)
_PROMPT_RE = re.compile(rf"^(a|two|three) (?:({_COL}) )?({_SHAPE})(s?)"
                        rf"(?: (and|left of|right of|above|below) a (?:({_COL}) )?({_SHAPE}))?$")


def parse_prompt(text: str) -> Prompt | None:
    """The constraints a caption of this grammar states, or None for text outside it."""
    m = _PROMPT_RE.match(" ".join(text.lower().split()))
    if m is None:
        return None
    num, c1, s1, pl, rel, c2, s2 = m.groups()
    if num != "a":  # "three triangles": no colour, a plural, nothing after
        if c1 or not pl or rel:
            return None
        return Prompt("counting", (ObjSpec(s1),) * (2 if num == "two" else 3))
    if pl:
        return None
    if rel is None:
        return Prompt("colour" if c1 else "single", (ObjSpec(s1, c1),))
    if (c1 is None) != (c2 is None):
        return None
    objs = (ObjSpec(s1, c1), ObjSpec(s2, c2))
    if rel != "and":
        return Prompt("position", objs, rel)
    return Prompt("colour_attr" if c1 else "two", objs)


def relation_holds(a: Obj, b: Obj, relation: str) -> bool:
    """Whether ``a`` stands in ``relation`` to ``b`` (by grid cell; "and" always holds)."""
    return {"and": True, "left of": a.col < b.col, "right of": a.col > b.col,
            "above": a.row < b.row, "below": a.row > b.row}[relation]


def satisfies(prompt: Prompt, objects: tuple[Obj, ...] | list[Obj]) -> bool:
    """Whether a scene graph (e.g. read back from an image) obeys the prompt: the same number of
    objects, each matching one spec (shape, and colour where said), and the relation between the
    objects matched to the first and second spec."""
    objs = tuple(objects)
    if len(objs) != len(prompt.objects):
        return False
    for perm in itertools.permutations(objs):
        if all(o.shape == s.shape and (s.colour is None or o.colour == s.colour) for o, s in zip(perm, prompt.objects)):
            if len(perm) < 2 or relation_holds(perm[0], perm[1], prompt.relation):
                return True
    return False


# -- drawing scenes -------------------------------------------------------------------------------
def _allowed(colour: str, shape: str, split: str) -> bool:
    return split == "heldout" or (colour, shape) not in HELD_OUT


def _pick_colour(rng: random.Random, shape: str, split: str) -> str:
    return rng.choice([c for c in COLOUR_NAMES if _allowed(c, shape, split)])


def _cells(rng: random.Random, k: int) -> list[tuple[int, int]]:
    return rng.sample([(r, c) for r in range(GRID) for c in range(GRID)], k)


def _relation_cells(rng: random.Random, relation: str) -> list[tuple[int, int]]:
    """Cells (a, b) with ``relation`` between them."""
    while True:
        a, b = _cells(rng, 2)
        if relation_holds(Obj("", "", "", *a), Obj("", "", "", *b), relation):
            return [a, b]


def draw_prompt(rng: random.Random, category: str, split: str) -> Prompt:
    """A random prompt of ``category``; "heldout" prompts name at least one HELD_OUT combination,
    "train"/"seen" ones none."""
    held = [(c, s) for c, s in HELD_OUT]
    seen_pairs = [(c, s) for c in COLOUR_NAMES for s in SHAPES if (c, s) not in HELD_OUT]
    if category == "colour":
        c, s = rng.choice(held if split == "heldout" else seen_pairs)
        return Prompt(category, (ObjSpec(s, c),))
    if category == "colour_attr":
        while True:
            (c1, s1), (c2, s2) = rng.choice(held if split == "heldout" else seen_pairs), rng.choice(seen_pairs + held)
            if s1 != s2 and c1 != c2 and (split == "heldout" or (c2, s2) not in HELD_OUT):
                pair = [ObjSpec(s1, c1), ObjSpec(s2, c2)]
                rng.shuffle(pair)
                return Prompt(category, tuple(pair))
    if split == "heldout":
        raise ValueError(f"no held-out prompts of category {category!r} (its captions name no colour)")
    if category == "single":
        return Prompt(category, (ObjSpec(rng.choice(SHAPES)),))
    if category == "counting":
        return Prompt(category, (ObjSpec(rng.choice(SHAPES)),) * rng.choice((2, 3)))
    s1, s2 = rng.sample(SHAPES, 2)
    return Prompt(category, (ObjSpec(s1), ObjSpec(s2)), "and" if category == "two" else rng.choice(RELATIONS))


def scene_for(rng: random.Random, prompt: Prompt, split: str) -> SceneGraph:
    """A scene graph that satisfies ``prompt``: unsaid colours and every size drawn at random
    (never a held-out combination outside the "heldout" split), cells matching its relation."""
    k = len(prompt.objects)
    cells = _relation_cells(rng, prompt.relation) if prompt.relation != "and" else _cells(rng, k)
    objs = []
    for spec, (r, c) in zip(prompt.objects, cells):
        colour = spec.colour or _pick_colour(rng, spec.shape, split)
        objs.append(Obj(spec.shape, colour, rng.choice(SIZE_NAMES), r, c,
                        rng.uniform(-JITTER, JITTER), rng.uniform(-JITTER, JITTER)))
    return SceneGraph(tuple(objs), caption_of(prompt), prompt.category)


def render(scenes: list[SceneGraph] | tuple[SceneGraph, ...], size: int,
           angles: torch.Tensor | None = None) -> torch.Tensor:
    """Scene graphs -> (B, 3, size, size) images in [-1, 1] on black, edges anti-aliased (the area
    a one-pixel ramp of the signed distance covers, as the sprites dataset draws them). ``angles``
    (B, k) rotates each object about its centre (radians; the video clips spin their shapes)."""
    k = max([len(s.objects) for s in scenes] or [1])
    b = len(scenes)
    shape = torch.zeros(b, k, dtype=torch.long)
    rad = torch.zeros(b, k)
    cx, cy = torch.zeros(b, k), torch.zeros(b, k)
    colour = torch.zeros(b, k, 3)
    for i, s in enumerate(scenes):
        for j, o in enumerate(s.objects):
            shape[i, j] = SHAPES.index(o.shape)
            rad[i, j] = SIZES[o.size]
            cx[i, j], cy[i, j] = o.centre
            colour[i, j] = torch.tensor(COLOURS[o.colour])
    pix = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    py, px = torch.meshgrid(pix, pix, indexing="ij")
    r = rad[..., None, None].clamp(min=1e-3)
    u = (px - cx[..., None, None]) / r  # object-local coordinates, radius 1
    v = (-py - cy[..., None, None]) / r
    if angles is not None:
        ca, sa = torch.cos(angles[:, :k, None, None]), torch.sin(angles[:, :k, None, None])
        u, v = ca * u + sa * v, ca * v - sa * u
    sd_circle = torch.sqrt(u**2 + v**2) - 1
    sd_square = torch.maximum(u.abs(), v.abs()) - 0.82
    normals = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, 7 * math.pi / 6, 11 * math.pi / 6)]
    sd_tri = torch.stack([-(nx * u + ny * v) for nx, ny in normals], 0).amax(0) - 0.55  # apex up
    s_ = shape[..., None, None]
    sd = torch.where(s_ == 0, sd_circle, torch.where(s_ == 1, sd_square, sd_tri)) * r
    cover = (0.5 - sd / (2.0 / size)).clamp(0, 1) * (rad[..., None, None] > 0)
    img = (cover[:, :, None] * colour[..., None, None]).sum(1).clamp(0, 1)
    return img * 2 - 1


@dataclass
class CaptionedSet:
    """A fixed set of captioned images: what retrieval, the evaluator and GenEval are measured on."""

    x: torch.Tensor
    tokens: torch.Tensor
    scenes: list[SceneGraph] = field(default_factory=list)

    @property
    def captions(self) -> list[str]:
        return [s.caption for s in self.scenes]

    @property
    def categories(self) -> list[str]:
        return [s.category for s in self.scenes]

    def __len__(self) -> int:
        return len(self.scenes)


class CaptionsDataset(Dataset):
    """Captioned shapes at ``size`` x ``size``; batches are (images, token ids (N, MAX_LEN))."""

    def __init__(self, size: int = 32, name: str = "captions") -> None:
        self.size = size
        self.spec = DataSpec(name, "captioned", (3, size, size), num_classes=0, size=0,
                             description=f"procedural captioned shapes {size}x{size}: 1-3 objects, scene graphs, "
                             f"held-out {', '.join(' '.join(h) for h in HELD_OUT)}")

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """Trained on every caption the grammar makes (held-out ones too: their words are all seen)."""
        return Tokenizer.train(all_captions(), MAX_LEN)

    def scene_batch(self, n: int, generator: torch.Generator | None = None, split: str = "train",
                    categories: tuple[str, ...] = CATEGORIES) -> CaptionedSet:
        """``n`` fresh scenes (categories uniformly), rendered and tokenized, with their graphs."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        rng = random.Random(seed)
        scenes = [scene_for(rng, draw_prompt(rng, rng.choice(categories), split), split) for _ in range(n)]
        return CaptionedSet(render(scenes, self.size), self.tokenizer.encode([s.caption for s in scenes]), scenes)

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.scene_batch(n, generator)
        return s.x, s.tokens

    def test_set(self, split: str = "seen", per_category: int = 50, seed: int = 0) -> CaptionedSet:
        """A fixed test set: ``per_category`` images of each category (``split`` "seen": the
        training distribution from its own seed stream; "heldout": captions naming a held-out
        combination, categories :data:`HELDOUT_CATEGORIES`), in category order."""
        if split not in ("seen", "heldout"):
            raise ValueError(f"split must be 'seen' or 'heldout', not {split!r}")
        cats = HELDOUT_CATEGORIES if split == "heldout" else CATEGORIES
        rng = random.Random(TEST_SEED + 7 * seed + (split == "heldout"))
        scenes = [scene_for(rng, draw_prompt(rng, c, split), split) for c in cats for _ in range(per_category)]
        return CaptionedSet(render(scenes, self.size), self.tokenizer.encode([s.caption for s in scenes]), scenes)

    def captions(self, tokens: torch.Tensor) -> list[str]:
        """Caption strings of token ids (a batch's y)."""
        return self.tokenizer.decode(tokens)


def all_captions() -> list[str]:
    """Every caption of the grammar, sorted."""
    out = set()
    for s in SHAPES:
        out.add(caption_of(Prompt("single", (ObjSpec(s),))))
        out.update(caption_of(Prompt("counting", (ObjSpec(s),) * k)) for k in NUMBERS)
        for c in COLOUR_NAMES:
            out.add(caption_of(Prompt("colour", (ObjSpec(s, c),))))
    for s1, s2 in itertools.permutations(SHAPES, 2):
        for rel in ("and", *RELATIONS):
            out.add(caption_of(Prompt("two", (ObjSpec(s1), ObjSpec(s2)), rel)))
        for c1, c2 in itertools.permutations(COLOUR_NAMES, 2):
            out.add(caption_of(Prompt("colour_attr", (ObjSpec(s1, c1), ObjSpec(s2, c2)))))
    return sorted(out)


@register_dataset("captions", "procedural captioned shapes 3x32x32 (1-3 objects, scene graphs, held-out combinations)")
def captions() -> CaptionsDataset:
    return CaptionsDataset(32, "captions")


@register_dataset("captions16", "the captioned shapes at 3x16x16 (fast on CPU)")
def captions16() -> CaptionsDataset:
    return CaptionsDataset(16, "captions16")


def caption_sheet(s: CaptionedSet, columns: int = 3, scale: int = 0) -> Any:
    """A picture of captioned images: ``columns`` columns of (image, caption) rows, (H, W, 3) uint8."""
    import numpy as np

    from genstudio.core.imaging import readable_scale, to_uint8
    from genstudio.core.latent import labelled_grid

    scale = scale or readable_scale(s.x.shape[-2], s.x.shape[-1], cell=48)
    tiles = to_uint8(s.x).transpose(0, 2, 3, 1).repeat(scale, 1).repeat(scale, 2)
    per = -(-len(s) // columns)
    cols = [labelled_grid(tiles[i:i + per], 1, s.captions[i:i + per]) for i in range(0, len(s), per)]
    h = max(c.shape[0] for c in cols)
    cols = [np.pad(c, ((0, h - c.shape[0]), (0, 8), (0, 0)), constant_values=30) for c in cols]
    return np.concatenate(cols, 1)
