"""Sample quality against network evaluations (NFE) for every sampler of the diffusion family.

    python bench/bench_samplers.py [--dataset 8gaussians|digits] [--steps 3000] [--batch B] [--n 2000]
                                   [--max-nfe 1000] [--ref-nfe 1000] [--cd-steps S] [--lr-decay]
                                   [--families ddpm,score_sde,ncsn,ot_cfm,rectified,consistency,cd]
                                   [--set ddpm.ema_decay=0.9999 ...] [--seeds 1] [--csv rows.csv] [--threads 1]

Trains each family for the same number of steps (rectified flow: half on data, half on one reflow
round; consistency training's level curriculum spans all of them; "cd" distils the DDPM trained
just before it for ``--cd-steps`` more steps), then runs every sampler at 1, 2, 4, ... ``--max-nfe``
network evaluations (counted) and DDPM ancestral also at ``--ref-nfe``. Quality: energy distance to
fresh data for 2-D sets, the dataset classifier's Fréchet distance (FCD) for images.

The summary gives, per sampler, the fewest NFE that reach the quality of ``--ref-nfe``-step DDPM
ancestral sampling plus a margin: the real-vs-real value of the metric at this n (two disjoint real
sets where the dataset is finite), i.e. what the metric cannot resolve. The 95 % bootstrap interval
of the reference (resampling its samples) is printed next to it as a second yardstick.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from genstudio_plugins.consistency import ConsistencyConfig, ConsistencyPlugin  # noqa: E402
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin  # noqa: E402
from genstudio_plugins.flow_matching import FlowMatchingConfig, FlowMatchingPlugin  # noqa: E402
from genstudio_plugins.ncsn import NCSNConfig, NCSNPlugin  # noqa: E402
from genstudio_plugins.score_sde import ScoreSDEConfig, ScoreSDEPlugin  # noqa: E402

from genstudio.core.data import TensorDataset, get_dataset  # noqa: E402
from genstudio.core.metrics import bootstrap_ci, energy_distance, fid_from_features  # noqa: E402
from genstudio.core.plugin import apply_lr_schedule  # noqa: E402
from genstudio.core.tools.nfe import budgets, nfe_curve  # noqa: E402


def families(steps: int, image: bool, cd_steps: int) -> dict[str, tuple[type, Any]]:
    """(plugin class, config) per family name; ``steps`` sets the schedules that depend on the budget."""
    sigma_data = 0.5 if image else 1.4  # EDM's value for [-1, 1] images; the 2-D toys' spread
    return {
        "ddpm": (DDPMPlugin, DDPMConfig()),
        "score_sde": (ScoreSDEPlugin, ScoreSDEConfig(sde="vp")),
        "ot_cfm": (FlowMatchingPlugin, FlowMatchingConfig(method="ot_cfm", straightness_every=0)),
        "rectified": (FlowMatchingPlugin, FlowMatchingConfig(method="rectified", reflow_rounds=1,
                                                             stage_steps=max(1, steps // 2), straightness_every=0)),
        "ncsn": (NCSNPlugin, NCSNConfig()),
        "consistency": (ConsistencyPlugin, ConsistencyConfig(sigma_data=sigma_data, total_steps=steps)),
        "cd": (ConsistencyPlugin, ConsistencyConfig(sigma_data=sigma_data, mode="distillation", levels_start=18,
                                                    total_steps=cd_steps)),
    }


def apply_overrides(fam: str, cfg: Any, sets: list[str]) -> Any:
    """``family.field=value`` strings -> a copy of ``cfg`` with those fields (typed like the defaults)."""
    changes = {}
    for item in sets:
        key, _, value = item.partition("=")
        f, _, field = key.partition(".")
        if f != fam:
            continue
        old = getattr(cfg, field)  # AttributeError names an unknown field
        changes[field] = (value.lower() in ("1", "true", "yes")) if isinstance(old, bool) else type(old)(value)
    return dataclasses.replace(cfg, **changes) if changes else cfg


def train(cls: type, cfg: Any, ds: Any, steps: int, device: str, seed: int = 0,
          teacher: Any = None, lr_decay: bool = False) -> tuple[Any, float]:
    """``lr_decay``: the app's own cosine decay to 0 over ``steps`` (config ``lr_decay_steps``): on
    8 Gaussians it closes most of the gap between a DDPM's ODE and its ancestral sampler
    (bench_ode_gap.py); the last steps at a small lr average out the noise in the learned epsilon."""
    if lr_decay:
        cfg = dataclasses.replace(cfg, lr_decay_steps=steps)
    torch.manual_seed(seed)
    model = cls(cfg, device)
    model.setup(ds.spec)
    if teacher is not None:
        model.set_teacher(teacher)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for s in range(1, steps + 1):
        x, y = ds.batch(cfg.batch_size, g)
        apply_lr_schedule(model, s)
        model.train_step(x, y, s)
    return model, time.perf_counter() - t0


class Metric:
    """Samples -> features -> distance to a fixed real reference, plus the metric's real-vs-real value.

    Images: the dataset classifier's penultimate features and the Fréchet distance (FCD); 2-D points
    are their own features with the energy distance. For a finite dataset the second real set is
    disjoint from the reference (digits: 1797 images, so n <= 898 for two disjoint halves)."""

    def __init__(self, ds: Any, n: int, device: str = "cpu") -> None:
        self.image = ds.spec.modality.spatial  # classifier features (FCD) for pictures
        if isinstance(ds, TensorDataset):
            both, _ = ds.fixed(2 * n, seed=1)  # a permutation: its first n are fixed(n, seed=1)
            ref, other = both[:n], both[n:]
        else:
            ref, other = ds.fixed(n, seed=1)[0], ds.fixed(n, seed=2)[0]
        if self.image:
            from genstudio.core.metrics.features import classifier_for

            self.extractor = classifier_for(ds, device=device)
            self.name = "FCD"
        else:
            self.name = "energy"
        self.ref = self.features(ref)
        self.floor = self.distance(self.features(other))
        self.floor_n = len(other)

    def features(self, x: torch.Tensor) -> np.ndarray:
        if self.image:
            return self.extractor.features_and_probs(x.clamp(-1, 1))[0]
        return x.detach().double().cpu().numpy()

    def distance(self, f: np.ndarray) -> float:
        return float(fid_from_features(self.ref, f) if self.image else energy_distance(f, self.ref))

    def __call__(self, x: torch.Tensor) -> float:
        return self.distance(self.features(x))


def run_family(model: Any, ds: Any, metric: Metric, fam: str, args: argparse.Namespace,
               keep: Callable[[dict[str, Any], torch.Tensor], None]) -> list[dict[str, Any]]:
    """NFE ladder for every sampler of ``model``; DDPM ancestral gets the reference budget too."""
    last: dict[str, torch.Tensor] = {}

    def quality(x: torch.Tensor) -> float:
        last["x"] = x
        return metric(x)

    def report(r: dict[str, Any]) -> None:
        print(f"  {r['sampler']:<17} steps {r['steps']:>5}  nfe {r['nfe']:>5}  {metric.name} {r['quality']:.5f}"
              + (f" ± {r['sd']:.5f}" if args.seeds > 1 else "") + f"  {r['seconds']:.2f}s", flush=True)

    rows = []
    for s in model.info.samplers:
        if f"{fam}:{s}" in args.skip.split(","):
            continue
        ladder = budgets(args.max_nfe) + ([args.ref_nfe] if fam == "ddpm" and s == "ddpm" else [])
        per_seed = [nfe_curve(model, ds, [s], n=args.n, seed=seed, quality=quality, nfes=sorted(set(ladder)),
                              callback=(lambda r: keep(dict(r, family=fam), last["x"])) if seed == 0 else None)
                    for seed in range(args.seeds)]
        for rs in zip(*per_seed):  # one row per budget: mean and sd over the sampling seeds
            q = np.array([r["quality"] for r in rs])
            row = dict(rs[0], family=fam, quality=float(q.mean()), sd=float(q.std(ddof=1)) if len(q) > 1 else 0.0,
                       seconds=sum(r["seconds"] for r in rs))
            report(row)
            rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]], loose: float, strict: float) -> None:
    """Per (family, sampler): fewest NFE within reference + real-vs-real (``loose``) and within the
    reference's upper 95 % bootstrap bound (``strict``; tighter for the FCD on digits, looser for the
    energy distance on 2-D sets), and the best value reached."""
    heads = [f"NFE <= {t:.4g}" for t in (loose, strict)]
    print(f"{'family':<12} {'sampler':<17} {heads[0]:>13} {heads[1]:>13}   best")
    for fam_s in dict.fromkeys((r["family"], r["sampler"]) for r in rows):
        mine = [r for r in rows if (r["family"], r["sampler"]) == fam_s]
        hits = [min((r["nfe"] for r in mine if r["quality"] <= t), default="-") for t in (loose, strict)]
        best = min(mine, key=lambda r: r["quality"])
        print(f"{fam_s[0]:<12} {fam_s[1]:<17} {hits[0]:>13} {hits[1]:>13}   {best['quality']:.5f} @ {best['nfe']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="8gaussians")
    ap.add_argument("--steps", type=int, default=3000, help="training steps per family")
    ap.add_argument("--batch", type=int, default=0, help="training batch (0: each config's default)")
    ap.add_argument("--lr-decay", action="store_true", help="cosine learning-rate decay to 0 over each "
                    "family's training (all families alike)")
    ap.add_argument("--cd-steps", type=int, default=0, help="distillation steps of the cd family (0: --steps)")
    ap.add_argument("--max-nfe", type=int, default=1000, help="top of the 1, 2, 4, ... NFE ladder")
    ap.add_argument("--ref-nfe", type=int, default=1000, help="DDPM ancestral steps of the reference")
    ap.add_argument("--n", type=int, default=2000, help="samples per evaluation (and reference size)")
    ap.add_argument("--families", default="ddpm,score_sde,ncsn,ot_cfm,rectified,consistency,cd")
    ap.add_argument("--skip", default="", help="family:sampler pairs to leave out, comma-separated")
    ap.add_argument("--set", action="append", default=[], metavar="FAMILY.FIELD=VALUE",
                    help="config override, e.g. ddpm.ema_decay=0.9999 (repeatable)")
    ap.add_argument("--seeds", type=int, default=1, help="sampling seeds per budget; quality is their mean (one "
                    "deterministic draw is a noisy measurement: bench_ode_gap.py)")
    ap.add_argument("--boot", type=int, default=100, help="bootstrap resamples of the reference's quality")
    ap.add_argument("--csv", default="", help="write every row to this CSV file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    ds = get_dataset(args.dataset)
    metric = Metric(ds, args.n, args.device)
    args.n = min(args.n, len(metric.ref))
    print(f"{args.dataset}: {args.steps} training steps per family{' (cosine lr decay)' if args.lr_decay else ''}, "
          f"n={args.n}, {metric.name} of {metric.floor_n} "
          f"other real samples (real-vs-real) {metric.floor:.5f}")

    rows: list[dict[str, Any]] = []
    ref_x: dict[str, torch.Tensor] = {}
    trained: dict[str, Any] = {}

    def keep(r: dict[str, Any], x: torch.Tensor) -> None:
        if r["family"] == "ddpm" and r["sampler"] == "ddpm" and r["nfe"] == args.ref_nfe:
            ref_x["x"] = x

    cd_steps = args.cd_steps or args.steps
    for fam in args.families.split(","):
        cls, cfg = families(args.steps, metric.image, cd_steps)[fam]
        if args.batch:
            cfg = dataclasses.replace(cfg, batch_size=args.batch)
        cfg = apply_overrides(fam, cfg, args.set)
        teacher = None
        if fam == "cd":
            if "ddpm" not in trained:
                raise SystemExit("the cd family distils the DDPM: list ddpm before cd")
            teacher = trained["ddpm"]
        model, secs = train(cls, cfg, ds, cd_steps if fam == "cd" else args.steps, args.device, teacher=teacher,
                              lr_decay=args.lr_decay)
        trained[fam] = model
        print(f"\n{fam}: trained in {secs:.1f}s", flush=True)
        rows += run_family(model, ds, metric, fam, args, keep)

    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["family", "sampler", "steps", "nfe", "quality", "sd", "seconds"])
            w.writeheader()
            w.writerows(rows)
    if "x" in ref_x:
        ref_q = next(r["quality"] for r in rows if r["family"] == "ddpm" and r["sampler"] == "ddpm"
                     and r["nfe"] == args.ref_nfe)
        ci = bootstrap_ci(metric.distance, metric.features(ref_x["x"]), n_boot=args.boot)
        print(f"\nDDPM-{args.ref_nfe} {metric.name} {ref_q:.5f} (95% bootstrap {ci.low:.5f}-{ci.high:.5f}); "
              f"real-vs-real {metric.floor:.5f}")
        summary(rows, ref_q + metric.floor, ci.high)
    print(f"\nwall time {time.perf_counter() - t_start:.0f}s")


if __name__ == "__main__":
    main()
