"""Variational autoencoders: the VAE (Kingma & Welling 2014) and the beta-VAE (Higgins et al. 2017),
two plugins over one module. They differ only in defaults: the beta-VAE weights the KL by beta
(linearly annealed from ``beta_start`` over ``anneal_steps``) and uses a Bernoulli decoder with a
conv net, as on dSprites.

The maths is in small functions (:func:`reparameterize`, :func:`gaussian_kl`, :func:`elbo`) so
tests check them against closed forms. ``log_prob`` is the ELBO (or the tighter IWAE bound with
``iw_samples`` > 1) on the same discrete scale as the flows: a lower bound on log P(x).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec, UnknownDataset, get_dataset
from genstudio.core.imaging import image_grid
from genstudio.core.nn.flows import LOG_2PI, Quantization, StaticMLP, bits_per_dim, default_levels
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState

# --------------------------------------------------------------------------------------------
# maths
# --------------------------------------------------------------------------------------------


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2): a sample whose gradient reaches mu and sigma."""
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample, in closed form."""
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)


def gaussian_log_likelihood(x: Tensor, mean: Tensor, log_sigma: Tensor) -> Tensor:
    """log N(x; mean, diag sigma^2), summed per sample."""
    d = (x - mean) * torch.exp(-log_sigma)
    return (-0.5 * d**2 - log_sigma - 0.5 * LOG_2PI).reshape(x.shape[0], -1).sum(1)


def bernoulli_log_likelihood(x01: Tensor, logits: Tensor) -> Tensor:
    """log Bernoulli(x; sigmoid(logits)) summed per sample (x in [0, 1])."""
    return -F.binary_cross_entropy_with_logits(logits, x01, reduction="none").reshape(x01.shape[0], -1).sum(1)


def elbo(mu: Tensor, logvar: Tensor, log_lik: Callable[[Tensor], Tensor], eps: Tensor,
         beta: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """(beta-)ELBO per sample = E_q[log p(x|z)] - beta KL(q || p), one reparameterised sample.
    Returns (objective, reconstruction log-likelihood, KL)."""
    z = reparameterize(mu, logvar, eps)
    rec = log_lik(z)
    kl = gaussian_kl(mu, logvar)
    return rec - beta * kl, rec, kl


def iwae_bound(mu: Tensor, logvar: Tensor, log_lik: Callable[[Tensor], Tensor], eps: Tensor) -> Tensor:
    """log (1/K) sum_k p(x, z_k) / q(z_k | x) with eps of shape (K, B, d); K = 1 is the ELBO in
    its sampled (not closed-form KL) version. Tighter as K grows (Burda et al. 2016)."""
    k = eps.shape[0]
    terms = []
    for e in eps:
        z = reparameterize(mu, logvar, e)
        log_pz = (-0.5 * (z**2 + LOG_2PI)).sum(1)
        log_qz = (-0.5 * (e**2 + LOG_2PI) - 0.5 * logvar).sum(1)
        terms.append(log_lik(z) + log_pz - log_qz)
    return torch.logsumexp(torch.stack(terms), 0) - math.log(k)


def beta_at(step: int, beta: float, beta_start: float, anneal_steps: int) -> float:
    """Linear warm-up of the KL weight from ``beta_start`` to ``beta`` over ``anneal_steps``."""
    if anneal_steps <= 0:
        return beta
    a = min(1.0, max(0, step) / anneal_steps)
    return beta_start + (beta - beta_start) * a


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------
def _conv_downs(shape: tuple[int, ...]) -> int:
    """Stride-2 stages to reach 4x4, or 0 when the image is not a square power of two >= 16."""
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] < 16 or shape[1] & (shape[1] - 1):
        return 0
    return int(math.log2(shape[1] // 4))


class Encoder(nn.Module):
    """x -> (mu, logvar)."""

    def __init__(self, shape: tuple[int, ...], latent: int, hidden: int, depth: int, conv: int) -> None:
        super().__init__()
        d = int(math.prod(shape))
        if conv:
            chans = [shape[0]] + [32 * 2 ** min(i, 1) for i in range(conv)]
            layers: list[nn.Module] = []
            for a, b in zip(chans[:-1], chans[1:]):
                layers += [nn.Conv2d(a, b, 4, 2, 1), nn.ReLU()]
            layers += [nn.Flatten(), nn.Linear(chans[-1] * 16, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent)]
            self.net: nn.Module = nn.Sequential(*layers)
        else:
            self.net = nn.Sequential(nn.Flatten(), StaticMLP(d, 2 * latent, hidden, depth))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)


class Decoder(nn.Module):
    """z -> distribution parameters in data shape (mean, or Bernoulli logits), plus a learned
    per-dimension log-sigma for the Gaussian likelihood."""

    def __init__(self, shape: tuple[int, ...], latent: int, hidden: int, depth: int, conv: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        d = int(math.prod(shape))
        if conv:
            chans = [shape[0]] + [32 * 2 ** min(i, 1) for i in range(conv)]
            layers: list[nn.Module] = [nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, chans[-1] * 16),
                                       nn.ReLU(), nn.Unflatten(1, (chans[-1], 4, 4))]
            rev = chans[::-1]
            for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
                layers.append(nn.ConvTranspose2d(a, b, 4, 2, 1))
                if i < len(rev) - 2:
                    layers.append(nn.ReLU())
            self.net: nn.Module = nn.Sequential(*layers)
        else:
            self.net = StaticMLP(latent, d, hidden, depth)
        self.log_sigma = nn.Parameter(torch.full(self.shape, math.log(0.3)))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(z.shape[0], *self.shape)


# --------------------------------------------------------------------------------------------
# plugins
# --------------------------------------------------------------------------------------------
@dataclass
class VAEConfig(ModelConfig):
    batch_size: int = param(128, "Samples per training step", range=(1, 4096))
    lr: float = param(1e-3, "Adam learning rate", range=(1e-6, 1.0), log=True)
    latent_dim: int = param(8, "Latent dimensions", range=(1, 512))
    hidden: int = param(256, "Hidden width", range=(8, 4096))
    depth: int = param(2, "Residual MLP blocks (MLP architecture)", range=(1, 16))
    arch: str = param("auto", "Network: auto (conv for square power-of-two images >= 16 px, else MLP)",
                      choices=("auto", "mlp", "conv"))
    likelihood: str = param("gaussian", "Decoder: Gaussian with learned per-pixel sigma (on dequantised "
                            "pixels) or Bernoulli (for near-binary images)", choices=("gaussian", "bernoulli"))
    beta: float = param(1.0, "Weight of the KL term (beta-VAE: > 1 favours disentangled codes)",
                        range=(0.0, 1000.0), live=True)
    beta_start: float = param(1.0, "KL weight at step 0 (annealed linearly to beta)", range=(0.0, 1000.0))
    anneal_steps: int = param(0, "Steps over which the KL weight goes from beta_start to beta (0 = none)",
                              range=(0, 10**7))
    levels: int = param(0, "Grey levels for dequantisation and bits/dim (0 = auto: 17 for digits, 256 "
                           "otherwise)", range=(0, 65536))
    iw_samples: int = param(1, "Importance samples for log_prob (1 = ELBO, more = tighter IWAE bound)",
                            range=(1, 10000))

    @classmethod
    def tiny(cls) -> VAEConfig:
        return cls(batch_size=16, latent_dim=2, hidden=16, depth=1)


@dataclass
class BetaVAEConfig(VAEConfig):
    latent_dim: int = param(10, "Latent dimensions", range=(1, 512))
    likelihood: str = param("bernoulli", "Decoder: Gaussian with learned per-pixel sigma (on dequantised "
                            "pixels) or Bernoulli (for near-binary images; 2-D points always use the Gaussian)",
                            choices=("gaussian", "bernoulli"))
    beta: float = param(4.0, "Weight of the KL term (beta-VAE: > 1 favours disentangled codes)",
                        range=(0.0, 1000.0), live=True)
    beta_start: float = param(0.0, "KL weight at step 0 (annealed linearly to beta)", range=(0.0, 1000.0))
    anneal_steps: int = param(2000, "Steps over which the KL weight goes from beta_start to beta (0 = none)",
                              range=(0, 10**7))

    @classmethod
    def tiny(cls) -> BetaVAEConfig:
        return cls(batch_size=16, latent_dim=2, hidden=16, depth=1, anneal_steps=4)




class VAEPlugin(BasePlugin[VAEConfig]):
    ddp_modules = ("enc", "dec")  # many processes: DDP wraps both halves

    info: ClassVar[PluginInfo] = PluginInfo(
        "vae", "VAE", "latent", VAEConfig, ("points2d", "image"), ("prior",),
        "Variational autoencoder: amortised inference with the reparameterisation trick; ELBO, "
        "reconstruction and KL curves")

    log_prob_kind = "bound"  # Likelihood face: a lower bound (ELBO / IWAE)

    def setup(self, data: DataSpec) -> None:
        self.data = data
        c = self.config
        shape = tuple(data.shape)
        conv = {"mlp": 0, "conv": _conv_downs(shape), "auto": _conv_downs(shape)}[c.arch]
        if c.arch == "conv" and not conv:
            raise ValueError(f"the conv VAE needs square power-of-two images >= 16 px; got {shape}")
        self.enc = Encoder(shape, c.latent_dim, c.hidden, c.depth, conv).to(self.device)
        self.dec = Decoder(shape, c.latent_dim, c.hidden, c.depth, conv).to(self.device)
        self.opt = torch.optim.Adam([*self.enc.parameters(), *self.dec.parameters()], lr=c.lr)
        self.quant = Quantization(c.levels or default_levels(data.name)) if data.modality.quantised else None
        # Bernoulli is a distribution over binarised pixels; on unbounded data (2-D points) it is no
        # density at all (its exp(log_prob) integrated to 65 over the plane), so those use the Gaussian
        self.likelihood = c.likelihood if data.modality.value_range is not None else "gaussian"
        self.step = 0

    # -- likelihood pieces --------------------------------------------------------------------
    def _target(self, x: Tensor, train: bool) -> Tensor:
        """What the decoder's density is over: dequantised pixels (Gaussian on images), [0, 1]
        intensities (Bernoulli; binarised outside training), or the raw points."""
        if self.likelihood == "bernoulli":
            x01 = (x + 1) / 2
            return x01.clamp(0, 1) if train else (x01 > 0.5).float()
        if self.quant is not None:
            return self.quant.dequantize(x) if train else self.quant.snap(x)
        return x

    def _log_lik(self, target: Tensor) -> Callable[[Tensor], Tensor]:
        if self.likelihood == "bernoulli":
            return lambda z: bernoulli_log_likelihood(target, self.dec(z))
        return lambda z: gaussian_log_likelihood(target, self.dec(z), self.dec.log_sigma.clamp(min=-7))

    def _to_bound(self, lp: Tensor) -> Tensor:
        """Continuous Gaussian bound -> bound on the discrete log-probability (images)."""
        if self.quant is not None and self.likelihood == "gaussian":
            return lp + self.quant.log_bin_volume(self.data.dim)
        return lp

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        c = self.config
        self.step = step
        if getattr(self, "_view_batch", None) is None:
            self._view_batch = batch[:8].detach().cpu().clone()
        self.enc.train()
        self.dec.train()
        target = self._target(batch, train=True)
        mu, logvar = self.enc(batch)
        beta = beta_at(step, c.beta, c.beta_start, c.anneal_steps)
        obj, rec, kl = elbo(mu, logvar, self._log_lik(target), torch.randn_like(mu), beta)
        loss = -obj.mean() / self.data.dim
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        rec, kl = rec.detach(), kl.detach()
        bound = self._to_bound(rec - kl)
        out = {"loss": loss.item(), "elbo": bound.mean().item(), "recon": -rec.mean().item(),
               "kl": kl.mean().item(), "beta": beta}
        if self.quant is not None and self.likelihood == "gaussian":
            out["bits_per_dim"] = float(bits_per_dim(bound, self.data.dim).mean())
        return out

    @torch.no_grad()
    def _mean(self, z: Tensor) -> Tensor:
        out = self.dec(z)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(out) * 2 - 1
        return out.clamp(-1, 1) if self.quant is not None else out

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1) -> Iterator[SampleState]:
        """Decoder means at prior draws z ~ N(0, I) (one state: a VAE samples in one pass)."""
        self.dec.eval()
        z = torch.randn(n, self.config.latent_dim, generator=self.generator(seed), device=self.device)
        yield SampleState(1, 1, 0.0, self._mean(z), extras={"z": z})

    # -- optional faces ---------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Posterior means (the latent explorer's coordinates)."""
        self.enc.eval()
        return self.enc(x.to(self.device))[0]

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        self.dec.eval()
        return self._mean(z.to(self.device))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def kl_per_dim(self, x: Tensor) -> Tensor:
        """Mean KL of each latent dimension over ``x``: near-zero dims are unused (collapsed)."""
        self.enc.eval()
        mu, logvar = self.enc(x.to(self.device))
        return (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(0)

    def log_prob(self, x: Tensor) -> Tensor:
        """Lower bound on log P(x) in nats (ELBO, or IWAE with ``iw_samples`` > 1; beta = 1),
        for discrete images on the same scale as the flows' and PixelCNN's."""
        self.enc.eval()
        self.dec.eval()
        x = x.to(self.device)
        mu, logvar = self.enc(x)
        g = torch.Generator(device=self.device).manual_seed(0)
        eps = torch.randn((self.config.iw_samples, *mu.shape), generator=g, device=self.device)
        return self._to_bound(iwae_bound(mu, logvar, self._log_lik(self._target(x, train=False)), eps))

    def views(self) -> dict[str, Any]:
        """ViewsModel (images): 8 fixed inputs (top row) over their reconstructions (bottom row):
        the dataset's reference set, or the first training batch where the dataset has no name."""
        if not self.data.modality.spatial:
            return {}
        x = getattr(self, "_view_batch", None)
        try:
            x = get_dataset(self.data.name).fixed(8)[0]
        except UnknownDataset:
            if x is None:
                return {}
        return {"reconstructions": image_grid(torch.cat([x, self.reconstruct(x).cpu()]), ncol=len(x), scale=3)}

    def extra_state(self) -> dict:
        return {"step": self.step}

    def load_extra_state(self, state: dict) -> None:
        self.step = int(state.get("step", 0))


class BetaVAEPlugin(VAEPlugin):
    info: ClassVar[PluginInfo] = PluginInfo(
        "betavae", "beta-VAE", "latent", BetaVAEConfig, ("points2d", "image"), ("prior",),
        "VAE with a weighted (annealed) KL term for disentangled latents; pair with the sprites "
        "dataset and the MIG / DCI metrics")
