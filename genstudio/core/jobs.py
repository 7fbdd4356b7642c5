"""Jobs are generators: train / sample run a plugin step by step, publish events on the bus and
write the run store. Between steps they consult a :class:`Control`, so pause, resume and cancel
work the same from the GUI's worker thread, the CLI (Ctrl-C) and tests.

A driver just iterates: ``for _ in train(run, control=c, bus=b): pass``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genstudio.core import events as ev
from genstudio.core.background import BackgroundSample
from genstudio.core.config import apply_overrides, fields_of, from_dict, run_refs, to_dict
from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.device import describe, pick_device
from genstudio.core.distributed import SHARDING, Ranks
from genstudio.core.faces import (
    Adversarial,
    Conditional,
    PreviewMetrics,
    TextConditional,
    face_names,
    has_face,
)
from genstudio.core.imaging import samples_image, save_png
from genstudio.core.metrics.modes import coverage_for
from genstudio.core.modality import Modality, modality_of
from genstudio.core.plugin import SampleState, apply_lr_schedule, final_state
from genstudio.core.registry import registry
from genstudio.core.runs import HEARTBEAT_S, Run, RunError, RunStore, wake_watcher

_log = logging.getLogger(__name__)

# a run may name a run that names a run ...; deeper than this is taken for a cycle in the making
MAX_RUN_DEPTH = 4


class RunRefError(RunError):
    """A run-reference config field (``param(runs_of=...)``) names a run that cannot be used."""


class Cancelled(Exception):
    """Raised inside a job when its Control is cancelled."""


class Control:
    """Pause / resume / cancel, shared between a job and whoever drives it (thread-safe)."""

    def __init__(self) -> None:
        self._run = threading.Event()
        self._run.set()
        self._cancel = threading.Event()
        self._single = threading.Event()
        self._steer: dict[str, Any] = {}
        self._steer_lock = threading.Lock()

    def steer(self, **changes: Any) -> None:
        """Ask a training job to take new values of live settings from its next step (the model's
        ``param(live=True)`` fields and the run options in ``LIVE_RUN_OPTIONS``); checked there."""
        with self._steer_lock:
            self._steer.update(changes)

    def take_steering(self) -> dict[str, Any]:
        with self._steer_lock:
            out, self._steer = self._steer, {}
        return out

    def pause(self) -> None:
        if not self._cancel.is_set():
            self._run.clear()

    def step_once(self) -> None:
        """Let a paused training job take exactly one step, show it (a preview: samples and the
        model's views) and pause again: GAN Lab's step mode, one move at a time."""
        self._single.set()
        self.resume()

    def take_single(self) -> bool:
        """Whether the step just taken was a single step (clears the request)."""
        if self._single.is_set():
            self._single.clear()
            return True
        return False

    def resume(self) -> None:
        self._run.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._run.set()  # wake a paused job so it can see the cancel

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self, on_pause: Any = None) -> None:
        """Block while paused; raise Cancelled if cancelled. ``on_pause`` runs once when a pause begins."""
        if self.paused and on_pause is not None:
            on_pause()
        while not self._run.wait(0.1) and not self._cancel.is_set():
            pass
        if self._cancel.is_set():
            raise Cancelled()


COVERAGE_N = 500  # samples an adversarial run's mode coverage counts (a grid preview has only 64)
METRICS_FLUSH_S = 0.25  # logged rows reach metrics.jsonl at least this often: the window watching its own
# trainer process draws the curve and progress from them (2 s made both jump in steps)
LIVE_RUN_OPTIONS = ("log_every", "sample_every", "checkpoint_every", "n_preview", "preview_steps", "keep_checkpoints")


def check_steering(config: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` coerced and validated against a run's config: only live settings (model fields
    declared ``param(live=True)``, and the run options) may change mid-run; anything else raises
    ConfigError saying it applies to a new run."""
    from genstudio.core.config import ConfigError, coerce, fields_of

    specs = {f.name: f for f in fields_of(config)}
    out: dict[str, Any] = {}
    for k, v in changes.items():
        if k in LIVE_RUN_OPTIONS:
            try:
                n = int(v)
            except (TypeError, ValueError):
                raise ConfigError(f"{k}: expected int, got {v!r}") from None
            if n < 0 or (k == "log_every" and n < 1):
                raise ConfigError(f"{k}: must be >= {1 if k == 'log_every' else 0}")
            out[k] = n
        elif k in specs and specs[k].live:
            out[k] = coerce(specs[k], v)
        elif k in specs:
            raise ConfigError(f"{k} cannot change while a run trains: it applies to a new run")
        else:
            raise ConfigError(f"unknown setting {k!r}")
    return out


def _set_lr(model: Any, old: float, new: float) -> None:
    """Scale every optimiser group's (initial) lr by new / old, so per-group ratios and the cosine
    schedule (which multiplies ``initial_lr``) both follow the new base rate."""
    r = new / old if old else 1.0
    for opt in vars(model).values():
        if isinstance(opt, torch.optim.Optimizer):
            for g in opt.param_groups:
                g["lr"] = g["lr"] * r
                if "initial_lr" in g:
                    g["initial_lr"] = g["initial_lr"] * r


def preview_count(n_preview: int, kind: Modality | str) -> int:
    """Samples in a logged preview: the run's setting, or for 0 what shows the data kind well
    (``Modality.preview_n``: an 8x8 grid, or a cloud that shows a 2-D set's modes)."""
    return int(n_preview) or modality_of(kind).preview_n


def preview_image(spec: DataSpec | None, x: torch.Tensor) -> np.ndarray:
    """The picture of a batch of samples as its data's modality draws it (by shape without a spec)."""
    return spec.modality.preview(x) if isinstance(spec, DataSpec) else samples_image(x)


@dataclass
class TrainSpec:
    """What `genstudio train` and the GUI's Start button both build."""

    plugin: str
    dataset: str
    steps: int = 2000
    seed: int = 0
    device: str | None = None  # None = auto
    overrides: list[str] = field(default_factory=list)  # "key=value"
    config: dict[str, Any] | None = None  # full config dict (GUI form); overrides apply on top
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    n_preview: int = 0  # samples per preview; 0 = auto (Modality.preview_n: an 8x8 grid, or a cloud of points)
    preview_steps: int = 0  # sampling steps of each preview grid; 0 = the plugin's cheap preview_steps, else its default
    keep_checkpoints: int = 0  # newest N checkpoints kept; 0 = the plugin's choice (3; every one for GANs); -1 = all
    processes: int = 1  # > 1: torchrun trains it with that many processes (genstudio.core.distributed)
    amp: str = ""  # "bf16": train steps under torch.autocast(bfloat16) (mixed precision; no loss scaling needed)
    compile: bool = False  # torch.compile the trained nets in place (state dict keys unchanged)
    own_process: bool = False  # the GUI trains it in a process of its own and watches it (no shared GIL)
    sharding: str = "ddp"  # many processes: "ddp" replicates the nets, "fsdp" shards them (plugins declaring fsdp_modules)


def create_run(store: RunStore, spec: TrainSpec) -> Run:
    """Validate the spec (plugin, dataset, config) and write a new run folder."""
    cls = registry().get(spec.plugin)
    ds = get_dataset(spec.dataset)
    if ds.spec.kind not in cls.info.data_kinds:
        raise ValueError(f"plugin {spec.plugin} does not train on {ds.spec.kind} data "
                         f"(it takes {', '.join(cls.info.data_kinds)})")
    cfg = from_dict(cls.info.config_cls, spec.config) if spec.config else cls.info.config_cls()
    cfg = apply_overrides(cfg, spec.overrides)
    if spec.amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(m or repr(m) for m in AMP_MODES)}; got {spec.amp!r}")
    if spec.sharding not in SHARDING:
        raise ValueError(f"sharding must be one of {', '.join(SHARDING)}; got {spec.sharding!r}")
    for name, ref in run_refs(cfg).items():  # fail here, before a run folder exists
        _referenced_run(store, cls, name, ref)
    dev = pick_device(spec.device)
    return store.create(
        plugin=spec.plugin, dataset=spec.dataset, config=to_dict(cfg), seed=spec.seed, device=str(dev),
        steps=spec.steps,
        extra={"log_every": spec.log_every, "sample_every": spec.sample_every,
               "checkpoint_every": spec.checkpoint_every, "n_preview": spec.n_preview,
               "preview_steps": spec.preview_steps, "keep_checkpoints": spec.keep_checkpoints,
               **({"amp": spec.amp} if spec.amp else {}),
               **({"sharding": spec.sharding} if spec.sharding != "ddp" else {}),
               **({"compile": True} if spec.compile else {})},
    )


