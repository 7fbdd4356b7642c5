"""Train sd and imagen on captions16 for a fixed CPU budget each (one seed, one thread; setup,
e.g. sd's on-the-fly VAE, counts against the budget), then print the GenEval-like accuracy per
category on seen and held-out combinations and the sampling rate.

    python bench/bench_sd_imagen.py [--budget 200] [--plugins sd,imagen]
"""

from __future__ import annotations

import argparse
import importlib
import time

import torch

from genstudio.core.data import get_dataset
from genstudio.core.metrics.alignment import geneval_model
from genstudio.core.metrics.scene_reader import scene_reader
from genstudio.core.plugin import final_state


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=200.0, help="CPU seconds per plugin (setup + training)")
    ap.add_argument("--plugins", default="sd,imagen")
    ap.add_argument("--data", default="captions16")
    ap.add_argument("--per-category", type=int, default=20)
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps when sampling")
    ap.add_argument("--guidance", type=float, default=3.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    ds = get_dataset(a.data)
    reader = scene_reader(device="cpu")
    for pid in a.plugins.split(","):
        cls = importlib.import_module(f"genstudio_plugins.{pid}").PLUGIN  # also before a reinstall
        torch.manual_seed(0)
        t0 = time.process_time()
        model = cls(cls.info.config_cls(), "cpu")
        model.setup(ds.spec)
        g, step = torch.Generator().manual_seed(0), 0
        while time.process_time() - t0 < a.budget:
            step += 1
            x, y = ds.batch(model.config.batch_size, g)
            loss = model.train_step(x, y, step)["loss"]
        print(f"{pid}: {step} steps in {time.process_time() - t0:.0f} CPU-s, last loss {loss:.4f}", flush=True)
        t1 = time.perf_counter()
        final_state(model.sample(32, seed=1, prompt="a red circle", guidance=a.guidance, steps=a.steps))
        print(f"{pid}: {32 / (time.perf_counter() - t1):.2f} samples/s ({a.steps} DDIM steps, guidance "
              f"{a.guidance:g}, batch 32)", flush=True)
        res = geneval_model(model, ds, reader, per_category=a.per_category, guidance=a.guidance, steps=a.steps)
        for split, r in res.items():
            cats = ", ".join(f"{c} {v['value']:.2f}" for c, v in r.items())
            print(f"{pid} geneval {split}: {cats}", flush=True)


if __name__ == "__main__":
    main()
