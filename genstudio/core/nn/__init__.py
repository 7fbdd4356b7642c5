"""Shared network blocks. Every network here is ``net(x, t, y=None)`` with t (B,) in [0, 1] and
optional labels (a null class for classifier-free guidance), so diffusion, score, flow-matching
and consistency plugins reuse the same bodies."""

from genstudio.core.nn.dit import DiT
from genstudio.core.nn.ema import ema_copy, ema_decay_at, ema_update
from genstudio.core.nn.embed import ClassEmbedding, TimeEmbedding, sinusoidal_embedding
from genstudio.core.nn.factory import NetConfig, net_ema_adam, net_for
from genstudio.core.nn.mlp import ResidualMLP
from genstudio.core.nn.unet import UNet, default_mults

__all__ = ["ClassEmbedding", "DiT", "NetConfig", "ResidualMLP", "TimeEmbedding", "UNet", "default_mults", "ema_copy", "net_ema_adam",
           "ema_decay_at", "ema_update", "net_for", "sinusoidal_embedding"]
