"""Classifier-free guidance sweep: class accuracy and diversity against the guidance scale.

Guidance trades diversity for class fidelity (Ho & Salimans 2022). For each scale we sample every
class, ask a classifier which class each sample looks like, and measure how spread out the samples of
one class are. The classifier is the exact posterior (component responsibilities) for 2-D Gaussian
mixtures -- so the accuracy is not confounded by a learned classifier's errors -- and the cached
dataset classifier (:func:`classifier_for`) for images, whose penultimate features are also the space
the diversity is measured in (pixel distances say little about variety).

Text-conditional models (the TextConditional face) on captioned shapes get the same rows from
:func:`text_guidance_sweep`: a fixed prompt set, a few samples per prompt, the GenEval-like
accuracy, within-prompt diversity in the scene reader's features, and the fraction of saturated
pixel values (over-saturation is what too much guidance looks like).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from genstudio.core.data import Dataset
from genstudio.core.plugin import final_state

Classify = Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]  # x -> (features, class probabilities)


def responsibilities(dataset: Any, x: torch.Tensor) -> torch.Tensor:
    """Exact posterior p(component | x) of a GaussianMixture2D (rows sum to 1)."""
    var = dataset.std**2
    d = x.double()[:, None, :] - dataset.means[None]
    return torch.softmax(-0.5 * (d**2).sum(-1) / var + dataset.weights.log()[None], dim=1)


def classifier(dataset: Dataset, device: torch.device | str = "cpu", log: Any = None) -> Classify:
    """(features, probabilities) for samples of ``dataset``: raw points and the exact posterior for a
    2-D mixture, the cached classifier's features and softmax for images."""
    if hasattr(dataset, "means") and hasattr(dataset, "std"):
        return lambda x: (x.double().numpy(), responsibilities(dataset, x.cpu()).numpy())
    if not dataset.spec.modality.spatial or not dataset.spec.num_classes:
        raise ValueError(f"no classifier for {dataset.spec.name}: needs a labelled image dataset or a 2-D mixture")
    from genstudio.core.metrics.features import classifier_for

    ext = classifier_for(dataset, device=device, log=log)
    if not ext.num_classes:
        raise ValueError(f"the classifier of {dataset.spec.name} has no class probabilities")

    def run(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        f, p = ext.features_and_probs(x)
        return f, p

    return run


def mean_pairwise_distance(f: np.ndarray) -> float:
    """Mean Euclidean distance over distinct pairs (0 for fewer than two points)."""
    n = len(f)
    if n < 2:
        return 0.0
    f = np.asarray(f, dtype=np.float64)
    sq = (f**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None] - 2 * f @ f.T, 0.0)
    return float(np.sqrt(d2).sum() / (n * (n - 1)))


