"""scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), optionally upsampled
to 16x16 with bilinear interpolation. Ships inside the sklearn wheel: no download."""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from genstudio.core.data import DataSpec, TensorDataset, register_dataset


@lru_cache(maxsize=1)
def _raw() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # (N,1,8,8) in [0,1]
    return x * 2 - 1, torch.tensor(d.target, dtype=torch.long)


@register_dataset("digits", "sklearn handwritten digits, 1797 x 1x8x8, 10 classes", kind="image")
def digits() -> TensorDataset:
    x, y = _raw()
    return TensorDataset(DataSpec("digits", "image", (1, 8, 8), 10, len(x), "handwritten digits 8x8"), x, y)


@register_dataset("digits16", "sklearn digits upsampled to 1x16x16 (bilinear)", kind="image")
def digits16() -> TensorDataset:
    x, y = _raw()
    x16 = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False).clamp(-1, 1)
    return TensorDataset(DataSpec("digits16", "image", (1, 16, 16), 10, len(x), "digits 16x16"), x16, y)
