"""Normalising-flow layers and whole flows (RealNVP, Glow, MAF, IAF) for 2-D points and images.

Convention: every :class:`Flow` maps *data -> base* in ``forward`` and returns ``(y, logdet)`` with
``logdet = log |det dy/dx|`` per sample; ``inverse`` maps base -> data and returns the log-det of
that direction. So ``log p(x) = log N(f(x)) + logdet`` and a stack just adds log-dets.

Images are discrete: a :class:`Quantization` with K grey levels turns them into continuous values
by uniform dequantisation inside each level's bin, which makes ``log p(y) + D log(bin width)`` a
lower bound on the log-probability of the discrete image (Theis et al. 2016). Every likelihood
plugin (flows, VAE, PixelCNN) reports that discrete log-probability, so their bits/dim compare.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.nn.made import MADE
from genstudio.core.nn.mlp import ResidualMLP

LOG_2PI = math.log(2 * math.pi)


def sum_except_batch(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).sum(1)


def standard_normal_logp(z: Tensor) -> Tensor:
    """log N(z; 0, I) per sample, summed over every non-batch dimension."""
    return sum_except_batch(-0.5 * (z**2 + LOG_2PI))


def soft_clamp(x: Tensor, bound: float) -> Tensor:
    """bound * tanh(x / bound): keeps log-scales finite without killing their gradient."""
    return bound * torch.tanh(x / bound)


class StaticMLP(nn.Module):
    """:class:`ResidualMLP` without its time input (flows, VAEs and energies are not time-indexed).
    The output layer starts at zero, so couplings built on it start as the identity."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.net = ResidualMLP(in_dim, hidden=hidden, depth=depth, out_dim=out_dim)

    def forward(self, x: Tensor) -> Tensor:
        # ResidualMLP's own forward, with the constant t = 0 embedding computed once per call
        # for one row and broadcast (it is 40% of the cost of a small net otherwise)
        net = self.net
        e = F.silu(net.time(x.new_zeros(1)))
        h = net.inp(x)
        for block in net.blocks:
            h = block(h, e)
        return net.out(h)


