"""Command line: the same jobs the GUI runs.

    genstudio                       launch the GUI
    genstudio plugins               table: id, family, faces, status
    genstudio datasets              built-in datasets
    genstudio train PLUGIN --data DATASET --steps N [--set k=v ...] [--device D] [--seed S]
    genstudio train PLUGIN --list-settings    the --set keys: default, range or choices, help
    genstudio resume RUN [--steps N] [--nproc N]
    torchrun --nproc-per-node N [--nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT] -m genstudio train ...
    genstudio sample RUN --n N [--steps K] [--sampler NAME] [--seed S] [--out FILE] [--trajectory [K]] [--checkpoint STEP|all] [--gif FILE.gif|FILE.mp4]
    genstudio eval RUN [--metrics fcd,kid,...] [--n N] [--checkpoint STEP|all] [--inception FILE]
    genstudio nfe RUN [--samplers a,b] [--max-nfe N] [--n N] [--csv FILE]
    genstudio guidance RUN [--scales 0,1,2,4] [--n N] [--sampler NAME] [--csv FILE]
    genstudio interp RUN --a data:12|seed:3|img.png --b ... [--frames 8] [--steps 50] [--out FILE.png|.gif|.mp4]
    genstudio timelapse RUN --out FILE.gif|FILE.mp4 [--fps N] [--view NAME]
    genstudio ot A B [--n N] [--eps E] [--seed S] [--gif FILE.gif|.mp4]   A, B: 2-D dataset or run:RUN
    genstudio shot [PANEL] --out FILE.png [--demo]
    genstudio watch RUN             the window on a run another process trains, as it grows
    genstudio report RUN --out DIR [--seed S] [--n N] [--no-trajectory]    one self-contained HTML page
    genstudio tensorboard RUN --out DIR      scalars, preview images and hparams as TensorBoard event files
    genstudio flythrough RUN --out FILE.mp4|.gif [--keyframes FILE.json] [--frames N] [--size WxH]
    genstudio demo [TOUR] [--auto] [--quick] [--shots DIR] [--check] [--list]   guided tour (TOUR: name or file)

Every command's --help shows its defaults. Errors print one line on stderr and exit with status 2 (no traceback; GENSTUDIO_DEBUG=1 shows it).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

MAX_SEED = 2**32 - 1  # numpy's limit; torch takes more, but a seed is handed to both


class CliError(Exception):
    """An error worth one line to the user."""


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, except where there is none to show (None, a flag off)
    or the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or any(action.default is x for x in (None, False, argparse.SUPPRESS))
                or "%(default)" in text or "default" in text.lower()):
            return text
        return f"{text} (default: %(default)s)".lstrip()


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and status 2, like every other error (argparse would exit itself)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        kw.setdefault("formatter_class", _Help)
        super().__init__(*a, **kw)

    def add_argument(self, *a: Any, **kw: Any) -> argparse.Action:
        default = kw.get("default")
        if kw.get("help") is None and default is not None and default is not False and a and a[0].startswith("-"):
            kw["help"] = "(default: %(default)s)"  # argparse shows nothing for an option without help
        return super().add_argument(*a, **kw)

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see `{self.prog} -h`)")


def _int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [lo, hi], checked before anything is loaded or created."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}" if hi is None else
                                             f"must be in [{lo}, {hi}], got {v}")
        return v

    return parse


COUNT, EVERY, SEED = _int_in(1), _int_in(0), _int_in(0, MAX_SEED)  # EVERY: 0 = never / auto / none


def _out_file(text: str) -> str:
    """An argparse type for a file to write: its folder must exist (a typo must not create folders)."""
    parent = Path(text).expanduser().parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {str(parent)!r} does not exist")
    return text


def _animation_file(text: str) -> str:
    """An argparse type for an animation to write: a .gif or .mp4 in an existing folder."""
    from genstudio.core.imaging import ANIMATION_SUFFIXES

    if Path(text).suffix.lower() not in ANIMATION_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text!r}: write the animation as {' or '.join(ANIMATION_SUFFIXES)}")
    return _out_file(text)


def _png_file(text: str) -> str:
    """An argparse type for a PNG to write in an existing folder."""
    if Path(text).suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"{text!r}: write the figure as .png")
    return _out_file(text)


def _in_file(text: str) -> str:
    """An argparse type for a file to read."""
    if not Path(text).expanduser().is_file():
        raise argparse.ArgumentTypeError(f"no file {text!r}")
    return text


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def _store():
    from genstudio.core.runs import RunStore

    return RunStore()


def _trained_run(ref: str) -> Any:
    """The run ``ref`` names, or a one-line error when it has no checkpoint to load yet."""
    run = _store().get(ref)
    if not run.checkpoints():
        raise CliError(f"run {run.id} has no checkpoint yet; train it first")
    return run


def cmd_plugins(args: argparse.Namespace) -> int:
    from genstudio.core.registry import plugin_table, registry

    reg = registry()
    print(_table(plugin_table(reg), ("id", "family", "faces", "status")))
    if args.verbose:
        from genstudio.core.plugin import sample_options

        for e in reg.ok():
            opts = sample_options(e.cls)
            if opts:
                print(f"\n[{e.id}] sampling options (genstudio sample RUN --option NAME=VALUE):")
                for o in opts:
                    rng = f"one of {', '.join(o.choices)}" if o.choices else f"in [{o.range[0]:g}, {o.range[1]:g}]"
                    print(f"  {o.name} (default {o.default}, {rng}): {o.help}")
        for e in reg.broken():
            print(f"\n[{e.id}] {e.source}\n{e.details or e.error}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from genstudio.core.data import dataset_table

    print(_table(dataset_table(), ("name", "description")))
    return 0


class _Progress:
    """tqdm bar fed by PROGRESS/METRICS/STATUS/STAGE events."""

    def __init__(self, total: int, initial: int, desc: str, quiet: bool = False) -> None:
        from tqdm import tqdm

        self.desc = desc
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                        disable=True if quiet else None if sys.stderr.isatty() else False, mininterval=0.5)

    def __call__(self, event: Any) -> None:
        from genstudio.core import events as ev

        if event.kind == ev.PROGRESS:
            self.stage("")
            self.bar.update(event.data["done"] - self.bar.n)  # redraws at most every mininterval s
        elif event.kind == ev.METRICS and "loss" in event.data:  # mode-coverage rows carry no loss
            self.bar.set_postfix(loss=f"{event.data['loss']:.4g}", refresh=False)
        elif event.kind == ev.STATUS and event.data.get("message"):
            self.bar.write(f"[{event.data['status']}] {event.data['message']}")
        elif event.kind == ev.STAGE:  # the job says what it does until its next PROGRESS
            self.stage(str(event.data.get("stage", "")))

    def stage(self, what: str) -> None:
        """Show what the job does between steps (the preview it draws, the final checkpoint)."""
        if what != getattr(self, "_stage", ""):
            self._stage = what
            self.bar.set_description(f"{self.desc} [{what}]" if what else self.desc, refresh=True)


def _stop_on_signals(control: Any, notice: Any = None) -> Any:
    """Ctrl-C (SIGINT) and SIGTERM (kill, systemd, a batch scheduler) both stop the job cleanly:
    checkpoint and status written; ``notice()`` says so. A second signal acts as usual. Returns
    the undo function."""
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}

    def on_signal(signum: int, frame: Any) -> None:
        control.cancel()
        if notice is not None:
            notice()
        signal.signal(signum, defaults[signum])

    old = {sig: signal.signal(sig, on_signal) for sig in defaults}

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore


def _drive_training(run: Any, extra_steps: int | None, device: str | None,
                    steer: dict[str, Any] | None = None, ranks: Any = None, tensorboard: str | None = None) -> int:
    from genstudio.core import jobs
    from genstudio.core.distributed import Ranks
    from genstudio.core.events import EventBus
    from genstudio.core.runs import RunBusy
    from genstudio.core.watch import FileControl

    ranks = ranks or Ranks()
    bus = EventBus()
    # Pause / Stop from a window watching the run (genstudio watch) arrive through its control file
    control = FileControl(run) if ranks.writer else jobs.Control()
    if steer:
        control.steer(**steer)  # taken at the first step and recorded with it, like a GUI edit
    info = run.info()
    total = int(info["steps"]) + (extra_steps or 0)
    prog = _Progress(total, int(info.get("step", 0)), info["plugin"], quiet=not ranks.writer)
    if ranks.writer:
        bus.subscribe(prog)
    # nobody can press Resume on the CLI: a diverged run (paused by the job) is stopped instead
    bus.subscribe(lambda e: control.cancel() if e.data.get("status") == "diverged" else None, "status")
    stream = None
    if tensorboard and ranks.writer:  # the same tags as `genstudio tensorboard`, written as the run trains
        from genstudio.core.tboard import TensorBoardStream

        stream = TensorBoardStream(run, tensorboard)
        stream.subscribe(bus)

    restore = _stop_on_signals(
        control, lambda: prog.bar.write("stopping after this step (Ctrl-C again to abort without a checkpoint)"))
    try:
        for _ in jobs.train(run, control=control, bus=bus, device=device, extra_steps=extra_steps, ranks=ranks):
            pass
    except RunBusy:  # another process trains it: nothing was written, say so as it is
        raise
    except KeyboardInterrupt:  # the second Ctrl-C, e.g. in a plugin step that never returns
        raise CliError(_interrupted(run)) from None
    except Exception as e:  # plugin errors: one line here, the traceback is in the run's log.txt
        if os.environ.get("GENSTUDIO_DEBUG"):
            raise
        raise CliError(f"run {run.id} failed: {e.__class__.__name__}: {e} (traceback in {run.path / 'log.txt'})") from e
    finally:
        restore()
        prog.bar.close()
        if stream is not None:
            stream.close()
    status = run.info().get("status")
    if not ranks.writer:  # a private copy of rank 0's run: nothing to show
        ranks.close()
        return 0
    ranks.close()
    print(run.path)
    if status not in ("completed", "stopped"):
        raise CliError(f"run {run.id} ended {status}: {run.info().get('message', '')}")
    return 0


def _interrupted(run: Any) -> str:
    """Mark a run whose job was killed by Ctrl-C (it never reached a check) and say what is left."""
    ck = run.checkpoints()
    left = f"resume continues from the checkpoint of step {run.info().get('step', 0)}" if ck else "no checkpoint"
    msg = f"interrupted by Ctrl-C; {left}"
    run.update(status="interrupted", message=msg)
    run.log(f"[interrupted] {msg}")
    return f"run {run.id} {msg}"


def settings_table(plugin: str) -> str:
    """Every config field of ``plugin`` (what ``--set KEY=VALUE`` takes): default, type, range or
    choices, then its help indented."""
    from genstudio.core.config import fields_of
    from genstudio.core.registry import registry

    lines = []
    for f in fields_of(registry().get(plugin).info.config_cls):
        kind = getattr(f.type, "__name__", str(f.type))
        allowed = (f"  choices: {', '.join(map(str, f.choices))}" if f.choices else
                   f"  range: {f.range[0]:g} .. {f.range[1]:g}" if f.range else "")
        default = repr(f.default) if isinstance(f.default, str) else str(f.default)
        lines.append(f"{f.name}={default}  ({kind}){allowed}")
        lines += [f"    {ln}" for ln in textwrap.wrap(f.help, 88)] if f.help else []
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from genstudio.core import jobs

    if args.list_settings:
        print(settings_table(args.plugin))
        return 0
    if not args.data:
        raise CliError("the following arguments are required: --data (see `genstudio train -h`)")

    spec = jobs.TrainSpec(
        plugin=args.plugin, dataset=args.data, steps=args.steps, seed=args.seed, device=args.device,
        overrides=args.set or [], log_every=args.log_every, sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every, n_preview=args.n_preview, preview_steps=args.preview_steps,
        keep_checkpoints=args.keep_checkpoints,
        amp=args.amp, sharding=args.sharding, compile=args.compile,
    )
    if args.nproc > 1:
        _parallel_plugin(args.plugin, args.sharding)
    ranks = _ranks(args)
    run = jobs.create_run(_store(), spec) if ranks.writer else None
    if args.nproc > 1 and not ranks.many:  # this process only launches the N that train
        return _launch(run, ["resume", run.id], args)
    return _drive_training(ranks.share_run(run), None, args.device, ranks=ranks, tensorboard=args.tensorboard)


def _ranks(args: argparse.Namespace) -> Any:
    """This process's place in a torchrun job (alone unless torchrun started it)."""
    from genstudio.core.distributed import start

    return start(args.device)


