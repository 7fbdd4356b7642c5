"""Issue #11, plugins: a folder plugin that hangs or ends the process at import, a train_step or
preview that never returns, and a train_step that returns junk each end in one clear state."""

from __future__ import annotations

import dataclasses
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from genstudio.cli import main
from genstudio.core import jobs, plugin_probe
from genstudio.core.registry import discover, registry
from genstudio.core.runs import RunStore
from tests.fakeplugins import GaussFit


def _write_plugin(folder: Path, name: str, body: str) -> Path:
    pkg = folder / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    return pkg / "__init__.py"


GOOD = """
    from tests.fakeplugins import GaussFit
    class Good(GaussFit):
        info = __import__('dataclasses').replace(GaussFit.info, id='good')
    PLUGIN = Good
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.setenv("GENSTUDIO_PLUGIN_PATH", str(folder))
    monkeypatch.setenv(plugin_probe.TIMEOUT_ENV, "1")
    return folder


def test_plugin_hanging_or_exiting_at_import_is_only_listed(plugin_dir, capsys, monkeypatch):
    """Neither freezes discovery nor ends this process; `genstudio plugins` lists both as broken."""
    _write_plugin(plugin_dir, "hangs", "import time\ntime.sleep(60)\n")
    _write_plugin(plugin_dir, "exits", "import os\nos._exit(3)\n")
    t0 = time.monotonic()
    reg = discover(entry_points_too=False)
    assert time.monotonic() - t0 < 3
    assert reg.entries["hangs"].error == "import timed out after 1 s"
    assert reg.entries["exits"].error.startswith("import exited the process with code 3")
    import genstudio.core.registry as registry_module

    # what `genstudio plugins` shows, from a fresh discovery; the process-wide registry (with the
    # plugins other tests registered at import) comes back afterwards
    monkeypatch.setattr(registry_module, "_cached", None)
    assert main(["plugins"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "broken: import timed out after 1 s" in rows["hangs"]
    assert "broken: import exited the process with code 3" in rows["exits"]
    assert rows["ddpm"].rstrip().endswith("ok")


def test_probe_results_are_cached_per_mtime(plugin_dir, monkeypatch):
    """A second discovery spawns no child for an unchanged plugin; an edited one is probed again."""
    # imports fine without torch (a fast probe), then fails the contract: so it was imported here
    init = _write_plugin(plugin_dir, "imports", "PLUGIN = type('X', (), {})\n")
    _write_plugin(plugin_dir, "exits", "import os\nos._exit(3)\n")
    discover(entry_points_too=False)
    calls: list[str] = []
    real = plugin_probe._run_probes
    monkeypatch.setattr(plugin_probe, "_run_probes", lambda todo, limit: calls.extend(todo.values()) or real(todo, limit))
    reg = discover(entry_points_too=False)
    assert calls == [] and reg.entries["imports"].error.startswith("contract:")
    assert "code 3" in reg.entries["exits"].error
    st = init.stat()
    os.utime(init, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert discover(entry_points_too=False).entries["imports"].error.startswith("contract:")
    assert calls == ["genstudio_ext_imports"]


def test_a_good_folder_plugin_passes_the_probe(plugin_dir, monkeypatch):
    monkeypatch.setenv(plugin_probe.TIMEOUT_ENV, "30")  # it imports torch: slow on a busy machine
    _write_plugin(plugin_dir, "good", GOOD)
    assert discover(entry_points_too=False).entries["good"].ok


def test_probe_off_and_entry_points_are_not_probed(plugin_dir, monkeypatch):
    monkeypatch.setenv(plugin_probe.TIMEOUT_ENV, "0")
    _write_plugin(plugin_dir, "good", GOOD)
    monkeypatch.setattr(plugin_probe, "_run_probes", lambda *a: pytest.fail("probed"))
    reg = discover()
    assert reg.entries["good"].ok and reg.entries["ddpm"].ok


def test_no_probe_in_a_frozen_app(plugin_dir, monkeypatch):
    """In a PyInstaller bundle sys.executable is the app: `-m plugin_probe` would start another app."""
    monkeypatch.setattr(plugin_probe.sys, "frozen", True, raising=False)
    monkeypatch.setattr(plugin_probe, "_run_probes", lambda *a: pytest.fail("probed"))
    _write_plugin(plugin_dir, "imports", "PLUGIN = type('X', (), {})\n")
    assert discover(entry_points_too=False).entries["imports"].error.startswith("contract:")


# -- plugins that misbehave while training ----------------------------------------------------------

def _fake(name: str, **methods) -> type:
    """A GaussFit subclass registered as ``name`` with some methods replaced."""
    cls = type(name.title(), (GaussFit,), {"info": dataclasses.replace(GaussFit.info, id=name), **methods})
    registry().entries.pop(name, None)  # a parametrized test registers a new class under the same id
    registry().add_class(cls, "tests", name)
    return cls


HANGING = threading.Event()


def _hanging_step(self, batch, labels, step):
    if step >= 3:
        HANGING.set()
        while True:
            time.sleep(0.01)
    return GaussFit.train_step(self, batch, labels, step)


def _slow_step(self, batch, labels, step):
    time.sleep(0.02)
    return GaussFit.train_step(self, batch, labels, step)


def _sigint_when(event: threading.Event, times: int) -> threading.Thread:
    """Send ``times`` Ctrl-Cs to this process once ``event`` is set (as a terminal would)."""

    def go() -> None:
        event.wait(10)
        for _ in range(times):
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)

    th = threading.Thread(target=go, daemon=True)
    th.start()
    return th


def _only_run() -> object:
    (run,) = RunStore().list()
    return run


def test_ctrl_c_twice_in_a_hanging_train_step_marks_the_run_interrupted(capsys):
    HANGING.clear()
    _fake("hangstep", train_step=_hanging_step)
    th = _sigint_when(HANGING, 2)
    assert main(["train", "hangstep", "--data", "8gaussians", "--steps", "50", "--checkpoint-every", "2",
                 "--sample-every", "0"]) == 2
    th.join(5)
    err = capsys.readouterr().err.strip().split("\r")[-1].splitlines()
    assert err[-1].startswith("genstudio: error: run ") and "Traceback" not in "".join(err), err
    assert "interrupted by Ctrl-C; resume continues from the checkpoint of step 2" in err[-1]
    assert _only_run().info()["status"] == "interrupted"


def test_one_ctrl_c_stops_at_the_next_step_with_a_checkpoint(capsys):
    started = threading.Event()
    _fake("slowstep", train_step=lambda self, b, y, s: (started.set(), _slow_step(self, b, y, s))[1])
    th = _sigint_when(started, 1)
    assert main(["train", "slowstep", "--data", "8gaussians", "--steps", "1000", "--sample-every", "0"]) == 0
    th.join(5)
    info = _only_run().info()
    assert info["status"] == "stopped" and 0 < info["step"] < 1000
    assert _only_run().checkpoints()


def test_stop_during_a_long_preview_returns_promptly():
    """A preview of 2000 sampler steps (10 s) is cancelled between steps (drawn beside the
    training, it held the run at the next preview's step at most: one is drawn at a time)."""
    sampling = threading.Event()

    def slow_sample(self, n, *, seed, steps=None, sampler=None, cond=None, every=1):
        for st in GaussFit.sample(self, n, seed=seed, steps=2000, sampler=sampler, cond=cond, every=every):
            sampling.set()
            time.sleep(0.005)
            yield st

    _fake("slowpreview", sample=slow_sample)
    run = jobs.create_run(RunStore(), jobs.TrainSpec("slowpreview", "8gaussians", steps=20, sample_every=5))
    control = jobs.Control()
    stopped_at: list[float] = []

    def stop() -> None:
        sampling.wait(10)
        stopped_at.append(time.monotonic())
        control.cancel()

    threading.Thread(target=stop, daemon=True).start()
    for _ in jobs.train(run, control=control):
        pass
    assert time.monotonic() - stopped_at[0] < 1.0
    assert run.info()["status"] == "stopped" and 5 <= run.info()["step"] < 20


@pytest.mark.parametrize("result, shown", [
    ({"mse": 0.1}, "{'mse': 0.1}"),
    ({"loss": "0.5"}, "{'loss': '0.5'}"),
    (0.5, "0.5"),
    ({"loss": True}, "{'loss': True}"),
])
def test_train_step_must_return_a_numeric_loss(result, shown, capsys):
    _fake("junkloss", train_step=lambda self, b, y, s: result)
    assert main(["train", "junkloss", "--data", "8gaussians", "--steps", "5", "--sample-every", "0"]) == 2
    err = capsys.readouterr().err.strip().split("\r")[-1].splitlines()
    assert len([e for e in err if e.startswith("genstudio:")]) == 1 and "Traceback" not in "".join(err), err
    assert ("plugin junkloss: train_step must return {'loss': float, ...}; got " + shown) in err[-1]
    assert _only_run().info()["status"] == "failed"


def test_nan_loss_at_the_first_step_still_pauses_not_fails(capsys):
    _fake("nanloss", train_step=lambda self, b, y, s: {"loss": float("nan")})
    assert main(["train", "nanloss", "--data", "8gaussians", "--steps", "5", "--sample-every", "0"]) == 2
    assert "ended diverged" in capsys.readouterr().err
    assert _only_run().info()["status"] == "diverged"
