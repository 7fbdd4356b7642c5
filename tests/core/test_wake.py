"""The wake pipe between a window and the trainer it started (genstudio.core.watch.WakePipe): the
watcher looks when the trainer writes, so a run's end is seen at once rather than a poll later."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from genstudio.core import events as ev
from genstudio.core import jobs
from genstudio.core.runs import WAKE_FD_ENV, RunStore
from genstudio.core.watch import WakePipe, watch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.name != "posix", reason="the wake pipe is POSIX only (elsewhere the watcher polls)")

TRAINER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from genstudio.core.runs import Run, claim_wake_fd
    claim_wake_fd()
    run = Run(Path(sys.argv[1]))
    with run.owned():
        run.update(status="running", message="training")
        time.sleep(0.5)
        run.append_metrics([{"step": 1, "loss": 1.0}])
        time.sleep(0.5)
        run.update(status="completed", message="done")
        print(time.time(), flush=True)
    time.sleep(float(sys.argv[2]))  # alive after its end: the pipe's end of file is not what wakes
""")


def _trainer(run, wake: WakePipe, linger: float = 4.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **wake.env()}
    proc = subprocess.Popen([sys.executable, "-c", TRAINER, str(run.path), str(linger)], env=env,
                            stdout=subprocess.PIPE, text=True, **wake.child())
    wake.spawned()
    return proc


def _run(tmp_path):
    return jobs.create_run(RunStore(tmp_path), jobs.TrainSpec("ddpm", "moons", steps=1, device="cpu"))


def test_the_watcher_sees_each_change_when_the_trainer_makes_it_not_a_poll_later(tmp_path):
    run = _run(tmp_path)
    wake = WakePipe()
    proc = _trainer(run, wake)
    bus = ev.EventBus()
    seen: list[tuple[float, str]] = []
    bus.subscribe(lambda e: seen.append((time.time(), e.kind if e.kind != ev.STATUS else e.data["status"])))
    try:  # polling alone would look every 10 s
        for _ in watch(run, bus=bus, interval=10.0, trainer=lambda: proc.poll() is None, wake=wake):
            pass
        ended = time.time()
        completed_at = float(proc.stdout.readline())
        assert proc.poll() is None  # the trainer lives on: the end was seen through the pipe, not its close
    finally:
        proc.kill()
        wake.close()
    kinds = [k for _, k in seen]
    assert kinds.index("running") < kinds.index(ev.METRICS) < kinds.index("completed")
    assert ended - completed_at < 3.0, f"the end was seen {ended - completed_at:.2f} s late"  # not 10 s
    metrics_at = next(t for t, k in seen if k == ev.METRICS)
    assert metrics_at - seen[kinds.index("running")][0] < 3.0  # rows 0.5 s after "running", not 10 s


def test_a_trainer_that_exits_ends_the_wait_and_the_watcher_polls_after(tmp_path):
    run = _run(tmp_path)
    wake = WakePipe()
    proc = _trainer(run, wake, linger=0.0)
    try:
        began = time.monotonic()
        for _ in watch(run, interval=10.0, trainer=lambda: proc.poll() is None, wake=wake):
            pass
        assert time.monotonic() - began < 6.0  # 1 s of trainer, not a 10 s poll
        proc.wait(10)
        wake.wait(2.0)  # the writer is gone: reads end of file
        assert wake.closed
        t = time.monotonic()
        wake.wait(0.2)  # and a closed pipe sleeps, it never spins
        assert time.monotonic() - t >= 0.19
    finally:
        proc.kill()
        wake.close()


def test_poke_ends_a_wait_from_another_thread_and_is_harmless_after_close():
    wake = WakePipe()
    try:
        threading.Timer(0.2, wake.poke).start()
        t = time.monotonic()
        wake.wait(10.0)
        assert 0.15 < time.monotonic() - t < 5.0
        assert not wake.closed  # a poke is not the trainer's end
    finally:
        wake.close()
    wake.poke()  # no error, and nothing written to whatever reuses the number
    t = time.monotonic()
    wake.wait(0.1)
    assert time.monotonic() - t >= 0.09


CLAIM = textwrap.dedent("""
    import os, sys
    from genstudio.core.runs import WAKE_FD_ENV, claim_wake_fd, wake_watcher
    fd = claim_wake_fd()
    print(fd is not None, WAKE_FD_ENV in os.environ, flush=True)
    wake_watcher()
""")


def test_the_trainer_takes_its_wake_number_out_of_the_environment_and_refuses_a_plain_file(tmp_path):
    wake = WakePipe()
    try:
        out = subprocess.run([sys.executable, "-c", CLAIM], env={**os.environ, "PYTHONPATH": str(ROOT), **wake.env()},
                             capture_output=True, text=True, timeout=60, **wake.child())
        assert out.stdout.split() == ["True", "False"], out.stderr  # no child of it inherits the number
        assert os.read(wake.read_fd, 16) == b"."  # what wake_watcher() wrote
    finally:
        wake.close()
    victim = tmp_path / "a.txt"  # a number that is a regular file is never written to
    with open(victim, "wb") as f:
        out = subprocess.run([sys.executable, "-c", CLAIM],
                             env={**os.environ, "PYTHONPATH": str(ROOT), WAKE_FD_ENV: str(f.fileno())},
                             capture_output=True, text=True, timeout=60, pass_fds=(f.fileno(),))
    assert out.stdout.split() == ["False", "False"], out.stderr
    assert victim.read_bytes() == b""
    for raw in ("not a number", "1"):  # fd 1 is a pipe here (captured), and still refused: it is stdout
        out = subprocess.run([sys.executable, "-c", CLAIM], env={**os.environ, "PYTHONPATH": str(ROOT),
                                                                  WAKE_FD_ENV: raw},
                             capture_output=True, text=True, timeout=60)
        assert out.stdout == "False False\n", out.stderr