def _parallel_plugin(plugin: str, sharding: str = "ddp") -> None:
    """Refuse a many-process run of a plugin that cannot split its training, before any folder."""
    from genstudio.core.distributed import require_parallel
    from genstudio.core.registry import registry

    require_parallel(registry().get(plugin), sharding)


def _launch(run: Any, argv: list[str], args: argparse.Namespace) -> int:
    """Train ``run`` with ``--nproc`` processes under torchrun; prints the run folder like a lone run."""
    from genstudio.core.distributed import launch

    extra = ["--device", args.device] if args.device else []
    if getattr(args, "tensorboard", None):
        extra += ["--tensorboard", args.tensorboard]
    rc = launch([*argv, *extra], args.nproc)
    status = run.info().get("status")
    if rc != 0 or status not in ("completed", "stopped"):
        raise CliError(f"run {run.id}: the {args.nproc}-process job ended {status} (exit status {rc}); "
                       f"see {run.path / 'log.txt'}")
    return 0  # rank 0 printed the run folder


def _refuse_completed(run: Any, extra_steps: int | None) -> None:
    """Resuming a completed run without --steps would do nothing but rewrite its checkpoint: refuse."""
    info = run.info()
    done, planned = int(info.get("step", 0) or 0), int(info.get("steps", 0) or 0)
    if not extra_steps and (info.get("status") == "completed" or (planned and done >= planned)):
        raise CliError(f"run {run.id} is completed ({done}/{planned} steps); pass --steps to train further")


