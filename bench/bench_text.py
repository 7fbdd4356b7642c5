"""Text to image, the foundation numbers: the independent scene reader's per-attribute accuracy on
real held-out images, CLIP retrieval accuracy after a fixed CPU budget (mean over seeds), and the
CLIPScore-like score of real matched vs mismatched pairs.

    python bench/bench_text.py [--steps 300] [--seeds 0,1,2] [--data captions16] [--threads 1]

The budget is a step count (batch 128), not wall-clock seconds, so a loaded machine gives the same
numbers; the seconds each run took are printed with them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from genstudio_plugins.clip import CLIPConfig, CLIPPlugin

from genstudio.core.data import get_dataset
from genstudio.core.metrics.alignment import clip_scores
from genstudio.core.metrics.scene_reader import reader_accuracy, scene_reader

RETRIEVAL = ("r1_t2i", "r5_t2i", "r1_i2t", "r5_i2t")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default="captions16")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.process_time()
    reader = scene_reader()
    print(f"scene reader ({reader.meta.get('train_seconds', 0):.1f} s to train when first built; "
          f"cached): accuracy on real held-out images, 120 seen and 120 held-out-combination images per category")
    for name in ("captions16", "captions"):
        ds = get_dataset(name)
        acc = reader_accuracy(reader, [ds.test_set("seen", 120, seed=9), ds.test_set("heldout", 120, seed=9)])
        print(f"  {name:10s} " + "  ".join(f"{k} {v:.2%}" for k, v in acc.items()))
    print(f"  ({time.process_time() - t0:.1f} s CPU)")

    ds = get_dataset(args.data)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        torch.manual_seed(seed)
        m = CLIPPlugin(CLIPConfig(), "cpu")
        m.setup(ds.spec)
        g = torch.Generator().manual_seed(seed)
        t0, c0 = time.perf_counter(), time.process_time()
        for step in range(1, args.steps + 1):
            m.train_step(*ds.batch(m.config.batch_size, g), step)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        r = m.retrieval_metrics()
        test = ds.test_set("seen", 40, seed=3)
        with torch.no_grad():
            matched = clip_scores(m, test.x, test.captions).mean()
            mismatched = clip_scores(m, test.x, list(np.roll(test.captions, 1))).mean()
        r.update(matched=float(matched), mismatched=float(mismatched), cpu=cpu, wall=wall,
                 temperature=float(1 / m.net.logit_scale.detach().exp()))
        rows.append(r)
        print(f"seed {seed}: {args.steps} steps in {wall:.0f} s ({cpu:.0f} s CPU), temperature {r['temperature']:.3f}; "
              + "  ".join(f"{k} {r[k]:.2f}/{r[k + '_heldout']:.2f}" for k in RETRIEVAL)
              + f"  CLIPScore matched {matched:.1f} mismatched {mismatched:.1f}")

    def mean_sd(key: str) -> str:
        v = np.array([r[key] for r in rows])
        return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}"

    print(f"\nCLIP on {args.data}, {args.steps} steps x batch 128, mean ± sd over {len(rows)} seeds "
          "(seen combinations / held-out combinations; gallery: 20 test images per category)")
    for k in RETRIEVAL:
        print(f"  {k:7s} seen {mean_sd(k)}   held-out {mean_sd(k + '_heldout')}")
    print(f"  CLIPScore-like (100 max(cos, 0)) real matched {mean_sd('matched')}, mismatched {mean_sd('mismatched')}")


if __name__ == "__main__":
    main()
