"""Building blocks of the StyleGAN- and BigGAN-style families, small enough to train on a CPU.

StyleGAN (Karras et al. 2019, 2020): a mapping network z -> w, a learned constant 4x4 input,
per-block styles applied by **modulated convolution with demodulation** (StyleGAN2's
replacement for AdaIN: the style scales the weights per input channel, and dividing by the
resulting filter norm restores unit output variance), per-pixel noise with learned per-channel
scales, style mixing (blocks before a crossover take one w, the rest another) and the R1 penalty.
For vectors (2-D points) the same machinery drives an MLP synthesis whose layers are modulated
linear layers (1x1 modulated convolutions on (B, C, 1, 1)), one style per layer.

BigGAN (Brock et al. 2019): class-conditional batch norm (gains and biases from a shared class
embedding, concatenated with a chunk of z per block: the hierarchical latent), the projection
discriminator (Miyato & Koyama 2018) with spectral norm, the hinge loss and BigGAN's orthogonal
regulariser.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from genstudio.core.gan.nets import conv_levels

# -- StyleGAN ------------------------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """z -> w: pixel-normalised z through an MLP with LeakyReLU (the disentangled style space)."""

    def __init__(self, latent: int, w_dim: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(latent if i == 0 else w_dim, w_dim), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8))


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution: weights W (out, in, k, k) scaled per sample by the style
    s = A(w) (in) and, with ``demodulate``, divided by each output filter's norm, so unit-variance
    inputs give unit-variance outputs whatever the style (what AdaIN did by normalising
    activations, without its droplet artefacts)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.affine = nn.Linear(w_dim, in_ch)
        nn.init.ones_(self.affine.bias)  # styles start near 1: nearly a plain convolution
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)  # equalised learning rate
        self.demodulate, self.pad = demodulate, kernel // 2

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        s = self.affine(w)  # (B, in)
        weight = self.scale * self.weight
        # conv(x * s, W) * d equals the per-sample conv with W * s, then demodulated (StyleGAN2's
        # non-fused path): one shared-weight conv instead of a grouped one, far faster on a CPU
        out = F.conv2d(x * s[:, :, None, None], weight, padding=self.pad)
        if self.demodulate:
            d = torch.rsqrt((weight.pow(2).sum((2, 3))[None] * s[:, None, :].pow(2)).sum(2) + 1e-8)  # (B, out)
            out = out * d[:, :, None, None]
        return out


class NoiseInjection(nn.Module):
    """x + scale[c] * noise: one (B, 1, H, W) noise image per sample shared by the channels, with a
    learned per-channel scale that starts at 0 (noise adds stochastic detail only once trained).
    ``const`` is a fixed noise image (StyleGAN2's noise_mode="const"), so sampling is a function of z."""

    def __init__(self, channels: int, size: int, index: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(channels))
        g = torch.Generator().manual_seed(1000 + index)
        self.register_buffer("const", torch.randn(1, 1, size, size, generator=g))

    def forward(self, x: Tensor, noise: Tensor | None) -> Tensor:
        if noise is None:
            return x
        return x + self.scale[None, :, None, None] * noise


class StyleLayer(nn.Module):
    """Modulated 3x3 conv -> noise -> bias -> LeakyReLU. With ``kernel=1, size=1`` on (B, C, 1, 1)
    tensors it is the vector version: a *modulated linear* layer (weights scaled per input feature
    by the style, demodulated per output unit) with one noise scalar per sample."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, size: int, index: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel, w_dim)
        self.noise = NoiseInjection(out_ch, size, index)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None) -> Tensor:
        return F.leaky_relu(self.noise(self.conv(x, w), noise) + self.bias[None, :, None, None], 0.2)


NOISE_MODES = ("const", "random", "none")


def mix_styles(ws: Tensor, ws_mix: Tensor, crossover: Tensor | int) -> Tensor:
    """Style mixing: block i takes ``ws`` when i < crossover, else ``ws_mix`` (both (B, blocks, w_dim));
    ``crossover`` per sample (B,) or one int. 0 = all from ``ws_mix``, blocks = all from ``ws``."""
    idx = torch.arange(ws.shape[1], device=ws.device)
    cut = torch.as_tensor(crossover, device=ws.device).reshape(-1, 1)
    return torch.where((idx[None] < cut)[..., None], ws, ws_mix)


def _layer_noise(layer: StyleLayer, mode: str, x: Tensor, generator: torch.Generator | None) -> Tensor | None:
    """The noise input of ``layer`` for activations ``x`` (B, C, H, W): its fixed image (const), a
    fresh (B, 1, H, W) draw from ``generator`` (random) or None."""
    if mode == "const":
        return layer.noise.const
    if mode == "random":
        dev = generator.device if generator is not None else x.device
        return torch.randn((x.shape[0], 1, *x.shape[2:]), generator=generator, device=dev).to(x)
    return None


class _StyleBase(nn.Module):
    """What both StyleGAN syntheses share: the mapping network, the w_mean EMA, w-space truncation,
    one w per block (``self.blocks``) and the training forward with mixing regularisation. A
    subclass builds ``self.blocks`` and writes ``synthesis(ws, noise_mode, generator)``.

    In training mode ``forward(z)`` draws fresh noise, applies mixing regularisation (with
    probability ``mixing_prob`` a sample's blocks from a random crossover on take a second z's w)
    and tracks the mean w by EMA; in eval mode it is a deterministic function of z (const noise)."""

    blocks: nn.ModuleList

    def __init__(self, latent: int, w_dim: int, map_depth: int, mixing_prob: float, w_avg_beta: float) -> None:
        super().__init__()
        self.latent, self.w_dim, self.mixing_prob, self.w_avg_beta = latent, w_dim, mixing_prob, w_avg_beta
        self.mapping = MappingNetwork(latent, w_dim, map_depth)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def styles(self, z: Tensor, psi: float = 1.0) -> Tensor:
        """Per-block w (B, blocks, w_dim), truncated in w space: w_avg + psi (w - w_avg)."""
        w = self.mapping(z)
        if psi != 1.0:
            w = self.w_avg + psi * (w - self.w_avg)
        return w[:, None].expand(-1, self.n_blocks, -1)

    def synthesis(self, ws: Tensor, noise_mode: str = "const", generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def check_noise_mode(noise_mode: str) -> None:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")

    def forward(self, z: Tensor) -> Tensor:
        if not self.training:
            return self.synthesis(self.styles(z))
        ws = self.styles(z)
        with torch.no_grad():
            self.w_avg.lerp_(ws[:, 0].mean(0), 1 - self.w_avg_beta)
        if self.mixing_prob > 0 and self.n_blocks > 1:
            ws2 = self.styles(torch.randn_like(z))
            cut = torch.randint(1, self.n_blocks, (z.shape[0],), device=z.device)
            keep = torch.rand(z.shape[0], device=z.device) >= self.mixing_prob
            ws = mix_styles(ws, ws2, torch.where(keep, self.n_blocks, cut))
        return self.synthesis(ws, "random")


class StyleGenerator(_StyleBase):
    """Constant 4x4 -> one block per resolution (4x4: one style layer; then upsample and two) ->
    modulated 1x1 toRGB (no demodulation) -> tanh. Each block takes its own w (B, blocks, w_dim)."""

    def __init__(self, latent: int, shape: tuple[int, ...], channels: int, w_dim: int, map_depth: int,
                 mixing_prob: float = 0.0, w_avg_beta: float = 0.995) -> None:
        super().__init__(latent, w_dim, map_depth, mixing_prob, w_avg_beta)
        levels = conv_levels(shape)
        if not levels:
            raise ValueError(f"StyleGAN needs square images of side 4 * 2^k (k >= 1), got {shape}")
        widths = [channels * 2 ** (levels - i) for i in range(levels + 1)]
        self.const = nn.Parameter(torch.randn(1, widths[0], 4, 4))
        self.blocks = nn.ModuleList()
        n = 0
        for i, width in enumerate(widths):
            size, ins = 4 * 2 ** i, widths[max(i - 1, 0)]
            layers = [StyleLayer(ins, width, w_dim, size, n)] + ([StyleLayer(width, width, w_dim, size, n + 1)]
                                                                 if i else [])
            n += len(layers)
            self.blocks.append(nn.ModuleList(layers))
        self.to_rgb = ModulatedConv2d(widths[-1], shape[0], 1, w_dim, demodulate=False)
        self.rgb_bias = nn.Parameter(torch.zeros(shape[0]))

    def synthesis(self, ws: Tensor, noise_mode: str = "const", generator: torch.Generator | None = None) -> Tensor:
        """Per-block styles -> images; ``noise_mode`` const (fixed noise images), random (drawn from
        ``generator``) or none."""
        self.check_noise_mode(noise_mode)
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, block in enumerate(self.blocks):
            if i:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            for layer in block:
                x = layer(x, ws[:, i], _layer_noise(layer, noise_mode, x, generator))
        return torch.tanh(self.to_rgb(x, ws[:, -1]) + self.rgb_bias[None, :, None, None])


class StyleMLPGenerator(_StyleBase):
    """The vector (2-D points) synthesis: a learned constant vector (hidden) -> ``depth`` style
    layers, each a modulated linear layer (``StyleLayer`` with a 1x1 ``ModulatedConv2d`` on
    (B, hidden, 1, 1): weights scaled per input feature by s = A(w), demodulated per output unit)
    with a noise scalar per sample -> a plain linear to the data dimension (tanh when ``bounded``).
    Each layer is one style block, so style mixing's crossover counts layers."""

    def __init__(self, latent: int, shape: tuple[int, ...], hidden: int, depth: int, w_dim: int, map_depth: int,
                 mixing_prob: float = 0.0, w_avg_beta: float = 0.995, bounded: bool = False) -> None:
        super().__init__(latent, w_dim, map_depth, mixing_prob, w_avg_beta)
        self.shape, self.bounded = tuple(shape), bounded
        self.const = nn.Parameter(torch.randn(1, hidden, 1, 1))
        self.blocks = nn.ModuleList(StyleLayer(hidden, hidden, w_dim, 1, i, kernel=1) for i in range(depth))
        self.out = nn.Linear(hidden, math.prod(shape))

    def synthesis(self, ws: Tensor, noise_mode: str = "const", generator: torch.Generator | None = None) -> Tensor:
        """Per-layer styles (B, depth, w_dim) -> points (B, *shape)."""
        self.check_noise_mode(noise_mode)
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, layer in enumerate(self.blocks):
            x = layer(x, ws[:, i], _layer_noise(layer, noise_mode, x, generator))
        out = self.out(x.flatten(1)).reshape(ws.shape[0], *self.shape)
        return torch.tanh(out) if self.bounded else out


class MinibatchStd(nn.Module):
    """Appends one channel holding the mean over features of the per-pixel standard deviation
    across the batch (ProGAN/StyleGAN): a critic that sees it can tell a collapsed batch from data."""

    def forward(self, x: Tensor) -> Tensor:
        std = (x.var(0, unbiased=False) + 1e-8).sqrt().mean()
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], 1)