def cmd_resume(args: argparse.Namespace) -> int:
    ranks = _ranks(args)
    run = _store().get(args.run) if ranks.writer else None
    if ranks.writer:
        _refuse_completed(run, args.steps)
    if args.nproc > 1 and not ranks.many:
        _parallel_plugin(run.info()["plugin"], run.info().get("sharding") or "ddp")
        argv = ["resume", str(run.path), *(["--steps", str(args.steps)] if args.steps else []),
                *(a for kv in args.set or [] for a in ("--set", kv))]
        return _launch(run, argv, args)
    run = ranks.share_run(run)
    return _drive_training(run, args.steps, args.device, steer=_steering(run, args.set or []), ranks=ranks,
                           tensorboard=args.tensorboard)


def _steering(run: Any, items: list[str]) -> dict[str, Any]:
    """``resume --set KEY=VALUE``: live settings only (the same check as steering in the GUI); a
    setting that shapes the model is refused, it applies to a new run."""
    if not items:
        return {}
    from genstudio.core.config import from_dict, parse_overrides
    from genstudio.core.jobs import check_steering
    from genstudio.core.registry import registry

    info = run.info()
    config = from_dict(registry().get(info["plugin"]).info.config_cls, info.get("config", {}))
    try:
        return check_steering(config, parse_overrides(items))
    except ValueError as e:
        raise CliError(str(e)) from None


def _flag(option: str) -> str:
    """The command-line flag of a sample() keyword."""
    if option not in ("cond", "guidance", "eta", "sigma_schedule"):
        return f"--option {option}"
    return "--" + ("class" if option == "cond" else option.replace("_", "-"))


def _declared_options(pairs: list[str]) -> dict[str, Any]:
    """``--option NAME=VALUE`` pairs: any option the plugin declares (truncation, mix_seed, ...);
    numbers become int or float, anything else stays text (for options with choices)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--option {pair!r}: expected NAME=VALUE")
        value: Any = raw.strip()
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        if isinstance(value, float) and not math.isfinite(value):
            raise CliError(f"--option {pair!r}: not a finite number")
        out[name.strip().replace("-", "_")] = value
    return out


def _token_sampling_flags(args: argparse.Namespace) -> dict[str, Any]:
    """--temperature / --top-k / --mode / --decoding: the token models' declared options, as flags."""
    return {k: getattr(args, k) for k in ("temperature", "top_k", "mode", "decoding")
            if getattr(args, k, None) is not None}


