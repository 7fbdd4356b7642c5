"""GAN numbers (issue 13): every adversarial variant on 8 Gaussians after a fixed step budget,
mean ± sd over seeds (GAN training is seed-sensitive: one seed is not a result), and the WGAN
critic's W1 estimate against the exact minibatch W1; with ``--digits``, digits FCD of the image GANs.

    python bench/bench_gan.py [--steps 1000] [--seeds 0 1 2] [--only gan wgan-gp] [--digits --digit-steps 1500]

Columns: modes covered (of 8; a mode counts when a sample lies within 3 std of its mean), "hq"
(fraction of samples within 3 std of some mode), energy distance to 2000 fresh data points
(lower is better; about 0.002 between two real draws of this size), seconds per run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from genstudio.core import jobs  # noqa: E402
from genstudio.core.data import get_dataset  # noqa: E402
from genstudio.core.metrics.functional import energy_distance  # noqa: E402
from genstudio.core.metrics.modes import coverage_for  # noqa: E402
from genstudio.core.plugin import final_state  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.core.runs import RunStore  # noqa: E402

# name -> (plugin, config overrides)
VARIANTS: dict[str, tuple[str, dict]] = {
    "gan-nonsat": ("gan", {"loss": "non_saturating"}),
    "gan-minimax": ("gan", {"loss": "minimax"}),
    **{f"fgan-{d}": ("fgan", {"divergence": d}) for d in ("kl", "reverse_kl", "js", "tv", "pearson", "hellinger")},
    "wgan-clip": ("wgan", {"lipschitz": "clip", "lr": 5e-5}),
    "wgan-gp": ("wgan", {"lipschitz": "gp"}),
    "biggan": ("biggan", {}),
    "stylegan": ("stylegan", {}),
}
IMAGES_ONLY = {"stylegan"}


def toy_run(name: str, steps: int, seed: int) -> dict[str, float]:
    pid, over = VARIANTS[name]
    cls = registry().get(pid)
    cfg = cls.info.config_cls()
    for k, v in over.items():
        setattr(cfg, k, v)
    ds = get_dataset("8gaussians")
    torch.manual_seed(seed)
    m = cls(cfg, torch.device("cpu"))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    out: dict[str, float] = {}
    for s in range(1, steps + 1):
        x, _ = ds.batch(cfg.batch_size, g)
        out = m.train_step(x, None, s)
    secs = time.perf_counter() - t0
    xs = final_state(m.sample(2000, seed=seed + 100)).x
    real, _ = ds.batch(2000, torch.Generator().manual_seed(seed + 200))
    cov = coverage_for(ds)(xs)
    row = {"modes": cov["modes"], "hq": cov["hq"], "energy": energy_distance(xs, real), "s": secs}
    if pid == "wgan":
        row["w1_critic"], row["w1_exact"] = out.get("w1_critic", float("nan")), out.get("w1_exact", float("nan"))
    return row


def pm(v: list[float], digits: int = 3) -> str:
    return f"{np.mean(v):.{digits}f} ± {np.std(v):.{digits}f}"


def toy_table(names: list[str], steps: int, seeds: list[int]) -> None:
    print(f"8 Gaussians, {steps} steps, seeds {seeds} (mean ± sd)")
    print(f"{'variant':14s} {'modes/8':>12s} {'hq':>14s} {'energy':>16s} {'s/run':>7s}  critic W1 vs exact")
    for name in (n for n in names if n not in IMAGES_ONLY):
        rows = [toy_run(name, steps, s) for s in seeds]
        col = {k: [r[k] for r in rows] for k in rows[0]}
        extra = f"  {pm(col['w1_critic'])} vs {pm(col['w1_exact'])}" if "w1_critic" in col else ""
        print(f"{name:14s} {pm(col['modes'], 1):>12s} {pm(col['hq'], 2):>14s} {pm(col['energy'], 3):>16s} "
              f"{np.mean(col['s']):7.0f}{extra}", flush=True)


def digits_table(names: list[str], steps: int, seeds: list[int]) -> None:
    """Train each variant on digits through the job (as the GUI does), once per seed, and report
    FCD and the classes covered (by the digits classifier) from the eval, mean ± sd over seeds."""
    from genstudio.core.eval import run_eval

    print(f"\ndigits, {steps} steps, seeds {seeds} (mean ± sd): FCD (Fréchet classifier distance; lower is "
          f"better), classes covered of 10, train seconds")
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        for name in names:
            pid, over = VARIANTS[name]
            fcds, modes, secs = [], [], []
            for seed in seeds:
                spec = jobs.TrainSpec(plugin=pid, dataset="digits", steps=steps, seed=seed, sample_every=0,
                                      checkpoint_every=steps, overrides=[f"{k}={v}" for k, v in over.items()])
                run = jobs.create_run(store, spec)
                t0 = time.perf_counter()
                list(jobs.train(run))
                secs.append(time.perf_counter() - t0)
                rec = run_eval(run, ["fcd", "modes"], n=1000, n_boot=0)
                fcds.append(rec["metrics"]["fcd"]["value"])
                modes.append(rec["metrics"]["modes"]["value"])
                print(f"  {name} seed {seed}: FCD {fcds[-1]:.2f}, classes {modes[-1]:.0f}, {secs[-1]:.0f}s",
                      flush=True)
            print(f"{name:14s} FCD {pm(fcds, 1)}  classes {pm(modes, 1)}  train {np.mean(secs):.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--digits", action="store_true", help="also train on digits and report FCD")
    ap.add_argument("--digit-steps", type=int, default=1500)
    ap.add_argument("--skip-toy", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not a.skip_toy:
        toy_table(a.only, a.steps, a.seeds)
    if a.digits:
        digits_table(a.only, a.digit_steps, a.seeds)


if __name__ == "__main__":
    main()
