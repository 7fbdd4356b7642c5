"""3-D numbers: procedural-scene generation time, held-out PSNR of NeRF and 3D Gaussian splatting
after a fixed CPU budget each, and rasteriser iterations/s vs the number of Gaussians.

    python bench/bench_3d.py [--budget 60] [--threads 1] [--device cpu] [--sizes 1000 5000 20000]

Training runs drive the plugins exactly as the generic job does (NeRF gets random ray batches;
splatting renders one training view per step). PSNR is the mean over the 8 held-out views of the
procedural scene (64 x 64). Held-out evaluation time is not counted in the budget.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from genstudio.core.data import get_dataset  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.core.scene.gaussians import Gaussians, rasterize  # noqa: E402
from genstudio.core.scene.procedural import BBOX, make_scene  # noqa: E402


def train_for(pid: str, budget: float, device: str, checkpoints: int = 4) -> list[tuple[int, float, float]]:
    """Train plugin ``pid`` on the procedural scene for ``budget`` seconds of training time;
    returns (step, seconds, held-out PSNR) at ``checkpoints`` evenly spaced times."""
    cls = registry().get(pid)
    ds = get_dataset("scene:primitives")
    cfg = cls.info.config_cls(eval_every=0)
    model = cls(cfg, torch.device(device))
    model.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    rows, step, spent = [], 0, 0.0
    marks = [budget * (k + 1) / checkpoints for k in range(checkpoints)]
    while marks:
        step += 1
        t = time.perf_counter()
        x, y = ds.batch(cfg.batch_size, g)
        model.train_step(x.to(device), y, step)
        spent += time.perf_counter() - t
        if spent >= marks[0]:
            marks.pop(0)
            with torch.no_grad():
                rows.append((step, spent, model.test_psnr()))
            extra = f", {model.g.num} Gaussians" if hasattr(model, "g") else ""
            print(f"  {pid:6s} step {step:6d}  {spent:6.1f}s  held-out PSNR {rows[-1][2]:6.2f} dB{extra}", flush=True)
    return rows


def raster_speed(n: int, device: str, seconds: float = 4.0, size: int = 64) -> tuple[float, float]:
    """(train it/s = forward + backward, render it/s = forward only) for ``n`` Gaussians spread in
    the scene box, sized by their nearest-neighbour distances (3DGS's initialisation)."""
    scene = make_scene(1, 0, size)
    cam, img = scene.view(0)
    img = img.to(device)
    g = Gaussians.random_in_box(n, *BBOX, sh_degree=1, generator=torch.Generator().manual_seed(0), device=device)
    g = Gaussians(**{k: v.requires_grad_(True) for k, v in g.tensors().items()})

    def rate(fn) -> float:
        fn()
        k, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            fn()
            k += 1
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return k / (time.perf_counter() - t)

    def train() -> None:
        out = rasterize(g, cam, background=1.0, retain_means2d=True)
        (out["rgb"] - img).abs().mean().backward()

    def render() -> None:
        with torch.no_grad():
            rasterize(g, cam, background=1.0)

    return rate(train), rate(render)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="training seconds per method")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 was fastest on a busy 2-core machine; 0 = torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    ap.add_argument("--skip-train", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {a.device}")

    t = time.perf_counter()
    make_scene()
    print(f"procedural scene (48 + 8 views, 64 px, 2x2 supersampled): {time.perf_counter() - t:.2f} s")

    if not a.skip_train:
        results = {}
        for pid in ("nerf", "splat"):
            print(f"{pid}: training for {a.budget:.0f} s")
            results[pid] = train_for(pid, a.budget, a.device)
        print("\nheld-out PSNR after the budget:")
        for pid, rows in results.items():
            step, spent, p = rows[-1]
            print(f"  {pid:6s} {p:6.2f} dB  ({step} steps, {step / spent:.1f} steps/s)")

    print("\nrasteriser, 64 x 64 view:")
    print(f"  {'Gaussians':>9} {'train it/s':>11} {'render it/s':>12}")
    for n in a.sizes:
        tr, rd = raster_speed(n, a.device)
        print(f"  {n:9d} {tr:11.2f} {rd:12.2f}", flush=True)


if __name__ == "__main__":
    main()
