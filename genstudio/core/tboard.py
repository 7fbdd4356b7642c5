"""A run as TensorBoard event files, for people who live in TensorBoard: after the fact
(:func:`export_run`, ``genstudio tensorboard RUN --out DIR``) or while it trains
(:class:`TensorBoardStream` on the job's event bus, ``genstudio train ... --tensorboard DIR``).

Both write the same tags through torch's ``SummaryWriter`` (the ``tensorboard`` package):
``train/<metric>`` scalars at their logged steps, ``samples`` images (the preview grids) and
``views/<name>`` (a model's views) at their steps, ``eval/<metric>`` (+ ``_ci_low``/``_ci_high``)
at the evaluated step, and the run's settings as hparams (HParams tab) with the final loss and
eval values as its metrics. No Qt here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genstudio.core import events as ev
from genstudio.core.runs import Run
from genstudio.core.timelapse import logged_previews, read_rgb

AXES = ("step", "time")
SAMPLES_TAG = "samples"


def _scalar(v: Any) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def hparam_values(config: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """The run's settings as TensorBoard hparams (numbers, text, booleans; anything else as text),
    plus plugin, dataset and seed so runs of different plugins compare in one table."""
    out: dict[str, Any] = {k: info.get(k) for k in ("plugin", "dataset", "seed") if info.get(k) is not None}
    for k, v in config.items():
        out[k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


class RunWriter:
    """A ``SummaryWriter`` that knows GenStudio's rows, previews and eval records."""

    def __init__(self, log_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), flush_secs=10)
        self.last: dict[str, float] = {}  # newest value of each scalar tag (the hparams' metrics)

    def scalars(self, row: dict[str, Any], prefix: str = "train") -> None:
        step = int(row["step"])
        for k, v in row.items():
            if k not in AXES and (x := _scalar(v)) is not None:
                self.scalar(f"{prefix}/{k}", x, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)
        self.last[tag] = value

    def image(self, tag: str, img: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, np.ascontiguousarray(img[..., :3]), step, dataformats="HWC")

    def eval_record(self, rec: dict[str, Any]) -> None:
        step = int(rec.get("step", 0))
        for name, e in (rec.get("metrics") or {}).items():
            for key, suffix in (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
                if (x := _scalar(e.get(key))) is not None:
                    self.scalar(f"eval/{name}{suffix}", x, step)

    def hparams(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        """Settings -> the HParams tab, its metrics being scalar tags already written (their newest values)."""
        from torch.utils.tensorboard.summary import hparams

        metrics = {t: v for t, v in self.last.items()
                   if t == "train/loss" or (t.startswith("eval/") and not t.endswith(("_ci_low", "_ci_high")))}
        exp, ssi, sei = hparams(hparam_values(config, info), metrics)
        for s in (exp, ssi, sei):
            self.writer.file_writer.add_summary(s)

    def close(self) -> None:
        self.writer.close()


def export_run(run: Run, out_dir: str | Path) -> Path:
    """Write every logged row, preview and view, every stored eval and the hparams of ``run`` as
    event files under ``out_dir`` (created); returns it. Point ``tensorboard --logdir`` at it."""
    from genstudio.core.eval import load_evals

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = run.info()
    w = RunWriter(out)
    try:
        for row in run.metrics():
            w.scalars(row)
        samples, views = logged_previews(run.path / "samples")
        for step in sorted(samples):
            w.image(SAMPLES_TAG, read_rgb(samples[step]), step)
        for name, by_step in sorted(views.items()):
            for step in sorted(by_step):
                w.image(f"views/{name}", read_rgb(by_step[step]), step)
        for rec in load_evals(run):
            w.eval_record(rec)
        w.hparams(info.get("config") or {}, info)
    finally:
        w.close()
    return out


class TensorBoardStream:
    """An event-bus subscriber writing a training run's METRICS rows, SAMPLES previews (and model
    views) and eval RESULTs as they come, and the hparams when the run ends (a STATUS of completed,
    stopped or failed). Each handler only hands a small record to the writer's queue (its own thread
    writes the file), so training is not slowed; ``close()`` flushes."""

    ENDS = ("completed", "stopped", "failed", "diverged")

    def __init__(self, run: Run, log_dir: str | Path) -> None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.run = run
        self.w = RunWriter(log_dir)
        self.ended = False

    def subscribe(self, bus: ev.EventBus) -> None:
        bus.subscribe(self)

    def __call__(self, e: ev.Event) -> None:
        if e.run_id != self.run.id:
            return
        if e.kind == ev.METRICS:
            self.w.scalars(e.data)
        elif e.kind == ev.SAMPLES:
            self._previews(int(e.data["step"]), e.data.get("path"), e.data.get("views") or {})
        elif e.kind == ev.RESULT and isinstance(e.data.get("record"), dict):
            self.w.eval_record(e.data["record"])
        elif e.kind == ev.STATUS and e.data.get("status") in self.ENDS and not self.ended:
            self.ended = True
            info = self.run.info()
            self.w.hparams(info.get("config") or {}, info)
            self.w.writer.flush()

    def _previews(self, step: int, path: str | None, views: dict[str, np.ndarray]) -> None:
        if path:
            self.w.image(SAMPLES_TAG, read_rgb(Path(path)), step)
        for name, img in views.items():
            self.w.image(f"views/{name}", np.asarray(img), step)

    def close(self) -> None:
        self.w.close()


def read_back(log_dir: str | Path) -> dict[str, Sequence[int]]:
    """{tag: steps} of the scalars and images in ``log_dir``, read with TensorBoard's own
    EventAccumulator (what the TensorBoard server shows): a check for tests and the CLI."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    out: dict[str, Sequence[int]] = {t: [s.step for s in acc.Scalars(t)] for t in tags.get("scalars", [])}
    out.update({t: [i.step for i in acc.Images(t)] for t in tags.get("images", [])})
    return out