def score(feats: np.ndarray, probs: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[float, float]:
    """(accuracy, mean within-class pairwise distance) of a labelled set of samples."""
    acc = float((probs.argmax(1) == labels).mean())
    div = [mean_pairwise_distance(feats[labels == c]) for c in range(num_classes) if (labels == c).sum() > 1]
    return acc, float(np.mean(div)) if div else 0.0


def default_sampler(model: Any) -> str | None:
    """The sampler a sweep uses when none is asked for: DDIM where the plugin has it (its own
    ``sample_steps``, e.g. 50, instead of DDPM's 1000 ancestral steps per scale), else the plugin's."""
    samplers = tuple(getattr(getattr(model, "info", None), "samplers", ()) or ())
    return "ddim" if "ddim" in samplers else None


def within_group_distance(f: np.ndarray, groups: np.ndarray) -> float:
    """Mean over groups (of two or more) of :func:`mean_pairwise_distance` within the group."""
    d = [mean_pairwise_distance(f[groups == g]) for g in np.unique(groups) if (groups == g).sum() > 1]
    return float(np.mean(d)) if d else 0.0


def _final_samples(model: Any, n: int, scale: float, seed: int, steps: int | None, sampler: str | None,
                   on_step: Callable[[float, int, int], None] | None, **cond: Any) -> torch.Tensor:
    """The last state's images of one ``model.sample`` call at guidance ``scale`` (``on_step``
    after every sampler step, else only the final state is decoded)."""
    with torch.no_grad():
        kw = {"sampler": sampler} if sampler else {}  # a plugin without samplers takes no sampler=
        states = model.sample(n, seed=seed, steps=steps, guidance=float(scale),
                              every=1 if on_step is not None else 10**9, **cond, **kw)
        if on_step is None:
            return final_state(states).x.float().cpu()
        last = None
        for last in states:
            on_step(float(scale), int(last.step), int(last.total))
        if last is None:
            raise RuntimeError("sampler yielded no state")
        return last.x.float().cpu()


def is_text_conditional(model: Any, dataset: Dataset) -> bool:
    """Whether the sweep is the text one: a TextConditional model on captioned shapes."""
    from genstudio.core.data.captions import CaptionsDataset
    from genstudio.core.faces import TextConditional, has_face

    return isinstance(dataset, CaptionsDataset) and has_face(model, TextConditional)


def saturation(x: torch.Tensor, tol: float = 2 / 255) -> float:
    """Fraction of pixel values at or beyond the [-1, 1] range limits (within one 8-bit level)."""
    return float((x.abs() >= 1 - tol).float().mean()) if x.numel() else 0.0


def real_images(dataset: Any, prompts: Sequence[str], per_prompt: int, seed: int, split: str = "seen"
                ) -> torch.Tensor:
    """``per_prompt`` freshly drawn real images of each prompt (the scene varies where the caption
    leaves it open: cells, sizes, unsaid colours), prompt-major: the diversity reference."""
    import random

    from genstudio.core.data import captions as C

    rng = random.Random(seed)
    scenes = [C.scene_for(rng, C.parse_prompt(p), split) for p in prompts for _ in range(per_prompt)]
    return C.render(scenes, dataset.size)


def text_guidance_sweep(model: Any, dataset: Any, scales: Sequence[float] = (0, 1, 2, 4, 8), *,
                        per_category: int = 4, per_prompt: int = 4, seed: int = 0, steps: int | None = None,
                        sampler: str | None = None, split: str = "seen", reader: Any = None,
                        callback: Callable[[dict[str, Any]], None] | None = None,
                        should_stop: Callable[[], bool] | None = None,
                        on_step: Callable[[float, int, int], None] | None = None) -> list[dict[str, Any]]:
    """The guidance sweep of a TextConditional model on captioned shapes. Per scale, ``per_prompt``
    samples (different noise) of each of the fixed test prompts (:func:`prompts_of`, ``per_category``
    per category): ``accuracy`` = GenEval-like overall fraction, ``diversity`` = mean within-prompt
    pairwise distance in the scene reader's features over the same for real images of the same
    prompts (1 = as varied as the data), ``saturation`` = fraction of pixel values at the range
    limits (``data_saturation``: the same of real images, black backgrounds included; ``clipped``:
    the fraction beyond them before clamping, 0 for data), and the rows' other keys as
    :func:`guidance_sweep`'s."""
    from genstudio.core.metrics.alignment import geneval_scores, prompts_of
    from genstudio.core.metrics.scene_reader import scene_reader

    reader = reader or scene_reader(device="cpu")
    prompts = prompts_of(dataset, split, per_category, seed)
    batch = [p for p in prompts for _ in range(per_prompt)]
    groups = np.repeat(np.arange(len(prompts)), per_prompt)
    real = real_images(dataset, prompts, per_prompt, seed + 1, split)
    data_acc = geneval_scores(real, batch, reader)["overall"]["value"]
    data_div = within_group_distance(reader.features(real).double().numpy(), groups)
    data_sat = saturation(real)
    def one(w: float) -> dict[str, Any]:
        x = _final_samples(model, len(batch), w, seed, steps, sampler, on_step, prompt=batch)
        sat, clipped = saturation(x), float((x.abs() > 1 + 2 / 255).float().mean())
        x = x.clamp(-1, 1)
        res = geneval_scores(x, batch, reader)
        div = within_group_distance(reader.features(x).double().numpy(), groups)
        return {"accuracy": res["overall"]["value"], "diversity": div / data_div if data_div > 0 else math.nan,
                "diversity_raw": div, "saturation": sat, "clipped": clipped, "data_accuracy": data_acc,
                "data_diversity": data_div, "data_saturation": data_sat, "n": len(batch), "per_prompt": per_prompt,
                "split": split, "categories": {c: v["value"] for c, v in res.items() if c != "overall"},
                "sampler": sampler}

    return _scale_rows(scales, one, should_stop, callback)


def guidance_sweep(model: Any, dataset: Dataset, scales: Sequence[float] = (0, 1, 2, 4, 8), *,
                   n_per_class: int = 25, seed: int = 0, steps: int | None = None,
                   sampler: str | None = None,
                   classify: Classify | None = None,
                   callback: Callable[[dict[str, Any]], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   on_step: Callable[[float, int, int], None] | None = None) -> list[dict[str, Any]]:
    """One row per scale: ``accuracy`` (fraction of samples the classifier puts in the requested
    class), ``diversity`` (mean within-class pairwise feature distance divided by the data's own,
    so 1 = as varied as the data), plus the raw numbers and ``seconds``. ``model`` must be class
    conditional (``sample(cond=..., guidance=...)``), or text conditional on captioned shapes: then
    :func:`text_guidance_sweep` with ``n_per_class`` samples per prompt category (4 per prompt).
    ``sampler`` None = :func:`default_sampler`; ``on_step(scale, step, total)`` is called after
    each sampler step (progress bars)."""
    sampler = sampler or default_sampler(model)
    if is_text_conditional(model, dataset):
        per_prompt = 4
        return text_guidance_sweep(model, dataset, scales, per_category=max(1, -(-n_per_class // per_prompt)),
                                   per_prompt=per_prompt, seed=seed, steps=steps, sampler=sampler,
                                   callback=callback, should_stop=should_stop, on_step=on_step)
    k = dataset.spec.num_classes
    if not k or not getattr(model, "num_classes", 0):
        raise ValueError("guidance needs a class-conditional model (class_cond) on a labelled dataset, "
                         "or a text-conditional one on captioned shapes")
    classify = classify or classifier(dataset, getattr(model, "device", "cpu"))
    labels = torch.arange(k).repeat_interleave(n_per_class)
    # The data's own accuracy and diversity: the reference the diversity is normalised by.
    g = torch.Generator().manual_seed(seed + 1)
    xd, yd = dataset.batch(k * n_per_class, g)
    fd, pd = classify(xd)
    data_acc, data_div = score(fd, pd, yd.numpy(), k)
    def one(w: float) -> dict[str, Any]:
        f, p = classify(_final_samples(model, len(labels), w, seed, steps, sampler, on_step, cond=labels))
        acc, div = score(f, p, labels.numpy(), k)
        return {"accuracy": acc, "diversity": div / data_div if data_div > 0 else math.nan, "diversity_raw": div,
                "data_accuracy": data_acc, "data_diversity": data_div, "n": len(labels), "sampler": sampler}

    return _scale_rows(scales, one, should_stop, callback)


def _scale_rows(scales: Sequence[float], one: Callable[[float], dict[str, Any]],
                should_stop: Callable[[], bool] | None,
                callback: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    """``one(scale)`` for each scale (until ``should_stop``), each row timed and handed to ``callback``."""
    rows = []
    for w in scales:
        if should_stop is not None and should_stop():
            break
        t0 = time.perf_counter()
        row = {"scale": float(w), **one(float(w))}
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        if callback is not None:
            callback(row)
    return rows


def guidance_job(run: Any, scales: Sequence[float], n_per_class: int, control: Any,
                 on_row: Callable[[dict[str, Any]], None] | None = None) -> Iterator[int]:
    """The guidance sweep of a run's newest checkpoint as a job (``control.check()`` per row);
    returns the rows."""
    from genstudio.core import jobs

    model, ds, _ = jobs.load_model(run)

    def row_cb(row: dict[str, Any]) -> None:
        control.check()
        if on_row is not None:
            on_row(row)

    rows = guidance_sweep(model, ds, scales, n_per_class=n_per_class, callback=row_cb)
    yield len(rows)
    return rows
