"""``genstudio guidance RUN``: a table of accuracy and diversity per scale, a CSV, and a clear error
for a run trained without class conditioning."""

from __future__ import annotations

from pathlib import Path

from genstudio.cli import main


def _train(capsys, *extra: str) -> str:
    assert main(["train", "ddpm", "--data", "8gaussians", "--steps", "20", "--set", "timesteps=50", *extra,
                 "--sample-every", "0", "--checkpoint-every", "10", "--seed", "1"]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1]).name


def test_guidance_cli(capsys, tmp_path):
    run = _train(capsys, "--set", "class_cond=true")
    csv = tmp_path / "g.csv"
    assert main(["guidance", run, "--scales", "0,2", "--n", "10", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "diversity" in out
    lines = csv.read_text().strip().splitlines()
    assert lines[0] == "scale,accuracy,diversity,seconds"
    rows = [ln.split(",") for ln in lines[1:]]
    assert [r[0] for r in rows] == ["0.0", "2.0"] and all(0 <= float(r[1]) <= 1 for r in rows)


def test_guidance_cli_needs_class_cond(capsys):
    run = _train(capsys)
    assert main(["guidance", run, "--scales", "1", "--n", "5"]) != 0
    assert "class-conditional" in capsys.readouterr().err
