"""Device choice (cuda > mps > cpu, overridable) and thread settings for worker threads."""

from __future__ import annotations

import os

import torch

VALID = "auto, cpu, cuda, cuda:N, mps"


def pick_device(name: str | None = None) -> torch.device:
    """``name`` may be None/"auto", "cpu", "cuda", "cuda:1", "mps"; an unavailable one is an error."""
    name = (name or os.environ.get("GENSTUDIO_DEVICE") or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:  # torch's message lists some 20 backends, most of which GenStudio never runs on
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; valid: {VALID}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA GPU")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} requested but torch sees {torch.cuda.device_count()} CUDA GPU(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but it is not available")
    return dev


def worker_threads(gui_running: bool) -> int:
    """Torch intra-op threads for a training worker.

    Measured on 2 cores: with the GUI competing, 1 thread ran 3-5x faster than 2. Leave one core
    to the GUI thread; without a GUI use them all.
    """
    cores = os.cpu_count() or 1
    return max(1, cores - 1) if gui_running else cores


def describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return dev.type
