"""Does the image obey the prompt? GenEval-like scoring on the scene graph, and a CLIPScore-like
score from a contrastive encoder.

* :func:`geneval_scores` -- per prompt category (single, colour, two, counting, position,
  colour_attr), the fraction of images whose scene graph, read back by the independent
  :mod:`~genstudio.core.metrics.scene_reader`, satisfies the prompt (``captions.satisfies``), with
  Wilson intervals, on seen and held-out combinations. Works on any images, so real test images
  (which score ~100 %) are the check that the instrument works.
* :func:`clip_scores` -- 100 * max(cos(image, caption), 0) per pair (the torchmetrics scaling of
  Hessel et al.'s CLIPScore, which uses w = 2.5), from any model with the TextImageEmbedding face.
* :data:`EVAL_METRICS` -- both as metrics of ``genstudio.core.eval`` for text-conditioned runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from genstudio.core.data import captions as C
from genstudio.core.metrics.functional import wilson_interval

SPLITS = ("seen", "heldout")


def geneval_scores(images: torch.Tensor, prompts: Sequence[str], reader: Any, alpha: float = 0.05
                   ) -> dict[str, dict[str, float]]:
    """Category -> {value, ci_low, ci_high, hits, n} for images[i] generated from prompts[i];
    "overall" is the mean over the categories present (GenEval's headline)."""
    graphs = reader.read(images)
    by_cat: dict[str, list[bool]] = {}
    for text, objs in zip(prompts, graphs):
        p = C.parse_prompt(text)
        if p is None:
            raise ValueError(f"prompt {text!r} is outside the captioned-shapes grammar; it cannot be checked")
        by_cat.setdefault(p.category, []).append(C.satisfies(p, objs))
    out: dict[str, dict[str, float]] = {}
    for cat in [c for c in C.CATEGORIES if c in by_cat]:
        ok = by_cat[cat]
        lo, hi = wilson_interval(sum(ok), len(ok), alpha)
        out[cat] = {"value": sum(ok) / len(ok), "ci_low": lo, "ci_high": hi, "hits": float(sum(ok)), "n": float(len(ok))}
    if out:
        out["overall"] = {"value": float(np.mean([v["value"] for v in out.values()])),
                          "n": float(sum(v["n"] for v in out.values()))}
    return out


def prompts_of(dataset: C.CaptionsDataset, split: str, per_category: int, seed: int = 0) -> list[str]:
    """The fixed test prompts of a split (the captions of ``dataset.test_set``)."""
    return dataset.test_set(split, per_category, seed=seed).captions


def generate(model: Any, prompts: Sequence[str], seed: int, batch_size: int = 250, **kw: Any) -> torch.Tensor:
    """Final samples of a TextConditional model, one per prompt, in batches."""
    from genstudio.core.plugin import final_state

    out = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            chunk = list(prompts[i:i + batch_size])
            out.append(final_state(model.sample(len(chunk), seed=seed + i, prompt=chunk, **kw)).x.detach().cpu().float())
    return torch.cat(out).clamp(-1, 1)


def geneval_model(model: Any, dataset: C.CaptionsDataset, reader: Any, per_category: int = 25, seed: int = 0,
                  alpha: float = 0.05, **kw: Any) -> dict[str, dict[str, dict[str, float]]]:
    """{split: geneval_scores} for a TextConditional model on the fixed test prompts."""
    out = {}
    for split in SPLITS:
        prompts = prompts_of(dataset, split, per_category, seed)
        out[split] = geneval_scores(generate(model, prompts, seed * 7919, **kw), prompts, reader, alpha)
    return out


@torch.no_grad()
def clip_scores(encoder: Any, images: torch.Tensor, prompts: Sequence[str]) -> np.ndarray:
    """100 * max(cos, 0) of each (image, prompt) pair under a TextImageEmbedding encoder."""
    a = encoder.embed_images(images)
    b = encoder.embed_text(list(prompts))
    cos = (torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1)).sum(-1)
    return (100.0 * cos.clamp(min=0)).double().cpu().numpy()


def encoder_of(model: Any) -> Any | None:
    """A TextImageEmbedding to score with: the model itself, or a run it uses (a frozen CLIP)."""
    from genstudio.core.faces import TextImageEmbedding, has_face

    for m in (model, *getattr(model, "runs", {}).values()):
        if has_face(m, TextImageEmbedding):
            return m
    return None


