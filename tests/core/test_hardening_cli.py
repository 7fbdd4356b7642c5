"""Issue #11, CLI values: a bad number, device, setting or path is one line on stderr and status 2,
and nothing (no run folder, no output folder) is created."""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import pytest

from genstudio.cli import main
from genstudio.core.registry import registry
from tests.fakeplugins import GaussFit

TRAIN = ["train", "gaussfit", "--data", "8gaussians"]


@pytest.fixture(autouse=True)
def _fakes():
    registry().add_class(GaussFit, "tests", "gaussfit")


def _runs() -> list[Path]:
    runs = Path(os.environ["GENSTUDIO_DATA_DIR"]) / "runs"
    return sorted(runs.iterdir()) if runs.is_dir() else []


def _one_line_error(argv: list[str], capsys, msg: str) -> str:
    """Run ``argv``: status 2, one ``genstudio: error:`` line naming ``msg``; returns the line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().split("\r")[-1].splitlines()[-1]  # after any progress bar
    assert err.startswith("genstudio: error:") and "\n" not in err and "Traceback" not in err, err
    assert msg in err, err
    return err


def _trained(capsys, plugin: str = "gaussfit", data: str = "8gaussians", *extra: str) -> str:
    assert main(["train", plugin, "--data", data, "--steps", "2", "--sample-every", "0", *extra]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1]).name


@pytest.mark.parametrize("args, msg", [
    (["--steps", "-5"], "--steps: must be >= 1, got -5"),
    (["--steps", "0"], "--steps: must be >= 1, got 0"),
    (["--checkpoint-every", "-1"], "--checkpoint-every: must be >= 0"),
    (["--sample-every", "-1"], "--sample-every: must be >= 0"),
    (["--log-every", "0"], "--log-every: must be >= 1"),
    (["--n-preview", "-1"], "--n-preview: must be >= 0"),
    (["--preview-steps", "-3"], "--preview-steps: must be >= 0"),
    (["--seed", str(2**70)], "--seed: must be in [0, 4294967295]"),
    (["--seed", "-1"], "--seed: must be in [0, 4294967295]"),
    (["--steps", "ten"], "expected a whole number, got 'ten'"),
    (["--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N, mps"),
    (["--set", "batch_size=1e400"], "batch_size: expected int, got '1e400'"),
    (["--set", "batch_size=2.5e0"], "batch_size: expected int, got '2.5e0'"),
    (["--set", "lr=nan"], "lr: expected a finite number"),
    (["--set", "lr=inf"], "lr: expected a finite number"),
])
def test_bad_train_values_create_no_run(args, msg, capsys):
    _one_line_error([*TRAIN, *args], capsys, msg)
    assert _runs() == []


def test_zero_every_still_means_only_at_the_end(capsys):
    """0 is documented as 'never' for --sample-every / --checkpoint-every: the run completes."""
    run = _trained(capsys, "gaussfit", "8gaussians", "--checkpoint-every", "0")
    assert [p.name for p in _runs()] == [run]


@pytest.mark.parametrize("argv, msg", [
    (["sample", "R", "--n", "-5"], "--n: must be >= 1, got -5"),
    (["sample", "R", "--n", "0"], "--n: must be >= 1, got 0"),
    (["sample", "R", "--steps", "0"], "--steps: must be >= 1"),
    (["resume", "R", "--steps", "-1"], "--steps: must be >= 1, got -1"),
    (["interp", "R", "--a", "seed:1", "--b", "seed:2", "--frames", "0"], "--frames: must be >= 2, got 0"),
    (["nfe", "R", "--max-nfe", "-1"], "--max-nfe: must be >= 1, got -1"),
    (["eval", "R", "--n", "0"], "--n: must be >= 1"),
    (["eval", "R", "--boot", "-1"], "--boot: must be >= 0"),
    (["guidance", "R", "--n", "0"], "--n: must be >= 1"),
    (["eval", "R", "--inception", "/no/such/weights.pth"], "no file '/no/such/weights.pth'"),
])
def test_bad_values_of_run_commands_fail_before_the_run_loads(argv, msg, capsys):
    run = _trained(capsys)
    before = sorted(p.relative_to(_runs()[0]) for p in _runs()[0].rglob("*"))
    _one_line_error([a if a != "R" else run for a in argv], capsys, msg)
    assert sorted(p.relative_to(_runs()[0]) for p in _runs()[0].rglob("*")) == before


@pytest.mark.parametrize("argv", [
    ["sample", "R", "--out", "{tmp}/no/such/dir/s.png"],
    ["interp", "R", "--a", "seed:1", "--b", "seed:2", "--out", "{tmp}/no/such/dir/i.png"],
    ["nfe", "R", "--csv", "{tmp}/no/such/dir/n.csv"],
    ["guidance", "R", "--csv", "{tmp}/no/such/dir/g.csv"],
    ["shot", "--out", "{tmp}/no/such/dir/shot.png"],
])
def test_out_needs_an_existing_folder(argv, tmp_path, capsys):
    """Checked when the arguments are read, before the run (here: none) is even looked up."""
    _one_line_error([a.format(tmp=tmp_path) for a in argv], capsys, "/no/such/dir' does not exist")
    assert not (tmp_path / "no").exists()


def test_out_into_an_existing_folder_creates_only_the_file(capsys, tmp_path):
    run = _trained(capsys)
    out = tmp_path / "s.npz"
    assert main(["sample", run, "--n", "4", "--out", str(out)]) == 0
    assert out.is_file()


def test_sample_option_outside_the_plugins_declared_range(capsys, tmp_path):
    """--eta is declared (0, 1) by ddpm; --sigma-schedule has choices: both are checked on the CLI."""
    run = _trained(capsys, "ddpm", "8gaussians", "--set", "timesteps=20")
    _one_line_error(["sample", run, "--sampler", "ddim", "--eta", "5"], capsys, "--eta: 5.0 is outside [0, 1]")
    _one_line_error(["sample", run, "--sampler", "ddim", "--eta", "nan"], capsys, "--eta: nan is outside")
    _one_line_error(["sample", run, "--sampler", "euler", "--sigma-schedule", "cubic"], capsys,
                    "--sigma-schedule: 'cubic' is not one of")
    assert not list((_runs()[0] / "samples").glob("sample_*")) if (_runs()[0] / "samples").is_dir() else True
    assert main(["sample", run, "--sampler", "ddim", "--eta", "0.5", "--n", "4", "--steps", "3",
                 "--out", str(tmp_path / "ok.npz")]) == 0


def test_inception_file_that_is_a_pickle_is_one_line(capsys, tmp_path):
    """A pickle of arbitrary objects is refused by weights_only loading: one line, not UnpicklingError."""
    bad = tmp_path / "weights.pth"
    bad.write_bytes(pickle.dumps(argparse.Namespace(a=1)))
    run = _trained(capsys, "gaussfit", "digits")
    _one_line_error(["eval", run, "--metrics", "fid", "--inception", str(bad), "--n", "8", "--boot", "0"], capsys,
                    "weights.pth is not an FID Inception-v3 state dict: it holds pickled objects")
    assert not (_runs()[0] / "evals").exists() or not list((_runs()[0] / "evals").iterdir())


def test_bad_inception_file_fails_before_any_sampling(capsys, tmp_path, monkeypatch):
    """The weights are checked before the samples are drawn (minutes on a real run), not after."""
    import genstudio.core.eval as E

    bad = tmp_path / "weights.pth"
    bad.write_bytes(pickle.dumps(argparse.Namespace(a=1)))
    run = _trained(capsys, "gaussfit", "digits")

    def no_sampling(*a, **k):
        raise AssertionError("sampled before checking the weights")

    monkeypatch.setattr(E, "_last_state", no_sampling)
    _one_line_error(["eval", run, "--metrics", "fid", "--inception", str(bad), "--n", "8", "--boot", "0"], capsys,
                    "is not an FID Inception-v3 state dict")
