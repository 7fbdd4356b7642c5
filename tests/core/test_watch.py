"""Watching a run folder (genstudio.core.watch): the tail sees what another writer appends, and a
job obeys the control file (pause, resume, stop)."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from genstudio.core import events as ev
from genstudio.core import jobs
from genstudio.core.imaging import save_png
from genstudio.core.runs import RunStore
from genstudio.core.watch import CONTROL_FILE, POLL_S, FileControl, RemoteControl, RunTail, send, watch


def _run(tmp_path, **kw):
    spec = jobs.TrainSpec("ddpm", "moons", overrides=["timesteps=20", "hidden=16", "depth=1", "batch_size=16"],
                          sample_every=0, preview_steps=2, n_preview=16, device="cpu", **kw)
    return jobs.create_run(RunStore(tmp_path), spec)


def kinds(events):
    return [e.kind for e in events]


def test_tail_sees_only_what_is_added(tmp_path):
    run = _run(tmp_path, steps=100)
    run.append_metrics([{"step": 1, "loss": 3.0}])  # there before the watcher: the files show it
    tail = RunTail(run)
    assert tail.poll() == []

    run.append_metrics([{"step": 2, "loss": 2.0}, {"step": 3, "loss": 1.5}])
    with open(run.path / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 4, "lo')  # a row being written: it waits for its end of line
    got = tail.poll()
    rows = [e.data for e in got if e.kind == ev.METRICS]
    assert [r["step"] for r in rows] == [2, 3] and rows[1]["loss"] == 1.5
    prog = next(e for e in got if e.kind == ev.PROGRESS)
    assert prog.data == {"done": 3, "total": 100} and tail.step == 3
    with open(run.path / "metrics.jsonl", "ab") as f:
        f.write(b'ss": 1.0}\n')
    assert [e.data["step"] for e in tail.poll() if e.kind == ev.METRICS] == [4]

    run.update(status="running", message="training")
    save_png(np.zeros((8, 8, 3), np.uint8), run.sample_dir() / "step_00000004.png")
    save_png(np.full((4, 4, 3), 200, np.uint8), run.sample_dir() / "view_energy_00000004.png")
    run.save_checkpoint(4, {"w": torch.zeros(1)})
    got = tail.poll()
    assert set(kinds(got)) >= {ev.STATUS, ev.SAMPLES, ev.CHECKPOINT}
    status = next(e for e in got if e.kind == ev.STATUS)
    assert status.data["status"] in ("running", "interrupted")  # nobody holds this run's lock
    sample = next(e for e in got if e.kind == ev.SAMPLES)
    assert sample.data["step"] == 4 and sample.data["path"].endswith("step_00000004.png")
    assert sample.data["views"]["energy"].shape == (4, 4, 3)
    assert next(e for e in got if e.kind == ev.CHECKPOINT).data == {"step": 4}
    assert [e for e in tail.poll() if e.kind != ev.STATUS] == []  # nothing new, nothing told twice


def test_watch_job_ends_with_the_run(tmp_path):
    run = _run(tmp_path, steps=10)
    for _ in jobs.train(run):
        pass
    bus = ev.EventBus()
    seen: list[ev.Event] = []
    bus.subscribe(seen.append)
    tail = RunTail(run, from_start=True)
    steps = list(watch(run, bus=bus, tail=tail, interval=0.01))
    assert steps[-1] == 10 and len(steps) == 1  # completed and unlocked: one look, then done
    assert [e.data["step"] for e in seen if e.kind == ev.METRICS][-1] == 10


def _train_in_thread(run, control):
    torch.set_num_threads(1)
    done = threading.Event()

    def go():
        try:
            for _ in jobs.train(run, control=control):
                pass
        finally:
            done.set()

    threading.Thread(target=go, daemon=True).start()
    return done


def _wait(pred, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_job_pauses_resumes_and_stops_through_the_control_file(tmp_path):
    run = _run(tmp_path, steps=100_000)
    (run.path / CONTROL_FILE).write_text('{"command": "stop"}')  # left from an earlier job: ignored
    control = FileControl(run, poll_s=0.02)
    done = _train_in_thread(run, control)
    assert _wait(lambda: run.info()["status"] == "running" and run.info().get("owner"))
    watcher = RemoteControl(run)  # what a watching window presses
    watcher.pause()
    assert _wait(lambda: run.info()["status"] == "paused")
    step = run.info()["step"]
    assert step > 0 and run.checkpoints()[-1][0] == step  # pausing checkpoints
    time.sleep(0.3)
    assert run.info()["step"] == step and not done.is_set()  # really held
    watcher.resume()
    assert _wait(lambda: run.info()["status"] == "running")
    send(run, "stop")
    assert done.wait(30)
    info = run.info()
    assert info["status"] == "stopped" and info["step"] > step


def test_a_trainer_reads_its_control_file_every_tenth_of_a_second_and_no_more_often(tmp_path):
    """Pause / Step / Stop from a watching window reach the trainer within POLL_S (0.1 s: a Pause
    used to take up to 0.5 s to be heard), and the file is not read at every step."""
    run = _run(tmp_path, steps=10)
    control = FileControl(run)
    assert POLL_S == 0.1 and not control.paused  # the first look
    send(run, "pause")
    time.sleep(POLL_S * 1.5)
    assert control.paused  # heard within one period
    slow = FileControl(run, poll_s=60)  # (it removes the file: a new job)
    assert not slow.paused
    send(run, "pause")
    assert not slow.paused  # looked at just now: not again within its period
    slow.poll(force=True)
    assert slow.paused


def test_tail_publishes_the_steering_and_preview_costs_the_trainer_wrote(tmp_path):
    run = _run(tmp_path, steps=100)
    run.update(steering=[{"step": 3, "changes": {"lr": [1e-3, 2e-3]}}])  # before the watcher: not news
    tail = RunTail(run)
    run.update(steering=[{"step": 3, "changes": {"lr": [1e-3, 2e-3]}}, {"step": 9, "changes": {"lr": [2e-3, 5e-4]}}])
    steered = [e.data for e in tail.poll() if e.kind == ev.STEERED]
    assert steered == [{"step": 9, "changes": {"lr": [2e-3, 5e-4]}}]
    assert not [e for e in tail.poll() if e.kind == ev.STEERED]  # once

    run.note_preview(10, 0.25, 50)  # the trainer notes a preview's cost before its PNG
    save_png(np.zeros((4, 4, 3), np.uint8), run.sample_dir() / "step_00000010.png")
    samples = [e.data for e in tail.poll() if e.kind == ev.SAMPLES]
    assert samples[0]["step"] == 10 and samples[0]["seconds"] == 0.25 and samples[0]["sample_steps"] == 50
    assert run.preview_costs() == {10: (0.25, 50)}
