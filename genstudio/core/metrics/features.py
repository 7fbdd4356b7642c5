"""Feature extractors for sample-quality metrics, with nothing downloaded.

* :class:`ClassifierExtractor` -- a small CNN trained on the dataset itself on first use (seconds on
  a CPU), cached under ``<data dir>/extractors`` keyed by a hash of the dataset tensor and the
  architecture/recipe version, saved with safetensors. Its penultimate features give the
  **Fréchet classifier distance (FCD)** -- not FID: the numbers are comparable only between runs
  evaluated with the same extractor hash. Its softmax gives an Inception-style score and the class
  accuracy of conditional samples. Unlabelled datasets (an image folder without sub-folders) train
  the same network to predict image rotations (0/90/180/270 degrees), a label-free task whose
  features still see shape; such extractors have no class probabilities.
* :class:`InceptionExtractor` -- the FID Inception-v3 from a weights file the user gives.
* :class:`RawExtractor` -- 2-D points are their own features.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genstudio.core.data import Dataset, TensorDataset

ARCH_VERSION = 1  # bump when the network or the training recipe changes (invalidates caches)
FEATURE_DIM = 128


class Extractor:
    """Maps samples to feature vectors (and, if it can, class probabilities)."""

    name: str = "extractor"
    hash: str = ""
    dim: int = 0
    num_classes: int = 0  # 0: no class probabilities (no IS / accuracy)
    meta: dict[str, Any]

    def features_and_probs(self, x: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the eval JSON stores about the extractor (the UI shows ``name``)."""
        return {"name": self.name, "hash": self.hash, "dim": self.dim, "num_classes": self.num_classes,
                **getattr(self, "meta", {})}


class RawExtractor(Extractor):
    """2-D (or any low-dimensional) points: the metrics work on the raw coordinates."""

    def __init__(self, dim: int) -> None:
        self.name, self.hash, self.dim, self.meta = "raw-points", "identity", dim, {}

    def features_and_probs(self, x: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, None]:
        return x.detach().cpu().double().reshape(len(x), -1).numpy(), None


# -- the small classifier ---------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """Conv net for small images: stride-2 stages down to <= 4x4, then a 128-d feature layer."""

    def __init__(self, in_ch: int, size: int, num_classes: int) -> None:
        super().__init__()
        width = 32 if size <= 8 else 16  # keeps first-use training to seconds on a CPU
        layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 3, padding=1), nn.GELU()]
        ch, s = width, size
        while s > 4:
            layers += [nn.Conv2d(ch, min(2 * ch, 128), 3, stride=2, padding=1), nn.GELU()]
            ch, s = min(2 * ch, 128), math.ceil(s / 2)
        layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.feat = nn.Sequential(nn.Linear(ch * 16, FEATURE_DIM), nn.GELU())
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.feat(self.body(x))
        return f, self.head(f)