def cmd_sample(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from genstudio.core import jobs
    from genstudio.core.tools.text2image import has_attention

    if args.gif and args.no_trajectory:
        raise CliError("--gif draws the trajectory: drop --no-trajectory")
    run = _trained_run(args.run)
    figures = args.attention or args.pipeline
    if figures and "TextConditional" not in set(run.info().get("faces") or ()):
        raise CliError(f"{'--attention' if args.attention else '--pipeline'} draws a text-to-image run's "
                       f"cross-attention / pipeline: run {run.id} ({run.info().get('plugin')}) takes no prompt")
    if figures and not 0 <= args.index < args.n:
        raise CliError(f"--index {args.index}: the batch has samples 0..{args.n - 1}")
    extra = {k: v for k, v in (("cond", args.cls), ("guidance", args.guidance), ("eta", args.eta),
                               ("sigma_schedule", args.sigma_schedule), ("prompt", args.prompt)) if v is not None}
    extra.update(_declared_options(args.option or []))
    extra.update(_token_sampling_flags(args))
    if getattr(args, "frames", None):
        extra["frames"] = args.frames  # video runs: the clip length (a declared sample option)
    if extra:
        from genstudio.core.plugin import option_error, sample_options
        from genstudio.core.registry import registry

        info = run.info()
        plugin = info["plugin"]
        takes = {o.name for o in sample_options(registry().get(plugin))}
        if "Conditional" in set(info.get("faces") or ()):
            takes.add("cond")
        if "TextConditional" in set(info.get("faces") or ()):
            takes.add("prompt")
        bad = [k for k in extra if k not in takes]
        if bad:
            flags = ", ".join(map(_flag, bad))
            why = " (the run is not class-conditional)" if "cond" in bad else ""
            raise CliError(f"plugin {plugin}'s sampler does not take {flags}{why}")
        for opt in sample_options(registry().get(plugin)):
            why = option_error(opt, extra[opt.name]) if opt.name in extra else None
            if why:
                raise CliError(f"{_flag(opt.name)}: {why} (plugin {plugin})")
    if args.checkpoint == "all":
        return _sample_checkpoints(run, args, extra)
    ckpt = _checkpoint_arg(run, args.checkpoint)
    every = args.trajectory or (1 if args.gif else 0)  # the trajectory only when asked: it costs 20-30 %
    gen = jobs.sample(run, n=args.n, steps=args.steps, sampler=args.sampler, seed=args.seed, checkpoint=ckpt,
                      every=1, keep_states=bool(every), thin=every or 1, hold_states=bool(args.gif),
                      device=args.device, out=args.out, **extra)
    bar = tqdm(desc="sampling", unit="step", disable=None if sys.stderr.isatty() else False)
    result = None
    st = None
    attn_states = []  # --attention: the states that carry cross-attention maps (small: B x L x h x w)
    try:
        while True:
            st = next(gen)
            if args.attention and has_attention(st):
                attn_states.append(st)
            bar.total = st.total
            bar.update(st.step - bar.n)  # redraws at most every mininterval (refresh() drew every step)
    except StopIteration as stop:
        result = stop.value
    finally:
        bar.close()
    print(result.png)
    print(result.npz)
    for path in result.files:  # audio runs: a 16-bit WAV per clip
        print(path)
    for text in (st.extras.get("caption") or ()) if st is not None else ():  # image -> caption runs
        print(f"caption: {text}")
    if args.gif and result.x.dim() == 5:  # video runs: the clips themselves, T frames
        from genstudio.core.metrics.video import save_clip

        print(save_clip(result.x, args.gif))
    elif args.gif:
        print(_write_trajectory(result.states, args.gif))
    if figures:
        _write_text_figures(args, attn_states, st)
    return 0


def _write_text_figures(args: argparse.Namespace, attn_states: Sequence[Any], last: Any) -> None:
    """--attention / --pipeline: the Sampler's per-word attention figure and pipeline diagram of
    sample --index, as PNGs."""
    from genstudio.core.imaging import save_png
    from genstudio.core.tools.text2image import attention_figure, state_pipeline_image

    if args.attention:
        if not attn_states:
            raise CliError("--attention: this sampler yielded no cross-attention maps")
        print(save_png(attention_figure(attn_states, args.index, rows=args.rows), args.attention))
    if args.pipeline:
        stages = (last.extras or {}).get("pipeline") if last is not None else None
        if not stages:
            raise CliError("--pipeline: this model describes no pipeline stages")
        print(save_png(state_pipeline_image(last, stages, args.index), args.pipeline))


def _checkpoint_arg(run: Any, ref: str | None) -> Path | None:
    """--checkpoint STEP|FILE as a checkpoint file (None = the newest); a bad one is a CliError."""
    if ref is None:
        return None
    try:
        path = run.checkpoint_path(ref)
    except ValueError as e:
        raise CliError(str(e)) from None
    if not path.is_file():
        raise CliError(f"--checkpoint {ref}: no such checkpoint file ({path})")
    return path


def _sample_checkpoints(run: Any, args: argparse.Namespace, extra: dict[str, Any]) -> int:
    """--checkpoint all: the same seed's samples from every checkpoint, as one animation (--gif)."""
    from tqdm import tqdm

    from genstudio.core.timelapse import write_checkpoint_evolution

    if not args.gif:
        raise CliError("--checkpoint all writes the samples of every checkpoint as an animation: add "
                       "--gif FILE.gif|FILE.mp4")
    bar = tqdm(total=len(run.checkpoints()), desc="checkpoints", unit="ckpt",
               disable=None if sys.stderr.isatty() else False)
    try:
        path = write_checkpoint_evolution(run, args.gif, n=args.n, seed=args.seed, steps=args.steps,
                                          sampler=args.sampler, device=args.device,
                                          progress=lambda d, t: bar.update(d - bar.n), **extra)
    finally:
        bar.close()
    print(path)
    return 0


def _write_trajectory(states: Sequence[Any], path: str) -> Path:
    """The Sampler's x_t | x0 animation (the same frames as its export), with a bar over the frames."""
    from tqdm import tqdm

    from genstudio.core.imaging import frame_indices, save_animation, trajectory_frames

    frames = list(tqdm(trajectory_frames(states), total=len(frame_indices(len(states))), desc="frames",
                       unit="frame", disable=None if sys.stderr.isatty() else False, mininterval=0.5))
    return save_animation(frames, path)


def cmd_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from genstudio.core import events as ev
    from genstudio.core.eval import evaluate, evaluate_checkpoints, format_value, reference_text
    from genstudio.core.events import EventBus

    run = _trained_run(args.run)
    bus = EventBus()
    bar: Any = None  # made at the first progress: a bad --metrics fails as one line, no empty bar

    def on_progress(e: Any) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(desc="eval", disable=None if sys.stderr.isatty() else False)
        bar.total, bar.n = e.data["total"], e.data["done"]
        bar.set_postfix_str(str(e.data.get("stage", "")), refresh=True)

    bus.subscribe(on_progress, ev.PROGRESS)
    kw = dict(n=args.n, seed=args.seed, device=args.device, steps=args.steps, sampler=args.sampler,
              n_boot=args.boot, inception=args.inception, bus=bus)
    if args.checkpoint == "all":
        gen = evaluate_checkpoints(run, args.metrics, **kw)
    else:
        gen = evaluate(run, args.metrics, checkpoint=args.checkpoint, **kw)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        records = stop.value if isinstance(stop.value, list) else [stop.value]
    finally:
        if bar is not None:
            bar.close()
    for rec in records:
        print(f"{run.id}  step {rec['step']}  n={rec['n']}  extractor {(rec.get('extractor') or {}).get('name')}")
        rows = [(k, format_value(e, name=k), e.get("extractor", ""),  # interval clipped to the metric's range
                 e.get("note", "") + (f" ({ref})" if (ref := reference_text(e)) else ""))
                for k, e in rec["metrics"].items()]
        rows += [(k, "skipped", "", why) for k, why in rec.get("skipped", {}).items()]
        print(_table(rows, ("metric", "value [95% interval]", "extractor", "note")))
        print(rec["path"])
    return 0


def cmd_nfe(args: argparse.Namespace) -> int:
    from genstudio.core.jobs import load_model
    from genstudio.core.tools.nfe import nfe_curve, quality_fn

    run = _trained_run(args.run)
    model, ds, step = load_model(run, args.device)
    metric, quality = quality_fn(ds, args.n, device=getattr(model, "device", "cpu"))
    samplers = args.samplers.split(",") if args.samplers else None
    rows = nfe_curve(model, ds, samplers, max_nfe=args.max_nfe, n=args.n, seed=args.seed, quality=quality,
                     callback=lambda r: print(f"  {r['sampler']:<10} nfe {r['nfe']:>5}  {metric} {r['quality']:.5g}",
                                              file=sys.stderr))
    print(f"{run.id}  step {step}  n={args.n}  quality: {metric} (lower is better)")
    print(_table([(r["sampler"], r["steps"], r["nfe"], f"{r['quality']:.5g}", f"{r['seconds']:.2f}") for r in rows],
                 ("sampler", "steps", "nfe", metric, "seconds")))
    if args.csv:
        with open(args.csv, "w", encoding="utf-8") as f:
            f.write(f"sampler,steps,nfe,{metric},seconds\n")
            f.writelines(f"{r['sampler']},{r['steps']},{r['nfe']},{r['quality']},{r['seconds']}\n" for r in rows)
        print(args.csv)
    return 0


def _scale_bars() -> tuple[Callable[[float, int, int], None], Callable[[], None]]:
    """A tqdm bar per guidance scale, fed by ``guidance_sweep(on_step=...)``; returns (on_step, close)."""
    from tqdm import tqdm

    bars: dict[float, Any] = {}

    def on_step(scale: float, step: int, total: int) -> None:
        if scale not in bars:
            for b in bars.values():
                b.close()
            bars[scale] = tqdm(total=total, desc=f"scale {scale:g}", unit="step", leave=False,
                               disable=None if sys.stderr.isatty() else False, mininterval=0.5)
        bar = bars[scale]
        bar.total = total
        bar.update(step - bar.n)

    def close() -> None:
        for b in bars.values():
            b.close()

    return on_step, close


def cmd_guidance(args: argparse.Namespace) -> int:
    from genstudio.core.jobs import load_model
    from genstudio.core.tools.guidance import default_sampler, guidance_sweep

    run = _trained_run(args.run)
    model, ds, step = load_model(run, args.device)
    try:
        scales = [float(s) for s in args.scales.split(",")]
    except ValueError as e:
        raise CliError(f"--scales: {e}") from e
    sampler = args.sampler or default_sampler(model)
    on_step, close = _scale_bars()
    try:
        rows = guidance_sweep(model, ds, scales, n_per_class=args.n, seed=args.seed, steps=args.steps,
                              sampler=sampler, on_step=on_step,
                              callback=lambda r: (close(), print(
                                  f"  scale {r['scale']:g}  accuracy {r['accuracy']:.3f}  "
                                  f"diversity {r['diversity']:.3f}  ({r['seconds']:.1f} s)", file=sys.stderr)))
    except ValueError as e:
        raise CliError(str(e)) from e
    finally:
        close()
    print(f"sampler {sampler or 'plugin default'}, steps {args.steps or 'plugin default'}")
    text = bool(rows) and "saturation" in rows[0]  # the text sweep: GenEval-like accuracy, per-prompt spread
    if not rows:
        print(run.id)
    elif text:
        print(f"{run.id}  step {step}  {rows[0]['n']} samples ({rows[0]['per_prompt']} per prompt, {rows[0]['split']} "
              f"test prompts)  real images: GenEval-like {rows[0]['data_accuracy']:.3f}, saturation "
              f"{rows[0]['data_saturation']:.3f}  (diversity: within-prompt spread / the data's)")
    else:
        print(f"{run.id}  step {step}  {args.n} per class  data accuracy {rows[0]['data_accuracy']:.3f}  "
              "(diversity: within-class spread / the data's)")
    cols = ("scale", "accuracy", "diversity", *(("saturation", "clipped") if text else ()), "seconds")
    print(_table([(f"{r['scale']:g}", f"{r['accuracy']:.4f}", f"{r['diversity']:.4f}",
                   *((f"{r['saturation']:.4f}", f"{r['clipped']:.4f}") if text else ()), f"{r['seconds']:.2f}")
                  for r in rows], cols))
    if args.csv:
        with open(args.csv, "w", encoding="utf-8") as f:
            f.write(",".join(cols) + "\n")
            f.writelines(",".join(str(r[c]) for c in cols) + "\n" for r in rows)
        print(args.csv)
    return 0


def _stage_bar(desc: str) -> tuple[Any, Callable[[str, int, int], None]]:
    """A tqdm bar over a job's stages (``progress(stage, done, total)`` callbacks)."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="stage", disable=None if sys.stderr.isatty() else False)

    def on_stage(stage: str, done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.set_postfix_str(stage, refresh=True)

    return bar, on_stage


def cmd_interp(args: argparse.Namespace) -> int:
    import torch

    from genstudio.core.imaging import ANIMATION_SUFFIXES, save_animation, save_png
    from genstudio.core.jobs import load_model
    from genstudio.core.latent import Strip, interpolation_labels
    from genstudio.core.tools import edit

    a, b = edit.parse_item(args.a), edit.parse_item(args.b)  # bad specs fail before the model loads
    run = _trained_run(args.run)
    model, ds, step = load_model(run, args.device)
    if not edit.supports(model):
        raise CliError(f"run {run.id} ({run.info()['plugin']}): {edit.NEEDS_DDIM}")
    class_out = args.class_in if args.class_out is None else args.class_out
    bar, on_stage = _stage_bar("interp")
    try:
        res = edit.edit_pair(model, ds, a, b, frames=args.frames, steps=args.steps, cond_in=args.class_in,
                             cond_out=class_out, progress=on_stage)
    except edit.EditUnsupported as e:
        raise CliError(f"run {run.id}: {e}") from None
    finally:
        bar.close()
    stem = "_".join("".join(c for c in str(it) if c.isalnum()) for it in (a, b))
    out = args.out or str(run.sample_dir() / f"interp_{stem}_s{res.steps}.png")
    print(f"{run.id}  step {step}  {res.summary()}")
    mid = len(res.slerp_norm) // 2
    print(f"noise norm mid-path: slerp {res.slerp_norm[mid]:.4g}  lerp {res.lerp_norm[mid]:.4g}  "
          f"(sqrt(d) = {res.z[0].numel() ** 0.5:.4g})")
    if Path(out).suffix.lower() in ANIMATION_SUFFIXES:  # the slerp and lerp strips, one frame per step
        strip = Strip(torch.cat([res.slerp, res.lerp]), res.frames, ["slerp", "lerp"],
                      interpolation_labels(res.frames), f"A = {a} -> B = {b}, step {step}")
        print(save_animation(strip.frames(), out, fps=6))
    else:
        print(save_png(edit.edit_image(res), out))
    return 0


def cmd_timelapse(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from genstudio.core.timelapse import animation_path, write_timelapse

    out = animation_path(args.out)  # a bad suffix fails before anything is read
    run = _store().get(args.run)
    bars: list[Any] = []  # made at the first frame, so an error is the only line printed

    def on_frame(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="timelapse", unit="frame",
                             disable=None if sys.stderr.isatty() else False))
        bars[0].update(done - bars[0].n)

    try:
        path = write_timelapse(run.sample_dir(), run.metrics(), out, fps=args.fps, view=args.view,
                               progress=on_frame)
    finally:
        for b in bars:
            b.close()
    print(path)
    return 0


def _ot_points(name: str, n: int, seed: int) -> Any:
    """``n`` points of a 2-D dataset, or samples of a 2-D run (``run:RUN``), or a one-line error."""
    from genstudio.core import ot

    why = ot.points_source(name)
    if why:
        raise CliError(f"{name}: {why} (give a 2-D dataset of `genstudio datasets` or run:RUN)")
    if name.startswith(ot.RUN_PREFIX):
        return ot.drain(ot.run_points(_trained_run(name[len(ot.RUN_PREFIX):]), n, seed))
    return ot.dataset_points(name, n, seed)


def cmd_ot(args: argparse.Namespace) -> int:
    from genstudio.core import ot
    from genstudio.core.imaging import ANIMATION_SUFFIXES, save_animation

    if args.gif and Path(args.gif).suffix.lower() not in ANIMATION_SUFFIXES:
        raise CliError(f"--gif {args.gif}: write a {' or '.join(ANIMATION_SUFFIXES)} file")
    if args.eps <= 0:
        raise CliError(f"--eps must be > 0, got {args.eps}")
    x = _ot_points(args.a, args.n, args.seed)
    y = _ot_points(args.b, args.n, args.seed + 1)  # another draw: a dataset against itself is not 0
    rep = ot.report(x, y, args.eps, args.seed)
    print(f"A = {args.a}, B = {args.b}, n = {args.n} each, seed {args.seed}")
    print(_table([("W1 (exact, Euclidean cost)", f"{rep['w1']:.6g}"),
                  ("W2 (exact, sqrt of squared-Euclidean cost)", f"{rep['w2']:.6g}"),
                  (f"Sinkhorn W2 (log domain, eps {args.eps:g} x max cost)", f"{rep['sinkhorn']:.6g}"),
                  ("sliced W2 (200 directions)", f"{rep['sliced']:.6g}")], ("quantity", "value")))
    if args.gif:
        frames = ot.interpolation_images(x, y, ot.exact(x, y).plan, args.frames)
        print(save_animation(frames, args.gif, fps=args.fps))
    return 0


def _display_problem() -> str:
    """Why the GUI cannot open a window here ('' = it can). Without this check Qt aborts the
    process (SIGABRT) with a hint about libxcb-cursor0 even when that is installed."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM", "") not in ("", "xcb", "wayland"):
        return ""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return ""
    return ("no display: the GUI needs an X11 or Wayland session (DISPLAY and WAYLAND_DISPLAY are unset). "
            "Run it on a desktop, over `ssh -X`, or under `xvfb-run genstudio`; the CLI commands and "
            "`genstudio shot` work without one")


