"""Training throughput inside GenStudio's job machinery vs a bare loop over the same plugin.

The bare loop calls ``plugin.train_step`` directly (no events, run store, checkpoints, previews);
the app path is ``jobs.train`` with an event bus listener, metrics every 10 steps and a checkpoint
every 500 steps, as the GUI and CLI run it. Both use one torch thread and the same seed.

    python bench/bench_throughput.py [--plugin ddpm] [--data 8gaussians] [--steps 1500]
                                     [--device cuda] [--amp bf16] [--compile]

``--amp bf16`` runs both loops' train steps under bf16 autocast (the run option ``amp``);
``--compile`` wraps the bare loop's ``net`` in ``torch.compile`` (measured here only: not a run
option, compiled modules change checkpoint keys).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from genstudio.core import events as ev
from genstudio.core import jobs
from genstudio.core.config import apply_overrides
from genstudio.core.data import get_dataset
from genstudio.core.device import pick_device
from genstudio.core.registry import registry
from genstudio.core.runs import RunStore

DEVICE, AMP, COMPILE = "cpu", "", False  # set from the command line


def _sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def bare(plugin_id: str, data: str, steps: int, overrides: list[str]) -> float:
    cls = registry().get(plugin_id)
    cfg = apply_overrides(cls.info.config_cls(), overrides)
    ds = get_dataset(data)
    dev = pick_device(DEVICE)
    model = cls(cfg, dev)
    model.setup(ds.spec)
    if COMPILE and isinstance(getattr(model, "net", None), torch.nn.Module):
        model.net = torch.compile(model.net)
    g = torch.Generator().manual_seed(0)

    def step_(step: int) -> None:
        x, y = ds.batch(cfg.batch_size, g)
        with jobs.autocast(dev, AMP):
            model.train_step(x.to(dev), y.to(dev) if y is not None else None, step)

    for step in range(1, 21):  # warm-up (and compilation)
        step_(step)
    _sync()
    t0 = time.perf_counter()
    for step in range(21, steps + 21):
        step_(step)
    _sync()
    return steps / (time.perf_counter() - t0)


def app(plugin_id: str, data: str, steps: int, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as d:
        store = RunStore(d)
        spec = jobs.TrainSpec(plugin_id, data, steps=steps + 20, overrides=overrides, log_every=10,
                              sample_every=0, checkpoint_every=500, device=DEVICE, amp=AMP)
        run = jobs.create_run(store, spec)
        bus = ev.EventBus()
        seen = []
        bus.subscribe(seen.append)
        t0 = t1 = None
        for step in jobs.train(run, bus=bus):
            if step == 20:
                t0 = time.perf_counter()
            t1 = time.perf_counter()  # the last step, before the final checkpoint and preview
        return steps / (t1 - t0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--plugin", default="ddpm")
    p.add_argument("--data", default="8gaussians")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="", choices=["", "bf16"])
    p.add_argument("--compile", action="store_true")
    a = p.parse_args()
    global DEVICE, AMP, COMPILE
    DEVICE, AMP, COMPILE = a.device, a.amp, a.compile
    torch.set_num_threads(1)
    b = bare(a.plugin, a.data, a.steps, a.set)
    s = app(a.plugin, a.data, a.steps, a.set)
    b2 = bare(a.plugin, a.data, a.steps, a.set)  # again, to see the noise
    print(f"plugin={a.plugin} data={a.data} steps={a.steps} threads=1 device={a.device} amp={a.amp or 'off'} "
          f"compile={a.compile}")
    print(f"bare loop      : {b:8.1f} steps/s (repeat {b2:.1f})")
    print(f"jobs.train     : {s:8.1f} steps/s")
    print(f"ratio app/bare : {s / ((b + b2) / 2):8.3f}")


if __name__ == "__main__":
    main()
