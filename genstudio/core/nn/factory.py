"""Pick a network body for a dataset's modality: ResidualMLP for vectors, UNet or DiT for images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec
from genstudio.core.nn.dit import DiT, default_patch
from genstudio.core.nn.mlp import ResidualMLP
from genstudio.core.nn.unet import UNet, default_mults


def _grid_net(spec: DataSpec, *, channels: int, num_res: int, num_classes: int, out_mult: int, dropout: float,
              backbone: str, dit_depth: int, **_: Any) -> nn.Module:
    """(C, H, W) data: a U-Net, or a DiT of width 4 * ``channels``."""
    c, h, w = spec.shape
    if backbone == "dit":
        return DiT(c, (h, w), default_patch(h, w), dim=4 * channels, depth=dit_depth, num_classes=num_classes,
                   out_ch=c * out_mult)
    mults = default_mults(min(h, w))
    while h % 2 ** (len(mults) - 1) or w % 2 ** (len(mults) - 1):  # odd sizes: fewer levels
        mults = mults[:-1]
    return UNet(c, channels, mults, num_res=num_res, num_classes=num_classes, out_ch=c * out_mult, dropout=dropout)


def _vector_net(spec: DataSpec, *, hidden: int, depth: int, num_classes: int, out_mult: int, fourier: int,
                **_: Any) -> nn.Module:
    """(D,) data: a residual MLP."""
    if len(spec.shape) != 1:
        raise ValueError(f"no network for data of shape {spec.shape} (kind {spec.kind!r})")
    return ResidualMLP(spec.shape[0], hidden, depth, num_classes=num_classes, out_dim=spec.shape[0] * out_mult,
                       fourier=fourier)


# Modality.network -> body builder; a new modality with a new body adds its builder here from its module.
NETWORKS: dict[str, Callable[..., nn.Module]] = {"grid": _grid_net, "vector": _vector_net}


def net_for(spec: DataSpec, *, hidden: int = 128, depth: int = 3, channels: int = 32, num_res: int = 1,
            num_classes: int = 0, out_mult: int = 1, dropout: float = 0.0, fourier: int = 0,
            backbone: str = "unet", dit_depth: int = 4) -> nn.Module:
    """``net(x, t, y=None)`` with output shaped like x (times ``out_mult`` channels/features, e.g.
    2 for models that also predict a variance), the body the data's modality names
    (:data:`NETWORKS`). MLP settings apply to vectors, U-Net ones to images.
    ``backbone="dit"`` gives images a DiT of width 4 * ``channels`` and ``dit_depth`` blocks instead."""
    if backbone not in ("unet", "dit"):
        raise ValueError(f"unknown backbone {backbone!r} (unet or dit)")
    build = NETWORKS.get(spec.modality.network)
    if build is None:
        raise ValueError(f"no network for {spec.kind} data (shape {spec.shape})")
    return build(spec, hidden=hidden, depth=depth, channels=channels, num_res=num_res, num_classes=num_classes,
                 out_mult=out_mult, dropout=dropout, fourier=fourier, backbone=backbone, dit_depth=dit_depth)


@dataclass
class NetConfig(ModelConfig):
    """Network and optimiser settings shared by every family built on :func:`net_for` (DDPM, flow
    matching, consistency, NCSN, score SDEs): one definition, so their forms and defaults agree."""

    hidden: int = param(128, "MLP width (2-D data)", range=(8, 4096), kinds=("points2d", "latent"))
    depth: int = param(3, "MLP residual blocks (2-D data)", range=(1, 32), kinds=("points2d", "latent"))
    fourier: int = param(4, "Fourier-feature octaves of the MLP input (2-D data; 0 = off): sharper modes "
                         "for the same width", range=(0, 12), kinds=("points2d", "latent"))
    channels: int = param(16, "U-Net base channels (images); DiT width is 4x this", range=(4, 512), kinds=("image",))
    num_res: int = param(1, "U-Net residual blocks per resolution (images)", range=(1, 4), kinds=("image",))
    backbone: str = param("unet", "Image network: U-Net or DiT (patch transformer, adaLN-Zero)",
                          choices=("unet", "dit"), kinds=("image",))
    ema_decay: float = param(0.999, "EMA decay of the sampling weights", range=(0.0, 0.99999), live=True)
    grad_clip: float = param(1.0, "Clip the gradient norm (0 = off)", range=(0.0, 1000.0), live=True)

    def net_kwargs(self) -> dict[str, Any]:
        """The :func:`net_for` arguments these settings choose."""
        return {"hidden": self.hidden, "depth": self.depth, "fourier": self.fourier, "channels": self.channels,
                "num_res": self.num_res, "backbone": self.backbone}


def net_ema_adam(data: DataSpec, config: NetConfig, device: torch.device | str, **extra: Any
                 ) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer]:
    """What every :func:`net_for` family trains with: the network (``extra`` goes to net_for, e.g.
    ``num_classes``), its EMA copy for sampling, and Adam at the config's lr."""
    from genstudio.core.nn.ema import ema_copy

    net = net_for(data, **config.net_kwargs(), **extra).to(device)
    return net, ema_copy(net), torch.optim.Adam(net.parameters(), lr=config.lr)
