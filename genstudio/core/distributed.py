"""Training on many processes with ``torch.distributed``, launched by torchrun.

One :class:`Ranks` describes this process's place (rank, world size); the training job asks it
for everything that differs between one process and many, so the loop stays one loop:

- the batch: every rank draws the same *global* batch (``batch_size`` x world, from the shared
  data generator) and keeps its own slice: a distributed sampler over the procedural streams and
  in-memory sets alike, and a resume with another world size continues the same stream;
- the model: a plugin opts in with a class attribute. ``ddp_modules = ("net",)`` wraps those
  modules in DistributedDataParallel (gloo on CPU, NCCL on CUDA); ``ddp_grads = True`` averages
  the gradients of every optimiser's parameters as they are accumulated, for plugins whose nets
  are called in ways DDP does not follow (two optimisers, detached halves). Neither: a clear
  :class:`NotDistributable` before any step. ``fsdp_modules = ("net", "ema")`` lets a run ask for
  ``sharding = "fsdp"`` instead (FSDP2's ``fully_shard``: parameters, gradients and optimiser
  state split across the ranks); checkpoints and previews then gather the full weights, every rank
  taking part, so a checkpoint is the same plain state dict as a one-process run's;
- metrics are averaged across ranks; rank 0 alone writes the run store (the other ranks work on
  a private copy of run.json and the newest checkpoint, sent by rank 0, so no shared disk is
  needed) and draws previews; pause / stop are rank 0's, broadcast before each step.

``genstudio train ... --nproc N`` runs ``torch.distributed.run`` (torchrun) on this same CLI;
``torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT -m genstudio
train ...`` is the multi-node form.
"""

from __future__ import annotations

import copy
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from genstudio.core.runs import RUN_FILE, Run

# a paused run holds every rank in a collective until rank 0 resumes: allow a long pause
PAUSE_TIMEOUT = datetime.timedelta(days=7)
CPU = torch.device("cpu")  # the control flags, metrics and run files travel on CPU tensors (gloo)
GRAD_HOOKS = "_genstudio_grad_hooks"


class NotDistributable(ValueError):
    """The plugin has not declared how its training is split across processes."""


