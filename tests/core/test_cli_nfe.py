"""``genstudio nfe RUN``: a table of counted NFE and quality per sampler, and a CSV."""

from __future__ import annotations

from pathlib import Path

from genstudio.cli import main


def test_nfe_cli(capsys, tmp_path):
    assert main(["train", "ddpm", "--data", "8gaussians", "--steps", "20", "--set", "timesteps=50",
                 "--sample-every", "0", "--checkpoint-every", "10", "--seed", "1"]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    csv = tmp_path / "nfe.csv"
    assert main(["nfe", run_dir.name, "--samplers", "ddim,heun", "--max-nfe", "4", "--n", "64",
                 "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "energy" in out and "heun" in out
    lines = csv.read_text().strip().splitlines()
    assert lines[0] == "sampler,steps,nfe,energy,seconds"
    assert [ln.split(",")[:3] for ln in lines[1:]] == [
        ["ddim", "1", "1"], ["ddim", "2", "2"], ["ddim", "4", "4"], ["heun", "1", "1"], ["heun", "2", "3"]]
