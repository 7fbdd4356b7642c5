"""Mode coverage: how many of the data's modes a model's samples reach, so mode collapse is a number.

- A Gaussian mixture with known means and std (8 Gaussians, gmm2d): a mode is covered when at
  least one sample lies within 3 std of its mean; "high quality" is the fraction of samples
  within 3 std of *some* mean (Metz et al. 2017's unrolled-GAN measure).
- A labelled image dataset: the project's own classifier for that data (``classifier_for``,
  trained on first use and cached) labels the samples; a class is covered when it receives at
  least a quarter of its fair share n / K of them (a few stray misclassifications do not count).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

RADIUS_STD = 3.0
FAIR_SHARE = 0.25


def mixture_coverage(x: torch.Tensor, means: torch.Tensor, std: float, radius: float = RADIUS_STD
                     ) -> dict[str, float]:
    """``modes``: means with a sample within ``radius`` std; ``hq``: fraction of samples within
    ``radius`` std of their nearest mean; ``modes_total``: the number of means."""
    d = torch.cdist(x.detach().double().cpu().reshape(len(x), -1), means.double().cpu())
    near = d <= radius * std
    return {"modes": float(near.any(0).sum()), "hq": float(near.any(1).double().mean()) if len(x) else 0.0,
            "modes_total": float(len(means))}


def class_coverage(labels: np.ndarray, num_classes: int, fair_share: float = FAIR_SHARE) -> dict[str, float]:
    """``modes``: classes predicted for at least ``fair_share`` * n / K of the n samples."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)[:num_classes]
    need = max(1.0, fair_share * len(labels) / num_classes)
    return {"modes": float((counts >= need).sum()), "modes_total": float(num_classes)}


def coverage_for(dataset: Any, *, classify: bool = False, device: torch.device | str = "cpu"
                 ) -> Callable[[torch.Tensor], dict[str, float]] | None:
    """A function samples -> coverage for this dataset, or None when it has no known modes.
    Mixtures are free; ``classify=True`` lets labelled image data use its classifier (which may
    train for a few seconds on first use, so callers ask for it only where collapse is the question)."""
    means, std = getattr(dataset, "means", None), getattr(dataset, "std", None)
    if isinstance(means, torch.Tensor) and isinstance(std, float) and means.dim() == 2:
        return lambda x: mixture_coverage(x, means, std)
    spec = dataset.spec
    if classify and spec.num_classes > 1 and spec.modality.spatial:
        from genstudio.core.metrics.features import classifier_for

        cnn = classifier_for(dataset, device=device)
        if not cnn.num_classes:
            return None

        def by_class(x: torch.Tensor) -> dict[str, float]:
            _, probs = cnn.features_and_probs(x)
            return class_coverage(np.argmax(probs, 1), cnn.num_classes)
        return by_class
    return None