AMP_MODES = ("", "bf16")
COMPILE_BACKEND = os.environ.get("GENSTUDIO_COMPILE_BACKEND", "inductor")  # "eager" in tests: no C++ build


def compile_nets(model: Any) -> list[str]:
    """``nn.Module.compile()`` (in place, so checkpoints keep their keys) on every module attribute
    with trainable parameters; returns their names. Measured: on a 2-core CPU it slows the 2-D
    DDPM MLP (README); it is meant for large nets on GPUs."""
    names = []
    for name, v in vars(model).items():
        if isinstance(v, torch.nn.Module) and any(p.requires_grad for p in v.parameters()):
            v.compile(backend=COMPILE_BACKEND)
            names.append(name)
    return names


def autocast(device: torch.device, amp: str) -> Any:
    """The mixed-precision context of a run's train steps: bf16 autocast, or nothing."""
    import contextlib

    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(m or repr(m) for m in AMP_MODES)}; got {amp!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def load_model(run: Run, device: str | torch.device | None = None, *, checkpoint: bool = True,
               checkpoint_path: str | Path | None = None):
    """Rebuild a run's plugin with its config, set up for its dataset, weights from the newest
    checkpoint (or ``checkpoint_path``, e.g. the one the sampler panel picked). The runs its config
    references are loaded first and handed over with ``use_run`` before ``setup``.
    Returns (model, dataset, step)."""
    return _load(run, device, checkpoint, checkpoint_path, ())


def _load(run: Run, device: str | torch.device | None, checkpoint: bool, checkpoint_path: str | Path | None,
          above: tuple[str, ...]):
    """:func:`load_model`; ``above`` are the ids of the runs whose references led here."""
    info = run.info()
    cls = registry().get(info["plugin"])
    cfg = from_dict(cls.info.config_cls, info["config"])
    dev = device if isinstance(device, torch.device) else pick_device(device or _saved_device(info))
    ds = get_dataset(info["dataset"])
    used = _load_referenced(_store_of(run), cls, cfg, dev, (*above, run.id))
    with torch.random.fork_rng(devices=[]):  # fresh weights follow the run's seed, not the caller's RNG state
        torch.manual_seed(int(info.get("seed", 0)))
        model = cls(cfg, dev)
        for name, ref_model in used.items():
            model.use_run(name, ref_model)
        restoring = checkpoint_path is not None or bool(checkpoint and run.checkpoints())
        if restoring:
            model.restoring = True  # an instance flag: plugins without BasePlugin never see it
        model.setup(ds.spec)
        if restoring:
            model.restoring = False
    step = 0
    if checkpoint_path is not None:
        step, state = run.load_checkpoint(Path(checkpoint_path))
        model.load_state_dict(state)
    elif checkpoint and run.checkpoints():
        step, state = run.load_checkpoint()
        model.load_state_dict(state)
    return model, ds, step


def _store_of(run: Run) -> RunStore:
    """The store a run lives in (where its run references are looked up); the default store for a
    run folder kept elsewhere."""
    return RunStore(run.path.parent.parent) if run.path.parent.name == "runs" else RunStore()


def _referenced_run(store: RunStore, cls: Any, field: str, ref: str) -> Run:
    """The run that config field ``field`` of plugin ``cls`` names, checked to be of a plugin the
    field takes and to have a checkpoint; RunRefError naming the field and the run otherwise."""
    takes = {s.name: s.runs_of for s in fields_of(cls.info.config_cls)}[field] or ()
    where = f"{cls.info.id} setting {field} = {ref!r}"
    try:
        ref_run = store.get(ref)
        plugin = ref_run.info().get("plugin")
    except RunError as e:
        raise RunRefError(f"{where}: {e}") from None
    if plugin not in takes:
        raise RunRefError(f"{where}: run {ref_run.id} is a {plugin} run; {field} takes runs of {', '.join(takes)}")
    if not ref_run.checkpoints():
        raise RunRefError(f"{where}: run {ref_run.id} has no checkpoint yet; train it first")
    return ref_run


def _load_referenced(store: RunStore, cls: Any, cfg: Any, dev: torch.device,
                     chain: tuple[str, ...]) -> dict[str, Any]:
    """Field -> the set-up model (newest checkpoint, on ``dev``) of every run ``cfg`` references.
    ``chain`` is the ids of the runs being loaded, this one last, so a cycle is caught."""
    out = {}
    for name, ref in run_refs(cfg).items():
        ref_run = _referenced_run(store, cls, name, ref)
        where = f"{cls.info.id} setting {name} = {ref!r}"
        if ref_run.id in chain or len(chain) >= MAX_RUN_DEPTH:
            raise RunRefError(f"{where}: run references loop or nest deeper than {MAX_RUN_DEPTH} "
                              f"({' -> '.join((*chain, ref_run.id))})")
        try:
            out[name], _, _ = _load(ref_run, dev, True, None, chain)
        except RunRefError as e:
            raise RunRefError(f"{where}: {e}") from None
        except Exception as e:  # noqa: BLE001 - whatever breaks in there, say which reference it was
            raise RunRefError(f"{where}: cannot load run {ref_run.id}: {e.__class__.__name__}: {e}") from e
    return out


def _saved_device(info: dict[str, Any]) -> str | None:
    """The run's device if it still exists here, else auto (a run made on a GPU opens on a laptop)."""
    d = info.get("device")
    try:
        pick_device(d)
        return d
    except (ValueError, RuntimeError):
        return None


def _check_step_result(plugin: str, m: Any) -> None:
    """The train_step contract, checked once per run so a plugin returning junk fails with one line
    instead of 'completing' with tracebacks from every metrics consumer (NaN is allowed: it pauses)."""
    loss = m.get("loss") if isinstance(m, dict) else None
    if not isinstance(loss, (int, float, np.floating, np.integer)) or isinstance(loss, bool):
        raise TypeError(f"plugin {plugin}: train_step must return {{'loss': float, ...}}; got {_short(m)}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def kept_checkpoints(keep: int, model: Any) -> int:
    """How many checkpoints a run keeps: its own ``keep_checkpoints``, or (0) the plugin class's choice."""
    return keep if keep else int(getattr(model, "keep_checkpoints", 3))


def _finite(metrics: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in metrics.values() if isinstance(v, (int, float)))


def train(run: Run, *, control: Control | None = None, bus: ev.EventBus | None = None,
          device: str | None = None, extra_steps: int | None = None, ranks: Ranks | None = None) -> Iterator[int]:
    """Train (or resume) ``run`` up to its ``steps``; yields the step number after each step.

    NaN/inf scalars pause the run with a message; on resume the model is rolled back to the last
    checkpoint. A plugin exception marks the run failed (traceback in log.txt) and re-raises.
    The run's lock is held throughout: a second trainer gets RunBusy before anything is written.
    ``ranks``: this process's place in a torchrun job (``genstudio.core.distributed``); alone by default.
    """
    with run.owned():
        yield from _train(run, control=control, bus=bus, device=device, extra_steps=extra_steps,
                          ranks=ranks or Ranks())


def _train(run: Run, *, control: Control | None, bus: ev.EventBus | None, device: str | None,
           extra_steps: int | None, ranks: Ranks) -> Iterator[int]:
    """:func:`train` with the run's lock held."""
    control = control or Control()
    bus = bus or ev.EventBus()
    rid = run.id
    info = run.info()
    device = ranks.device(device or _saved_device(info)) if ranks.many else device
    total = int(info["steps"]) + (extra_steps or 0)
    log_every = max(1, int(info.get("log_every", 10)))
    sample_every = int(info.get("sample_every", 500))
    ckpt_every = int(info.get("checkpoint_every", 500))
    keep = int(info.get("keep_checkpoints", 0))
    n_preview = int(info.get("n_preview", 64))  # runs written before "0 = auto" stored 64
    preview_steps = int(info.get("preview_steps", 0)) or None
    seed = int(info.get("seed", 0))
    amp = str(info.get("amp", "") or "")
    sharding = str(info.get("sharding", "") or "ddp")

    pending: list[tuple[int, BackgroundSample]] = []  # (step, its preview) drawn beside the training
    held: list[dict[str, Any]] = []  # the training's metric rows logged meanwhile (they follow its rows)

    def drop_previews() -> None:
        """A run that ends otherwise than by completing drops the preview it was drawing."""
        for _, job in pending:
            job.drop()
        pending.clear()

    def status(s: str, message: str = "", **extra: Any) -> None:
        run.update(status=s, message=message, **extra)
        if message:
            run.log(f"[{s}] {message}")
        bus.emit(ev.STATUS, rid, status=s, message=message)

    try:
        model, ds, start = load_model(run, device)
        model = ranks.wrap(model, sharding)
        if ranks.sharded:
            run.log(ranks.shard_summary(model))
        if info.get("compile"):
            run.log(f"torch.compile ({COMPILE_BACKEND}): {', '.join(compile_nets(model)) or 'no trained net found'}")
        n_preview = preview_count(n_preview, ds.spec.modality)
        auto_steps = getattr(model, "preview_steps", None)  # what a preview costs by default: the plugin's say
        preview_steps = preview_steps or auto_steps
        if extra_steps:
            run.update(steps=total)
        dev = next(iter(_device_of(model)), None) or pick_device(device)
        torch.manual_seed(ranks.seed(seed + start))
        gen = torch.Generator().manual_seed(seed * 1_000_003 + start)
        status("running", f"training {info['plugin']} on {info['dataset']} ({describe(dev)}) from step {start}",
               device=str(dev), faces=face_names(model),  # what this run's model can do, for panels
               classes=int(model.num_classes) if has_face(model, Conditional) else 0, processes=ranks.world,
               **({"vocabulary": model.text_tokenizer().words} if has_face(model, TextConditional) else {}))
        rows: list[dict[str, Any]] = []
        t0 = time.time()
        t_last, step_last = t0, start
        flushed_at = t0
        run.beat()
        last_beat = t0
        # a first look within the first 5 % of the run, not half-way in (sample_every 500 of 1000);
        # short runs (< 100 steps) reach their cadence soon enough
        first_preview = math.ceil(0.05 * total) if sample_every and start == 0 and total >= 100 else -1
        elapsed0 = float(info.get("elapsed", 0.0))
        step = done = start  # done = last step whose update was applied

        saved = [-1]  # the step of the last checkpoint this job wrote

        def save(step: int, state: dict[str, Any] | None = None) -> None:
            run.append_metrics(rows)
            rows.clear()
            if step != saved[0]:  # the final save right after the cadence's writes nothing twice
                state = ranks.state_dict(model) if state is None else state  # FSDP: every rank gathers
                run.save_checkpoint(step, state, keep=kept_checkpoints(keep, model))
                saved[0] = step
                bus.emit(ev.CHECKPOINT, rid, step=step)
            run.update(step=step, elapsed=elapsed0 + time.time() - t0)

        # cadence previews are drawn beside the training (core.background) by one process on its own
        # (torchrun's ranks and torch.compile's nets draw theirs inline); one at a time, in order
        beside = not ranks.many and not info.get("compile")

        def preview(step: int, stage: str = "preview", inline: bool = True) -> None:
            nonlocal beside
            view = ranks.preview_model(model)  # FSDP: every rank helps gather the full weights
            if not ranks.writer:  # rank 0 alone draws previews
                return
            finish_previews()
            bus.emit(ev.STAGE, rid, step=step, stage=stage)  # a preview is a whole sampling run: say so
            if beside and not inline:
                try:
                    pending.append((step, BackgroundSample(view, n_preview, seed=seed, steps=preview_steps,
                                                           cancelled=lambda: control.cancelled, stop=Cancelled)))
                    return
                except Exception:  # a model that cannot be copied draws its previews inline
                    run.log(f"previews drawn inline: the model could not be copied:\n{traceback.format_exc()}")
                    beside = False
            began = time.perf_counter()
            with torch.no_grad():
                last = None
                for last in view.sample(n_preview, seed=seed, steps=preview_steps):  # noqa: B007
                    if control.cancelled:  # a long preview must not hold up Stop / Ctrl-C (a pause waits)
                        raise Cancelled()
            publish(step, view, last, time.perf_counter() - began)

        def finish_previews(wait: bool = True) -> None:
            """Publish the background previews that are done (all of them, waiting, with ``wait``);
            an error a preview's sampling raised is raised here, in the training thread."""
            while pending and (wait or pending[0][1].done()):
                step, job = pending.pop(0)
                last, seconds = job.result()
                publish(step, job.model, last, seconds)
                release_held()

        def log_row(row: dict[str, Any]) -> None:
            """One metrics row, to the file (in batches) and the bus. While a preview is drawn beside
            the training, the training's rows wait for its rows (mode coverage at the preview's step):
            the stream stays in step order, where an earlier step means a resume's rewind."""
            if pending:
                held.append(row)
                return
            rows.append(row)
            bus.emit(ev.METRICS, rid, **row)

        def release_held() -> None:
            if not pending:
                for row in held:
                    rows.append(row)
                    bus.emit(ev.METRICS, rid, **row)
                held.clear()

        def publish(step: int, view: Any, last: SampleState, seconds: float) -> None:
            x = last.x.detach().cpu()
            # its cost, shown by the monitor: previews are the largest share of a short run's wall time
            run.note_preview(step, seconds, last.total)
            path = save_png(preview_image(ds.spec, x), run.sample_dir() / f"step_{step:08d}.png")
            views = model_views(step, view)
            wake_watcher()  # a watching window shows the preview now
            bus.emit(ev.SAMPLES, rid, step=step, x=x, path=str(path), views=views,
                     seconds=seconds, sample_steps=last.total)
            log_coverage(step, x, view)
            log_model_metrics(step, view)

        cover: list[Any] = []  # the dataset's mode-coverage function, built at the first preview

        def log_coverage(step: int, x: torch.Tensor, model: Any) -> None:
            """Modes the preview samples reach (data with known modes), logged with the step so mode
            collapse shows as a falling curve; labelled images use their classifier for adversarial
            runs only (it may train for seconds on first use). Never costs the run more than a log line."""
            try:
                if not cover:
                    cover.append(coverage_for(ds, classify=has_face(model, Adversarial), device=dev))
                if cover[0] is None:
                    return
                if has_face(model, Adversarial) and len(x) < COVERAGE_N:  # one generator pass: count on more
                    with torch.no_grad():
                        x = final_state(model.sample(COVERAGE_N, seed=seed)).x.detach().cpu()
                row = {"step": step, **cover[0](x)}
                total_modes = row.pop("modes_total", None)  # a constant: said once in the log, not a curve
                if len(cover) == 1:
                    cover.append(True)
                    run.log(f"mode coverage: 'modes' counts how many of the data's {total_modes:g} modes the "
                            f"{len(x)} samples drawn at each preview reach")
            except Exception:
                cover[:] = [None]
                run.log(f"mode coverage failed at step {step}; not logged:\n{traceback.format_exc()}")
                return
            log_row(row)

        def log_model_metrics(step: int, model: Any) -> None:
            """The PreviewMetrics face's scalars at this preview; a failure costs a log line only."""
            if not has_face(model, PreviewMetrics):
                return
            try:
                with torch.no_grad():
                    row = {"step": step, **{str(k): float(v) for k, v in model.preview_metrics().items()}}
            except Exception:
                run.log(f"preview_metrics() failed at step {step}; skipped:\n{traceback.format_exc()}")
                return
            log_row(row)

        def model_views(step: int, model: Any) -> dict[str, np.ndarray]:
            """The plugin's optional ViewsModel pictures, saved next to the samples; a broken
            views() only costs a log line, never the run."""
            if not callable(getattr(model, "views", None)):
                return {}
            try:
                with torch.no_grad():
                    views = {str(k): np.ascontiguousarray(v, dtype=np.uint8) for k, v in model.views().items()}
                for name, img in views.items():
                    save_png(img, run.sample_dir() / f"view_{name}_{step:08d}.png")
                return views
            except Exception:
                run.log(f"views() failed at step {step}; skipped:\n{traceback.format_exc()}")
                return {}

        paused_state: list[dict[str, Any] | None] = [None]  # FSDP: gathered by every rank before the pause

        def on_pause() -> None:
            save(done, paused_state[0])
            status("paused", f"paused at step {done}")

        def steer(step: int) -> None:
            """Live steering: the settings asked for since the last step take effect now, and the
            run records them with that step (run.json ``config``/options and ``steering``)."""
            nonlocal log_every, sample_every, ckpt_every, n_preview, preview_steps, keep
            asked = control.take_steering()
            if not asked:
                return
            try:
                changes = check_steering(model.config, asked)
            except ValueError as e:
                run.log(f"[steer] refused at step {step}: {e}")
                bus.emit(ev.STATUS, rid, status="running", message=f"not applied: {e}")
                return
            diff: dict[str, list[Any]] = {}
            for k, v in changes.items():
                if k in LIVE_RUN_OPTIONS:
                    old = run.info().get(k)
                else:
                    old = getattr(model.config, k)
                    if k == "lr":
                        _set_lr(model, float(old), float(v))
                    setattr(model.config, k, v)
                if old != v:
                    diff[k] = [old, v]
            if not diff:
                return
            log_every = max(1, int(changes.get("log_every", log_every)))
            sample_every = int(changes.get("sample_every", sample_every))
            ckpt_every = int(changes.get("checkpoint_every", ckpt_every))
            keep = int(changes.get("keep_checkpoints", keep))
            if "n_preview" in changes:
                n_preview = preview_count(int(changes["n_preview"]), ds.spec.modality)
            if "preview_steps" in changes:
                preview_steps = int(changes["preview_steps"]) or auto_steps
            history = list(run.info().get("steering") or []) + [{"step": step, "changes": diff}]
            run.update(config=to_dict(model.config), steering=history,
                       **{k: v for k, v in changes.items() if k in LIVE_RUN_OPTIONS})
            text = ", ".join(f"{k} {a} → {b}" for k, (a, b) in diff.items())
            run.log(f"[steer] {text} @ {step}")
            bus.emit(ev.STEERED, rid, step=step, changes=diff)

        while done < total:
            step = done + 1
            finish_previews(wait=False)
            if ranks.held(control):
                finish_previews()  # a paused run shows the preview it was drawing
                paused_state[0] = ranks.state_dict(model) if ranks.sharded else None
                ranks.wait(control, on_pause)
                paused_state[0] = None
                if run.info().get("status") != "running":
                    status("running", f"resumed at step {done}")
            steer(step)
            x, y = ranks.batch(ds, model.config.batch_size, gen)
            if step == start + 1:  # a broken dataset (a user's folder) fails here with a clear message
                ds.spec.modality.check(x, ds.spec.shape, f"batch of {ds.spec.name}")
            x = x.to(dev)
            y = y.to(dev) if y is not None else None
            apply_lr_schedule(model, step)
            with autocast(dev, amp):
                m = model.train_step(x, y, step)
            if step == start + 1:
                _check_step_result(info["plugin"], m)
            m = ranks.average(m)
            if not _finite(m):
                finish_previews()
                bad = ", ".join(f"{k}={v}" for k, v in m.items() if not math.isfinite(v))
                run.append_metrics(rows)
                rows.clear()
                status("diverged", f"non-finite value at step {step} ({bad}); paused. Resume rolls back to the "
                       "last checkpoint; consider a lower learning rate.")
                control.pause()
                try:
                    ranks.wait(control)
                except Cancelled:  # stopped while diverged: keep the last good checkpoint as is
                    status("diverged", f"stopped after a non-finite value at step {step}; the last "
                           "checkpoint is intact")
                    return
                newest = ranks.newest_checkpoint(run)  # rank 0's, for every rank
                if newest is not None and not ranks.sharded:
                    ck_step, state = newest
                    model.load_state_dict(state)
                else:  # FSDP: a fresh model, the plain checkpoint loaded, then sharded again
                    model, ds, ck_step = load_model(run, device, checkpoint=False)
                    if newest is not None:
                        ck_step, state = newest
                        model.load_state_dict(state)
                    model = ranks.wrap(model, sharding)
                done = step_last = ck_step  # rewind: the steps after the checkpoint are trained again
                saved[0] = -1  # and their checkpoints written again (what is there may be what failed to load)
                t_last = time.time()
                status("running", f"resumed from checkpoint step {ck_step}")
                continue
            done = step
            now = time.time()
            if step % log_every == 0 or step == total:
                rate = (step - step_last) / max(now - t_last, 1e-9)
                t_last, step_last = now, step
                log_row({"step": step, "time": elapsed0 + now - t0, "steps_per_s": rate, **m})
                if len(rows) >= 50 or now - flushed_at > METRICS_FLUSH_S:  # a watching window sees them soon
                    run.append_metrics(rows)
                    rows.clear()
                    flushed_at = now
            single = ranks.agree(control.take_single())  # FSDP: a preview needs every rank
            if single or (sample_every and (step % sample_every == 0 or step == first_preview)):
                preview(step, inline=single)  # Step shows its own preview before it pauses
            if single:
                control.pause()
            if ckpt_every and step % ckpt_every == 0:
                save(step)
            bus.emit(ev.PROGRESS, rid, done=step, total=total)
            if time.time() - last_beat > HEARTBEAT_S:  # a live trainer that stops beating is stalled
                run.beat()
                last_beat = time.time()
            yield step
        finish_previews()
        bus.emit(ev.STAGE, rid, step=done, stage="final checkpoint")
        save(done)
        if not (sample_every and done % sample_every == 0):
            preview(done, "final preview")
        status("completed", f"finished {done} steps in {time.time() - t0:.1f}s")
    except Cancelled:
        drop_previews()  # its rows never come
        if held:  # the training's rows logged meanwhile are kept
            release_held()
        save(done)
        status("stopped", f"stopped at step {done}; resume continues from here")
    except Exception as exc:
        _record_failure(run, bus, exc, traceback.format_exc())
        raise
    finally:  # failed or abandoned (a generator closed) too
        drop_previews()


def _record_failure(run: Run, bus: ev.EventBus, exc: Exception, tb: str) -> None:
    """Mark ``run`` failed, best-effort: on a full disk these writes fail too, and that must be
    logged, never raised over the error that failed the run."""
    message = f"{exc.__class__.__name__}: {exc}"
    for what, write in (("traceback", lambda: run.log(tb)),
                        ("status", lambda: run.update(status="failed", message=message)),
                        ("status", lambda: run.log(f"[failed] {message}"))):
        try:
            write()
        except Exception as e:  # noqa: BLE001 - OSError (ENOSPC), RunError, anything: keep the first error
            _log.warning("run %s: cannot record the %s of its failure (%s: %s)", run.id, what,
                         e.__class__.__name__, e)
    for kind, data in ((ev.STATUS, {"status": "failed", "message": message}),
                       (ev.ERROR, {"message": message, "traceback": tb})):
        try:
            bus.emit(kind, run.id, **data)
        except Exception as e:  # noqa: BLE001 - a broken subscriber must not hide the failure either
            _log.warning("run %s: a %s subscriber failed: %s", run.id, kind, e)


def _device_of(model: Any) -> list[torch.device]:
    dev = getattr(model, "device", None)
    return [torch.device(dev)] if dev is not None else []


@dataclass
class SampleResult:
    x: torch.Tensor
    states: list[SampleState]
    png: str | None = None
    npz: str | None = None
    files: list[str] = field(default_factory=list)  # what the data's modality also wrote (audio: WAVs)


def sample(run: Run, *, n: int = 64, steps: int | None = None, sampler: str | None = None, seed: int = 0,
           every: int = 1, keep_states: bool = True, thin: int = 1, control: Control | None = None,
           bus: ev.EventBus | None = None, device: str | None = None, out: str | None = None,
           model: Any = None, checkpoint: str | Path | None = None, hold_states: bool = False,
           **sample_kwargs: Any) -> Iterator[SampleState]:
    """Sample from a run's newest checkpoint (or ``checkpoint``, a path), yielding each SampleState
    (publishing SAMPLE_STATE). ``keep_states`` records the trajectory (every ``thin``-th state and
    the last) in the NPZ, streamed to disk as it comes (:class:`TrajectoryStream`); without it only
    the newest state is held, so a long sampler costs what a bare loop of the net costs (issue #18:
    keeping all of them in memory cost 20-30 %). ``hold_states`` also keeps the recorded states in
    memory, as the result's ``states`` (animations drawn from them).

    Writes the final picture (PNG) and arrays (NPZ: final x and, if kept, the trajectory) to the
    run's samples folder, or to ``out`` (``.png`` or ``.npz``). The generator's return value is a
    :class:`SampleResult`.
    """
    from genstudio.core.npzstream import TrajectoryStream

    control = control or Control()
    bus = bus or ev.EventBus()
    spec = None  # a given model's own spec may be an inner one (an LDM's latents): drawn by shape then
    if model is None:
        model, ds, _ = load_model(run, device, checkpoint_path=checkpoint)
        spec = ds.spec
    stem = f"sample_{sampler or 'default'}_n{n}_s{seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    base = run.sample_dir() / stem
    png_path = npz_path = None
    if out:
        if out.endswith(".npz"):
            npz_path = out
        else:
            png_path = out
    png_path = png_path or str(base) + ".png"
    npz_path = npz_path or str(base) + ".npz"
    held: list[SampleState] = []
    last: SampleState | None = None
    recorded: SampleState | None = None
    thin = max(1, int(thin))
    stages = getattr(model, "pipeline_stages", None)  # text-to-image: the diagram the Sampler draws
    pipeline = stages() if callable(stages) else None
    stream = TrajectoryStream(Path(npz_path).parent) if keep_states else None
    try:
        with torch.no_grad():
            for i, st in enumerate(model.sample(n, seed=seed, steps=steps, sampler=sampler, every=every,
                                                **sample_kwargs)):
                control.check()
                extras = st.extras if pipeline is None else {"pipeline": pipeline, **(st.extras or {})}  # a state's own wins
                cpu = SampleState(st.step, st.total, st.t, st.x.detach().cpu(),
                                  st.x0.detach().cpu() if st.x0 is not None else None, extras)
                if stream is not None and i % thin == 0:
                    stream.add(cpu.x, cpu.x0, cpu.t)
                    recorded = cpu
                    if hold_states:
                        held.append(cpu)
                last = cpu
                bus.emit(ev.SAMPLE_STATE, run.id, state=cpu)
                yield cpu
        if last is None:
            raise RuntimeError("the sampler produced no state")
        if stream is not None and recorded is not last:  # a thinned trajectory still ends where the sampler did
            stream.add(last.x, last.x0, last.t)
            if hold_states:
                held.append(last)
        save_png(preview_image(spec, last.x), png_path)
        arrays = {"x": last.x.numpy()}
        if stream is not None:
            stream.write_npz(npz_path, arrays)
        else:
            np.savez_compressed(npz_path, **arrays)
    finally:
        if stream is not None:
            stream.close()
    files = spec.modality.export(last.x, str(Path(png_path).with_suffix("")), spec) if spec is not None else []
    run.log(f"sampled n={n} sampler={sampler} steps={steps} seed={seed} -> {png_path}")
    bus.emit(ev.RESULT, run.id, png=png_path, npz=npz_path, files=files)
    return SampleResult(last.x, held, png_path, npz_path, files)
