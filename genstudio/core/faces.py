"""Faces: what a model *instance* can do, asked of the model instead of looked up by its plugin id.

A face is a small runtime-checkable Protocol plus, where the ability depends on the run's config,
a predicate (a DDPM trained without ``class_cond`` has the ``num_classes`` attribute but is not
:class:`Conditional`). :func:`faces_of` gives the faces of a set-up model; tools and panels ask
for faces, never for plugin names, so a new family gets every tool it qualifies for by growing
the methods.

Faces that only need the config (``forward_process``, ``prior_scale``, ``scene_items``) work on a
fresh instance before ``setup`` too, so a panel can ask them without building networks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch


@runtime_checkable
class Sampling(Protocol):
    """Every plugin: ``sample()`` yields SampleStates, the last one the final samples."""

    def sample(self, n: int, *, seed: int, **kw: Any) -> Any: ...


@runtime_checkable
class NoisePrior(Protocol):
    """Sampling starts from data-shaped noise: x_T = prior_scale() * (the first ``randn`` of
    ``generator(seed)``). Two runs A/B'd from one seed share that unit noise."""

    def prior_scale(self) -> float: ...


@runtime_checkable
class ForwardProcessFace(Protocol):
    """The forward (noising) process the model trains against, in data space: a DDPM
    ``NoiseSchedule``, an ``SDE`` or flow matching's ``StraightPath`` (see core.diffusion.paths)."""

    def forward_process(self) -> Any: ...


@runtime_checkable
class Denoiser(Protocol):
    """A Gaussian-path model seen one way (DDPM, score SDEs, NCSN, flow matching): in the model's
    own time t, x_t = alpha(t) x_0 + sigma(t) eps, and ``denoise`` predicts both (x0_hat, eps_hat)
    with x_t = alpha x0_hat + sigma eps_hat. Then x_s = alpha(s) x0_hat + sigma(s) eps_hat is DDIM
    (eta = 0) for every one of them -- the exact first-order PF-ODE step -- and run towards noise it
    is inversion, so inversion, class editing and A/B from one noise need nothing else.

    ``denoise_times(steps)``: steps + 1 times from the prior to data (noise falling); at the last
    one alpha = 1, sigma = 0, and the network is never called there. ``alpha_sigma(t)``: float64
    tensors shaped like ``t``. ``denoise(x, t, cond, guidance)``: ``t`` (B,) of those times;
    ``cond`` class label(s) for Conditional runs, ``guidance`` their CFG scale; the model's own
    x0 clipping applies."""

    def denoise_times(self, steps: int) -> torch.Tensor: ...

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None,
                guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class Conditional(Protocol):
    """``sample(cond=labels)`` draws from class ``labels``; ``num_classes`` > 0 for this run."""

    num_classes: int


