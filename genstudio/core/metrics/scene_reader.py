"""The evaluator independent of the generators: a small fully convolutional net that reads a
captioned-shapes image back into its scene graph (which cells hold an object, and each object's
shape, colour and size), so prompt alignment is checked on what is *in* the image.

It is trained on freshly rendered procedural scenes of every combination (held-out ones too: it is
the measuring instrument, not a generator), at 16x16; 32x32 images are average-pooled to 16x16
first, so one reader serves both datasets. Trained on first use (seconds on a CPU) and cached
under ``<data dir>/extractors`` with safetensors, keyed by a hash of the recipe, like the digits
classifier. :func:`reader_accuracy` is its per-attribute accuracy on real held-out images: the
GenEval numbers mean something only where it is >= 98 %.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genstudio.core.data import captions as C
from genstudio.core.metrics.features import _one_thread, cache_dir

READER_VERSION = 2  # bump when the net, the recipe or the rendering changes (invalidates caches)
READ_SIZE = 16
CELLS = C.GRID * C.GRID
HEADS = {"present": 2, "shape": len(C.SHAPES), "colour": len(C.COLOUR_NAMES), "size": len(C.SIZE_NAMES)}
ATTRIBUTES = ("shape", "colour", "size", "count", "position")


class SceneReaderNet(nn.Module):
    """16x16 image -> per-cell logits (B, cells, sum(HEADS)): conv stages down to the 2x2 grid."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.GELU(),  # 8x8
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),  # 4x4
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GELU(),  # 2x2: one feature per cell
            nn.Conv2d(2 * w, sum(HEADS.values()), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(2).transpose(1, 2)  # (B, 4, K), cells in row-major order


def to_read_size(x: torch.Tensor) -> torch.Tensor:
    """Images at the reader's 16x16 (area averaging, the way the renderer anti-aliases)."""
    s = x.shape[-1]
    if s == READ_SIZE:
        return x
    if s % READ_SIZE:
        return F.interpolate(x, size=(READ_SIZE, READ_SIZE), mode="area")
    return F.avg_pool2d(x, s // READ_SIZE)


def targets(scenes: list[C.SceneGraph]) -> torch.Tensor:
    """(B, cells, 4) long: present, shape, colour, size per cell (-100 = ignored where empty)."""
    t = torch.full((len(scenes), CELLS, 4), -100, dtype=torch.long)
    t[..., 0] = 0
    for i, s in enumerate(scenes):
        for o in s.objects:
            t[i, o.row * C.GRID + o.col] = torch.tensor([1, C.SHAPES.index(o.shape), C.COLOUR_NAMES.index(o.colour),
                                                         C.SIZE_NAMES.index(o.size)])
    return t


def _split(logits: torch.Tensor) -> list[torch.Tensor]:
    return list(logits.split(list(HEADS.values()), -1))


def reader_loss(net: SceneReaderNet, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return sum(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), t[..., k].reshape(-1), ignore_index=-100)
               for k, lg in enumerate(_split(net(x))))


def _training_scenes(rng: random.Random, n: int) -> list[C.SceneGraph]:
    """Scenes of every combination (the "heldout" draw allows all colours), every category."""
    return [C.scene_for(rng, C.draw_prompt(rng, rng.choice(C.CATEGORIES), "seen"), "seen") if rng.random() < 0.5
            else C.scene_for(rng, C.draw_prompt(rng, rng.choice(C.HELDOUT_CATEGORIES), "heldout"), "heldout")
            for _ in range(n)]


def train_reader(steps: int = 300, batch: int = 128, seed: int = 0) -> tuple[SceneReaderNet, dict[str, Any]]:
    """Train a reader on fresh scenes every step, a quarter of them rendered at 32x32 and pooled."""
    t0 = time.time()
    rng = random.Random(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SceneReaderNet()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    with _one_thread():
        for step in range(steps):
            scenes = _training_scenes(rng, batch)
            size = 2 * READ_SIZE if step % 4 == 3 else READ_SIZE
            x = to_read_size(C.render(scenes, size))
            loss = reader_loss(net, x, targets(scenes))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    return net, {"steps": steps, "train_seconds": round(time.time() - t0, 2), "version": READER_VERSION}


class SceneReader:
    """Reads images back into scene graphs (:meth:`read`)."""

    def __init__(self, net: SceneReaderNet, meta: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.meta = meta

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """(B, cells, 4) long: present, shape, colour, size (argmax per head)."""
        out = []
        for i in range(0, len(x), batch_size):
            lg = self.net(to_read_size(x[i:i + batch_size].to(self.device).float()))
            out.append(torch.stack([h.argmax(-1) for h in _split(lg)], -1).cpu())
        return torch.cat(out) if out else torch.zeros(0, CELLS, 4, dtype=torch.long)

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """(B, 4 * 2 * width) penultimate per-cell features: the space where the guidance sweep measures
        how varied the images of one prompt are (pixel distances say little about variety)."""
        out = [self.net.body[:-1](to_read_size(x[i:i + batch_size].to(self.device).float())).flatten(1).cpu()
               for i in range(0, len(x), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, 0)

    def read(self, x: torch.Tensor) -> list[tuple[C.Obj, ...]]:
        """The objects found in each image (cells in row-major order)."""
        graphs = []
        for cells in self.predict(x).tolist():
            graphs.append(tuple(C.Obj(C.SHAPES[s], C.COLOUR_NAMES[c], C.SIZE_NAMES[z], k // C.GRID, k % C.GRID)
                                for k, (p, s, c, z) in enumerate(cells) if p))
        return graphs


def reader_accuracy(reader: SceneReader, sets: list[C.CaptionedSet]) -> dict[str, float]:
    """Per-attribute accuracy on real images: shape, colour, size over the true objects (read in
    their cells), count and position (the exact set of occupied cells) per image."""
    hits = {a: 0 for a in ATTRIBUTES}
    n_obj = n_img = 0
    for s in sets:
        pred, true = reader.predict(s.x), targets(s.scenes)
        present = true[..., 0] == 1
        for k, a in enumerate(("shape", "colour", "size"), start=1):
            hits[a] += int((pred[..., k][present] == true[..., k][present]).sum())
        hits["count"] += int((pred[..., 0].sum(1) == present.sum(1)).sum())
        hits["position"] += int((pred[..., 0].bool() == present).all(1).sum())
        n_obj += int(present.sum())
        n_img += len(s)
    return {a: hits[a] / (n_obj if a in ("shape", "colour", "size") else n_img) for a in ATTRIBUTES}


def _recipe_hash() -> str:
    recipe = {"v": READER_VERSION, "shapes": C.SHAPES, "colours": C.COLOURS, "sizes": C.SIZES, "grid": C.GRID,
              "jitter": C.JITTER, "heads": HEADS}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def reader_path(root: Path | str | None = None) -> Path:
    return cache_dir(root) / f"scene-reader-{_recipe_hash()}.safetensors"


_LOADED: dict[str, SceneReader] = {}


def save_reader(reader: SceneReader, root: Path | str | None = None) -> Path:
    """Write ``reader`` to the cache of ``root`` (atomically), so another process finds it trained."""
    from safetensors.torch import save_file

    path = reader_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in reader.net.state_dict().items()}, str(tmp),
              metadata={"meta": json.dumps(reader.meta)})
    tmp.replace(path)
    return path


def scene_reader(*, root: Path | str | None = None, device: torch.device | str = "cpu") -> SceneReader:
    """The cached reader, trained on first use (then its held-out accuracy is stored with it)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = reader_path(root)
    key = f"{_recipe_hash()}|{device}"  # one recipe, one (deterministic) reader, wherever it is cached
    if key in _LOADED:
        return _LOADED[key]
    net = meta = None
    if path.exists():
        try:
            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {})["meta"])
            net = SceneReaderNet()
            net.load_state_dict(load_file(str(path)))
        except Exception:  # a corrupt cache file: retrain
            net = None
    if net is None or meta is None:
        net, meta = train_reader()
        ds = C.CaptionsDataset(16, "captions16")
        meta["heldout_accuracy"] = reader_accuracy(SceneReader(net, meta), [ds.test_set("seen", 50, seed=1),
                                                                         ds.test_set("heldout", 50, seed=1)])
        save_reader(SceneReader(net, meta), root)
    reader = SceneReader(net, meta, device)
    _LOADED[key] = reader
    return reader