class _DDP(DistributedDataParallel):
    """DDP that still looks like the module it wraps: attributes reach the module (``net.cls``)
    and the state dict has no ``module.`` prefix, so checkpoints load at any world size."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)

    def state_dict(self, *a: Any, **kw: Any) -> dict[str, Any]:
        return self.module.state_dict(*a, **kw)

    def load_state_dict(self, *a: Any, **kw: Any) -> Any:
        return self.module.load_state_dict(*a, **kw)


SHARDING = ("ddp", "fsdp")  # a run's `sharding` option: replicate (DDP / gradient averaging) or shard


def parallel_mode(cls: type, sharding: str = "ddp") -> str | None:
    """How a plugin class trains on many processes: "fsdp" (asked, and declared), "ddp", "grads"
    or None (it cannot)."""
    if sharding == "fsdp":
        return "fsdp" if getattr(cls, "fsdp_modules", ()) else None
    if getattr(cls, "ddp_modules", ()):
        return "ddp"
    return "grads" if getattr(cls, "ddp_grads", False) else None


def require_parallel(cls: type, sharding: str = "ddp") -> str:
    """:func:`parallel_mode`, or NotDistributable saying what the plugin would have to declare."""
    if sharding not in SHARDING:
        raise ValueError(f"sharding must be one of {', '.join(SHARDING)}; got {sharding!r}")
    mode = parallel_mode(cls, sharding)
    if mode is None and sharding == "fsdp":
        raise NotDistributable(
            f"plugin {cls.info.id} cannot shard its training (FSDP): it declares no fsdp_modules; "
            "train it with sharding ddp")
    if mode is None:
        raise NotDistributable(
            f"plugin {cls.info.id} cannot train on several processes: it declares neither ddp_modules "
            "(the nets to wrap in DistributedDataParallel) nor ddp_grads = True; train it with one process")
    return mode


def full_state(state: Any) -> Any:
    """``state`` (nested dicts / lists, e.g. a plugin's state dict) with every DTensor shard
    gathered into a plain full tensor -- a collective: every rank calls it, in the same order."""
    from torch.distributed.tensor import DTensor

    if isinstance(state, DTensor):
        return state.full_tensor()
    if isinstance(state, dict):
        return {k: full_state(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(full_state(v) for v in state)
    return state


@dataclass
class Ranks:
    """This process's place in a training job; ``Ranks()`` is a lone process (every method a no-op)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    mirror: Path | None = field(default=None, repr=False)  # rank > 0: where its copy of the run lives

    @property
    def writer(self) -> bool:
        """Whether this process writes the run store (and draws previews)."""
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.world > 1

    def seed(self, base: int) -> int:
        """A per-rank seed for the plugin's own randomness (noise, timesteps); ``base`` when alone."""
        return base * self.world + self.rank

    def device(self, asked: str | None) -> str | None:
        """A CUDA run (asked, or auto with a GPU) puts each local rank on its own GPU."""
        name = (asked or "auto").lower()
        if self.many and (name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())):
            return f"cuda:{self.local_rank}"
        return asked

    def batch(self, ds: Any, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's ``n`` of one global batch of ``n * world`` drawn from the shared generator."""
        if not self.many:
            return ds.batch(n, gen)
        x, y = ds.batch(n * self.world, gen)
        part = slice(self.rank * n, (self.rank + 1) * n)
        return x[part], (y[part] if y is not None else None)

    sharded: bool = field(default=False, repr=False)  # FSDP: the plugin's fsdp_modules are split across ranks
    shadow: Any = field(default=None, repr=False)  # rank 0 under FSDP: an unsharded copy that draws previews

    def wrap(self, model: Any, sharding: str = "ddp") -> Any:
        """The model set up for many processes (see the module docstring); itself when alone."""
        if not self.many:
            return model
        mode = require_parallel(type(model), sharding)
        if mode == "fsdp":
            return self._shard(model)
        if mode == "ddp":  # no buffer sync in forward: rank 0 alone runs the nets for previews
            ids = [model.device.index if model.device.index is not None else torch.cuda.current_device()] \
                if model.device.type == "cuda" else None
            for name in model.ddp_modules:
                net = getattr(model, name)
                if not isinstance(net, DistributedDataParallel):
                    with warnings.catch_warnings():  # torch >= 2.13 renames it; older ones lack the new name
                        warnings.simplefilter("ignore", FutureWarning)
                        setattr(model, name, _DDP(net, device_ids=ids, broadcast_buffers=False))
            return model
        self._average_grads(model)
        return model

    def _shard(self, model: Any) -> Any:
        """FSDP2 on each of ``model.fsdp_modules`` (in place), the optimisers pointed at the new
        sharded parameters and any loaded optimiser state cut into the matching shards."""
        from collections import defaultdict

        from torch.distributed.fsdp import fully_shard
        from torch.distributed.tensor import DTensor, distribute_tensor

        names = tuple(model.fsdp_modules)
        if self.writer:  # previews: rank 0 samples from a full copy, refreshed before each one
            self.shadow = copy.deepcopy(model)
        before = {id(p): (n, pn) for n in names for pn, p in getattr(model, n).named_parameters()}
        for n in names:
            fully_shard(getattr(model, n))
        after = {(n, pn): p for n in names for pn, p in getattr(model, n).named_parameters()}
        for opt in (v for v in vars(model).values() if isinstance(v, torch.optim.Optimizer)):
            new = {id(p): after.get(before.get(id(p)), p) for g in opt.param_groups for p in g["params"]}
            state = defaultdict(dict)
            for p, st in opt.state.items():
                q = new.get(id(p), p)
                state[q] = {k: distribute_tensor(v, q.device_mesh, q.placements)
                            if isinstance(q, DTensor) and torch.is_tensor(v) and v.shape == q.shape else v
                            for k, v in st.items()}
            for g in opt.param_groups:
                g["params"] = [new[id(p)] for p in g["params"]]
            opt.state = state
        self.sharded = True
        return model

    def shard_summary(self, model: Any) -> str:
        """One log line: how much of the sharded nets this rank holds."""
        mine = sum(p.to_local().numel() for n in model.fsdp_modules for p in getattr(model, n).parameters())
        full = sum(p.numel() for n in model.fsdp_modules for p in getattr(model, n).parameters())
        return (f"FSDP: {', '.join(model.fsdp_modules)} sharded across {self.world} processes; rank {self.rank} "
                f"holds {mine:,} of {full:,} parameters")

    def state_dict(self, model: Any) -> dict[str, Any]:
        """What a checkpoint holds: the plain full state dict (FSDP: gathered, every rank calling)."""
        return full_state(model.state_dict()) if self.sharded else model.state_dict()

    def preview_model(self, model: Any) -> Any:
        """The model previews sample from: itself, or under FSDP rank 0's unsharded copy loaded
        with the gathered weights (every rank must call this; the others get None)."""
        if not self.sharded:
            return model
        full = {n: full_state(getattr(model, n).state_dict()) for n in model.fsdp_modules}
        if not self.writer:
            return None
        for n, sd in full.items():
            getattr(self.shadow, n).load_state_dict(sd)
        if hasattr(model, "extra_state"):
            self.shadow.load_extra_state(model.extra_state())
        self.shadow.config = model.config  # steered settings reach the previews too
        return self.shadow

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank when the ranks must act together (FSDP's previews: a
        single step asked in rank 0's window); ``flag`` itself otherwise."""
        if not self.sharded:
            return flag
        t = torch.tensor([float(flag and self.writer)], device=CPU)
        dist.broadcast(t, 0)
        return bool(t.item())

    def _average_grads(self, model: Any) -> None:
        """Same start on every rank (rank 0's weights), then each gradient averaged as it lands."""
        params = [p for opt in vars(model).values() if isinstance(opt, torch.optim.Optimizer)
                  for g in opt.param_groups for p in g["params"]]
        if getattr(model, GRAD_HOOKS, None) is not None:
            return
        world = self.world

        def hook(p: torch.Tensor) -> None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)

        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, 0)
        setattr(model, GRAD_HOOKS, [p.register_post_accumulate_grad_hook(hook) for p in params])

    def average(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The step's scalars averaged over the ranks (so NaN on one rank is NaN on all)."""
        if not self.many:
            return metrics
        keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        t = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=CPU)
        dist.all_reduce(t)
        return {**metrics, **dict(zip(keys, (t / self.world).tolist()))}

    def held(self, control: Any) -> bool:
        """Whether every rank must stop at this step's start (rank 0's pause / cancel, broadcast)."""
        if not self.many:
            return control.paused or control.cancelled
        flag = torch.tensor([float(self.writer and (control.paused or control.cancelled))],
                            device=CPU)
        dist.broadcast(flag, 0)
        return bool(flag.item())

    def wait(self, control: Any, on_pause: Callable[[], None] | None = None) -> None:
        """Wait out rank 0's pause (``control.check`` there), then all go on or all raise Cancelled."""
        from genstudio.core.jobs import Cancelled

        if not self.many:
            control.check(on_pause)
            return
        stop = torch.zeros(1, device=CPU)
        if self.writer:
            try:
                control.check(on_pause)
            except Cancelled:
                stop.fill_(1.0)
        dist.broadcast(stop, 0)
        if stop.item():
            control.cancel()
            raise Cancelled()

    def newest_checkpoint(self, run: Run) -> tuple[int, dict[str, Any]] | None:
        """(step, state) of rank 0's newest checkpoint, the same on every rank (a rollback must not
        split the replicas: only rank 0 wrote the checkpoints of pauses); None without one."""
        if not self.many:
            return run.load_checkpoint() if run.checkpoints() else None
        payload = [run.load_checkpoint() if self.writer and run.checkpoints() else None]
        dist.broadcast_object_list(payload, 0, device=CPU)
        return payload[0]

    def share_run(self, run: Run | None) -> Run:
        """Rank 0's run for everyone: rank 0 keeps it; the others get a private copy of its
        run.json and newest checkpoint (sent through the process group), which they may write."""
        if not self.many:
            assert run is not None
            return run
        payload: list[Any] = [None]
        if self.writer:
            assert run is not None
            ck = run.checkpoints()
            payload = [(run.id, (run.path / RUN_FILE).read_bytes(),
                        (ck[-1][1].name, ck[-1][1].read_bytes()) if ck else None)]
        dist.broadcast_object_list(payload, 0, device=CPU)
        if self.writer:
            return run
        rid, info, ck = payload[0]
        self.mirror = Path(tempfile.mkdtemp(prefix=f"genstudio-rank{self.rank}-"))
        path = self.mirror / rid
        (path / "checkpoints").mkdir(parents=True)
        (path / RUN_FILE).write_bytes(info)
        if ck:
            (path / "checkpoints" / ck[0]).write_bytes(ck[1])
        return Run(path)

    def close(self) -> None:
        if self.mirror is not None:
            shutil.rmtree(self.mirror, ignore_errors=True)
            self.mirror = None
        if self.many and dist.is_initialized():
            dist.destroy_process_group()


def launched() -> bool:
    """Whether this process is one rank of a torchrun job (of more than one process)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def start(device: str | None = None) -> Ranks:
    """Join the torchrun job this process belongs to and split the CPU threads among the local
    ranks; ``Ranks()`` when not launched by torchrun. With a GPU the group dispatches CUDA tensors
    (DDP's gradients) to NCCL and CPU ones (metrics, control flags, the run's files) to gloo."""
    if not launched():
        return Ranks()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    asked = (device or os.environ.get("GENSTUDIO_DEVICE") or "auto").lower()
    cuda = torch.cuda.is_available() and asked.startswith(("cuda", "auto"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=PAUSE_TIMEOUT)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return Ranks(rank, world, local)


def launch(argv: Sequence[str], nproc: int, *, env: dict[str, str] | None = None) -> int:
    """Run ``genstudio ARGV`` as ``nproc`` processes on this machine under torchrun; its exit status."""
    return subprocess.run(launch_command(argv, nproc), env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
                          ).returncode


def launch_command(argv: Sequence[str], nproc: int) -> list[str]:
    """The command line :func:`launch` runs (the GUI starts it as a detached process)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(nproc)}",
            "-m", "genstudio", *argv]