def cmd_gui(args: argparse.Namespace) -> int:
    if why := _display_problem():
        raise CliError(why)
    from genstudio.qt.app import main as gui_main

    return gui_main([sys.argv[0]])


def cmd_watch(args: argparse.Namespace) -> int:
    if why := _display_problem():
        raise CliError(why)
    run = _store().get(args.run)
    from genstudio.qt.app import main as gui_main

    return gui_main([sys.argv[0]], watch=run)


def panel_ids() -> list[str]:
    """The ids `genstudio shot PANEL` takes: the names of the ``genstudio.panels`` entry points
    (each equal to its class's ``panel_id``; read without importing Qt)."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group="genstudio.panels")})


def cmd_shot(args: argparse.Namespace) -> int:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from pathlib import Path

    from genstudio.qt.shot import shot

    path = shot(args.panel, Path(args.out), demo=args.demo)
    print(path)
    return 0


NPROC_HELP = ("train with N processes on this machine (torchrun, DDP: gloo on CPU, NCCL on CUDA; batch_size "
              "is per process); many machines: torchrun ... -m genstudio train")


def cmd_report(args: argparse.Namespace) -> int:
    from genstudio.core.report import build_report

    run = _store().get(args.run)
    bar, on_stage = _stage_bar("report")
    try:
        path = build_report(run, args.out, trajectory=not args.no_trajectory, n=args.n, seed=args.seed,
                            steps=args.steps, device=args.device, progress=on_stage)
    finally:
        bar.close()
    print(f"{path}  ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from genstudio.core.tboard import export_run, read_back

    out = export_run(_store().get(args.run), args.out)
    tags = read_back(out)
    print(f"{out}  ({len(tags)} tags, {sum(map(len, tags.values()))} points; view with `tensorboard --logdir {out}`)")
    return 0


def _size(text: str) -> tuple[int, int]:
    """An argparse type: WIDTHxHEIGHT in pixels, e.g. 320x240."""
    w, sep, h = text.lower().partition("x")
    try:
        size = (int(w), int(h)) if sep else (0, 0)
    except ValueError:
        size = (0, 0)
    if not (8 <= size[0] <= 4096 and 8 <= size[1] <= 4096):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT with sides in [8, 4096], got {text!r}")
    return size


def cmd_flythrough(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from genstudio.core.faces import Scene, has_face
    from genstudio.core.imaging import save_animation
    from genstudio.core.jobs import load_model
    from genstudio.core.scene import camera_path as cp

    keys = cp.load_keyframes(args.keyframes) if args.keyframes else None  # a bad file fails before loading
    run = _trained_run(args.run)
    model, _, step = load_model(run, args.device)
    if not has_face(model, Scene):
        raise CliError(f"run {run.id} ({run.info()['plugin']}) has no 3-D scene to fly through")
    cams = cp.path_cameras(keys or cp.default_keyframes(model), args.frames, *args.size)
    frames = list(tqdm(cp.flythrough_frames(cp.scene_render(model), cams), total=len(cams), desc="flythrough",
                       unit="frame", disable=None if sys.stderr.isatty() else False))
    print(f"{save_animation(frames, args.out, fps=args.fps)}  ({len(frames)} frames {args.size[0]}x{args.size[1]}, "
          f"step {step})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The guided tour; a bad tour file is one line on stderr before any window opens."""
    from genstudio.core.tour import builtin_tours, check_names, load_tour

    if args.list:
        for name in sorted(builtin_tours()):
            t = load_tour(name)
            print(f"{name}: {t.name}, {len(t.stages)} stages. {t.description}")
        return 0
    tour = load_tour(args.tour)
    if args.check:
        from genstudio.core.data import dataset_table
        from genstudio.core.registry import registry

        check_names(tour, panels=set(panel_ids()), datasets={n for n, _ in dataset_table()},
                    plugins={k: e.cls for k, e in registry().entries.items() if e.ok})
        print(f"{tour.source}: {len(tour.stages)} stages, ok")
        return 0
    if why := _display_problem():
        raise CliError(why)
    from genstudio.qt.tour import run_demo_app

    return run_demo_app(args.tour, quick=args.quick, auto=args.auto, hold_scale=args.hold_scale, shots=args.shots)


