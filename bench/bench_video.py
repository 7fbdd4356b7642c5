"""Space-time DiT vs factorised 3-D U-Net on 16-frame 16x16 moving-shapes clips, class-conditional,
after the same CPU-seconds budget (one thread): per-frame FCD, Frechet video-classifier distance,
temporal-consistency gap, motion correctness, samples/s.

    python bench/bench_video.py [BUDGET_S] [SEEDS] [SAVE_DIR]

The DiT predicts the clean clip (predict=x0): its 2x4x4 patches hold 96 numbers, more than its width
of 64, so the noise it would have to output does not fit through it (eps-prediction stays at loss
~0.38 and samples pure noise); clean clips do. The U-Net runs both ways. SAVE_DIR: the generated clips as NPZ per arch.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from genstudio_plugins.video_diffusion import VideoDiffusionConfig, VideoDiffusionPlugin

from genstudio.core.data import get_dataset
from genstudio.core.metrics import fid_from_features
from genstudio.core.metrics.video import motion_correct, temporal_difference, video_extractors
from genstudio.core.plugin import final_state

N_EVAL = 128
STEPS = 20  # DDIM


ARCHS = {"dit": {"arch": "dit", "predict": "x0"}, "unet3d": {"arch": "unet3d"},
         "unet3d-x0": {"arch": "unet3d", "predict": "x0"}}


def run(arch: str, budget: float, seed: int, ds, ex, real, save: str = "") -> dict[str, float]:
    torch.manual_seed(seed)
    cfg = VideoDiffusionConfig(cond="class", batch_size=16, timesteps=1000, lr=1e-3, width=64, blocks=3, base=16,
                               **ARCHS[arch])
    m = VideoDiffusionPlugin(cfg, torch.device("cpu"))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(seed)
    t0, step = time.process_time(), 0
    while time.process_time() - t0 < budget:
        x, y = ds.batch(cfg.batch_size, g)
        step += 1
        m.train_step(x, y, step)
    xr, yr = real
    w0 = time.perf_counter()
    with torch.no_grad():
        fake = final_state(m.sample(N_EVAL, seed=seed, steps=STEPS, sampler="ddim", cond=yr)).x.clamp(-1, 1)
    sps = N_EVAL / (time.perf_counter() - w0)
    if save:
        np.savez_compressed(f"{save}/bench_video_{arch}_s{seed}.npz", x=fake.numpy(), y=yr.numpy(), steps=step)
    fr, ff = ex["frames"].features_and_probs(xr)[0], ex["frames"].features_and_probs(fake)[0]
    vr, vf = ex["video"].features_and_probs(xr)[0], ex["video"].features_and_probs(fake)[0]
    td_r, td_f = float(temporal_difference(xr).mean()), float(temporal_difference(fake).mean())
    return {"steps": step, "fcd_frames": float(fid_from_features(fr, ff)), "fvcd": float(fid_from_features(vr, vf)),
            "temporal_gap": abs(td_f - td_r) / td_r, "motion": float(motion_correct(fake, yr).float().mean()),
            "samples_per_s": sps, "param_k": sum(p.numel() for p in m.net.parameters()) / 1e3}


def main() -> None:
    torch.set_num_threads(1)
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 240.0
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    save = sys.argv[3] if len(sys.argv) > 3 else ""
    ds = get_dataset("video:moving16")
    ex = video_extractors(ds, ("fcd_frames", "fvcd"))
    c = ds.clips(N_EVAL, torch.Generator().manual_seed(999))
    real = (c.x, c.labels)
    c2 = ds.clips(N_EVAL, torch.Generator().manual_seed(998))
    print(f"real vs real (n={N_EVAL}): fcd_frames {fid_from_features(ex['frames'].features_and_probs(c.x)[0], ex['frames'].features_and_probs(c2.x)[0]):.3f}"
          f"  fvcd {fid_from_features(ex['video'].features_and_probs(c.x)[0], ex['video'].features_and_probs(c2.x)[0]):.3f}"
          f"  motion {float(motion_correct(c.x, c.labels).float().mean()):.3f}", flush=True)
    for arch in ARCHS:
        rows = [run(arch, budget, s, ds, ex, real, save) for s in range(seeds)]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"{arch:9s} budget {budget:.0f} CPU-s x {seeds} seed(s): " + "  ".join(
            f"{k} {v:.3f}" for k, v in mean.items()), flush=True)


if __name__ == "__main__":
    main()
