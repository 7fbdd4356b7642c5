"""What a kind of data is, as one object per kind (issue #10, "faces, not names").

``DataSpec.kind`` stays the serialised name (run.json, checkpoints); code asks
``spec.modality`` (or :func:`modality_of`) for what it used to decide by comparing that name:
how a batch of samples previews, which metrics and quality measure apply, which network body
fits, whether values are bounded or quantised. A new kind of data (audio, video, text) is one
subclass plus :func:`register`; eval, NFE sweeps, jobs and the network factory need no edit.
GUI-free: the Qt panels read the same attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from genstudio.core.imaging import image_grid, readable_scale, samples_image, scatter_image

if TYPE_CHECKING:
    from genstudio.core.data import Dataset, DataSpec
    from genstudio.core.metrics.features import Extractor

Quality = tuple[str, Callable[[torch.Tensor], float]]


class Modality:
    """One kind of data; subclasses set the class attributes and override what differs."""

    name: str = ""
    rank: int = 1  # axes of one sample: (D,) -> 1, (C, H, W) -> 3
    value_range: tuple[float, float] | None = None  # samples are clamped to this before they are compared
    quantised: bool = False  # 8-bit-like levels: bits/dim with a dequantisation offset, plugins dequantise
    spatial: bool = False  # (C, H, W) pictures: a class CNN gives features; convolutions need even sides
    scatter2d: bool = False  # points in the plane: density / score / path views over it make sense
    network: str = ""  # body net_for builds: a key of genstudio.core.nn.factory.NETWORKS ("" = none)
    user_data: str = ""  # dataset-name prefix of the user's own data of this kind ("folder", "transforms")
    preview_n: int = 64  # samples in a training preview when the run asks for 0 (auto)
    eval_n: int = 1000  # samples (and reference points) of an evaluation by default
    metrics: tuple[str, ...] = ()  # metric names the evaluator accepts (() = none yet)
    base_metrics: tuple[str, ...] = ()  # its defaults, before the ones a model's faces add

    def __repr__(self) -> str:
        return f"<modality {self.name}>"

    def check(self, x: torch.Tensor, shape: Sequence[int] | None = None, what: str = "batch") -> torch.Tensor:
        """``x`` itself if it is a finite (N, *shape) batch of this kind inside ``value_range``
        (tolerance 1e-4); otherwise a ValueError that says what is wrong, before a metric or a
        network fails on it obscurely."""
        want = tuple(shape) if shape is not None else None
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{self.name} {what} must be a tensor, got {type(x).__name__}")
        if x.dim() != 1 + self.rank or (want is not None and tuple(x.shape[1:]) != want):
            exp = f"(N, {', '.join(map(str, want))})" if want is not None else f"{1 + self.rank} axes"
            raise ValueError(f"{self.name} {what} has shape {tuple(x.shape)}; expected {exp}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{self.name} {what} has non-finite values")
        if self.value_range is not None and len(x):
            lo, hi = self.value_range
            xmin, xmax = float(x.min()), float(x.max())
            if xmin < lo - 1e-4 or xmax > hi + 1e-4:
                raise ValueError(f"{self.name} {what} spans [{xmin:.3g}, {xmax:.3g}]; {self.name} data lies in "
                                 f"[{lo:g}, {hi:g}]")
        return x

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        """Samples as if stored in this kind's range (8-bit images are [-1, 1]); unbounded data as is."""
        return x if self.value_range is None else x.clamp(*self.value_range)

    def preview(self, x: torch.Tensor) -> np.ndarray:
        """A batch of samples as one (H, W, 3) uint8 picture (renders of scenes and fields are images)."""
        return samples_image(x)

    def export(self, x: torch.Tensor, stem: str, spec: DataSpec | None = None) -> list[str]:
        """Files besides the PNG and NPZ that a sampling run writes for this kind, named from
        ``stem`` (audio: one WAV per clip, for a player); none by default."""
        return []

    def default_metrics(self, faces: Collection[type] = frozenset()) -> list[str]:
        """What the evaluator computes when none are asked for: ``base_metrics``, class accuracy for a
        Conditional model where this kind has it, nll for a Likelihood one, mode coverage for an
        Adversarial one (mode collapse is the GAN failure to watch)."""
        from genstudio.core.faces import Adversarial, Conditional, Likelihood

        out = list(self.base_metrics)
        for face, name in ((Conditional, "accuracy"), (Likelihood, "nll"), (Adversarial, "modes")):
            if face in faces and name in self.metrics and name not in out:
                out.append(name)
        return out

    def extractors(self, dataset: Dataset, names: Collection[str], *, inception: str | None = None,
                   root: Any = None, device: Any = "cpu") -> dict[str, Extractor]:
        """Feature spaces the metrics ``names`` are computed in: raw values by default."""
        from genstudio.core.metrics.features import RawExtractor

        return {"raw": RawExtractor(dataset.spec.dim)}

    def quality(self, dataset: Dataset, n: int, seed: int = 0, device: torch.device | str = "cpu") -> Quality:
        """(metric name, samples -> value, lower is better) against ``n`` fixed reference points:
        what an NFE sweep or a guidance sweep plots."""
        raise ValueError(f"no sample-quality measure for {self.name} data")


