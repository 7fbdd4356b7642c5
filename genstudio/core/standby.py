"""A trainer process started before it is needed, so that Start does not wait for ``import torch``.

The window (run option ``own_process``) trains each run in a process of its own, which shares no
GIL with the GUI thread. A fresh Python process spends seconds importing torch and the plugins
before its first step -- on a short run, as long as the training. So the window keeps one such
process warm: it pays those imports while the user picks settings, then blocks reading one line
from its stdin. That line (JSON) names the CLI command to run (``{"argv": ["resume", RUN], "log":
PATH, "env": {...}}``); the process sends its output to ``log`` and runs it as ``genstudio ARGV``
would. It serves one run and exits; end-of-file (the window closed) ends it without training.

    genstudio standby [READY]   # started by the window (unlisted), fed by genstudio.qt.watch.Standby

``READY``: a file the process creates once warm (the window waits for it only in benchmarks).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any


def warm_up() -> None:
    """Import what every run needs: torch, the training loop, the plugins (each plugin class), what
    torch imports lazily at a run's first optimiser (``torch._dynamo``: 1.8 s measured here), and
    what a run's start and first preview and checkpoint import (the CLI, the datasets, the run
    lock, the PNG writer, torch's serialisation: 18 ms of Start → running, measured)."""
    import io
    import multiprocessing.synchronize  # noqa: F401  (the lock of the CLI's first tqdm bar)

    import filelock  # noqa: F401
    import numpy as np
    import torch
    from PIL import Image

    import genstudio.cli  # noqa: F401
    import genstudio.core.jobs  # noqa: F401
    import genstudio.core.watch  # noqa: F401
    from genstudio.core.data import dataset_names
    from genstudio.core.registry import registry

    for entry in registry().ok():
        _ = entry.cls
    dataset_names()  # imports the built-in datasets' modules (none is built)
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w])
    (w * 2).sum().backward()
    opt.step()
    torch.save({"w": w.detach()}, io.BytesIO())
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(io.BytesIO(), format="png")


def request(stream: IO[str]) -> dict[str, Any] | None:
    """The one request on ``stream``; None at end of file (nothing to train)."""
    line = stream.readline()
    if not line.strip():
        return None
    req = json.loads(line)
    if not isinstance(req, dict) or not isinstance(req.get("argv"), list):
        raise ValueError(f"standby: a request is {{\"argv\": [...]}}, got {line[:200]!r}")
    return req


def _redirect(log: str) -> None:
    """Send this process's stdout and stderr (file descriptors too: torch and C code write there) to
    ``log``, appended."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def serve(stream: IO[str] | None = None, ready: str | None = None) -> int:
    """Warm up, wait for one request, run it; the exit status is the command's."""
    warm_up()
    if ready:
        Path(ready).touch()
    req = request(stream or sys.stdin)
    if req is None:
        return 0
    os.environ.update({str(k): str(v) for k, v in (req.get("env") or {}).items()})
    if req.get("log"):
        _redirect(str(req["log"]))
    from genstudio.cli import main

    return main([str(a) for a in req["argv"]])

