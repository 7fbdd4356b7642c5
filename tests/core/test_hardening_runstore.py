"""Run store hardening (issue #11): torn metric lines, broken run.json, stale `running` runs, the
failure path on a full disk, two trainers of one run, symlinks in a run folder, truncated
checkpoints. The kill -9 / SIGTERM / concurrent-resume cases run real `genstudio` processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genstudio.core import jobs
from genstudio.core import runs as R
from genstudio.core.registry import registry
from genstudio.core.runs import RunError, RunStore
from tests.core.test_runs_jobs import _spec as runs_jobs_spec
from tests.fakeplugins import GaussFit

REPO = Path(__file__).resolve().parents[2]

# `genstudio` with the tiny test plugin registered; each train step sleeps 2 ms so a long run
# stays alive (and writes little) until the test kills it
DRIVER = """
import sys, time
from genstudio.core.registry import registry
from tests.fakeplugins import GaussFit
real = GaussFit.train_step
def slow(self, *a):
    time.sleep(0.002)
    return real(self, *a)
GaussFit.train_step = slow
import genstudio.core.registry as reg
reg._cached = reg.Registry()  # only the test plugin: skips discovering the real ones (time)
registry().add_class(GaussFit, "tests", "gaussfit")
from genstudio.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def store(tmp_path):
    registry().add_class(GaussFit, "tests", "gaussfit")
    return RunStore(tmp_path / "store")


def _spec(**kw):
    """test_runs_jobs' spec, shorter and without previews (the store is what is tested here)."""
    return runs_jobs_spec(**{"steps": 20, "sample_every": 0, "n_preview": 8, **kw})


def _trained(store, **kw):
    run = jobs.create_run(store, _spec(**kw))
    list(jobs.train(run))
    return run


