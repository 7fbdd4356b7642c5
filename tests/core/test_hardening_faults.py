"""Issue 11, faults: kill -9, SIGTERM, a second trainer of the same run and a full disk, as real
processes where it matters (the CLI trains in a child, the test kills it), so what survives is what
a user would find afterwards. Shares the run-store fixtures of test_hardening_runstore.py."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from genstudio.core import events as ev
from genstudio.core import jobs
from genstudio.core import runs as R
from genstudio.core.registry import registry
from genstudio.core.runs import RunBusy, RunStore
from tests.core.test_hardening_runstore import _spec, _start_long_training, _steps, _trained
from tests.fakeplugins import GaussFit


@pytest.fixture
def store(tmp_path):
    registry().add_class(GaussFit, "tests", "gaussfit")
    return RunStore(tmp_path / "store")


def test_kill_9_then_interrupted_and_resume_keeps_checkpoints_and_metrics(store):
    proc, run = _start_long_training(store)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert run.raw_info()["status"] == "running"
    assert run.info()["status"] == "interrupted"
    committed = run.checkpoints()
    last = committed[-1][0]
    with open(run.path / "metrics.jsonl", "a") as f:  # as if the kill tore the line being written
        f.write('{"step": 99999, "lo')
    run.update(steps=last + 10)
    assert list(jobs.train(run))[0] == last + 1  # resumed here (a second spawn would only cost time)
    assert run.info()["status"] == "completed" and run.info()["step"] == last + 10
    steps = _steps(run)
    assert steps == list(range(5, last + 11, 5))  # contiguous: no row lost, no glued row
    assert all(p.exists() for s, p in committed if s >= last - 20)  # only rotation (keep 3) removed any
    assert "from step " + str(last) in run.read_log()


def test_sigterm_stops_gracefully_and_a_second_resume_is_refused(store, monkeypatch, capsys):
    from genstudio.cli import main

    proc, run = _start_long_training(store)
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(store.root))
    assert main(["resume", run.id]) == 2  # this test's process is the second trainer
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"genstudio: error: run {run.id} is being trained by pid {proc.pid}"
    assert "Traceback" not in err
    assert run.info()["status"] == "running"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    info = run.info()
    assert info["status"] == "stopped" and "resume continues" in info["message"]
    assert run.checkpoints()[-1][0] == info["step"] > 0  # the stop wrote a checkpoint at its step


def test_second_job_in_one_process_is_refused(store):
    run = jobs.create_run(store, _spec())
    with run.owned(), pytest.raises(RunBusy, match=f"run {run.id} is being trained by pid {os.getpid()}"):
        list(jobs.train(run))
    assert run.info()["status"] == "created"  # the refused job wrote nothing


# -- 4: disk full ------------------------------------------------------------------------------------


def test_failure_path_is_best_effort_when_the_disk_is_full(store, monkeypatch, caplog):
    full = []
    real_step, real_append, real_write = GaussFit.train_step, R.append_lines, R.atomic_write_bytes

    def step(self, x, y, i):
        if i == 3:
            full.append(True)
            raise OSError(errno.ENOSPC, "No space left on device (the first error)")
        return real_step(self, x, y, i)

    def no_space(real):
        def write(*a, **k):
            if full:
                raise OSError(errno.ENOSPC, "No space left on device (a later write)")
            return real(*a, **k)
        return write

    monkeypatch.setattr(GaussFit, "train_step", step)
    monkeypatch.setattr(R, "append_lines", no_space(real_append))
    monkeypatch.setattr(R, "atomic_write_bytes", no_space(real_write))
    run = jobs.create_run(store, _spec())
    with caplog.at_level(logging.WARNING, "genstudio.core.jobs"), pytest.raises(OSError, match="the first error"):
        list(jobs.train(run))
    assert any("cannot record the status" in r.getMessage() for r in caplog.records)
    assert run.raw_info()["status"] == "running" and run.info()["status"] == "interrupted"


def test_real_full_disk_on_a_small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the monkeypatched ENOSPC test covers the path")
    try:
        registry().add_class(GaussFit, "tests", "gaussfit")
        store = RunStore(mnt)
        run = _trained(store, steps=10)
        run.update(steps=1000)
        filler = mnt / "filler"
        bus = ev.EventBus()

        def fill(e):  # the disk fills up while training: the next checkpoint cannot be written
            if not filler.exists():
                with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
                    while True:
                        f.write(b"\0" * 4096)

        bus.subscribe(fill, ev.PROGRESS)
        with pytest.raises(OSError) as e:
            list(jobs.train(run, bus=bus))
        assert e.value.errno == errno.ENOSPC
        assert run.raw_info()["step"] == 10  # run.json intact (atomic write), the last good step
        assert not list(run.path.glob(".*.tmp")) and not list((run.path / "checkpoints").glob(".*.tmp"))
        filler.unlink()
        assert run.info()["status"] in ("interrupted", "failed")  # not `running` forever
        assert run.load_checkpoint()[0] == 10
        run.update(steps=20)
        assert list(jobs.train(run))[-1] == 20  # space freed: it resumes
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# -- 6: symlinks -----------------------------------------------------------------------------------


def test_busy_says_whether_a_trainer_holds_the_lock(store):
    """The GUI marks a run failed after a failed train job only when nobody else trains it."""
    run = jobs.create_run(store, _spec())
    assert not run.busy()
    with run.owned():
        assert run.busy()
    assert not run.busy()


HANG_DRIVER = """
import sys, time
from genstudio.core.registry import registry
from tests.fakeplugins import GaussFit
real = GaussFit.train_step
def hang(self, batch, labels, step):
    if step > 30:
        time.sleep(3600)  # a plugin that never returns
    return real(self, batch, labels, step)
GaussFit.train_step = hang
import genstudio.core.registry as reg
reg._cached = reg.Registry()
registry().add_class(GaussFit, "tests", "gaussfit")
from genstudio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_hung_trainer_reads_stalled_then_interrupted_once_killed(store, monkeypatch):
    """A live process whose plugin hangs keeps the lock, so the run is not 'interrupted'; with no
    step for longer than GENSTUDIO_STALL_SECONDS it reads (and the Runs panel shows) 'stalled',
    saying what to do; once the process is killed it is interrupted and resumable."""
    from tests.core.test_hardening_runstore import REPO

    env = {**os.environ, "GENSTUDIO_DATA_DIR": str(store.root), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HANG_DRIVER, "train", "gaussfit", "--data", "8gaussians",
                             "--steps", "1000", "--set", "lr=0.1", "--log-every", "5", "--checkpoint-every", "10",
                             "--sample-every", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not (store.list() and store.list()[0].seconds_since_step() is not None
                                              and store.list()[0].checkpoints()):
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        run = store.list()[0]
        assert run.info()["status"] == "running" and "stalled" not in run.info()  # default limit: 10 min
        monkeypatch.setenv(R.STALL_ENV, "1")
        time.sleep(1.5)
        info = run.info()
        assert info["status"] == "running" and info["stalled"] >= 1, info
        assert "stalled" in info["message"] and str(proc.pid) in info["message"]
    finally:
        proc.kill()
        proc.wait(10)
    info = run.info()
    assert info["status"] == "interrupted" and run.checkpoints()
