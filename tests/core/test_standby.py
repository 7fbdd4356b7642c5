"""The warm trainer process: it does its imports first, then trains the one run it is handed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genstudio.core import jobs
from genstudio.core.runs import RunStore
from genstudio.core.standby import request

ROOT = Path(__file__).resolve().parents[2]


def _standby(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    ready = tmp_path / "standby.ready"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENSTUDIO_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "genstudio", "standby", str(ready)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < end, "the standby never got warm"
        time.sleep(0.05)
    return proc, ready


def test_a_warm_standby_trains_the_run_it_is_handed_and_logs_to_its_file(tmp_path):
    store = RunStore(tmp_path / "data")
    run = jobs.create_run(store, jobs.TrainSpec("ddpm", "moons", steps=3, overrides=["timesteps=10", "hidden=16"],
                                                sample_every=0, preview_steps=2, n_preview=8, device="cpu"))
    proc, _ = _standby(tmp_path)
    assert run.info()["status"] == "created"  # warm, and waiting: nothing trained before the request
    log = run.path / "launch.log"
    t = time.monotonic()
    proc.stdin.write(json.dumps({"argv": ["resume", str(run.path)], "log": str(log)}) + "\n")
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0
    took = time.monotonic() - t
    info = run.info()
    assert info["status"] == "completed" and info["step"] == 3
    assert "finished 3 steps" in log.read_text()  # its output went to the run's file
    assert took < 30, took  # no import torch after the request (a cold process needs seconds more)


def test_end_of_file_ends_a_standby_without_training(tmp_path):
    proc, _ = _standby(tmp_path)
    proc.stdin.close()  # the window closed
    assert proc.wait(timeout=60) == 0
    assert not (tmp_path / "data" / "runs").exists() or not any((tmp_path / "data" / "runs").iterdir())


def test_a_request_is_one_json_line_with_argv():
    assert request(io.StringIO('{"argv": ["resume", "r"]}\n')) == {"argv": ["resume", "r"]}
    assert request(io.StringIO("")) is None
    with pytest.raises(ValueError, match="argv"):
        request(io.StringIO('{"run": "r"}\n'))
