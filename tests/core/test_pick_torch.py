"""installer/pick_torch.py: every branch of the torch choice, with the machine's probes faked."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "installer" / "pick_torch.py"
_spec = importlib.util.spec_from_file_location("pick_torch", _PATH)
pick = importlib.util.module_from_spec(_spec)
sys.modules["pick_torch"] = pick  # dataclasses look their module up while the class is built
_spec.loader.exec_module(pick)

SPEC = "torch==2.13.0"
DEFAULT = ("install", SPEC)
CPU = ("install", SPEC, "--index-url", pick.CPU_INDEX)


def plan(system: str, torch: str | None = None, nvidia: str | None = None, index_up: bool = True):
    asked: list[str] = []

    def index_ok(url: str) -> bool:
        asked.append(url)
        return index_up

    p = pick.choose(pick.Machine(system, torch, nvidia), SPEC, index_ok)
    return p, asked


def test_existing_torch_is_kept_and_nothing_is_probed_or_installed():
    p, asked = plan("Linux", torch="2.4.0+cu121", nvidia="GPU 0: A100")
    assert p.attempts == () and p.build == "keep" and "2.4.0+cu121" in p.why and asked == []
    said: list[str] = []
    out = pick.install(p, run=lambda a: pytest.fail("pip must not run"), say=said.append)
    assert out.used is None and "kept" in said[0]


def test_linux_gpu_takes_pypi_cuda_build_without_asking_the_cpu_index():
    p, asked = plan("Linux", nvidia="GPU 0: NVIDIA H100 (UUID: x)")
    assert p.attempts == (DEFAULT,) and p.build == "cuda" and "H100" in p.why and asked == []


def test_linux_without_gpu_takes_the_cpu_index_then_falls_back():
    p, asked = plan("Linux")
    assert p.attempts == (CPU, DEFAULT) and p.build == "cpu" and asked == [pick.CPU_INDEX]
    tried, said = [], []

    def fails_on_index(args):  # the index answered the probe but the install from it fails
        tried.append(tuple(args))
        return "--index-url" not in args

    out = pick.install(p, run=fails_on_index, say=said.append)
    assert tried == [CPU, DEFAULT] and out.used == DEFAULT
    assert any("failed" in s and "default index" in s for s in said)


def test_unreachable_cpu_index_goes_straight_to_the_default_index_with_a_message():
    p, _ = plan("Linux", index_up=False)
    assert p.attempts == (DEFAULT,) and p.build == "default"
    assert "unreachable" in p.why and "default index" in p.why
    tried = []
    out = pick.install(p, run=lambda a: tried.append(tuple(a)) or True, say=lambda s: None)
    assert tried == [DEFAULT] and out.used == DEFAULT  # one pip call: no time lost on the dead index


def test_macos_takes_pypi_build_with_mps():
    p, asked = plan("Darwin")
    assert p.attempts == (DEFAULT,) and p.build == "mps" and "MPS" in p.why and asked == []


def test_windows_gpu_uses_the_cuda_index_and_windows_cpu_pypi():
    p, _ = plan("Windows", nvidia="GPU 0: RTX 4090")
    assert p.attempts[0] == ("install", SPEC, "--index-url", pick.CUDA_INDEX) and p.build == "cuda"
    p, asked = plan("Windows")
    assert p.attempts == (DEFAULT,) and p.build == "cpu" and asked == []


def test_every_attempt_failing_is_an_error():
    p, _ = plan("Linux")
    with pytest.raises(RuntimeError, match="could not install torch"):
        pick.install(p, run=lambda a: False, say=lambda s: None)


def test_nvidia_probe_reads_smi_then_proc(tmp_path):
    assert pick.nvidia_driver(which=lambda name: None, proc=tmp_path / "none") is None
    proc = tmp_path / "version"
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54\n")
    assert "NVRM" in pick.nvidia_driver(which=lambda name: None, proc=proc)
    # a nvidia-smi that is there but lists no GPU (driver not loaded) falls through to /proc
    assert "NVRM" in pick.nvidia_driver(which=lambda name: "/bin/true", proc=proc)


def test_unreachable_url_is_told_fast():
    import time

    t = time.monotonic()
    assert pick.reachable("http://127.0.0.1:9", timeout=2) is False  # discard port: refused
    assert time.monotonic() - t < 3