# -- metrics of the eval job -------------------------------------------------------------------------
def _text_run(ctx: Any) -> tuple[Any, C.CaptionsDataset]:
    from genstudio.core.faces import TextConditional

    if TextConditional not in ctx.faces:
        raise _skip()("needs a text-conditioned model (TextConditional face)")
    if not isinstance(ctx.ds, C.CaptionsDataset):
        raise _skip()("needs captioned-shapes data (its scene graphs are what is checked)")
    return ctx.model, ctx.ds


def _skip() -> type[Exception]:
    from genstudio.core.eval import _Skip

    return _Skip


def _per_category(ctx: Any) -> int:
    return max(4, min(100, ctx.n // 10))


def eval_geneval(ctx: Any, name: str) -> dict[str, Any]:
    """geneval (seen combinations) and geneval_heldout, with the per-category table and the reader's
    own accuracy on real images in the record."""
    from genstudio.core.metrics.scene_reader import scene_reader

    model, ds = _text_run(ctx)
    reader = scene_reader(device="cpu")
    k = _per_category(ctx)
    res = geneval_model(model, ds, reader, per_category=k, seed=ctx.ref_seed, alpha=ctx.alpha)
    acc = reader.meta.get("heldout_accuracy", {})
    worst = min(acc.values()) if acc else float("nan")
    out = {}
    for split, key in (("seen", "geneval"), ("heldout", "geneval_heldout")):
        r = res[split]
        cats = {c: v for c, v in r.items() if c != "overall"}
        hits, n = sum(v["hits"] for v in cats.values()), sum(v["n"] for v in cats.values())
        lo, hi = wilson_interval(hits, int(n), ctx.alpha)
        out[key] = {"value": r["overall"]["value"], "ci_low": lo, "ci_high": hi,
                    "note": f"mean over {len(cats)} prompt categories of the fraction of images whose read-back "
                            f"scene graph satisfies the prompt ({k} prompts each, {split} combinations; interval: "
                            f"Wilson over all {int(n)}); the scene reader scores >= {worst:.1%} per attribute on "
                            "real held-out images",
                    "extractor": "scene-reader", "categories": cats, "reader_accuracy": acc}
    return out


def eval_clipscore(ctx: Any, name: str) -> dict[str, Any]:
    """Mean CLIPScore-like score of the model's images for the seen test prompts, next to real
    matched pairs (the ceiling) and real mismatched ones (the floor)."""
    model, ds = _text_run(ctx)
    enc = encoder_of(model)
    if enc is None:
        raise _skip()("needs a contrastive encoder (TextImageEmbedding face: the model or a run it uses)")
    k = _per_category(ctx)
    real = ds.test_set("seen", k, seed=ctx.ref_seed)
    fake = generate(model, real.captions, ctx.ref_seed * 7919)
    s = clip_scores(enc, fake, real.captions)
    matched = clip_scores(enc, real.x, real.captions).mean()
    mismatched = clip_scores(enc, real.x, np.roll(np.array(real.captions), 1).tolist()).mean()
    se = float(s.std(ddof=1) / np.sqrt(len(s))) if len(s) > 1 else float("nan")
    return {"clipscore": {"value": float(s.mean()), "ci_low": float(s.mean() - 1.96 * se),
                          "ci_high": float(s.mean() + 1.96 * se), "extractor": "contrastive",
                          "note": f"100 * max(cos, 0) under the contrastive encoder, {len(s)} seen test prompts (mean "
                                  f"+- 1.96 se); real matched pairs score {matched:.1f}, mismatched {mismatched:.1f}",
                          "real_matched": float(matched), "real_mismatched": float(mismatched)}}


EVAL_METRICS: dict[str, Callable[[Any, str], dict[str, Any]]] = {"geneval": eval_geneval,
                                                                   "clipscore": eval_clipscore}
METRIC_INFO = {"geneval": ("GenEval-like prompt alignment (seen combinations)", "higher"),
               "geneval_heldout": ("GenEval-like prompt alignment (held-out combinations)", "higher"),
               "clipscore": ("CLIPScore-like text-image agreement", "higher")}
METRIC_RANGE = {"geneval": (0.0, 1.0), "geneval_heldout": (0.0, 1.0), "clipscore": (0.0, 100.0)}


# -- captioning: image -> caption, checked against the scene graph (additive) ------------------------
def caption_facts(prompt: C.Prompt) -> set[tuple]:
    """The attribute-level facts a caption states: how many objects, each shape present, its colour
    where said (bound to the shape), counts of a counting caption, the relation where said."""
    facts: set[tuple] = {("objects", len(prompt.objects))}
    for o in prompt.objects:
        facts.add(("shape", o.shape))
        if o.colour:
            facts.add(("colour", o.shape, o.colour))
    if prompt.category == "counting":
        facts.add(("count", prompt.objects[0].shape, len(prompt.objects)))
    if prompt.relation != "and":
        facts.add(("relation", prompt.objects[0].shape, prompt.relation, prompt.objects[1].shape))
    return facts


def fact_holds(fact: tuple, objects: Sequence[C.Obj]) -> bool:
    """Whether a scene graph's objects make ``fact`` (from :func:`caption_facts`) true."""
    kind = fact[0]
    if kind == "objects":
        return len(objects) == fact[1]
    if kind == "shape":
        return any(o.shape == fact[1] for o in objects)
    if kind == "colour":
        return any(o.shape == fact[1] and o.colour == fact[2] for o in objects)
    if kind == "count":
        return sum(o.shape == fact[1] for o in objects) == fact[2]
    _, s1, rel, s2 = fact
    return any(a.shape == s1 and b.shape == s2 and C.relation_holds(a, b, rel)
               for a in objects for b in objects if a is not b)


def caption_scores(captions: Sequence[str], scenes: Sequence[C.SceneGraph]) -> dict[str, float]:
    """Attribute-level precision (stated facts true of the scene graph; a caption outside the grammar
    counts as one false fact), recall (facts of the scene's own caption that the generated caption
    also states) and exact (the scene satisfies the generated caption as a whole)."""
    true_stated = stated = recalled = reference = exact = 0
    for text, scene in zip(captions, scenes):
        ref = caption_facts(C.parse_prompt(scene.caption))
        reference += len(ref)
        p = C.parse_prompt(text)
        if p is None:
            stated += 1
            continue
        facts = caption_facts(p)
        stated += len(facts)
        true_stated += sum(fact_holds(f, scene.objects) for f in facts)
        recalled += len(facts & ref)
        exact += C.satisfies(p, scene.objects)
    n = max(len(scenes), 1)
    return {"precision": true_stated / max(stated, 1), "recall": recalled / max(reference, 1), "exact": exact / n,
            "n": float(len(scenes))}


def eval_captioning(ctx: Any, name: str) -> dict[str, Any]:
    """caption_precision / caption_recall / caption_exact of a model's greedy captions (``caption_images``)
    of the seen test images, against their scene graphs."""
    if not callable(getattr(ctx.model, "caption_images", None)):
        raise _skip()("needs a model that captions images (caption_images)")
    if not isinstance(ctx.ds, C.CaptionsDataset):
        raise _skip()("needs captioned-shapes data (its scene graphs are what is checked)")
    real = ctx.ds.test_set("seen", _per_category(ctx), seed=ctx.ref_seed)
    caps = []
    for i in range(0, len(real), 250):
        caps += ctx.model.caption_images(real.x[i:i + 250], seed=ctx.ref_seed)
    r = caption_scores(caps, real.scenes)
    note = (f"attribute-level, greedy captions of {len(real)} seen test images against their scene graphs "
            "(objects, shapes, colours, counts, relations)")
    return {f"caption_{k}": {"value": r[k], "note": note, "extractor": "scene-graph"}
            for k in ("precision", "recall", "exact")}


EVAL_METRICS["captioning"] = eval_captioning
METRIC_INFO.update({"caption_precision": ("Caption facts true of the scene graph", "higher"),
                    "caption_recall": ("Reference caption facts the caption states", "higher"),
                    "caption_exact": ("Captions the scene satisfies as a whole", "higher")})
METRIC_RANGE.update({k: (0.0, 1.0) for k in ("caption_precision", "caption_recall", "caption_exact")})
