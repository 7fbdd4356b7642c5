"""Inception-v3 as used for FID (the TF 2015-12-05 graph ported by pytorch-fid), written compactly
in torch because torchvision is not available here.

Parameter names match torchvision's ``Inception3`` with pytorch-fid's FID patches, so the standard
``pt_inception-2015-12-05-*.pth`` state dict loads as is. The FID variant differs from torchvision's
network in its pooling: the average pools inside blocks A, C and E ignore zero padding (as
TensorFlow's do) and the last block (Mixed_7c) max-pools its pool branch. Nothing is downloaded:
the user points GenStudio at the weights file.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the 2015 graph has 1008 logits (1000 ImageNet classes + unused)


class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3) -> ReLU; the unit every block is made of."""

    def __init__(self, cin: int, cout: int, k: int | tuple[int, int], s: int = 1,
                 p: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


C = BasicConv2d


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _Block(nn.Module):
    def chain(self, x: torch.Tensor, *names: str) -> torch.Tensor:
        for n in names:
            x = getattr(self, n)(x)
        return x


class InceptionA(_Block):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = C(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = C(cin, 48, 1), C(48, 64, 5, p=2)
        self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3 = C(cin, 64, 1), C(64, 96, 3, p=1), C(96, 96, 3, p=1)
        self.branch_pool = C(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.chain(x, "branch5x5_1", "branch5x5_2"),
                          self.chain(x, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
                          self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionB(_Block):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = C(cin, 384, 3, s=2)
        self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3 = C(cin, 64, 1), C(64, 96, 3, p=1), C(96, 96, 3, s=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x), self.chain(x, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(_Block):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        h, v = dict(k=(1, 7), p=(0, 3)), dict(k=(7, 1), p=(3, 0))
        self.branch1x1 = C(cin, 192, 1)
        self.branch7x7_1, self.branch7x7_2, self.branch7x7_3 = C(cin, c7, 1), C(c7, c7, **h), C(c7, 192, **v)
        self.branch7x7dbl_1 = C(cin, c7, 1)
        self.branch7x7dbl_2, self.branch7x7dbl_3 = C(c7, c7, **v), C(c7, c7, **h)
        self.branch7x7dbl_4, self.branch7x7dbl_5 = C(c7, c7, **v), C(c7, 192, **h)
        self.branch_pool = C(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.chain(x, "branch7x7_1", "branch7x7_2", "branch7x7_3"),
                          self.chain(x, *(f"branch7x7dbl_{i}" for i in range(1, 6))),
                          self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionD(_Block):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = C(cin, 192, 1), C(192, 320, 3, s=2)
        self.branch7x7x3_1, self.branch7x7x3_2 = C(cin, 192, 1), C(192, 192, (1, 7), p=(0, 3))
        self.branch7x7x3_3, self.branch7x7x3_4 = C(192, 192, (7, 1), p=(3, 0)), C(192, 192, 3, s=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.chain(x, "branch3x3_1", "branch3x3_2"),
                          self.chain(x, *(f"branch7x7x3_{i}" for i in range(1, 5))),
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(_Block):
    """``pool="avg"`` for Mixed_7b, ``"max"`` for Mixed_7c (the FID graph's quirk)."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = C(cin, 320, 1)
        self.branch3x3_1 = C(cin, 384, 1)
        self.branch3x3_2a, self.branch3x3_2b = C(384, 384, (1, 3), p=(0, 1)), C(384, 384, (3, 1), p=(1, 0))
        self.branch3x3dbl_1, self.branch3x3dbl_2 = C(cin, 448, 1), C(448, 384, 3, p=1)
        self.branch3x3dbl_3a, self.branch3x3dbl_3b = C(384, 384, (1, 3), p=(0, 1)), C(384, 384, (3, 1), p=(1, 0))
        self.branch_pool = C(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = self.chain(x, "branch3x3dbl_1", "branch3x3dbl_2")
        pooled = _tf_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b), self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inputs (N, 3, H, W) in [-1, 1] (any H, W: resized to 299 bilinearly, as pytorch-fid does);
    ``forward`` returns the 2048-d pool3 features and the 1008 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = C(3, 32, 3, s=2)
        self.Conv2d_2a_3x3 = C(32, 32, 3)
        self.Conv2d_2b_3x3 = C(32, 64, 3, p=1)
        self.Conv2d_3b_1x1 = C(64, 80, 1)
        self.Conv2d_4a_3x3 = C(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c, self.Mixed_6d = InceptionC(768, 160), InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b, self.Mixed_7c = InceptionE(1280, "avg"), InceptionE(2048, "max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        feat = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return feat, self.fc(feat)


def load_fid_inception(path: str | Path, device: torch.device | str = "cpu") -> FIDInceptionV3:
    """Build the network and load a pt_inception-2015-12-05 state dict (weights_only).
    Missing BatchNorm ``num_batches_tracked`` counters are fine; any other mismatch is an error."""
    bad = f"{Path(path).name} is not an FID Inception-v3 state dict"
    try:
        state = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError:  # torch's own message is a page about weights_only
        raise ValueError(f"{bad}: it holds pickled objects other than tensors, which are not loaded "
                         "(torch.load weights_only)") from None
    except Exception as e:  # a truncated or foreign file: one line, not a traceback
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise ValueError(f"{bad}: cannot read it ({e.__class__.__name__}: {first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    net = FIDInceptionV3()
    if not isinstance(state, dict):
        raise ValueError(f"{bad} (got {type(state).__name__})")
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"{bad}: {str(e).splitlines()[-1].strip()}") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{bad} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net.eval().to(device)
