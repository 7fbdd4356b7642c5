"""`genstudio ot A B`: the four numbers, the animation, a run's samples as a set, one-line errors."""

from __future__ import annotations

import pytest
from PIL import Image

from genstudio.cli import main
from genstudio.core import ot


def _numbers(out: str) -> dict[str, float]:
    rows = {}
    for line in out.splitlines():
        for key, label in (("w1", "W1 (exact"), ("w2", "W2 (exact"), ("sinkhorn", "Sinkhorn W2"),
                           ("sliced", "sliced W2")):
            if line.startswith(label):
                rows[key] = float(line.split()[-1])
    return rows


def test_ot_prints_the_costs_and_writes_the_animation(capsys, tmp_path):
    gif = tmp_path / "ot.gif"
    assert main(["ot", "8gaussians", "moons", "--n", "60", "--eps", "0.05", "--seed", "2", "--gif", str(gif),
                 "--frames", "6"]) == 0
    out = capsys.readouterr().out
    got = _numbers(out)
    want = ot.report(ot.dataset_points("8gaussians", 60, 2), ot.dataset_points("moons", 60, 3), 0.05, 2)
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-5)
    assert got["sinkhorn"] > got["w2"]
    with Image.open(gif) as im:
        assert im.n_frames == 6
    assert out.rstrip().endswith(str(gif))


def test_ot_with_a_runs_samples(capsys):
    from genstudio.core import jobs
    from genstudio.core.registry import registry
    from genstudio.core.runs import RunStore
    from tests.fakeplugins import GaussFit

    reg = registry()
    reg.add_class(GaussFit, "tests/fakeplugins.py", "gaussfit")
    try:
        run = jobs.create_run(RunStore(), jobs.TrainSpec(plugin="gaussfit", dataset="moons", steps=5, device="cpu",
                                                         checkpoint_every=5))
        for _ in jobs.train(run, device="cpu"):
            pass
        assert main(["ot", f"run:{run.id}", "moons", "--n", "30"]) == 0
        assert set(_numbers(capsys.readouterr().out)) == {"w1", "w2", "sinkhorn", "sliced"}
    finally:
        reg.entries.pop("gaussfit", None)


@pytest.mark.parametrize("argv, msg", [
    (["ot", "nope", "moons"], "unknown dataset 'nope'"),
    (["ot", "moons", "digits"], "not 2-D points"),
    (["ot", "run:no-such-run", "moons"], "no run 'no-such-run'"),
    (["ot", "moons", "rings", "--gif", "x.png"], "write a .gif or .mp4"),
    (["ot", "moons", "rings", "--eps", "0"], "--eps must be > 0"),
])
def test_ot_errors_are_one_line(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genstudio: error:") and msg in err and "\n" not in err