# --------------------------------------------------------------------------------------------
# quantisation: discrete images <-> continuous values
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quantization:
    """K grey levels at -1, -1 + 2/(K-1), ..., 1; level k owns the bin [v_k - d, v_k + d), d = 1/(K-1)."""

    levels: int

    @property
    def half_width(self) -> float:
        return 1.0 / (self.levels - 1)

    @property
    def bounds(self) -> tuple[float, float]:
        return -1.0 - self.half_width, 1.0 + self.half_width

    def index(self, x: Tensor) -> Tensor:
        """Level index 0..K-1 of each value (rounded to the nearest level)."""
        return ((x.clamp(-1, 1) + 1) * 0.5 * (self.levels - 1)).round().long()

    def value(self, k: Tensor) -> Tensor:
        return k.float() * (2.0 / (self.levels - 1)) - 1.0

    def snap(self, x: Tensor) -> Tensor:
        return self.value(self.index(x))

    def dequantize(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(x.shape, generator=generator, device=x.device if generator is None else generator.device)
        return self.snap(x) + self.half_width * (2 * u.to(x.device) - 1)

    def log_bin_volume(self, dim: int) -> float:
        """log of one level's bin volume in D dimensions: added to a density to get a probability."""
        return dim * math.log(2 * self.half_width)


def default_levels(spec_name: str) -> int:
    """The scikit-learn digits hold 17 grey levels (0..16); everything else is treated as 8-bit."""
    return 17 if spec_name == "digits" else 256


def bits_per_dim(log_prob_nats: Tensor, dim: int) -> Tensor:
    """Discrete log-probability (nats per sample) -> bits per dimension (lower is better)."""
    return -log_prob_nats / (dim * math.log(2))


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------
class Flow(nn.Module):
    """A bijection with tractable log-det (see the module docstring for the direction)."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class FlowSequence(Flow):
    def __init__(self, layers: list[Flow]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ld = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, d = layer(x)
            ld = ld + d
        return x, ld

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        ld = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, d = layer.inverse(z)
            ld = ld + d
        return z, ld

    def inverse_iter(self, z: Tensor) -> Iterator[tuple[int, str, Tensor]]:
        """Yield (layers left, layer name, value) after each inverse layer: the sampling trajectory."""
        n = len(self.layers)
        for i, layer in enumerate(reversed(self.layers)):
            z, _ = layer.inverse(z)
            yield n - 1 - i, type(layer).__name__, z


def _channel_view(p: Tensor, x: Tensor) -> Tensor:
    return p.view(1, -1, *([1] * (x.dim() - 2)))


def _spatial(x: Tensor) -> int:
    return int(math.prod(x.shape[2:]))


class ActNorm(Flow):
    """Per-channel affine map whose first training batch sets it to zero mean, unit variance (Glow)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _init(self, x: Tensor) -> None:
        dims = [0, *range(2, x.dim())]
        self.loc.copy_(-x.mean(dims))
        self.log_scale.copy_(-torch.log(x.std(dims) + 1e-6))
        self.initialized.fill_(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not int(self.initialized) and x.shape[0] > 1:
            self._init(x)
        y = (x + _channel_view(self.loc, x)) * _channel_view(self.log_scale, x).exp()
        return y, self.log_scale.sum().expand(x.shape[0]) * _spatial(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = z * _channel_view(-self.log_scale, z).exp() - _channel_view(self.loc, z)
        return x, -self.log_scale.sum().expand(z.shape[0]) * _spatial(z)


class InvertibleLinear(Flow):
    """Glow's invertible 1x1 convolution (a dense C x C matrix on vectors), LU-parametrised:
    W = P L (U + diag(sign * exp(log_s))), so log|det W| = sum(log_s) costs O(C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels))[0]
        p, low, up = torch.linalg.lu(w)
        s = torch.diagonal(up)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("l_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(low)
        self.upper = nn.Parameter(torch.triu(up, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> Tensor:
        low = self.lower * self.l_mask + self.eye
        up = self.upper * self.l_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ low @ up

    @staticmethod
    def _mix(x: Tensor, w: Tensor) -> Tensor:
        if x.dim() == 2:
            return x @ w.T
        return F.conv2d(x, w.view(*w.shape, 1, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._mix(x, self.weight()), self.log_s.sum().expand(x.shape[0]) * _spatial(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        w_inv = torch.linalg.inv(self.weight().double()).to(z.dtype)
        return self._mix(z, w_inv), -self.log_s.sum().expand(z.shape[0]) * _spatial(z)


class AffineCoupling(Flow):
    """y = x on the mask, y = x * exp(s(x_m)) + t(x_m) off it (RealNVP). ``net`` maps the masked
    input to 2C channels (s, t); s is soft-clamped so an early bad step cannot overflow exp."""

    def __init__(self, mask: Tensor, net: nn.Module, max_log_scale: float = 3.0) -> None:
        super().__init__()
        self.register_buffer("mask", mask.float()[None])
        self.net = net
        self.max_log_scale = max_log_scale

    def _st(self, xm: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(xm).chunk(2, dim=1)
        inv = 1 - self.mask
        return soft_clamp(s, self.max_log_scale) * inv, t * inv

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._st(x * self.mask)
        return x * s.exp() + t, sum_except_batch(s)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._st(z * self.mask)
        return (z - t) * (-s).exp(), -sum_except_batch(s)


class Squeeze(Flow):
    """Space-to-depth (C, H, W) -> (4C, H/2, W/2): lets channel couplings and 1x1 convs mix space."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return F.pixel_shuffle(z, 2), z.new_zeros(z.shape[0])


class Flatten(Flow):
    """(C, H, W) <-> (C*H*W,): lets vector flows (MAF/IAF) run on images."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], -1), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z.reshape(z.shape[0], *self.shape), z.new_zeros(z.shape[0])


class LogitTransform(Flow):
    """Maps the bounded range (lo, hi) of dequantised pixels to R: squash to (a, 1-a), then logit
    (RealNVP's preprocessing); without it a Gaussian base wastes mass outside the pixel range."""

    def __init__(self, lo: float, hi: float, alpha: float = 0.05) -> None:
        super().__init__()
        self.lo, self.hi, self.alpha = lo, hi, alpha

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k = (1 - 2 * self.alpha) / (self.hi - self.lo)
        s = self.alpha + k * (x - self.lo)
        y = torch.log(s) - torch.log1p(-s)
        ld = sum_except_batch(math.log(k) - torch.log(s) - torch.log1p(-s))
        return y, ld

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        k = (1 - 2 * self.alpha) / (self.hi - self.lo)
        s = torch.sigmoid(z)
        x = self.lo + (s - self.alpha) / k
        ld = sum_except_batch(F.logsigmoid(z) + F.logsigmoid(-z) - math.log(k))
        return x, ld


class MaskedAutoregressive(Flow):
    """One MAF or IAF layer built on a :class:`MADE` with shift mu and log-scale alpha.

    MAF conditions on the data side:  z = (x - mu(x)) * exp(-alpha(x))  -> density in ONE pass,
    sampling needs D sequential passes. IAF conditions on the base side:
    x = z * exp(alpha(z)) + mu(z) -> sampling in ONE pass, density needs D passes.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...], order: Tensor, iaf: bool = False,
                 max_log_scale: float = 5.0) -> None:
        super().__init__()
        self.made = MADE(dim, hidden, n_out=2, order=order)
        self.iaf = iaf
        self.max_log_scale = max_log_scale

    def _params(self, v: Tensor) -> tuple[Tensor, Tensor]:
        out = self.made(v)
        return out[:, 0], soft_clamp(out[:, 1], self.max_log_scale)

    def _to_base_one_pass(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        mu, alpha = self._params(cond)
        return (x - mu) * (-alpha).exp(), -alpha.sum(1)

    def _to_data_one_pass(self, z: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        mu, alpha = self._params(cond)
        return z * alpha.exp() + mu, alpha.sum(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.iaf:
            return self._to_base_one_pass(x, x)
        z = torch.zeros_like(x)  # IAF density: solve for z one dimension per pass
        for _ in range(x.shape[1]):
            z, ld = self._to_base_one_pass(x, z)
        return z, ld

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if self.iaf:
            return self._to_data_one_pass(z, z)
        x = torch.zeros_like(z)  # MAF sampling: after pass k the first k dims (in order) are final
        for _ in range(z.shape[1]):
            x, ld = self._to_data_one_pass(z, x)
        return x, ld


# --------------------------------------------------------------------------------------------
# nets and whole flows
# --------------------------------------------------------------------------------------------
class CouplingConvNet(nn.Module):
    """Glow's coupling network: 3x3 conv, 1x1 conv, zero-initialised 3x3 conv to (s, t)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, 2 * channels, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def checkerboard_mask(c: int, h: int, w: int, parity: int) -> Tensor:
    ij = torch.arange(h)[:, None] + torch.arange(w)[None, :]
    return ((ij % 2) == parity).float().expand(c, h, w).clone()


def channel_mask(c: int, h: int, w: int, parity: int) -> Tensor:
    m = torch.zeros(c, h, w)
    half = c // 2
    if parity == 0:
        m[:half] = 1
    else:
        m[half:] = 1
    return m


def vector_mask(d: int, parity: int) -> Tensor:
    return ((torch.arange(d) % 2) == parity).float()


def auto_scales(shape: tuple[int, ...]) -> int:
    """How many squeezes an image flow uses: one for <= 8 px, two above (while sides stay even)."""
    h, w = shape[1], shape[2]
    n = 1 if max(h, w) <= 8 else 2
    while n > 0 and (h % (2**n) or w % (2**n)):
        n -= 1
    return n


class FlowModel(nn.Module):
    """A flow with an N(0, I) base. For images the first layer is the logit transform of the
    dequantised range, so ``log_prob`` is a density over the continuous (dequantised) pixels."""

    def __init__(self, layers: list[Flow], shape: tuple[int, ...], quant: Quantization | None = None,
                 alpha: float = 0.05) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.quant = quant
        pre: list[Flow] = [LogitTransform(*quant.bounds, alpha=alpha)] if quant is not None else []
        self.flow = FlowSequence(pre + layers)
        was = self.training
        self.eval()
        with torch.no_grad():
            self.z_shape = tuple(self.flow(torch.zeros(1, *self.shape))[0].shape[1:])
        self.train(was)

    @property
    def dim(self) -> int:
        return int(math.prod(self.shape))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow(x)

    def log_prob(self, x: Tensor) -> Tensor:
        """Continuous log-density (nats per sample)."""
        z, ld = self.flow(x)
        return standard_normal_logp(z) + ld

    def log_prob_discrete(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images: one-sample dequantisation bound on log P(discrete x). Points: the density."""
        if self.quant is None:
            return self.log_prob(x)
        y = self.quant.dequantize(x, generator)
        return self.log_prob(y) + self.quant.log_bin_volume(self.dim)

    def base_noise(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        dev = next(self.parameters()).device
        z = torch.randn((n, *self.z_shape), generator=generator, device=dev if generator is None else
                        generator.device)
        return z.to(dev) * temperature

    def decode(self, z: Tensor) -> Tensor:
        x, _ = self.flow.inverse(z.reshape(z.shape[0], *self.z_shape))
        return x.clamp(-1, 1) if self.quant is not None else x

    def encode(self, x: Tensor) -> Tensor:
        z, _ = self.flow(self.quant.snap(x) if self.quant is not None else x)
        return z.reshape(x.shape[0], -1)


def realnvp(shape: tuple[int, ...], hidden: int = 64, steps: int = 4, n_scales: int = 0,
            quant: Quantization | None = None) -> FlowModel:
    """Affine couplings with alternating masks (checkerboard then channel-wise after a squeeze
    for images; even/odd halves for vectors), each followed by an ActNorm."""
    layers: list[Flow] = []
    if len(shape) == 1:
        d = shape[0]
        for i in range(steps):
            layers += [AffineCoupling(vector_mask(d, i % 2), StaticMLP(d, 2 * d, hidden)), ActNorm(d)]
        return FlowModel(layers, shape, quant)
    c, h, w = shape
    for _ in range(n_scales or auto_scales(shape)):
        for i in range(steps):
            layers += [AffineCoupling(checkerboard_mask(c, h, w, i % 2), CouplingConvNet(c, hidden)), ActNorm(c)]
        layers.append(Squeeze())
        c, h, w = 4 * c, h // 2, w // 2
        for i in range(steps):
            layers += [AffineCoupling(channel_mask(c, h, w, i % 2), CouplingConvNet(c, hidden)), ActNorm(c)]
    return FlowModel(layers, shape, quant)


def glow(shape: tuple[int, ...], hidden: int = 64, steps: int = 4, n_scales: int = 0,
         quant: Quantization | None = None) -> FlowModel:
    """Glow steps (ActNorm, invertible 1x1 conv, affine coupling), after a squeeze per scale."""
    layers: list[Flow] = []
    if len(shape) == 1:
        d = shape[0]
        for i in range(steps):
            layers += [ActNorm(d), InvertibleLinear(d),
                       AffineCoupling(vector_mask(d, i % 2), StaticMLP(d, 2 * d, hidden))]
        return FlowModel(layers, shape, quant)
    c, h, w = shape
    for _ in range(n_scales or auto_scales(shape)):
        layers.append(Squeeze())
        c, h, w = 4 * c, h // 2, w // 2
        for i in range(steps):
            layers += [ActNorm(c), InvertibleLinear(c),
                       AffineCoupling(channel_mask(c, h, w, i % 2), CouplingConvNet(c, hidden))]
    return FlowModel(layers, shape, quant)


def autoregressive(shape: tuple[int, ...], hidden: int = 128, steps: int = 4, iaf: bool = False,
                   quant: Quantization | None = None, made_depth: int = 2) -> FlowModel:
    """MAF (``iaf=False``) or IAF: MADE layers with the order reversed between layers and an
    ActNorm after each; images are flattened to vectors first."""
    d = int(math.prod(shape))
    layers: list[Flow] = [] if len(shape) == 1 else [Flatten(shape)]
    for i in range(steps):
        order = torch.arange(d) if i % 2 == 0 else torch.arange(d).flip(0)
        layers += [MaskedAutoregressive(d, (hidden,) * made_depth, order, iaf=iaf), ActNorm(d)]
    return FlowModel(layers, shape, quant)