@runtime_checkable
class Latent(Protocol):
    """encode/decode: the latent explorer maps and decodes codes."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Likelihood(Protocol):
    """Log-density in nats per sample. What it is can be said by a class attribute
    ``log_prob_kind`` (default "exact"): "exact" (change of variables: integrates to 1), "bound"
    (ELBO/IWAE: integrates to at most 1) or "ode" (exact up to a probability-flow ODE solve)."""

    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Scene(Protocol):
    """A 3-D scene: render a view and export it. ``scene_items`` names the types ``export_scene``
    returns, so a viewer shows the scenes whose items it can draw (napari's layer -> visual)."""

    scene_items: ClassVar[tuple[type, ...]]

    def render(self, camera: Any, *, width: int, height: int) -> torch.Tensor: ...

    def export_scene(self) -> Any: ...


@runtime_checkable
class Views(Protocol):
    """Pictures of the model itself (not its samples): name -> (H, W, 3) uint8, e.g. a 2-D density
    heat map, an energy landscape, weight filters. The training job calls it under no_grad at
    every preview and saves ``view_<name>_<step>.png``; the training monitor shows them."""

    def views(self) -> dict[str, Any]: ...


@runtime_checkable
class Adversarial(Protocol):
    """A generator and a critic in a game (the GAN families): ``generate(z, cond)`` maps latent
    noise (B, ``latent_dim``) to samples; ``critic(x, cond)`` scores samples (B,), larger = judged
    more real (a logit, an f-GAN V(x) or a WGAN critic value). Tools draw the critic's decision
    surface under the generated points and count the data modes the generator covers."""

    latent_dim: int

    def generate(self, z: torch.Tensor, cond: Any = None) -> torch.Tensor: ...

    def critic(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor: ...


@runtime_checkable
class TextConditional(Protocol):
    """``sample(n, seed=..., prompt=[...])`` draws images for text prompts (one per sample, cycled;
    None = the model's unconditional / null-caption samples); ``text_tokenizer()`` is the run's
    :class:`genstudio.core.text.Tokenizer` (saved with the run). The GenEval-like metric needs nothing else."""

    def text_tokenizer(self) -> Any: ...


@runtime_checkable
class TextImageEmbedding(Protocol):
    """A contrastive text-image encoder (CLIP-style): unit-norm embeddings in one space, so the cosine
    of an image and a caption scores their agreement (CLIPScore, retrieval)."""

    def embed_images(self, x: torch.Tensor) -> torch.Tensor: ...

    def embed_text(self, prompts: Any) -> torch.Tensor: ...


@runtime_checkable
class Codec(Protocol):
    """A neural codec: waveforms (or any data) -> discrete tokens -> back. ``encode_tokens(x)``
    gives int64 codes (B, n_codebooks, frames) (residual levels, coarse first); ``decode_tokens``
    reconstructs from the first ``tokens.shape[1]`` levels, so any prefix is a lower bitrate;
    ``bitrate_kbps(n_q)`` is frames/s x n_q x log2(codebook size) / 1000. (Named apart from
    :class:`Latent`'s encode/decode: tokens are not coordinates for the latent explorer.)"""

    n_codebooks: int

    def encode_tokens(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def bitrate_kbps(self, n_q: int) -> float: ...


@runtime_checkable
class PreviewMetrics(Protocol):
    """Scalars only the model can measure (a codec's SI-SDR at each bitrate): the training job calls
    ``preview_metrics()`` under no_grad at every preview and logs them with the step, so they are
    curves in the training monitor and rows of metrics.csv like the losses."""

    def preview_metrics(self) -> dict[str, float]: ...


# run-dependent conditions on top of the structural check
_APPLIES: dict[type, Callable[[Any], bool]] = {
    Conditional: lambda m: int(getattr(m, "num_classes", 0) or 0) > 0,
}
# a plugin whose text conditioning depends on the run (video diffusion's cond=caption) hides the attribute
_APPLIES[TextConditional] = lambda m: getattr(m, "text_tokenizer", None) is not None
FACES: tuple[type, ...] = (Sampling, NoisePrior, ForwardProcessFace, Denoiser, Conditional, Latent, Likelihood, Scene,
                          Views, Adversarial, TextConditional, TextImageEmbedding, Codec, PreviewMetrics)


def log_prob_kind(model: Any) -> str:
    """"exact", "bound" or "ode": what a Likelihood model's ``log_prob`` is (see :class:`Likelihood`)."""
    return str(getattr(model, "log_prob_kind", "exact"))


def has_face(model: Any, face: type) -> bool:
    """Whether ``model`` (an instance) has ``face`` for its run."""
    return isinstance(model, face) and _APPLIES.get(face, lambda m: True)(model)


def faces_of(model: Any) -> frozenset[type]:
    """Every face of ``model``."""
    return frozenset(f for f in FACES if has_face(model, f))


def face_names(model: Any) -> list[str]:
    """Sorted face names (for tables and run summaries)."""
    return sorted(f.__name__ for f in faces_of(model))


def _members(face: type) -> tuple[list[str], list[str]]:
    """(methods, attributes) a face Protocol declares."""
    methods = [k for k, v in vars(face).items() if callable(v) and not k.startswith("_")]
    return methods, [k for k in getattr(face, "__annotations__", {}) if not k.startswith("_")]


def class_faces(cls: type) -> list[str]:
    """Sorted names of the faces a plugin *class* declares: the methods (and class attributes) it
    defines, without building a model. A listing of what its runs may have; run-dependent faces
    (Conditional: ``num_classes`` is set in ``setup``) show only on instances, see :func:`faces_of`."""
    def declares(face: type) -> bool:
        methods, attrs = _members(face)
        return (all(callable(getattr(cls, m, None)) for m in methods)
                and all(getattr(cls, a, None) is not None for a in attrs))

    return sorted(f.__name__ for f in FACES if declares(f))


def initial_noise(model: Any, n: int, seed: int) -> torch.Tensor | None:
    """x_T as a :class:`NoisePrior` model's sampler draws it; None for models without one."""
    shape = getattr(getattr(model, "data", None), "shape", None)
    if shape is None or not has_face(model, NoisePrior):
        return None
    g = model.generator(seed)
    return model.prior_scale() * torch.randn((n, *shape), generator=g, device=model.device)


def shows_scene(plugin_cls: type, item_types: tuple[type, ...]) -> bool:
    """Whether a plugin class exports scenes whose items are among ``item_types`` (a viewer's)."""
    items = getattr(plugin_cls, "scene_items", ()) or ()
    return callable(getattr(plugin_cls, "export_scene", None)) and any(
        issubclass(i, t) for i in items for t in item_types)
