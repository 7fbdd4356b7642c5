"""The evaluation job: sample from a run, compare with the dataset, store honest numbers.

``evaluate(run, ...)`` is a generator job like ``train``/``sample`` in :mod:`genstudio.core.jobs`:
it yields progress dicts, publishes PROGRESS and RESULT events, honours a :class:`Control`
between batches and metrics, and returns the stored record (also written to
``run.eval_dir()/eval_<step>_<time>.json``). Drive it with ``run_eval(...)`` to get the record.

Every metric entry says what it is comparable to: ``{value, ci_low, ci_high, note, extractor}``.

Likelihoods: image plugins report ``log_prob`` as log P(discrete x) in nats (PixelCNN exactly, flows
as a dequantised bound, VAEs as an ELBO), so bits/dim is NLL / (D ln 2). A plugin whose image
``log_prob`` is a continuous density on [-1, 1] sets ``log_prob_continuous = True`` and gets the
dequantisation offset of :func:`genstudio.core.metrics.functional.discrete_bits_per_dim`.
Fréchet distances on our per-dataset classifiers are called FCD, never FID (FID needs the
Inception-v3 weights file). The reference set is ``dataset.fixed(n, seed=ref_seed)`` -- for the
built-in image sets that is training data, so a model that memorises scores perfectly. Distances
(fcd, fid, kid, energy, mmd, w2) also store ``reference``: the same metric between the reference set
and a disjoint second draw of real data, the floor a perfect model reaches at this n.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genstudio.core import events as ev
from genstudio.core.faces import Conditional, Likelihood, faces_of
from genstudio.core.jobs import Control, load_model
from genstudio.core.metrics import functional as M
from genstudio.core.metrics.features import Extractor
from genstudio.core.modality import MODALITIES, Modality, modality_of
from genstudio.core.runs import Run, atomic_write_text

SCHEMA = 1
INCEPTION_ENV = "GENSTUDIO_INCEPTION_WEIGHTS"

# name -> (label, which direction is better); the panel and the CLI use these
METRIC_INFO: dict[str, tuple[str, str]] = {
    "fcd": ("Fréchet classifier distance", "lower"),
    "fid": ("Fréchet Inception distance", "lower"),
    "kid": ("Kernel distance (unbiased MMD², cubic kernel)", "lower"),
    "is": ("Inception-style score", "higher"),
    "precision": ("Precision (k-NN manifold)", "higher"),
    "recall": ("Recall (k-NN manifold)", "higher"),
    "accuracy": ("Class accuracy of conditional samples", "higher"),
    "energy": ("Energy distance", "lower"),
    "mmd": ("MMD² (RBF kernels)", "lower"),
    "w2": ("Exact W2 (optimal assignment)", "lower"),
    "w1": ("Exact W1 (optimal transport)", "lower"),
    "sliced": ("Sliced W2 (random 1-D projections)", "lower"),
    "nll": ("NLL (nats per sample)", "lower"),
    "modes": ("Modes covered (of the data's modes)", "higher"),
    "bpd": ("Bits per dimension", "lower"),
    "sampling_time": ("Seconds per 64 samples", "lower"),
    "nfe": ("Network evaluations per sample", "lower"),
    "sample_steps": ("Sampler steps", "lower"),
}
# name -> (lowest, highest) value the metric can take (None = unbounded): intervals are shown clipped
# to it (a bootstrap interval of an unbiased MMD² can dip below 0; a distance never does). The
# stored record keeps the raw bounds.
METRIC_RANGE: dict[str, tuple[float | None, float | None]] = {
    "fcd": (0.0, None), "fid": (0.0, None), "kid": (0.0, None), "is": (1.0, None),
    "precision": (0.0, 1.0), "recall": (0.0, 1.0), "accuracy": (0.0, 1.0),
    "energy": (0.0, None), "mmd": (0.0, None), "w2": (0.0, None), "modes": (0.0, None),
    "w1": (0.0, None), "sliced": (0.0, None),
    "nll": (None, None), "bpd": (None, None),  # continuous densities can exceed 1: negative NLL is valid
    "sampling_time": (0.0, None), "nfe": (0.0, None), "sample_steps": (0.0, None),
}
# metrics whose record may carry ``reference``: the same metric between two disjoint draws of the
# data at the evaluated n (the noise floor a perfect model reaches; ``reference_n`` when the dataset
# is too small for a second n and the floor was measured at fewer)
REFERENCE_METRICS = ("fcd", "fid", "kid", "energy", "mmd", "w2", "w1", "sliced", "modes")


def clip_to_range(name: str, v: float | None) -> float | None:
    """``v`` clipped to ``METRIC_RANGE[name]`` (None stays None; unknown metrics are unbounded)."""
    if v is None:
        return None
    lo, hi = METRIC_RANGE.get(name, (None, None))
    if lo is not None and v < lo:
        v = lo
    if hi is not None and v > hi:
        v = hi
    return v


def clipped_interval(name: str, entry: dict[str, Any]) -> tuple[float | None, float | None]:
    """The entry's (ci_low, ci_high) clipped to the metric's valid range (for display)."""
    return clip_to_range(name, entry.get("ci_low")), clip_to_range(name, entry.get("ci_high"))


ALIASES = {"pr": ("precision", "recall"), "precision": ("precision", "recall"), "recall": ("precision", "recall"),
           "bpd": ("nll",), "likelihood": ("nll",)}


def available_metrics(kind: Modality | str) -> tuple[str, ...]:
    """Metric names ``evaluate`` accepts for a data kind (a modality or its name)."""
    return modality_of(kind).metrics


def default_metrics(kind: Modality | str, faces: Collection[type] = frozenset()) -> list[str]:
    """The metrics a run gets when none are asked for, from its modality and its model's faces
    (``faces.faces_of(model)``): see :meth:`Modality.default_metrics`."""
    return modality_of(kind).default_metrics(faces)


def _resolve(metrics: Sequence[str] | str | None, mod: Modality, faces: Collection[type]) -> list[str]:
    kind = mod.name
    if not mod.metrics:
        raise ValueError(f"no sample-quality metrics for {kind} data yet")
    if metrics is None or metrics == "" or metrics == "default":
        metrics = mod.default_metrics(faces)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    allowed = mod.metrics
    out: list[str] = []
    for m in (m.lower() for m in metrics):
        m = {"inception_score": "is", "energy_distance": "energy"}.get(m, m)
        if m not in allowed and m not in ALIASES:
            others = [k for k, md in MODALITIES.items() if k != kind and m in md.metrics]
            hint = f" ({m} is for {' and '.join(others)} data)" if others else ""
            raise ValueError(f"unknown metric {m!r} for {kind} data{hint}; {kind} data has: {', '.join(allowed)}")
        for x in ALIASES.get(m, (m,)):
            if x not in out:
                out.append(x)
    return out


def _last_state(states: Iterator[Any], on_state: Any, every_s: float = 0.5) -> Any:
    """Run a sampler to its end, calling ``on_state(state)`` at most every ``every_s`` seconds (and
    at its first step): one batch of 1000 DDPM steps takes minutes, its progress must show."""
    last, t_emit = None, -math.inf
    for last in states:
        now = time.perf_counter()
        if now - t_emit > every_s:
            t_emit = now
            on_state(last)
    if last is None:
        raise RuntimeError("sampler yielded no state")
    return last


def _entry(value: float | None, lo: float | None = None, hi: float | None = None, note: str = "",
           extractor: str = "", **extra: Any) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)

    return {"value": clean(value), "ci_low": clean(lo), "ci_high": clean(hi), "note": note,
            "extractor": extractor, **extra}


class _Skip(Exception):
    """A requested metric that does not apply to this run (recorded under "skipped")."""


@dataclass
class _Ctx:
    """What the per-metric functions read: features (real, real probs, fake, fake probs) per extractor."""

    n: int
    modality: Modality
    feats: dict[str, tuple[np.ndarray, Any, np.ndarray, Any]]
    extractors: dict[str, Extractor]
    pkey: str
    alpha: float
    boot: dict[str, Any]
    model: Any
    faces: frozenset[type]
    x_ref: torch.Tensor
    y_ref: torch.Tensor | None
    conditional: bool
    dim: int
    dev: Any
    batch_size: int
    ds: Any = None
    ref_seed: int = 0
    _x2: torch.Tensor | None = None
    _feats2: dict[str, np.ndarray] = field(default_factory=dict)

    def second_real(self) -> torch.Tensor | None:
        """Up to n real items apart from ``x_ref``: the rest of the same permutation for a dataset held
        in memory (``fixed(2n)`` starts with ``fixed(n)``: disjoint, as many as the dataset has left),
        else (an endless generator, the 2-D toys) an independent draw of n. Cached."""
        if self._x2 is None and self.ds is not None:
            both, _ = self.ds.fixed(2 * self.n, seed=self.ref_seed)
            if len(both) >= self.n and torch.equal(both[:self.n], self.x_ref):
                self._x2 = both[self.n:]
            else:
                self._x2, _ = self.ds.fixed(self.n, seed=self.ref_seed + 7919)
        return self._x2

    def reference(self, name: str, fn: Any, key: str | None = None) -> dict[str, Any]:
        """``{"reference": fn(real, other real)}`` on extractor ``key``'s features (default: the
        primary one): the value a perfect model scores at this n, clipped to the metric's range (an
        unbiased MMD² of two real sets dips below 0). Measured at m < n (and ``reference_n`` = m
        added) when the dataset holds fewer than 2n items; {} when there is no second set."""
        key = key or self.pkey
        x2 = self.second_real()
        m = min(self.n, len(x2)) if x2 is not None else 0
        if m < 2:
            return {}
        if key not in self._feats2:
            self._feats2[key] = self.extractors[key].features_and_probs(x2)[0]
        v = float(fn(self.feats[key][0][:m], self._feats2[key][:m]))
        if not math.isfinite(v):
            return {}
        return {"reference": clip_to_range(name, v), **({"reference_n": m} if m < self.n else {})}

    @property
    def primary(self) -> tuple[np.ndarray, Any, np.ndarray, Any, Extractor]:
        return (*self.feats[self.pkey], self.extractors[self.pkey])


def _fd(ctx: _Ctx, name: str) -> dict[str, Any]:
    key = "cnn" if name == "fcd" else "inception"
    fr, _, ff, _ = ctx.feats[key]
    ex = ctx.extractors[key]
    nb = ctx.boot["n_boot"] if ex.dim <= 512 else min(ctx.boot["n_boot"], 20)  # 2048-d replicates cost seconds
    ci = M.bootstrap_ci(M.fid_from_features, fr, ff, **{**ctx.boot, "n_boot": nb})
    note = f"{ex.name} features ({ex.dim}-d), n={ctx.n}: biased upwards in n, compare only at equal n and same extractor"
    debiased = None
    if ci.n_boot:  # the bootstrap bias estimate tracks the finite-n bias well (bench/bench_bootstrap.py)
        debiased = ci.value - ci.bias
        note += f"; bootstrap-debiased estimate {debiased:.4g} (closer to the n->inf value, not what papers report)"
    warn = M.fid_reliability(ctx.n, ex.dim)
    return {name: _entry(ci.value, ci.low, ci.high, note + (f". WARNING: {warn}" if warn else ""), ex.name,
                         bootstrap_bias=None if ci.n_boot == 0 else ci.bias, debiased=debiased, warning=warn,
                         **ctx.reference(name, M.fid_from_features, key))}


def _kid_full(a: np.ndarray, b: np.ndarray) -> float:
    return M.kid(a, b, subsets=1, subset_size=len(a))[0]


def _kid(ctx: _Ctx, name: str) -> dict[str, Any]:
    fr, _, ff, _, ex = ctx.primary
    ci = M.bootstrap_ci(_kid_full, fr, ff, **ctx.boot)
    return {"kid": _entry(ci.value, ci.low, ci.high, f"{ex.name} features; unbiased MMD² on all {ctx.n}x{ctx.n} "
                          "pairs (KID with one subset of size n); ~0 means indistinguishable", ex.name,
                          **ctx.reference("kid", _kid_full))}


def _is10(p: np.ndarray) -> float:
    return M.inception_score(p, 10)[0]


def _is(ctx: _Ctx, name: str) -> dict[str, Any]:
    _, pr, _, pf, ex = ctx.primary
    if pf is None:
        raise _Skip(f"{ex.name} has no class probabilities (unlabelled dataset)")
    ci = M.bootstrap_ci(_is10, pf, **ctx.boot)
    ref = _is10(pr)
    what = "Inception-v3 softmax" if ex.name == "inception-v3" else \
        f"{ex.name} softmax (max {ex.num_classes}; not comparable with Inception IS)"
    return {"is": _entry(ci.value, ci.low, ci.high, f"{what}, 10 splits; real data scores {ref:.3g}", ex.name, ref=ref)}


def _pr(ctx: _Ctx, name: str) -> dict[str, Any]:
    fr, _, ff, _, ex = ctx.primary
    p, r = M.precision_recall(fr, ff, k=3)
    out = {}
    for nm, v, what in (("precision", p, "fake in real manifold"), ("recall", r, "real in fake manifold")):
        lo, hi = M.wilson_interval(v * ctx.n, ctx.n, ctx.alpha)
        out[nm] = _entry(v, lo, hi, f"{ex.name} features, k=3 ({what}); Wilson interval over points, manifold "
                         "held fixed", ex.name)
    return out


def _accuracy(ctx: _Ctx, name: str) -> dict[str, Any]:
    cnn = ctx.extractors.get("cnn")
    if not ctx.conditional or cnn is None or not cnn.num_classes:
        raise _Skip("needs a conditional plugin on a labelled dataset")
    hits = float((ctx.feats["cnn"][3].argmax(1) == ctx.y_ref.numpy()).sum())
    lo, hi = M.wilson_interval(hits, ctx.n, ctx.alpha)
    va = cnn.meta.get("val_acc")
    return {"accuracy": _entry(hits / ctx.n, lo, hi, f"{cnn.name} predicts the requested class; the classifier "
                               f"itself scores {va:.1%} on held-out real data", cnn.name, ref=va)}


def _energy(ctx: _Ctx, name: str) -> dict[str, Any]:
    fr, _, ff, _, ex = ctx.primary
    ci = M.bootstrap_ci(M.energy_distance, fr, ff, **ctx.boot)
    return {"energy": _entry(ci.value, ci.low, ci.high, f"2E|X-Y|-E|X-X'|-E|Y-Y'| on raw points, n={ctx.n}", ex.name,
                             **ctx.reference("energy", M.energy_distance))}


def _mmd(ctx: _Ctx, name: str) -> dict[str, Any]:
    fr, _, ff, _, ex = ctx.primary
    med = M.median_bandwidth(fr)
    bws = (0.5 * med, med, 2 * med)
    fn = partial(M.mmd_rbf, bandwidths=bws)
    ci = M.bootstrap_ci(fn, fr, ff, **ctx.boot)
    return {"mmd": _entry(ci.value, ci.low, ci.high, f"unbiased, RBF bandwidths {', '.join(f'{b:.3g}' for b in bws)}"
                          " (0.5/1/2 x reference median distance)", ex.name, bandwidths=list(bws),
                          **ctx.reference("mmd", fn))}


def _w2(ctx: _Ctx, name: str) -> dict[str, Any]:
    fr, _, ff, _, ex = ctx.primary
    m = min(ctx.n, 1000)
    return {"w2": _entry(M.w2_exact(fr[:m], ff[:m]), note=f"exact optimal assignment on {m} vs {m} points; no "
                         "interval (O(n^3))", extractor=ex.name,
                         **ctx.reference("w2", lambda a, b: M.w2_exact(a[:m], b[:m])))}


def _w1(ctx: _Ctx, name: str) -> dict[str, Any]:
    from genstudio.core import ot

    fr, _, ff, _, ex = ctx.primary
    m = min(ctx.n, 1000)
    return {"w1": _entry(ot.w1(fr[:m], ff[:m]), note=f"exact optimal transport (POT) on {m} vs {m} points, "
                         "Euclidean cost; no interval", extractor=ex.name,
                         **ctx.reference("w1", lambda a, b: ot.w1(a[:m], b[:m])))}


def _sliced(ctx: _Ctx, name: str) -> dict[str, Any]:
    """Sliced W2 in the primary feature space (raw points, or the classifier's features for images):
    1-D transport along 200 seeded directions, cheap at any n and dimension."""
    from genstudio.core import ot

    fr, _, ff, _, ex = ctx.primary
    ci = M.bootstrap_ci(ot.sliced, fr, ff, **ctx.boot)
    return {"sliced": _entry(ci.value, ci.low, ci.high, f"sliced W2, 200 random directions, {ex.name} features",
                             ex.name, **ctx.reference("sliced", ot.sliced))}


def _nll(ctx: _Ctx, name: str) -> dict[str, Any]:
    lp_fn = getattr(ctx.model, "log_prob", None)
    if Likelihood not in ctx.faces or lp_fn is None:
        raise _Skip("the model has no log_prob (Likelihood face)")
    bs, n = ctx.batch_size, ctx.n
    nll = -torch.cat([lp_fn(ctx.x_ref[i:i + bs].to(ctx.dev)).detach().double().cpu()
                      for i in range(0, n, bs)]).numpy()
    mean, se = float(nll.mean()), float(nll.std(ddof=1) / math.sqrt(n))
    from scipy.stats import norm  # at first use: scipy.stats costs every importer ~0.3 s

    z = float(norm.ppf(1 - ctx.alpha / 2))
    out = {"nll": _entry(mean, mean - z * se, mean + z * se, f"nats per sample on {n} reference points (mean +- z*se);"
                         " a bound if the plugin's log_prob is one", "model")}
    quantised = ctx.modality.quantised
    levels = M.infer_levels(ctx.x_ref) if quantised else None
    continuous = not quantised or bool(getattr(ctx.model, "log_prob_continuous", False))
    if quantised and continuous and levels:
        conv = partial(M.discrete_bits_per_dim, dim=ctx.dim, levels=levels)
        note = (f"continuous density on [-1, 1] turned into discrete bits/dim for {levels} levels: "
                "(NLL + D log((levels-1)/2)) / (D ln 2)")
    elif quantised and not continuous:
        conv = partial(M.bits_per_dim, dim=ctx.dim)
        note = ("log P(discrete x) as image plugins report it (exact, dequantised bound or ELBO): NLL / (D ln 2)"
                + (f"; data has {levels} levels" if levels else ""))
    else:
        conv = partial(M.bits_per_dim, dim=ctx.dim)
        note = "continuous density (no quantisation offset): not comparable with discrete bits/dim"
    out["bpd"] = _entry(conv(mean), conv(mean - z * se), conv(mean + z * se), note, "model")
    return out


def _modes(ctx: _Ctx, name: str) -> dict[str, Any]:
    """Mode coverage (core.metrics.modes): a mixture's components within 3 std, or the classes the
    dataset's classifier finds in at least a quarter of their fair share; the real data's own
    coverage at this n is the reference."""
    from genstudio.core.metrics.modes import class_coverage, coverage_for

    cnn = ctx.extractors.get("cnn")
    if cnn is not None and cnn.num_classes:
        fake = class_coverage(ctx.feats["cnn"][3].argmax(1), cnn.num_classes)
        real = class_coverage(ctx.feats["cnn"][1].argmax(1), cnn.num_classes)
        note = f"classes {cnn.name} finds in >= 1/4 of their fair share of the {ctx.n} samples"
        return {"modes": _entry(fake["modes"], note=note, extractor=cnn.name, reference=real["modes"],
                                total=fake["modes_total"])}
    cover = coverage_for(ctx.ds) if ctx.ds is not None else None
    if cover is None:
        raise _Skip("the data has no known modes (a Gaussian mixture or labelled images)")
    fake = cover(ctx.primary[2] if isinstance(ctx.primary[2], torch.Tensor) else torch.as_tensor(ctx.primary[2]))
    real = cover(ctx.x_ref)
    return {"modes": _entry(fake["modes"], note=f"of {fake['modes_total']:g} mixture components, a sample within "
                            f"3 std; {fake['hq']:.1%} of samples lie within 3 std of some mode",
                            extractor=ctx.primary[4].name, reference=real["modes"], total=fake["modes_total"],
                            hq=fake["hq"])}


_METRIC_FNS = {"fcd": _fd, "fid": _fd, "kid": _kid, "is": _is, "precision": _pr, "recall": _pr,
               "accuracy": _accuracy, "energy": _energy, "mmd": _mmd, "w2": _w2, "w1": _w1, "sliced": _sliced, "nll": _nll,
               "modes": _modes}

# text-to-image alignment (GenEval-like, CLIPScore-like): metrics of the "captioned" modality
from genstudio.core.metrics import alignment as _alignment  # noqa: E402

_METRIC_FNS.update(_alignment.EVAL_METRICS)
METRIC_INFO.update(_alignment.METRIC_INFO)
METRIC_RANGE.update(_alignment.METRIC_RANGE)


def evaluate(run: Run, metrics: Sequence[str] | str | None = None, *, n: int | None = None, seed: int = 0,
             checkpoint: int | str | Path | None = None, control: Control | None = None,
             bus: ev.EventBus | None = None, device: str | None = None, steps: int | None = None,
             sampler: str | None = None, n_boot: int = 100, alpha: float = 0.05,
             inception: str | Path | None = None, batch_size: int = 250, ref_seed: int = 0,
             extractor_root: str | Path | None = None) -> Iterator[dict[str, Any]]:
    """Evaluate ``run`` (newest checkpoint, or ``checkpoint`` = step or path) on ``metrics``.

    ``metrics``: list or comma string of names from :func:`available_metrics` ("pr" = precision +
    recall, "nll" adds bits/dim for images); None = :func:`default_metrics`. ``n`` samples are
    compared with ``n`` reference points (default 1000 images / 2000 points; capped by the dataset
    size so both sets have equal n). ``inception`` (or $GENSTUDIO_INCEPTION_WEIGHTS) is a
    pt_inception-2015-12-05 weights file: it enables "fid" and is then used for kid/is/pr too.
    Yields ``{"stage", "done", "total"}``; returns the record that is written to the run folder.
    """
    control = control or Control()
    bus = bus or ev.EventBus()
    rid = run.id
    t_start = time.time()
    info = run.info()
    model, ds, step = load_model(run, device)
    faces = faces_of(model)  # asked of this run's model: a class_cond DDPM is Conditional
    ck_name = run.checkpoints()[-1][1].name if run.checkpoints() else None
    if checkpoint is not None:
        path = run.checkpoint_path(checkpoint)
        step, state = run.load_checkpoint(path)
        model.load_state_dict(state)
        ck_name = path.name
    mod = ds.spec.modality
    names = _resolve(metrics, mod, faces)
    inception = inception or os.environ.get(INCEPTION_ENV) or None
    if "fid" in names and not inception:
        raise ValueError("fid needs the Inception-v3 weights file (pt_inception-2015-12-05-6726825d.pth): pass "
                         f"inception=PATH or set ${INCEPTION_ENV}; without it use fcd (Fréchet classifier distance)")
    dev = getattr(model, "device", None) or torch.device("cpu")

    n = int(n or mod.eval_n)
    x_ref, y_ref = ds.fixed(n, seed=ref_seed)
    n = len(x_ref)
    conditional = Conditional in faces and y_ref is not None
    n_batches = math.ceil(n / batch_size)
    total = n_batches + 1 + len(names)
    done = 0

    def progress(stage: str) -> dict[str, Any]:
        nonlocal done
        done += 1
        bus.emit(ev.PROGRESS, rid, done=done, total=total, rate=0.0, stage=stage, job="eval")
        return {"stage": stage, "done": done, "total": total}

    # the feature extractors first: a bad weights file (say, a pickle passed as --inception) fails
    # before minutes of sampling, not after
    extractors = mod.extractors(ds, names, inception=inception, root=extractor_root, device=dev)

    # 1. samples ------------------------------------------------------------------------------
    fakes, nfe, t_sample, last_total = [], None, 0.0, None
    for i in range(n_batches):
        control.check()
        lo, hi = i * batch_size, min(n, (i + 1) * batch_size)
        cond = y_ref[lo:hi].to(dev) if conditional else None
        t0 = time.perf_counter()
        with torch.no_grad():
            kw = {"cond": cond} if conditional else {}  # only Conditional models take cond
            st = _last_state(
                model.sample(hi - lo, seed=seed * 100_003 + i, steps=steps, sampler=sampler, **kw),
                lambda s, lo=lo: bus.emit(ev.PROGRESS, rid, done=done, total=total, rate=0.0, job="eval",
                                          stage=f"sampling {lo}/{n} (batch step {s.step}/{s.total})"))
        t_sample += time.perf_counter() - t0
        fakes.append(st.x.detach().cpu().float())
        nfe = st.extras.get("nfe", nfe)
        last_total = st.total
        yield progress(f"sampling {hi}/{n}")
    x_fake = torch.cat(fakes)
    bad = int((~torch.isfinite(x_fake)).reshape(len(x_fake), -1).any(1).sum())
    if bad:
        raise ValueError(f"the model produced {bad} non-finite samples out of {n}; metrics would be meaningless")
    # clamped as if saved (8-bit images), the way published numbers are made; a wrong shape stops here
    x_fake = mod.check(mod.clamp(x_fake), ds.spec.shape, "samples")

    # 2. features -----------------------------------------------------------------------------
    control.check()
    primary = extractors.get("inception") or extractors.get("cnn") or extractors.get("raw")
    feats: dict[str, tuple[np.ndarray, Any, np.ndarray, Any]] = {}
    for key, ex in extractors.items():
        fr, pr_ = ex.features_and_probs(x_ref)
        ff, pf = ex.features_and_probs(x_fake)
        feats[key] = (fr, pr_, ff, pf)
    yield progress("features")

    # 3. metrics ------------------------------------------------------------------------------
    pkey = "inception" if "inception" in extractors else ("cnn" if "cnn" in extractors else "raw")
    ctx = _Ctx(n=n, modality=mod, feats=feats, extractors=extractors, pkey=pkey, alpha=alpha,
               boot=dict(n_boot=n_boot, alpha=alpha, seed=seed), model=model, faces=faces, x_ref=x_ref,
               y_ref=y_ref, conditional=conditional, dim=ds.spec.dim, dev=dev, batch_size=batch_size,
               ds=ds, ref_seed=ref_seed)
    out: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for name in names:
        control.check()
        try:
            if name not in out:  # precision and recall come together
                out.update(_METRIC_FNS[name](ctx, name))
        except _Skip as s:
            skipped[name] = str(s)
        yield progress(name)

    per64 = t_sample / n * 64
    out["sampling_time"] = _entry(per64, note=f"seconds per 64 samples on {dev} (batches of {batch_size}"
                                  + (f", {steps} steps" if steps else "") + ")", extractor="timer")
    if nfe is not None:
        out["nfe"] = _entry(float(nfe), note="network evaluations per sample, as the plugin reports", extractor="plugin")
    if last_total is not None:
        out["sample_steps"] = _entry(float(last_total), note="sampler steps of the final state (NFE may differ, e.g. "
                                     "2 per step for Heun)", extractor="plugin")

    record = {
        "schema": SCHEMA, "job": "eval", "run": rid, "plugin": info.get("plugin"), "dataset": info.get("dataset"),
        "step": int(step), "checkpoint": ck_name, "n": n, "seed": seed, "ref_seed": ref_seed,
        "sampler": sampler, "steps": steps, "sample_steps": last_total, "conditional": conditional,
        "extractor": primary.describe() if primary else None,
        "extractors": {ex.name: ex.describe() for ex in extractors.values()},
        "metrics": out, "skipped": skipped, "sampling_time": per64, "nfe": nfe, "device": str(dev),
        "time": time.time(), "duration": round(time.time() - t_start, 2),
    }
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"{int((time.time() % 1) * 1000):03d}"
    path = run.eval_dir() / f"eval_{int(step):08d}_{stamp}.json"
    atomic_write_text(path, json.dumps(record, indent=2))
    record["path"] = str(path)
    run.log(f"evaluated step {step}: " + ", ".join(f"{k}={v['value']:.4g}" for k, v in out.items()
                                                      if v["value"] is not None))
    bus.emit(ev.RESULT, rid, job="eval", path=str(path), record=record)
    return record


def evaluate_checkpoints(run: Run, metrics: Sequence[str] | str | None = None, **kw: Any) -> Iterator[dict[str, Any]]:
    """Evaluate every stored checkpoint of ``run`` in step order (the chart over training)."""
    records = []
    for step, _ in run.checkpoints():
        records.append((yield from evaluate(run, metrics, checkpoint=step, **kw)))
    return records


def run_eval(run: Run, metrics: Sequence[str] | str | None = None, **kw: Any) -> dict[str, Any]:
    """Drive :func:`evaluate` to the end and return its record (CLI, scripts, tests)."""
    gen = evaluate(run, metrics, **kw)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def load_evals(run: Run) -> list[dict[str, Any]]:
    """All stored eval records of a run, by (step, time); unreadable files are skipped."""
    d = run.path / "evals"
    out = []
    if d.is_dir():
        for p in d.glob("eval_*.json"):
            try:
                rec = json.loads(p.read_text("utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("metrics"), dict):
                rec["path"] = str(p)
                out.append(rec)
    return sorted(out, key=lambda r: (r.get("step", 0), r.get("time", 0)))


def reference_text(entry: dict[str, Any], digits: int = 4) -> str:
    """``real-vs-real floor 0.0123`` (``… at n=797`` when the dataset only had room for a smaller
    second draw); "" when the entry has no floor. The CLI and the Metrics panel say it this way."""
    r = entry.get("reference")
    if not isinstance(r, (int, float)) or not math.isfinite(r):
        return ""
    m = entry.get("reference_n")
    return f"real-vs-real floor {r:.{digits}g}" + (f" at n={m}" if m else "")


def format_value(entry: dict[str, Any], digits: int = 4, name: str = "") -> str:
    """``12.3 [11.9, 12.8]`` -- the text the table and the CLI print; with the metric's ``name`` the
    interval is clipped to its valid range (:data:`METRIC_RANGE`)."""
    v = entry.get("value")
    if v is None:
        return "—"
    s = f"{v:.{digits}g}"
    lo, hi = clipped_interval(name, entry) if name else (entry.get("ci_low"), entry.get("ci_high"))
    if lo is not None and hi is not None:
        s += f" [{lo:.{digits - 1}g}, {hi:.{digits - 1}g}]"
    return s

# video clips: per-frame FCD, Frechet video-classifier distance, temporal consistency, motion correctness
from genstudio.core.metrics import video as _video  # noqa: E402

_METRIC_FNS.update(_video.EVAL_METRICS)
METRIC_INFO.update(_video.METRIC_INFO)
METRIC_RANGE.update(_video.METRIC_RANGE)
