"""Device choice (cuda > mps > cpu, overridable) and thread settings for worker threads."""

from __future__ import annotations

import os

import torch


def pick_device(name: str | None = None) -> torch.device:
    """``name`` may be None/"auto", "cpu", "cuda", "cuda:1", "mps"; an unavailable one is an error."""
    name = (name or os.environ.get("GENSTUDIO_DEVICE") or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA GPU")
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
