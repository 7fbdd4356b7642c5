"""The codec's convolutional encoder and decoder (SoundStream / Encodec shape, small): strided
1-D convolutions downsample the waveform by the product of the strides (the hop: 160 -> 50
frames/s at 8 kHz), dilated residual units between them; the decoder mirrors it with transposed
convolutions. Lengths are exact: T samples <-> T / hop frames for T divisible by the hop."""

from __future__ import annotations

import math

from torch import Tensor, nn


class ResUnit(nn.Module):
    """x + conv1x1(ELU(dilated conv3(ELU(x)))): receptive field grows with the dilation, length kept."""

    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ELU(), nn.Conv1d(ch, ch, 3, padding=dilation, dilation=dilation), nn.ELU(),
                                 nn.Conv1d(ch, ch, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def widths(channels: int, n: int) -> list[int]:
    """Channels before each downsampling and after the last: doubling, capped at 8x the first."""
    return [channels * min(2**i, 8) for i in range(n + 1)]


def _down(a: int, b: int, s: int) -> nn.Conv1d:
    """Kernel 2s, stride s, padding ceil(s/2): exactly L / s frames out for L divisible by s."""
    return nn.Conv1d(a, b, 2 * s, s, padding=math.ceil(s / 2))


def _up(a: int, b: int, s: int) -> nn.ConvTranspose1d:
    """The inverse of :func:`_down`'s length map: L -> L * s (output padding 2 ceil(s/2) - s)."""
    p = math.ceil(s / 2)
    return nn.ConvTranspose1d(a, b, 2 * s, s, padding=p, output_padding=2 * p - s)


class Encoder(nn.Module):
    """(B, 1, T) -> (B, latent, T / hop)."""

    def __init__(self, channels: int, strides: tuple[int, ...], latent: int) -> None:
        super().__init__()
        w = widths(channels, len(strides))
        layers: list[nn.Module] = [nn.Conv1d(1, w[0], 7, padding=3)]
        for a, b, s in zip(w[:-1], w[1:], strides):
            layers += [ResUnit(a, 1), ResUnit(a, 3), nn.ELU(), _down(a, b, s)]
        layers += [nn.ELU(), nn.Conv1d(w[-1], latent, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """(B, latent, frames) -> (B, 1, frames * hop), squashed into [-1, 1] by tanh."""

    def __init__(self, channels: int, strides: tuple[int, ...], latent: int, squash: bool = True) -> None:
        super().__init__()
        w = widths(channels, len(strides))[::-1]
        layers: list[nn.Module] = [nn.Conv1d(latent, w[0], 7, padding=3)]
        for a, b, s in zip(w[:-1], w[1:], strides[::-1]):
            layers += [nn.ELU(), _up(a, b, s), ResUnit(b, 1), ResUnit(b, 3)]
        layers += [nn.ELU(), nn.Conv1d(w[-1], 1, 7, padding=3)] + ([nn.Tanh()] if squash else [])
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)
