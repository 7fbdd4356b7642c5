"""Sample quality against network evaluations (NFE) for every sampler of the diffusion family.

    python bench/bench_samplers.py [--dataset 8gaussians] [--steps 3000] [--max-nfe 1000] [--n 2000]
                                   [--families ddpm,score_sde,ot_cfm,rectified] [--threads 1] [--device cpu]

Trains each family for the same number of steps on a 2-D set (rectified flow: half the steps on
data, half on one reflow round; consistency training's level curriculum spans all of them), then runs every sampler at 1, 2, 4, ... NFE (counted network calls)
and reports the energy distance to fresh data. The summary gives, per sampler, the fewest NFE that
reach the quality of 1000-step DDPM ancestral sampling plus the real-vs-real floor (the sampling noise
of the metric at this n), i.e. "as good as the slow sampler, within what the metric can resolve".
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from genstudio_plugins.consistency import ConsistencyConfig, ConsistencyPlugin  # noqa: E402
from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin  # noqa: E402
from genstudio_plugins.flow_matching import FlowMatchingConfig, FlowMatchingPlugin  # noqa: E402
from genstudio_plugins.ncsn import NCSNConfig, NCSNPlugin  # noqa: E402
from genstudio_plugins.score_sde import ScoreSDEConfig, ScoreSDEPlugin  # noqa: E402

from genstudio.core.data import get_dataset  # noqa: E402
from genstudio.core.diffusion.nfe import nfe_curve  # noqa: E402
from genstudio.core.metrics import energy_distance  # noqa: E402


def families(steps: int) -> dict[str, tuple[type, object]]:
    return {
        "ddpm": (DDPMPlugin, DDPMConfig()),
        "score_sde": (ScoreSDEPlugin, ScoreSDEConfig(sde="vp")),
        "ot_cfm": (FlowMatchingPlugin, FlowMatchingConfig(method="ot_cfm", straightness_every=0)),
        "rectified": (FlowMatchingPlugin, FlowMatchingConfig(method="rectified", reflow_rounds=1,
                                                             stage_steps=max(1, steps // 2), straightness_every=0)),
        "ncsn": (NCSNPlugin, NCSNConfig()),
        "consistency": (ConsistencyPlugin, ConsistencyConfig(sigma_data=1.4, total_steps=steps)),
    }


def train(cls: type, cfg: object, ds: object, steps: int, device: str, seed: int = 0) -> tuple[object, float]:
    torch.manual_seed(seed)
    model = cls(cfg, device)
    model.setup(ds.spec)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for s in range(1, steps + 1):
        x, y = ds.batch(cfg.batch_size, g)
        model.train_step(x, y, s)
    return model, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="8gaussians")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--max-nfe", type=int, default=1000)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--families", default="ddpm,score_sde,ncsn,ot_cfm,rectified,consistency")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = get_dataset(args.dataset)
    ref = ds.fixed(args.n, seed=1)[0].double()
    floor = float(energy_distance(ds.fixed(args.n, seed=2)[0].double(), ref))

    def quality(x: torch.Tensor) -> float:
        return float(energy_distance(x.double().cpu(), ref))

    print(f"{args.dataset}: {args.steps} training steps per family, n={args.n}, real-vs-real floor {floor:.5f}")
    rows = []
    for fam in args.families.split(","):
        cls, cfg = families(args.steps)[fam]
        model, secs = train(cls, cfg, ds, args.steps, args.device)
        print(f"\n{fam}: trained in {secs:.1f}s", flush=True)
        for r in nfe_curve(model, ds, None, max_nfe=args.max_nfe, n=args.n, quality=quality):
            r["family"] = fam
            rows.append(r)
            print(f"  {r['sampler']:<10} steps {r['steps']:>5}  nfe {r['nfe']:>5}  energy {r['quality']:.5f}"
                  f"  {r['seconds']:.2f}s", flush=True)

    ref_rows = [r for r in rows if r["family"] == "ddpm" and r["sampler"] == "ddpm"]
    if ref_rows:
        target = max(ref_rows, key=lambda r: r["nfe"])["quality"] + floor
        print(f"\nfewest NFE reaching DDPM-{max(r['nfe'] for r in ref_rows)} quality + floor = {target:.5f}:")
        for fam_s in dict.fromkeys((r["family"], r["sampler"]) for r in rows):
            ok = [r["nfe"] for r in rows if (r["family"], r["sampler"]) == fam_s and r["quality"] <= target]
            best = min(r["quality"] for r in rows if (r["family"], r["sampler"]) == fam_s)
            print(f"  {fam_s[0]:<10} {fam_s[1]:<10} {min(ok) if ok else 'not reached':>12}   best {best:.5f}")


if __name__ == "__main__":
    main()