def dataset_hash(x: torch.Tensor, y: torch.Tensor | None) -> str:
    """Content hash of the data (plus the architecture version): the extractor's identity."""
    h = hashlib.sha256(f"arch{ARCH_VERSION}|{tuple(x.shape)}|".encode())
    h.update(x.detach().cpu().float().contiguous().numpy().tobytes())
    if y is not None:
        h.update(y.detach().cpu().long().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image in 4 rotations, labelled 0..3 (the label-free training task)."""
    xs = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    return torch.cat(xs), torch.arange(4).repeat_interleave(len(x))


def _shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random translation by up to 1 pixel (edge padding): cheap augmentation."""
    n, _, h, w = x.shape
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dy, dx = torch.randint(0, 3, (2,), generator=g).tolist()
    return p[:, :, dy:dy + h, dx:dx + w]


@contextmanager
def _one_thread() -> Iterator[None]:
    """Train with one intra-op thread: this tiny net gains nothing from more, and on a loaded
    2-core machine two spinning OpenMP threads made training 10x slower (111 s vs 9 s, measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_classifier(x: torch.Tensor, y: torch.Tensor | None, *, steps: int = 300, batch: int = 128,
                     seed: int = 0, log: Any = None) -> tuple[SmallCNN, dict[str, Any]]:
    """Train a :class:`SmallCNN` on (x, y) (rotation prediction when y is None) with a 10% held-out
    split; returns the net and metadata (task, held-out accuracy, seconds)."""
    t0 = time.time()
    task = "classes" if y is not None else "rotation"
    if y is None:
        x, y = _rotations(x)
    x, y = x.float().cpu(), y.long().cpu()
    k = int(y.max()) + 1
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    n_val = max(1, len(x) // 10)
    val, tr = perm[:n_val], perm[n_val:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SmallCNN(x.shape[1], x.shape[-1], k)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    net.train()
    with _one_thread():
        _fit(net, opt, sched, x, y, tr, g, steps, batch, task == "classes", log)
    net.eval()
    with torch.no_grad():
        acc = float((net(x[val])[1].argmax(1) == y[val]).float().mean())
    return net, {"task": task, "val_acc": acc, "train_seconds": round(time.time() - t0, 2),
                 "num_classes": k, "steps": steps}


def _fit(net: SmallCNN, opt: torch.optim.Optimizer, sched: Any, x: torch.Tensor, y: torch.Tensor,
         tr: torch.Tensor, g: torch.Generator, steps: int, batch: int, augment: bool, log: Any) -> None:
    for step in range(steps):
        idx = tr[torch.randint(0, len(tr), (batch,), generator=g)]
        xb = _shift(x[idx], g) if augment else x[idx]
        loss = F.cross_entropy(net(xb)[1], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and step % 100 == 0:
            log(step, steps, float(loss))


def cache_dir(root: Path | str | None = None) -> Path:
    if root is None:
        from genstudio.core.runs import default_root

        root = default_root()
    return Path(root) / "extractors"


class ClassifierExtractor(Extractor):
    """Penultimate features + softmax of a :class:`SmallCNN` trained on one dataset."""

    def __init__(self, net: SmallCNN, dataset_name: str, hash_: str, meta: dict[str, Any],
                 device: torch.device | str = "cpu") -> None:
        self.net = net.eval().to(device)
        self.device = torch.device(device)
        short = re.sub(r"[^A-Za-z0-9]+", "-", dataset_name.split("/")[-1]).strip("-")[:24] or "data"
        self.name = f"cnn-{short}" + ("-rot" if meta.get("task") == "rotation" else "")
        self.hash = hash_
        self.dim = FEATURE_DIM
        self.num_classes = int(meta["num_classes"]) if meta.get("task") == "classes" else 0
        self.meta = {k: meta[k] for k in ("task", "val_acc", "train_seconds") if k in meta}
        self.meta["arch_version"] = ARCH_VERSION

    @torch.no_grad()
    def features_and_probs(self, x: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
        feats, probs = [], []
        for i in range(0, len(x), batch_size):
            f, logits = self.net(x[i:i + batch_size].to(self.device).float())
            feats.append(f.double().cpu())
            probs.append(torch.softmax(logits.double(), 1).cpu())
        f = torch.cat(feats).numpy()
        return f, (torch.cat(probs).numpy() if self.num_classes else None)


def _save(path: Path, net: SmallCNN, meta: dict[str, Any], shape: tuple[int, ...]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(state, tmp, metadata={"meta": json.dumps(meta), "shape": json.dumps(list(shape))})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> tuple[SmallCNN, dict[str, Any]] | None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as f:
            md = f.metadata() or {}
        meta, shape = json.loads(md["meta"]), json.loads(md["shape"])
        net = SmallCNN(shape[0], shape[-1], int(meta["num_classes"]))
        net.load_state_dict(load_file(str(path)))
        return net, meta
    except Exception:  # corrupt / foreign cache file: retrain
        return None


def classifier_for(dataset: Dataset, *, root: Path | str | None = None, device: torch.device | str = "cpu",
                   steps: int = 300, log: Any = None) -> ClassifierExtractor:
    """The cached classifier for an image dataset, training it on first use. Procedural image
    datasets train on a fixed draw of 4096 images."""
    if not dataset.spec.modality.spatial:  # the classifier is a small CNN over (C, H, W)
        raise ValueError(f"no classifier extractor for {dataset.spec.name} ({dataset.spec.kind} data)")
    if isinstance(dataset, TensorDataset):
        x, y = dataset.x, dataset.y
    else:
        x, y = dataset.fixed(4096, seed=12345)
    if y is not None and (y.dim() != 1 or int(y.max()) < 1):  # no class labels (token ids of captions)
        y = None
    h = dataset_hash(x, y)
    short = re.sub(r"[^A-Za-z0-9]+", "-", dataset.spec.name.split("/")[-1]).strip("-")[:24] or "data"
    path = cache_dir(root) / f"{short}-{h}.safetensors"
    loaded = _load(path) if path.exists() else None
    if loaded is None:
        net, meta = train_classifier(x, y, steps=steps, log=log)
        meta["dataset"] = dataset.spec.name
        _save(path, net, meta, tuple(x.shape[1:]))
    else:
        net, meta = loaded
    return ClassifierExtractor(net, dataset.spec.name, h, meta, device)


class InceptionExtractor(Extractor):
    """pool3 features (2048-d) and 1008-way softmax of the FID Inception-v3 (user-given weights)."""

    def __init__(self, weights: str | Path, device: torch.device | str = "cpu") -> None:
        from genstudio.core.metrics.inception import FEATURE_DIM as INC_DIM
        from genstudio.core.metrics.inception import NUM_CLASSES, load_fid_inception

        path = Path(weights).expanduser()
        self.net = load_fid_inception(path, device)
        self.device = torch.device(device)
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self.name = "inception-v3"
        self.hash = h.hexdigest()[:16]
        self.dim = INC_DIM
        self.num_classes = NUM_CLASSES
        self.meta = {"weights": path.name}

    @torch.no_grad()
    def features_and_probs(self, x: torch.Tensor, batch_size: int = 50) -> tuple[np.ndarray, np.ndarray]:
        feats, probs = [], []
        for i in range(0, len(x), batch_size):
            f, logits = self.net(x[i:i + batch_size].to(self.device).float())
            feats.append(f.double().cpu())
            probs.append(torch.softmax(logits.double(), 1).cpu())
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()
