"""Splat viewer frames/s under the GL we have (Mesa llvmpipe, software) at 10k and 100k splats.

    xvfb-run -a -s '-screen 0 1280x800x24' env QT_QPA_PLATFORM=xcb python bench/bench_viewer.py [--sizes 10000 100000]

Each frame is ``canvas.render()`` of an 800x600 view (draw into an offscreen framebuffer and read
the pixels back, so the GPU work is finished when the clock stops). "orbit" turns the camera 2
degrees per frame, so every frame also re-sorts the splats on the CPU and uploads the index
buffer; "still" redraws an unchanged view; "lod" orbits with the point budget at 20k splats.
Splats are random in a box of side 2, with the 3-nearest-neighbour scale (as a 3DGS initialisation:
large overlapping ellipses, so llvmpipe is fill-rate bound) or with tiny scales (a few pixels each).
A real GPU is expected to be ~100x faster on the drawing part (the CPU sort stays the same).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--lod", type=int, default=20_000)
    args = ap.parse_args()

    from vispy import gloo, scene

    from genstudio.core.scene.gaussians import Gaussians
    from genstudio.qt.visuals import geometry as geo
    from genstudio.qt.visuals.splat import Splats, splat_arrays

    canvas = scene.SceneCanvas(app="pyside6", size=(800, 600), bgcolor="black", show=True)
    view = canvas.central_widget.add_view()
    view.camera = scene.TurntableCamera(fov=40, distance=3.0, elevation=25, azimuth=0)
    canvas.render()
    print(f"GL: {gloo.gl.glGetParameter(gloo.gl.GL_RENDERER)}")
    print(f"{'splats':>8} {'scales':>6} {'case':>8} {'frames/s':>9} {'ms/frame':>9}  (CPU sort alone: ms)")
    for n, kind in [(n, k) for n in args.sizes for k in ("knn", "small")]:
        gen = torch.Generator().manual_seed(0)
        g = Gaussians.random_in_box(n, -torch.ones(3), torch.ones(3), generator=gen, opacity=0.5)
        if kind == "small":  # ~2-3 px footprints: vertex / sort bound instead of fill bound
            g.log_scales = torch.full_like(g.log_scales, float(np.log(0.003)))
        node = Splats(splat_arrays(g), parent=view.scene)
        means = node.visual._means if hasattr(node, "visual") else node._means
        t = time.perf_counter()
        for _ in range(5):
            geo.back_to_front(np.eye(4), means)
        sort_ms = (time.perf_counter() - t) / 5 * 1e3
        for case in ("orbit", "still", "lod"):
            node.budget = args.lod if case == "lod" else n
            canvas.render()  # warm-up (upload, first sort)
            t = time.perf_counter()
            for _ in range(args.frames):
                if case != "still":
                    view.camera.azimuth += 2.0
                canvas.render()
            dt = (time.perf_counter() - t) / args.frames
            label = f"lod {args.lod // 1000}k" if case == "lod" else case
            print(f"{n:>8} {kind:>6} {label:>8} {1 / dt:>9.1f} {dt * 1e3:>9.1f}  ({sort_ms:.1f})", flush=True)
        node.parent = None


if __name__ == "__main__":
    main()