def build_parser() -> argparse.ArgumentParser:
    from genstudio import __version__

    p = _Parser(prog="genstudio", description="GenStudio: train and watch generative models.")
    p.add_argument("--version", action="version", version=f"genstudio {__version__}")
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("gui", help="launch the desktop app (the default)")
    s.set_defaults(fn=cmd_gui)
    s = sub.add_parser("plugins", help="list model plugins and their status")
    s.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of broken plugins")
    s.set_defaults(fn=cmd_plugins)
    s = sub.add_parser("datasets", help="list built-in datasets")
    s.set_defaults(fn=cmd_datasets)
    s = sub.add_parser("train", help="train a model; prints the run folder")
    s.add_argument("plugin")
    s.add_argument("--data", default=None,
                   help="dataset name (see `genstudio datasets`) or folder:PATH; required to train")
    s.add_argument("--list-settings", action="store_true",
                   help="print the plugin's --set keys with defaults, ranges and help, then exit")
    s.add_argument("--steps", type=COUNT, default=2000)
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="config override (repeatable; keys: `genstudio train PLUGIN --list-settings`)")
    s.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    s.add_argument("--seed", type=SEED, default=0)
    s.add_argument("--log-every", type=COUNT, default=10)
    s.add_argument("--sample-every", type=EVERY, default=500, help="preview grid every N steps (0 = only at the end)")
    s.add_argument("--checkpoint-every", type=EVERY, default=500,
                   help="checkpoint every N steps (0 = only at the end)")
    s.add_argument("--n-preview", type=EVERY, default=0,
                   help="samples in each logged grid (0 = auto: 64 images, 400 points of 2-D data)")
    s.add_argument("--compile", action="store_true",
                   help="torch.compile the trained nets (for large nets on GPUs; on a CPU it measured slower)")
    s.add_argument("--sharding", choices=["ddp", "fsdp"], default="ddp",
                   help="with --nproc: ddp replicates the nets on every process; fsdp shards parameters, gradients "
                        "and optimiser state across them (FSDP2; plugins that declare fsdp_modules, e.g. ddpm)")
    s.add_argument("--amp", choices=["bf16"], default="",
                   help="mixed precision: train steps under bf16 autocast (helps large nets on GPUs; see README)")
    s.add_argument("--preview-steps", type=EVERY, default=0,
                   help="sampling steps of each logged grid (0 = auto: the plugin's cheap preview, e.g. 50 for DDPM)")
    s.add_argument("--keep-checkpoints", type=int, default=0, metavar="N",
                   help="newest N checkpoints kept (0 = the plugin's choice: 3, every one for GANs; -1 = all)")
    s.add_argument("--nproc", type=COUNT, default=1, help=NPROC_HELP)
    s.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write scalars, previews and hparams as TensorBoard event files into DIR while training")
    s.set_defaults(fn=cmd_train)
    s = sub.add_parser("resume", help="continue a run from its last checkpoint")
    s.add_argument("run")
    s.add_argument("--steps", type=COUNT, default=None, help="extra steps beyond the planned total")
    s.add_argument("--device", default=None)
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a live setting (lr, ema_decay, grad_clip, sample_every, ...) from the first "
                        "resumed step; recorded in the run with that step (repeatable)")
    s.add_argument("--nproc", type=COUNT, default=1, help=NPROC_HELP)
    s.add_argument("--tensorboard", default=None, metavar="DIR", help="also write TensorBoard event files into DIR")
    s.set_defaults(fn=cmd_resume)
    s = sub.add_parser("sample", help="sample from a run's newest checkpoint (PNG + NPZ)")
    s.add_argument("run", help="run folder or run id (prefix)")
    s.add_argument("--n", type=COUNT, default=64)
    s.add_argument("--steps", type=COUNT, default=None)
    s.add_argument("--sampler", default=None)
    s.add_argument("--seed", type=SEED, default=0)
    s.add_argument("--out", type=_out_file, default=None,
                   help="output .png or .npz (default: the run's samples/ folder)")
    s.add_argument("--device", default=None)
    s.add_argument("--trajectory", type=COUNT, nargs="?", const=1, default=0, metavar="EVERY",
                   help="also keep the intermediate states in the NPZ (traj_x, traj_x0, traj_t): every state, or "
                        "every EVERY-th and the last (off by default: it costs time and memory)")
    s.add_argument("--no-trajectory", action="store_true", help="don't keep intermediate states (the default)")
    s.add_argument("--gif", type=_animation_file, default=None, metavar="FILE.gif|FILE.mp4",
                   help="also write the trajectory as an animation: x_t | predicted x0 side by side, each frame "
                        "labelled 'step k/N · t=...' (as the Sampler's export); with --checkpoint all, the "
                        "samples of every checkpoint instead")
    s.add_argument("--checkpoint", default=None,
                   help="training step or checkpoint file to sample from (default: newest), or 'all': the same "
                        "seed at every checkpoint, written with --gif (the fixed-noise grid over training)")
    s.add_argument("--class", dest="cls", type=EVERY, default=None,
                   help="class label (class-conditional runs)")
    s.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale with --class")
    s.add_argument("--prompt", action="append", default=None,
                   help="text prompt (text-conditioned runs; repeatable: samples cycle through the prompts)")
    s.add_argument("--attention", type=_png_file, default=None, metavar="FILE.png",
                   help="text-to-image runs: also write sample --index's cross-attention map per word at --rows "
                        "evenly spaced steps (the Sampler's 'Cross-attention over the steps' export)")
    s.add_argument("--pipeline", type=_png_file, default=None, metavar="FILE.png",
                   help="text-to-image runs: also write the pipeline diagram (prompt -> tokens -> text encoder -> "
                        "denoiser <-> scheduler -> decoder) with sample --index's tensors at the last step")
    s.add_argument("--index", type=int, default=0, help="which sample of the batch --attention/--pipeline show")
    s.add_argument("--rows", type=COUNT, default=8, help="denoising steps in the --attention figure")
    s.add_argument("--eta", type=float, default=None, help="DDIM stochasticity (0 = deterministic)")
    s.add_argument("--sigma-schedule", default=None, help="k-samplers: model, karras or exponential")
    s.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="any other sampling option the plugin declares, e.g. truncation=0.5 (GANs), mix_seed=3 "
                        "crossover=1 (StyleGAN); `genstudio plugins -v` lists them (repeatable)")
    s.add_argument("--temperature", type=float, default=None, help="token samplers: softmax temperature (0 = greedy)")
    s.add_argument("--top-k", dest="top_k", type=int, default=None, help="token samplers: draw from the k likeliest")
    s.add_argument("--mode", default=None, help="unified model: text2image, image2caption or caption_completion")
    s.add_argument("--decoding", default=None, help="unified model: autoregressive or maskgit image tokens")
    s.add_argument("--frames", type=COUNT, default=None,
                   help="video runs: frames per clip (default: as trained; more than trained = extrapolated)")
    s.set_defaults(fn=cmd_sample)
    s = sub.add_parser("eval", help="sample-quality metrics for a run (stored in its evals/ folder)")
    s.add_argument("run", help="run folder or run id (prefix)")
    s.add_argument("--metrics", default=None, help="comma list: fcd,fid,kid,is,pr,accuracy,nll (images) or "
                   "energy,mmd,w2,pr,nll (2-D), geneval,clipscore (captioned); default depends on the data")
    s.add_argument("--n", type=COUNT, default=None,
                   help="samples and reference points (default 1000 images / 2000 2-D)")
    s.add_argument("--checkpoint", default=None, help="step number, checkpoint file, or 'all' (default: newest)")
    s.add_argument("--inception", type=_in_file, default=None, help="pt_inception-2015-12-05 weights file (enables fid)")
    s.add_argument("--boot", type=EVERY, default=100, help="bootstrap resamples for intervals (0 = none)")
    s.add_argument("--steps", type=COUNT, default=None, help="sampling steps passed to the plugin")
    s.add_argument("--sampler", default=None)
    s.add_argument("--seed", type=SEED, default=0)
    s.add_argument("--device", default=None)
    s.set_defaults(fn=cmd_eval)
    s = sub.add_parser("nfe", help="sample quality against network evaluations for each sampler of a run")
    s.add_argument("run", help="run folder or run id (prefix)")
    s.add_argument("--samplers", default=None, help="comma list (default: all the plugin offers)")
    s.add_argument("--max-nfe", type=COUNT, default=1000, help="largest budget; runs 1, 2, 4, ... up to it")
    s.add_argument("--n", type=COUNT, default=1000, help="samples and reference points per measurement")
    s.add_argument("--csv", type=_out_file, default=None, help="also write the table to this CSV file")
    s.add_argument("--seed", type=SEED, default=0)
    s.add_argument("--device", default=None)
    s.set_defaults(fn=cmd_nfe)
    s = sub.add_parser("guidance", help="accuracy and diversity against the guidance scale "
                       "(class- or text-conditional runs)")
    s.add_argument("run", help="run folder or run id (prefix)")
    s.add_argument("--scales", default="0,1,2,4,8", help="comma list of classifier-free guidance scales")
    s.add_argument("--n", type=COUNT, default=25, help="samples per class and scale (text runs: per prompt category, 4 per prompt)")
    s.add_argument("--steps", type=COUNT, default=None,
                   help="sampling steps passed to the plugin (default: the plugin's; DDIM: the run's sample_steps)")
    s.add_argument("--sampler", default=None, help="default: ddim where the plugin has it, else the plugin's own")
    s.add_argument("--csv", type=_out_file, default=None, help="also write the table to this CSV file")
    s.add_argument("--seed", type=SEED, default=0)
    s.add_argument("--device", default=None)
    s.set_defaults(fn=cmd_guidance)
    s = sub.add_parser("interp", help="DDIM-invert two items, reconstruct them and decode slerp/lerp strips "
                       "between their noises (DDPM runs)")
    s.add_argument("run", help="run folder or run id (prefix)")
    s.add_argument("--a", required=True, help="data:INDEX, seed:N or an image file")
    s.add_argument("--b", required=True, help="data:INDEX, seed:N or an image file")
    s.add_argument("--frames", type=_int_in(2), default=8, help="frames of each strip, ends included")
    s.add_argument("--steps", type=COUNT, default=50, help="DDIM steps of the inversion and the decodes")
    s.add_argument("--out", type=_out_file, default=None,
                   help="PNG to write, or .gif / .mp4 for an animation of the strips (default: a PNG in the "
                   "run's samples/ folder)")
    s.add_argument("--device", default=None)
    s.add_argument("--class-in", type=EVERY, default=None,
                   help="class-conditional runs: invert along this class's ODE (default: unconditional)")
    s.add_argument("--class-out", type=EVERY, default=None,
                   help="decode as this class (default: --class-in); another class = class editing")
    s.set_defaults(fn=cmd_interp)
    s = sub.add_parser("timelapse", help="every logged preview of a run as a GIF or MP4, each frame "
                       "labelled with its step and loss")
    s.add_argument("run", help="run folder or run id (prefix)")
    s.add_argument("--out", type=_out_file, required=True, help="FILE.gif or FILE.mp4")
    s.add_argument("--fps", type=COUNT, default=4, help="frames (previews) per second")
    s.add_argument("--view", default=None, help="a model view's name instead of the sample grids")
    s.set_defaults(fn=cmd_timelapse)
    s = sub.add_parser("ot", help="optimal transport between two 2-D point sets: W1, W2, Sinkhorn, sliced W, "
                       "McCann interpolation")
    s.add_argument("a", help="a 2-D dataset (8gaussians, moons, rings, ...) or run:RUN for a run's samples")
    s.add_argument("b", help="the same, for the second set")
    s.add_argument("--n", type=COUNT, default=500, help="points in each set")
    s.add_argument("--eps", type=float, default=0.01, help="Sinkhorn epsilon, relative to the largest cost")
    s.add_argument("--seed", type=SEED, default=0, help="A is drawn with this seed, B with seed + 1")
    s.add_argument("--gif", type=_out_file, default=None,
                   help="write the displacement interpolation (exact plan) as a .gif or .mp4")
    s.add_argument("--frames", type=_int_in(2), default=24, help="frames of the animation, ends included")
    s.add_argument("--fps", type=float, default=12.0)
    s.set_defaults(fn=cmd_ot)
    s = sub.add_parser("watch", help="open the window on a run another process trains (CLI, torchrun, shared "
                       "storage): curves, previews and checkpoints as they are written; Pause/Stop reach it")
    s.add_argument("run", help="run folder or run id (prefix)")
    s.set_defaults(fn=cmd_watch)
    s = sub.add_parser("report", help="a run as one self-contained HTML page (settings, curves, previews over "
                       "training, a playable denoising trajectory, metrics); opens offline")
    s.add_argument("run", help="run folder or run id (prefix)")
    s.add_argument("--out", required=True, help="folder to write index.html into (created)")
    s.add_argument("--seed", type=SEED, default=0, help="seed of the trajectory sampled from the newest checkpoint")
    s.add_argument("--n", type=COUNT, default=None, help="samples in the trajectory (default 16 images / 400 points)")
    s.add_argument("--steps", type=COUNT, default=None, help="sampling steps (default: the run's preview steps)")
    s.add_argument("--no-trajectory", action="store_true", help="skip sampling (no checkpoint is loaded)")
    s.add_argument("--device", default=None)
    s.set_defaults(fn=cmd_report)
    s = sub.add_parser("tensorboard", help="a run's scalars, preview images, evals and hparams as TensorBoard event files")
    s.add_argument("run", help="run folder or run id (prefix)")
    s.add_argument("--out", required=True, help="log folder to write (created); then `tensorboard --logdir DIR`")
    s.set_defaults(fn=cmd_tensorboard)
    s = sub.add_parser("flythrough", help="render a 3-D run along a camera path (keyframes, or an orbit) as MP4 or GIF")
    s.add_argument("run", help="run folder or run id (prefix) of a scene plugin (splat, nerf, fields)")
    s.add_argument("--out", type=_animation_file, required=True, help="FILE.mp4 or FILE.gif")
    s.add_argument("--keyframes", type=_in_file, default=None,
                   help="keyframes JSON (the 3-D viewer's camera path → Save keys…); default: an orbit around the scene")
    s.add_argument("--frames", type=_int_in(2), default=72, help="frames along the whole path")
    s.add_argument("--size", type=_size, default="320x240", help="WIDTHxHEIGHT of each frame")
    s.add_argument("--fps", type=float, default=24.0)
    s.add_argument("--device", default=None)
    s.set_defaults(fn=cmd_flythrough)
    ids = panel_ids()
    s = sub.add_parser("shot", help="screenshot of the window or one panel")
    s.add_argument("panel", nargs="?", default=None,
                   help=f"a panel id ({', '.join(ids) or 'none installed'}); none = the whole window")
    s.add_argument("--out", type=_out_file, required=True)
    s.add_argument("--demo", action="store_true", help="train a small demo run first so panels show data")
    s.set_defaults(fn=cmd_shot)
    s = sub.add_parser("demo", help="guided tour that trains and samples real models, with captions (Esc leaves)")
    s.add_argument("tour", nargs="?", default=None, help="a built-in tour's name or a .toml/.json file (default: basics)")
    s.add_argument("--auto", action="store_true", help="go on by itself after each stage; quit at the end, print times")
    s.add_argument("--quick", action="store_true", help="the stages' quick settings (a fast check of a tour)")
    s.add_argument("--hold-scale", type=float, default=1.0, help="multiplies each stage's hold time with --auto")
    s.add_argument("--shots", default=None, metavar="DIR", help="save a PNG of the window as each stage is left")
    s.add_argument("--check", action="store_true", help="only validate the tour file (no window)")
    s.add_argument("--list", action="store_true", help="list the built-in tours")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from genstudio.core.config import ConfigError
    from genstudio.core.runs import RunError, claim_wake_fd

    claim_wake_fd()  # a window's trainer: its wake pipe, out of the environment before anything runs
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["standby"]:  # the window's warm trainer (not a user command: unlisted)
        from genstudio.core.standby import serve

        return serve(ready=argv[1] if len(argv) > 1 else None)
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "fn", None):
            args = build_parser().parse_args(["gui"])
        return args.fn(args)
    # KeyError covers core.data's UnknownDataset (not imported here: it imports torch, which
    # `genstudio gui` loads only after its window has painted)
    except (CliError, ConfigError, RunError, KeyError, ValueError, FileNotFoundError) as e:
        if os.environ.get("GENSTUDIO_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"genstudio: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside training (sampling, eval, ...): nothing to save
        if os.environ.get("GENSTUDIO_DEBUG"):
            raise
        print("genstudio: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