class Points2D(Modality):
    """Points in the plane (the 2-D toys): unbounded, drawn as a scatter, compared raw."""

    name = "points2d"
    scatter2d = True
    network = "vector"
    preview_n = 400  # a cloud that shows the modes; each preview is a full sampling run
    eval_n = 2000
    metrics = ("energy", "mmd", "w2", "w1", "sliced", "pr", "nll", "modes")
    base_metrics = ("energy", "mmd", "w2", "pr")

    def preview(self, x: torch.Tensor) -> np.ndarray:
        return scatter_image(x)

    def quality(self, dataset: Dataset, n: int, seed: int = 0, device: torch.device | str = "cpu") -> Quality:
        from genstudio.core.metrics import energy_distance

        ref = dataset.fixed(n, seed=seed)[0].double()
        return "energy", lambda x: float(energy_distance(x.double().cpu(), ref))


class Image(Modality):
    """(C, H, W) pictures in [-1, 1] with 8-bit levels: a grid preview, classifier features (FCD)."""

    name = "image"
    rank = 3
    value_range = (-1.0, 1.0)
    quantised = True
    spatial = True
    network = "grid"
    user_data = "folder"
    metrics = ("fcd", "fid", "kid", "is", "pr", "accuracy", "nll", "modes", "sliced")
    base_metrics = ("fcd", "kid", "is", "pr")

    def preview(self, x: torch.Tensor) -> np.ndarray:
        """A grid upscaled (nearest neighbour) so each cell is at least MIN_CELL px: the PNGs of
        `genstudio sample` and the training previews stay readable for 8x8 digits."""
        return image_grid(x, scale=readable_scale(int(x.shape[-2]), int(x.shape[-1])))

    def extractors(self, dataset: Dataset, names: Collection[str], *, inception: str | None = None,
                   root: Any = None, device: Any = "cpu") -> dict[str, Extractor]:
        """The dataset's cached classifier where a metric needs it (or stands in for Inception),
        and Inception-v3 when its weights are given."""
        from genstudio.core.metrics.features import InceptionExtractor, classifier_for

        out: dict[str, Extractor] = {}
        if {"fcd", "accuracy", "modes"} & set(names) or (not inception and {"kid", "is", "precision"} & set(names)):
            out["cnn"] = classifier_for(dataset, root=root, device=device)
        if inception:
            out["inception"] = InceptionExtractor(inception, device=device)
        return out

    def quality(self, dataset: Dataset, n: int, seed: int = 0, device: torch.device | str = "cpu") -> Quality:
        from genstudio.core.metrics import fid_from_features
        from genstudio.core.metrics.features import classifier_for

        ex = classifier_for(dataset, device=device)
        fr, _ = ex.features_and_probs(dataset.fixed(n, seed=seed)[0])
        return "fcd", lambda x: float(fid_from_features(fr, ex.features_and_probs(self.clamp(x))[0]))


class Scene(Modality):
    """Posed views of a 3-D scene; a batch is rays (origin, direction, rgb) and samples are renders."""

    name = "scene"
    user_data = "transforms"