def _cli(store: RunStore, *argv: str, wait: bool = True):
    env = {**os.environ, "GENSTUDIO_DATA_DIR": str(store.root), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", DRIVER, *argv]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _start_long_training(store: RunStore) -> tuple[subprocess.Popen, R.Run]:
    """A CLI training process that has written at least one checkpoint."""
    proc = _cli(store, "train", "gaussfit", "--data", "8gaussians", "--steps", "1000000", "--set", "lr=0.1",
                "--log-every", "5", "--checkpoint-every", "20", "--sample-every", "0", wait=False)
    deadline = time.time() + 30
    while time.time() < deadline:
        found = store.list()
        if found and found[0].checkpoints() and found[0].raw_info().get("owner"):
            return proc, found[0]
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()[1]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no checkpoint within 30 s")


def _steps(run):
    return [r["step"] for r in run.metrics()]


# -- 1: torn metric lines ------------------------------------------------------------------------
def test_append_after_a_torn_line_starts_a_fresh_line(store):
    run = _trained(store)
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 21, "loss": 0.')  # killed / disk full mid-append
    run.update(steps=30)
    list(jobs.train(run))
    assert _steps(run) == [5, 10, 15, 20, 25, 30]  # 25, the first resumed row, is not glued and lost
    assert run.read_metrics()[1] == 1
    run.log("one")  # the log appends the same way
    with open(run.path / "log.txt", "a") as f:
        f.write("torn")
    run.log("two")
    assert run.read_log().splitlines()[-1].endswith(" two")


def test_metrics_reader_skips_bad_lines_and_logs_once(store, caplog):
    run = _trained(store, steps=10)
    with open(run.path / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 11, "loss": "\xff\xfe"}\n')  # not UTF-8
        f.write(b'{"step": "abc", "loss": 1}\n')
        f.write(b'[1, 2, 3]\n')
        f.write(b'{"step": true}\n')
        f.write(b'{"step": 12, "loss": 0.5}\n')
        f.write(b'{"step": 13, "lo')  # truncated
    with caplog.at_level(logging.WARNING, "genstudio.core.runs"):
        assert _steps(run) == [5, 10, 12]
        assert _steps(run) == [5, 10, 12]
    assert run.read_metrics()[1] == 5
    assert len([r for r in caplog.records if "skipped 5" in r.getMessage()]) == 1


# -- 2: broken run.json ----------------------------------------------------------------------------
BROKEN = {
    "list": (b"[1, 2]", "is a JSON list"),
    "no-plugin": (json.dumps({"dataset": "8gaussians", "config": {}, "steps": 1}).encode(), "lacks plugin"),
    "not-utf8": (b'{"plugin": "\xff"}', "is not UTF-8"),
    "truncated": (b'{"plugin": "gau', "is corrupt"),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_run_json_is_listed_with_a_reason_and_a_one_line_cli_error(store, kind, capsys, monkeypatch):
    good = _trained(store, steps=10)
    bad = store.runs_dir / f"20990101-000000-{kind}"
    bad.mkdir()
    data, why = BROKEN[kind]
    (bad / "run.json").write_bytes(data)
    assert [r.id for r in store.list()] == sorted([good.id, bad.name])
    [(run, reason)] = store.broken()
    assert run.id == bad.name and reason.startswith(f"run {bad.name}: run.json ") and why in reason
    with pytest.raises(RunError, match=why):
        run.info()
    from genstudio.cli import main

    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(store.root))
    assert main(["resume", bad.name]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"genstudio: error: {reason}"


def test_runs_panel_builds_with_broken_runs(store, qapp):
    from types import SimpleNamespace

    from genstudio.core.events import EventBus
    from genstudio.qt.panels.runs import RunsPanel

    good = _trained(store, steps=10)
    for kind, (data, _) in BROKEN.items():
        (store.runs_dir / f"20990101-000000-{kind}").mkdir()
        (store.runs_dir / f"20990101-000000-{kind}" / "run.json").write_bytes(data)
    panel = RunsPanel(SimpleNamespace(store=store, registry=registry(), bus=EventBus()))
    assert len(panel.run_ids()) == 1 + len(BROKEN)
    assert panel.row_text(good.id)["Status"] == "completed"
    assert panel.row_text("20990101-000000-list")["Status"] == "broken"
    assert "JSON list" in panel._items["20990101-000000-list"].toolTip(1)


# -- 3: stale runs, orphan temp files ----------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_running_run_without_a_live_owner_reads_interrupted(store):
    import socket

    run = _trained(store, steps=10)
    run.update(status="running", owner={"pid": _dead_pid(), "host": socket.gethostname(), "started": 0})
    info = run.info()
    assert info["status"] == "interrupted" and "is gone" in info["message"]
    assert run.raw_info()["status"] == "running"  # read as interrupted, not rewritten by a reader
    run.update(owner=None, status="running")  # written before owner records existed
    assert run.info()["status"] == "interrupted"
    with run.owned():  # this process trains it: running
        run.update(status="running")
        assert run.info()["status"] == "running"
    assert run.info()["status"] == "interrupted"
    run.update(steps=15)
    assert list(jobs.train(run))[-1] == 15 and run.info()["status"] == "completed"


def test_resume_cleans_orphan_temp_files_only_inside_the_run(store, tmp_path):
    run = _trained(store, steps=10)
    orphans = [run.path / ".run.json.abc123.tmp", run.path / "checkpoints" / ".step_00000020.pt.x1y2.tmp"]
    for p in orphans:
        p.write_bytes(b"half")
    keep = [run.path / "samples" / ".mine.abc.tmp", run.path.parent / ".other.abc.tmp", run.path / "notes.tmp"]
    for p in keep:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"keep")
    run.update(steps=12)
    list(jobs.train(run))
    assert not any(p.exists() for p in orphans) and all(p.exists() for p in keep)


def test_a_write_whose_temp_file_a_starting_trainer_cleaned_away_is_written_again(store, monkeypatch):
    """A window's control file written while the trainer starting on the run deletes the folder's
    orphan temp files: the write is done again, not failed (it failed a Stop, once in a suite)."""
    run = _trained(store, steps=2)
    real, lost = os.replace, []

    def clean_first(src, dst):
        if not lost:  # the trainer's clean_orphans gets there between the write and the rename
            run.clean_orphans()
            lost.append(src)
        return real(src, dst)

    monkeypatch.setattr(R.os, "replace", clean_first)
    R.atomic_write_text(run.path / "control.json", '{"command": "stop"}')
    assert lost and json.loads((run.path / "control.json").read_text()) == {"command": "stop"}
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(R.os, "replace", lambda src, dst: (Path(src).unlink(), real(src, dst)))
    with pytest.raises(FileNotFoundError):  # lost every time: said, not looped on
        R.atomic_write_text(run.path / "control.json", "{}")


def test_writes_and_rotation_refuse_symlinks(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("mine\n")
    run = jobs.create_run(store, _spec())
    (run.path / "log.txt").symlink_to(victim)
    with pytest.raises(RunError, match="symlink"):
        run.log("hello")
    (run.path / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(RunError, match="symlink"):
        run.append_metrics([{"step": 1}])
    assert victim.read_text() == "mine\n"
    for i in range(5):
        (outside / f"step_{i:08d}.pt").write_bytes(b"precious")
    (run.path / "checkpoints").symlink_to(outside, target_is_directory=True)
    assert run.checkpoints() == []
    with pytest.raises(RunError, match="symlinked folder checkpoints/"):
        run.save_checkpoint(7, {"w": 1})
    (run.path / "samples").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunError, match="symlinked folder samples/"):
        run.sample_dir()
    assert sorted(p.name for p in outside.iterdir()) == sorted(
        ["victim.txt"] + [f"step_{i:08d}.pt" for i in range(5)])  # nothing written, nothing rotated away


# -- 7: truncated checkpoints ------------------------------------------------------------------------
def test_truncated_checkpoint_fallback_is_said_and_never_suggests_weights_only_false(store, caplog):
    run = _trained(store, steps=30)
    newest = run.checkpoints()[-1][1]
    newest.write_bytes(newest.read_bytes()[:200])
    with caplog.at_level(logging.WARNING, "genstudio.core.runs"):
        step, _ = run.load_checkpoint()
    assert step == 20
    warning = run.read_log().splitlines()[-1]
    assert "[warning]" in warning and newest.name in warning and "step_00000020.pt" in warning
    assert any(newest.name in r.getMessage() for r in caplog.records)
    with pytest.raises(RunError) as e:
        run.load_checkpoint(newest)
    text = str(e.value)
    assert newest.name in text and "unreadable" in text
    assert "weights_only" not in text and "likely" not in text


