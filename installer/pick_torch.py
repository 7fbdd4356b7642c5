"""Which torch build to install, and installing it (stdlib only: it runs before torch exists).

Plain ``pip install torch`` on Linux takes PyPI's CUDA build (a large wheel plus several GB of
CUDA packages) with or without a GPU. So:

- a torch that imports already is kept (whatever its build);
- Linux/Windows with an NVIDIA driver (``nvidia-smi`` answers, or ``/proc/driver/nvidia``) get
  the CUDA build: PyPI's own on Linux, the PyTorch CUDA index on Windows (PyPI's is CPU-only);
- Linux without one gets the CPU build from the PyTorch CPU wheel index; if that index cannot be
  reached (offline mirror, firewall) or the install from it fails, the default index is used, with
  a message saying what that costs;
- macOS gets PyPI's build, which runs on the CPU and on Apple GPUs through MPS.

Every probe is a parameter of :func:`choose`, so a test fakes the machine.

    python3 installer/pick_torch.py            # print the choice
    python3 installer/pick_torch.py --install  # and install it
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TORCH = os.environ.get("GENSTUDIO_TORCH", "torch==2.13.0")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"  # Windows: PyPI has no CUDA wheels there
PROBE_TIMEOUT_S = 4.0  # an index that does not answer in this long is taken for unreachable


@dataclass(frozen=True)
class Machine:
    """What the choice depends on (``probe()`` reads it off this machine)."""

    system: str  # platform.system(): Linux, Darwin, Windows
    torch: str | None  # version of a torch that imports, else None
    nvidia: str | None  # what found the driver (nvidia-smi's GPU line, /proc/driver/nvidia), else None


@dataclass(frozen=True)
class Plan:
    """pip arguments to try in order (empty: install nothing) and why."""

    why: str
    attempts: tuple[tuple[str, ...], ...] = ()
    fallback_note: str = ""  # said when a later attempt replaces an earlier one
    build: str = "keep"  # keep | cuda | cpu | default | mps


@dataclass
class Outcome:
    plan: Plan
    used: tuple[str, ...] | None = None
    messages: list[str] = field(default_factory=list)


def installed_torch() -> str | None:
    """The version of the torch installed for this interpreter (read from its metadata: importing
    torch to ask would cost seconds)."""
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "(unknown version)"


def nvidia_driver(which: Callable[[str], str | None] = shutil.which,
                  proc: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """A line naming the NVIDIA GPU/driver, or None: ``nvidia-smi -L`` that lists a GPU, else the
    kernel driver's /proc file (a container may have the driver but not the tool)."""
    smi = which("nvidia-smi")
    if smi:
        try:
            r = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15)
            if r.returncode == 0 and "GPU" in r.stdout:
                return r.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return proc.read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        return None


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``url`` answers at all within ``timeout`` (DNS failure, refusal, timeout: no)."""
    try:
        with urllib.request.urlopen(url + "/torch/", timeout=timeout):
            return True
    except Exception:  # noqa: BLE001 - URLError, socket.timeout, ssl errors: all mean "not from here"
        return False


def probe() -> Machine:
    return Machine(system=platform.system(), torch=installed_torch(), nvidia=nvidia_driver())


def choose(m: Machine, spec: str = TORCH, index_ok: Callable[[str], bool] = reachable) -> Plan:
    """The plan for machine ``m``; ``index_ok(url)`` is asked only when a PyTorch index is wanted."""
    if m.torch:
        return Plan(f"torch {m.torch} is already installed: kept (uninstall it first to change builds)")
    default = ("install", spec)
    if m.system == "Darwin":
        return Plan("macOS: PyPI's torch (CPU, and Apple GPUs through MPS; GenStudio picks mps by itself)",
                    (default,), build="mps")
    if m.nvidia and m.system == "Windows":
        return Plan(f"NVIDIA GPU ({m.nvidia}): the CUDA build from {CUDA_INDEX}",
                    (("install", spec, "--index-url", CUDA_INDEX), default),
                    "the CUDA index failed; PyPI's torch on Windows is the CPU build", build="cuda")
    if m.nvidia:
        return Plan(f"NVIDIA GPU ({m.nvidia}): PyPI's torch, the CUDA build", (default,), build="cuda")
    if m.system == "Windows":
        return Plan("no NVIDIA GPU: PyPI's torch (the CPU build on Windows)", (default,), build="cpu")
    slow = ("falling back to the default index: on Linux it may be the CUDA build (several GB) "
            "unless a local CPU wheel or mirror provides it")
    cpu = ("install", spec, "--index-url", CPU_INDEX)
    if not index_ok(CPU_INDEX):
        return Plan(f"no NVIDIA GPU: wanted the CPU build, but {CPU_INDEX} is unreachable; {slow}",
                    (default,), build="default")
    return Plan(f"no NVIDIA GPU: the CPU build from {CPU_INDEX}", (cpu, default),
                f"installing from {CPU_INDEX} failed; {slow}", build="cpu")


def pip(args: Sequence[str]) -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "-q", *args]).returncode == 0


def install(plan: Plan, run: Callable[[Sequence[str]], bool] = pip,
            say: Callable[[str], None] = print) -> Outcome:
    """Try the plan's attempts in order until one succeeds; raises RuntimeError if none does."""
    out = Outcome(plan)
    say(f"torch: {plan.why}")
    for i, args in enumerate(plan.attempts):
        if i:
            say(f"torch: {plan.fallback_note}")
        if run(args):
            out.used = tuple(args)
            return out
    if plan.attempts:
        raise RuntimeError(f"could not install torch ({' / '.join(' '.join(a) for a in plan.attempts)} all failed)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--install", action="store_true", help="install the chosen build (default: only say it)")
    args = p.parse_args(argv)
    plan = choose(probe())
    if not args.install:
        print(f"torch: {plan.why}")
        for a in plan.attempts:
            print("  pip " + " ".join(a))
        return 0
    try:
        install(plan)
    except RuntimeError as e:
        print(f"torch: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