class Field(Modality):
    """A target function (image or signed distance) sampled at points: rows (coords, values)."""

    name = "field"


class Latent(Modality):
    """An autoencoder's codes (the data of the LDM's inner diffusion): unbounded vectors for an MLP,
    no metrics of their own (the LDM is evaluated on the decoded images)."""

    name = "latent"
    network = "vector"


class Captioned(Image):
    """Images with captions (batches are (images, token ids)): the image metrics, plus the GenEval-like
    prompt alignment for text-conditioned models and a CLIPScore-like score where a contrastive
    encoder is at hand (``genstudio.core.metrics.alignment``)."""

    name = "captioned"
    user_data = ""
    metrics = (*Image.metrics, "geneval", "clipscore")

    def default_metrics(self, faces: Collection[type] = frozenset()) -> list[str]:
        from genstudio.core.faces import TextConditional

        return super().default_metrics(faces) + (["geneval"] if TextConditional in faces else [])


class Audio(Modality):
    """Mono clips (1, T) in [-1, 1] at ``DataSpec.sample_rate``: previews are waveforms over
    spectrograms, samples are also written as 16-bit WAVs. A codec is judged by SI-SDR and mel
    distance against its input (``genstudio.core.metrics.audio``), not by a sample-quality metric."""

    name = "audio"
    rank = 2
    value_range = (-1.0, 1.0)
    user_data = "wav"
    preview_n = 8
    eval_n = 64

    def preview(self, x: torch.Tensor) -> np.ndarray:
        from genstudio.core.audioviews import audio_preview

        return audio_preview(x)

    def export(self, x: torch.Tensor, stem: str, spec: DataSpec | None = None) -> list[str]:
        from genstudio.core.data.audio import SAMPLE_RATE, write_wav

        sr = getattr(spec, "sample_rate", 0) or SAMPLE_RATE
        return [str(write_wav(f"{stem}_{i}.wav", clip.clamp(-1, 1), sr)) for i, clip in enumerate(x)]


MODALITIES: dict[str, Modality] = {}


def register(modality: Modality) -> Modality:
    """Add ``modality`` under its name (a later one of the same name replaces it)."""
    if not modality.name:
        raise ValueError(f"{type(modality).__name__} has no name")
    MODALITIES[modality.name] = modality
    return modality


for _m in (Points2D(), Image(), Scene(), Field(), Latent(), Captioned(), Audio()):
    register(_m)


def modality_of(spec_or_kind: DataSpec | Modality | str) -> Modality:
    """The modality of a DataSpec, a kind name, or a modality itself."""
    if isinstance(spec_or_kind, Modality):
        return spec_or_kind
    kind = spec_or_kind if isinstance(spec_or_kind, str) else spec_or_kind.kind
    try:
        return MODALITIES[kind]
    except KeyError:
        raise KeyError(f"unknown data kind {kind!r}; registered: {', '.join(MODALITIES)}") from None


class Video(Modality):
    """Clips (C, T, H, W) in [-1, 1] (batches (B, C, T, H, W)): previews are one strip of frames per
    clip; metrics (``genstudio.core.metrics.video``) are per-frame FCD, the Frechet video-classifier
    distance, temporal consistency and motion correctness."""

    name = "video"
    rank = 4
    value_range = (-1.0, 1.0)
    user_data = "video"
    preview_n = 6
    eval_n = 256
    metrics = ("fcd_frames", "fvcd", "temporal", "motion")
    base_metrics = ("fcd_frames", "fvcd", "temporal", "motion")

    def preview(self, x: torch.Tensor) -> np.ndarray:
        from genstudio.core.metrics.video import frame_strips

        return frame_strips(x)

    def export(self, x: torch.Tensor, stem: str, spec: DataSpec | None = None) -> list[str]:
        from genstudio.core.metrics.video import save_clip

        return [str(save_clip(x[:8], f"{stem}.gif"))]

    def extractors(self, dataset: Dataset, names: Collection[str], *, inception: str | None = None,
                   root: Any = None, device: Any = "cpu") -> dict[str, Extractor]:
        from genstudio.core.metrics.video import video_extractors

        return video_extractors(dataset, names, root=root, device=device)


register(Video())