def r1_penalty(critic: nn.Module, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E ||grad_x D(x)||^2 on real data, differentiable, so the
    critic is flat where the data lie (StyleGAN's regulariser)."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


# -- BigGAN ----------------------------------------------------------------------------------------------


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine: gain 1 + G(c) and bias B(c) come from a conditioning
    vector c (a class embedding, optionally with a z chunk), so each class gets its own
    normalisation statistics' rescaling. Works on (B, F) and (B, C, H, W)."""

    def __init__(self, features: int, cond_dim: int, spatial: bool) -> None:
        super().__init__()
        self.bn = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(features, affine=False)
        self.gain = nn.Linear(cond_dim, features)
        self.bias = nn.Linear(cond_dim, features)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shape = (x.shape[0], -1) + (1,) * (x.dim() - 2)
        return self.bn(x) * (1 + self.gain(c)).view(shape) + self.bias(c).view(shape)


class CondMLPBlock(nn.Module):
    """CBN -> ReLU -> Linear, residual (2-D data)."""

    def __init__(self, width: int, cond_dim: int) -> None:
        super().__init__()
        self.bn, self.fc = ConditionalBatchNorm(width, cond_dim, False), nn.Linear(width, width)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        return h + self.fc(F.relu(self.bn(h, c)))


class CondResBlockUp(nn.Module):
    """BigGAN's generator block: CBN -> ReLU -> up x2 -> conv -> CBN -> ReLU -> conv, plus an
    upsampled 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(in_ch, cond_dim, True), ConditionalBatchNorm(out_ch, cond_dim, True)
        self.conv1, self.conv2 = nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class CondGenerator(nn.Module):
    """BigGAN-style generator: a shared class embedding; z split into one chunk for the input layer
    and one per block (the hierarchical latent, when ``latent`` has enough entries), each block's
    CBN conditioned on [embedding, its chunk]. Convolutional for 4 * 2^k images, residual MLP else."""

    def __init__(self, latent: int, shape: tuple[int, ...], num_classes: int, embed_dim: int, channels: int,
                 hidden: int, depth: int, bounded: bool, hierarchical: bool = True) -> None:
        super().__init__()
        self.shape, levels = tuple(shape), conv_levels(shape)
        n_blocks = levels if levels else depth
        self.hierarchical = hierarchical and latent >= n_blocks + 1
        per = latent // (n_blocks + 1) if self.hierarchical else 0  # equal block chunks; the input takes the rest
        self.chunks = [latent - n_blocks * per] + [per] * n_blocks
        cond_dim = embed_dim + self.chunks[1]
        self.embed = nn.Embedding(max(1, num_classes), embed_dim)
        if levels:
            widths = [channels * 2 ** (levels - i) for i in range(levels + 1)]
            self.base = widths[0]
            self.inp = nn.Linear(self.chunks[0], widths[0] * 16)
            self.blocks = nn.ModuleList(CondResBlockUp(a, b, cond_dim) for a, b in zip(widths[:-1], widths[1:]))
            self.out = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(), nn.Conv2d(widths[-1], shape[0], 3, padding=1))
        else:
            self.base = 0
            self.inp = nn.Linear(self.chunks[0], hidden)
            self.blocks = nn.ModuleList(CondMLPBlock(hidden, cond_dim) for _ in range(depth))
            self.out = nn.Sequential(nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, math.prod(shape)))
        self.bounded = bounded  # images in [-1, 1]: tanh output

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        zs = z.split(self.chunks, dim=1)
        e = self.embed(y)
        h = self.inp(zs[0])
        if self.base:
            h = h.view(z.shape[0], self.base, 4, 4)
        for block, zc in zip(self.blocks, zs[1:]):
            h = block(h, torch.cat([e, zc], 1))
        out = self.out(h).reshape(z.shape[0], *self.shape)
        return torch.tanh(out) if self.bounded else out


def spectral_normed(module: nn.Module) -> nn.Module:
    """Spectral norm (Miyato et al. 2018) on every Linear, Conv2d and Embedding in ``module``."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
            spectral_norm(m)
    return module


class ProjectionCritic(nn.Module):
    """The projection discriminator: score(x, y) = psi(phi(x)) + <embed(y), phi(x)>, with phi a
    feature body (B, F). ``y=None`` scores x as its most plausible class (max over the
    projection), the class-free view the 2-D decision surface draws. Spectral norm throughout."""

    def __init__(self, body: nn.Module, features: int, num_classes: int) -> None:
        super().__init__()
        self.body = spectral_normed(body)
        self.psi = spectral_norm(nn.Linear(features, 1))
        self.embed = spectral_norm(nn.Embedding(max(1, num_classes), features))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        phi = self.body(x)
        base = self.psi(phi).squeeze(1)
        if y is None:
            return base + (phi @ self.embed.weight.t()).max(1).values
        return base + (self.embed(y) * phi).sum(1)


def hinge_d_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """E relu(1 - D(x)) + E relu(1 + D(G(z))) (Lim & Ye 2017; BigGAN's critic loss)."""
    return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()


def orthogonal_penalty(params: list[Tensor]) -> Tensor:
    """BigGAN's orthogonal regulariser sum_W ||W W^T ⊙ (1 - I)||_F^2 over matrices and filters
    (each W viewed as (out, fan_in)): only the off-diagonal Gram entries, so filters are pushed to
    be orthogonal without constraining their norms (the full ||W W^T - I|| was too limiting)."""
    total = torch.zeros(())
    for p in params:
        if p.dim() < 2:
            continue
        w = p.reshape(p.shape[0], -1)
        gram = w @ w.t()
        total = total.to(gram) + (gram * (1 - torch.eye(len(gram), device=gram.device, dtype=gram.dtype))).pow(2).sum()
    return total
