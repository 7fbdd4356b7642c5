"""The truncation trick's fidelity/diversity trade-off as numbers (BigGAN's figure 4, small).

For each truncation value a class-conditional model draws n samples (classes in turn); the
dataset's judge scores them: **fidelity** = the fraction judged the requested class (images: the
project's classifier, ``classifier_for``; Gaussian mixtures: the nearest mean), **diversity** = the
mean pairwise feature distance between samples of one class, averaged over classes, plus
precision/recall (k = 3) and the Fréchet distance to n real points in the same features (FCD
for images, through the modality's extractor as ``genstudio eval`` uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from genstudio.core.metrics import functional as M
from genstudio.core.plugin import final_state


def _predict(dataset: Any, extractor: Any, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, predicted class or None): the classifier's argmax, or a mixture's nearest mean."""
    feats, probs = extractor.features_and_probs(x)
    if probs is not None:
        return feats, np.argmax(probs, 1)
    means = getattr(dataset, "means", None)
    if isinstance(means, torch.Tensor):
        return feats, torch.cdist(x.double().reshape(len(x), -1).cpu(), means.double().cpu()).argmin(1).numpy()
    return feats, None


def class_diversity(feats: np.ndarray, labels: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between features of same-class samples, averaged over classes."""
    out = []
    for k in np.unique(labels):
        f = torch.as_tensor(feats[labels == k], dtype=torch.float64)
        if len(f) > 1:
            d = torch.cdist(f, f)
            out.append(float(d.sum() / (len(f) * (len(f) - 1))))
    return float(np.mean(out)) if out else float("nan")


def truncation_curve(model: Any, dataset: Any, truncations: Sequence[float], *, n: int = 500, seed: int = 0,
                     device: Any = "cpu") -> list[dict[str, float]]:
    """One row per truncation value: ``truncation``, ``accuracy`` (fidelity), ``diversity``,
    ``precision``, ``recall`` and ``fd`` (the Fréchet distance in the judge's features: FCD on
    images). ``model`` is Conditional (``num_classes`` > 0) and takes ``truncation=`` in sample()."""
    k = int(model.num_classes)
    labels = torch.arange(n) % k
    ex = next(iter(dataset.spec.modality.extractors(dataset, ["fcd", "accuracy"], device=device).values()))
    real, _ = ex.features_and_probs(dataset.fixed(n, seed=seed)[0])
    rows = []
    for t in truncations:
        with torch.no_grad():
            x = final_state(model.sample(n, seed=seed, cond=labels.to(model.device), truncation=float(t))).x.cpu()
        x = dataset.spec.modality.clamp(x)
        feats, pred = _predict(dataset, ex, x)
        p, r = M.precision_recall(real, feats, k=3)
        rows.append({"truncation": float(t),
                     "accuracy": float("nan") if pred is None else float((pred == labels.numpy()).mean()),
                     "diversity": class_diversity(feats, labels.numpy()), "precision": p, "recall": r,
                     "fd": float(M.fid_from_features(real, feats))})
    return rows
