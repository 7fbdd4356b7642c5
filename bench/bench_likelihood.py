"""Likelihood models side by side on the sklearn digits (8x8, 17 grey levels): RealNVP, Glow,
MAF, PixelCNN and the VAE's ELBO (and IWAE) bound, each trained for the same wall-clock budget.

Reports held-out bits/dim (all on the same discrete scale: PixelCNN exact, flows a dequantised
bound, VAE a variational bound), the time to draw 64 samples, and sample quality as the Fréchet
distance and Inception-style score in the features of the app's digits classifier. Also the
MAF / IAF asymmetry: density evaluation vs sampling time for identical networks.

    python bench/bench_likelihood.py [--seconds 30] [--models realnvp,glow,maf,pixelcnn,vae]
                                     [--out /tmp/genstudio_bench] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from genstudio_plugins.flows import autoregressive_timing

from genstudio.core.config import replace
from genstudio.core.data import get_dataset
from genstudio.core.imaging import image_grid, save_png
from genstudio.core.metrics import fid_from_features, inception_score
from genstudio.core.metrics.features import classifier_for
from genstudio.core.plugin import final_state
from genstudio.core.registry import registry

# bench-sized configs: small enough that 30 s of one CPU thread trains each to a useful point
CONFIGS = {
    "realnvp": {"hidden": 32, "steps": 2, "batch_size": 64, "lr": 2e-3},
    "glow": {"hidden": 64, "steps": 4, "batch_size": 64, "lr": 2e-3},
    "maf": {"hidden": 64, "steps": 4, "batch_size": 64, "lr": 2e-3},
    "pixelcnn": {"hidden": 32, "layers": 5, "batch_size": 32, "lr": 2e-3},
    "vae": {"latent_dim": 8, "hidden": 256, "depth": 2, "batch_size": 64, "lr": 2e-3},
}


def split_digits(n_test: int = 297, seed: int = 0):
    ds = get_dataset("digits")
    perm = torch.randperm(len(ds.x), generator=torch.Generator().manual_seed(seed))
    te, tr = perm[:n_test], perm[n_test:]
    return ds, (ds.x[tr], ds.y[tr]), (ds.x[te], ds.y[te])


@torch.no_grad()
def bpd(model, x: torch.Tensor) -> float:
    lp = torch.cat([model.log_prob(x[i:i + 100]) for i in range(0, len(x), 100)])
    return float(-lp.mean() / (x[0].numel() * math.log(2)))


def sample_time(model, n: int = 64, repeats: int = 2) -> tuple[float, torch.Tensor]:
    best, x = float("inf"), None
    for r in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            x = final_state(model.sample(n, seed=r, every=10**9)).x
        best = min(best, time.perf_counter() - t0)
    return best, x


def run_one(pid: str, seconds: float, train, test, spec, extractor, out: Path) -> dict:
    cls = registry().get(pid)
    cfg = replace(cls.info.config_cls(), **CONFIGS[pid])
    torch.manual_seed(0)
    model = cls(cfg, "cpu")
    model.setup(spec)
    g = torch.Generator().manual_seed(0)
    xtr, ytr = train
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        idx = torch.randint(0, len(xtr), (cfg.batch_size,), generator=g)
        steps += 1
        model.train_step(xtr[idx], ytr[idx], steps)
    train_s = time.perf_counter() - t0
    row = {"model": pid, "steps": steps, "train_s": round(train_s, 1),
           "test_bpd": bpd(model, test[0]), "train_bpd": bpd(model, xtr[:297])}
    if pid == "vae":
        model.config.iw_samples = 100
        row["test_bpd_iwae100"] = bpd(model, test[0])
        model.config.iw_samples = 1
    row["sample64_s"], x64 = sample_time(model)
    with torch.no_grad():
        xs = torch.cat([final_state(model.sample(100, seed=10 + i, every=10**9)).x for i in range(3)])
    f_fake, p_fake = extractor.features_and_probs(xs.clamp(-1, 1))
    f_real, _ = extractor.features_and_probs(test[0])
    row["fcd"] = fid_from_features(f_real, f_fake)
    row["is"] = inception_score(p_fake, splits=1)[0] if p_fake is not None else float("nan")
    save_png(image_grid(x64.clamp(-1, 1), scale=4), out / f"{pid}_samples.png")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="training wall-clock budget per model")
    ap.add_argument("--models", default="realnvp,glow,maf,pixelcnn,vae")
    ap.add_argument("--out", default="/tmp/genstudio_bench")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    ds, train, test = split_digits()
    extractor = classifier_for(ds, root=out)
    f_tr, p_tr = extractor.features_and_probs(train[0][:300])
    f_te, _ = extractor.features_and_probs(test[0])
    ref = {"fcd_train_vs_test": fid_from_features(f_te, f_tr), "is_train": inception_score(p_tr, splits=1)[0]}
    print(f"digits: {len(train[0])} train / {len(test[0])} test, 17 levels (uniform model = "
          f"{math.log2(17):.2f} bits/dim); classifier val acc {extractor.meta.get('val_acc', float('nan')):.3f}")
    print(f"reference: real train images vs test -> FCD {ref['fcd_train_vs_test']:.2f}, IS {ref['is_train']:.2f}")

    rows = []
    for pid in args.models.split(","):
        row = run_one(pid.strip(), args.seconds, train, test, ds.spec, extractor, out)
        rows.append(row)
        extra = f" (IWAE-100 {row['test_bpd_iwae100']:.3f})" if "test_bpd_iwae100" in row else ""
        print(f"{pid:9s} {row['steps']:5d} steps  test {row['test_bpd']:.3f} bits/dim{extra}  train "
              f"{row['train_bpd']:.3f}  sample64 {row['sample64_s'] * 1000:8.1f} ms  FCD {row['fcd']:7.2f}  "
              f"IS {row['is']:.2f}", flush=True)

    timing = {"digits_1x8x8": autoregressive_timing((1, 8, 8), n=64), "points_2d": autoregressive_timing((2,), n=64)}
    for name, t in timing.items():
        print(f"MAF vs IAF on {name} (4 layers, MADE 128x2, n=64): "
              f"MAF density {t['maf']['density_s'] * 1e3:.2f} ms, sampling {t['maf']['sample_s'] * 1e3:.2f} ms; "
              f"IAF density {t['iaf']['density_s'] * 1e3:.2f} ms, sampling {t['iaf']['sample_s'] * 1e3:.2f} ms")

    print("\n| model | steps | test bits/dim | train bits/dim | 64 samples (s) | FCD | IS |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        b = f"{r['test_bpd']:.3f}" + (f" (IWAE-100: {r['test_bpd_iwae100']:.3f})" if "test_bpd_iwae100" in r else "")
        print(f"| {r['model']} | {r['steps']} | {b} | {r['train_bpd']:.3f} | {r['sample64_s']:.3f} | "
              f"{r['fcd']:.2f} | {r['is']:.2f} |")
    (out / "likelihood.json").write_text(json.dumps({"rows": rows, "reference": ref, "maf_iaf": timing,
                                                     "seconds": args.seconds, "threads": args.threads}, indent=2))
    print(f"\nsample grids and likelihood.json in {out}")


if __name__ == "__main__":
    main()
