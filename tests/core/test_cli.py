"""The command line: tables, one-line errors, and a train -> sample round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genstudio.cli import main


def test_plugins_and_datasets_tables(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["id", "family", "faces", "status"]
    assert any(line.startswith("ddpm") and line.rstrip().endswith("ok") for line in out.splitlines())
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("moons", "8gaussians", "digits", "folder:PATH"):
        assert name in out


@pytest.mark.parametrize("argv, msg", [
    (["train", "nope", "--data", "moons", "--steps", "1"], "unknown plugin 'nope'"),
    (["train", "ddpm", "--data", "nope", "--steps", "1"], "unknown dataset 'nope'"),
    (["train", "ddpm", "--data", "moons", "--steps", "1", "--set", "bogus=1"], "unknown setting 'bogus'"),
    (["train", "ddpm", "--data", "moons", "--steps", "1", "--set", "lr"], "expected key=value"),
    (["sample", "no-such-run"], "no run 'no-such-run'"),
    (["train", "ddpm", "--data", "moons", "--steps", "1", "--device", "cuda:7"], "device"),
])
def test_errors_are_one_line(argv, msg, capsys):
    if "cuda:7" in argv:
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("machine has 8 GPUs")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genstudio: error:") and msg in err and "\n" not in err


def test_train_then_sample_cli(capsys, tmp_path):
    assert main(["train", "ddpm", "--data", "8gaussians", "--steps", "30", "--set", "timesteps=50",
                 "--sample-every", "0", "--checkpoint-every", "10", "--seed", "1"]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (run_dir / "run.json").exists() and (run_dir / "checkpoints").is_dir()
    out_png = tmp_path / "s.png"
    assert main(["sample", run_dir.name, "--n", "16", "--steps", "10", "--sampler", "ddim",
                 "--out", str(out_png), "--trajectory"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert Path(lines[0]) == out_png and Image.open(out_png).size[0] > 0
    z = np.load(lines[1])
    assert z["x"].shape == (16, 2) and z["traj_x"].shape == (10, 16, 2)  # one state per DDIM step
    # by default no trajectory is kept (it costs time and memory); --trajectory K thins it
    assert main(["sample", run_dir.name, "--n", "16", "--steps", "10", "--sampler", "ddim"]) == 0
    z = np.load(capsys.readouterr().out.strip().splitlines()[1])
    assert z["x"].shape == (16, 2) and "traj_x" not in z.files
    assert main(["sample", run_dir.name, "--n", "16", "--steps", "10", "--sampler", "ddim", "--trajectory", "4"]) == 0
    z = np.load(capsys.readouterr().out.strip().splitlines()[1])
    assert z["traj_x"].shape == (4, 16, 2)  # steps 1, 5, 9 and the last


def test_sample_cli_class_guidance_eta(capsys, tmp_path):
    """--class/--guidance/--eta reach the plugin's sample() (same result as the job called directly);
    a flag the plugin's sampler does not take is a one-line error."""
    from genstudio.core import jobs
    from genstudio.core.runs import RunStore

    assert main(["train", "ddpm", "--data", "8gaussians", "--steps", "20", "--set", "timesteps=50",
                 "--set", "class_cond=true", "--sample-every", "0", "--checkpoint-every", "10"]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    out = tmp_path / "s.npz"
    assert main(["sample", run_dir.name, "--n", "32", "--steps", "5", "--sampler", "ddim", "--class", "3",
                 "--guidance", "4", "--eta", "0.5", "--seed", "2", "--out", str(out)]) == 0
    run = RunStore(run_dir.parent.parent).get(run_dir.name)
    ref = list(jobs.sample(run, n=32, steps=5, sampler="ddim", seed=2, cond=3, guidance=4.0, eta=0.5,
                           out=str(tmp_path / "ref.npz")))[-1]
    np.testing.assert_allclose(np.load(out)["x"], ref.x.numpy(), rtol=1e-6)
    uncond = list(jobs.sample(run, n=32, steps=5, sampler="ddim", seed=2, eta=0.5, out=str(tmp_path / "u.npz")))
    assert not np.allclose(uncond[-1].x.numpy(), ref.x.numpy())
    capsys.readouterr()
    assert main(["train", "flow_matching", "--data", "8gaussians", "--steps", "2", "--sample-every", "0"]) == 0
    fm = Path(capsys.readouterr().out.strip().splitlines()[-1]).name
    assert main(["sample", fm, "--eta", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "does not take --eta" in err and "\n" not in err.strip()


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "genstudio", "datasets"], capture_output=True, text=True)
    assert r.returncode == 0 and "digits" in r.stdout
