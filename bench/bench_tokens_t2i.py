"""Token text-to-image families on captions16 after a fixed CPU budget (one thread, one seed):
a VQ-VAE tokenizer, then the DALL-E-style AR transformer and the unified (Show-o-style) model on
its tokens. Prints GenEval-like accuracy per category (seen / held-out combinations), the unified
model's captioning precision / recall / exact, and samples/s.

    python bench/bench_tokens_t2i.py [vqvae_s dalle_s unified_s per_category]
"""

from __future__ import annotations

import sys
import time

import torch

from genstudio.core.data import get_dataset
from genstudio.core.metrics.alignment import caption_scores, geneval_model
from genstudio.core.metrics.scene_reader import scene_reader


def train(model, ds, budget: float, seed: int = 0) -> int:
    g = torch.Generator().manual_seed(seed)
    t0, step = time.process_time(), 0
    while time.process_time() - t0 < budget:
        step += 1
        x, y = ds.batch(model.config.batch_size, g)
        model.train_step(x, y, step)
    return step


def report(name: str, model, ds, reader, per: int, **kw) -> None:
    t0 = time.perf_counter()
    res = geneval_model(model, ds, reader, per_category=per, seed=0, **kw)
    dt = time.perf_counter() - t0
    n = sum(int(r["overall"]["n"]) for r in res.values())
    for split, r in res.items():
        cats = " ".join(f"{c}={v['value']:.2f}" for c, v in r.items() if c != "overall")
        print(f"{name} geneval {split}: overall={r['overall']['value']:.3f} {cats}")
    print(f"{name} samples/s (generation + nothing else, batch 250): {n / dt:.1f}")


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    args = [float(a) for a in sys.argv[1:]]
    vq_s, dalle_s, uni_s, per = (args + [120, 240, 240, 25][len(args):])[:4]
    from genstudio_plugins.dalle import DalleConfig, DallePlugin
    from genstudio_plugins.unified import UnifiedConfig, UnifiedPlugin
    from genstudio_plugins.vqvae import VQVAEConfig, VQVAEPlugin

    ds = get_dataset("captions16")
    reader = scene_reader(device="cpu")
    vq = VQVAEPlugin(VQVAEConfig(), "cpu")
    vq.setup(ds.spec)
    steps = train(vq, ds, vq_s)
    print(f"vqvae: {steps} steps in {vq_s:.0f} CPU s; {vq.preview_metrics()}")
    real = ds.test_set("seen", int(per))
    print("real test images geneval (the ceiling):",
          {k: round(v["value"], 3) for k, v in __import__("genstudio.core.metrics.alignment", fromlist=["x"])
           .geneval_scores(real.x, real.captions, reader).items()})
    for name, cls, cfg, budget in (("dalle", DallePlugin, DalleConfig(), dalle_s),
                                   ("unified", UnifiedPlugin, UnifiedConfig(), uni_s)):
        m = cls(cfg, "cpu")
        m.use_run("vqvae_run", vq)
        m.config.vqvae_run = "bench"
        m.setup(ds.spec)
        steps = train(m, ds, budget)
        print(f"{name}: {steps} steps in {budget:.0f} CPU s")
        for gd in (1.0, 3.0):
            report(f"{name} guidance={gd:g}", m, ds, reader, int(per), guidance=gd)
        if name == "unified":
            report(f"{name} maskgit guidance=3", m, ds, reader, int(per), guidance=3.0, decoding="maskgit")
            t0 = time.perf_counter()
            caps = m.caption_images(real.x)
            dt = time.perf_counter() - t0
            r = caption_scores(caps, real.scenes)
            print(f"unified image->caption (greedy, {len(real)} seen test images): precision={r['precision']:.3f} "
                  f"recall={r['recall']:.3f} exact={r['exact']:.3f}; captions/s {len(real) / dt:.1f}")
            print("  e.g.", list(zip(real.captions[::int(per)], caps[::int(per)])))


if __name__ == "__main__":
    main()
