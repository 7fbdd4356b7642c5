"""Time-lapse of a run's logged previews (core/timelapse.py, `genstudio timelapse`) and the
training job's own STAGE events (what the CLI's bar shows while a preview draws)."""

from pathlib import Path

import imageio.v2 as iio
import numpy as np
import pytest

from genstudio.cli import main
from genstudio.core import events as ev
from genstudio.core import jobs
from genstudio.core.imaging import image_grid, save_png
from genstudio.core.registry import registry
from genstudio.core.runs import RunStore
from genstudio.core.timelapse import (
    FRAME_MIN,
    frame_label,
    labelled_frame,
    logged_previews,
    loss_at,
    timelapse_frames,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A DDPM run on digits, 20 steps with a preview every 5 (4 previews), trained by the CLI."""
    import os

    root = tmp_path_factory.mktemp("tl")
    old = os.environ.get("GENSTUDIO_DATA_DIR")
    os.environ["GENSTUDIO_DATA_DIR"] = str(root)
    try:
        assert main(["train", "ddpm", "--data", "digits", "--steps", "20", "--set", "timesteps=20",
                     "--set", "channels=8", "--set", "num_res=1", "--sample-every", "5", "--checkpoint-every", "0", "--log-every", "5",
                     "--n-preview", "16", "--preview-steps", "2"]) == 0
        run = RunStore(root).list()[0]
    finally:
        if old is None:
            os.environ.pop("GENSTUDIO_DATA_DIR")
        else:
            os.environ["GENSTUDIO_DATA_DIR"] = old
    return run


def test_loss_at_takes_the_last_logged_row():
    steps, losses = np.array([10, 20, 30.0]), np.array([1.0, np.nan, 0.5])
    assert loss_at(steps, losses, 5) is None
    assert loss_at(steps, losses, 10) == 1.0
    assert loss_at(steps, losses, 25) == 1.0  # the NaN row is skipped
    assert loss_at(steps, losses, 99) == 0.5
    assert frame_label(1500, 0.123456) == "step 1,500 \u00b7 loss 0.1235" and frame_label(3, None) == "step 3"


def test_small_grids_are_upscaled_crisply_and_padded_to_one_size():
    g = np.random.default_rng(0).uniform(-1, 1, (4, 1, 8, 8))
    small = image_grid(g)  # 19 x 19 px
    f = labelled_frame(small, "step 1", size=(600, 640))
    assert f.shape[0] > 600 and f.shape[1] == 640
    s = -(-FRAME_MIN // 19)  # whole-number nearest factor
    body = f[f.shape[0] - 600:]
    y0, x0 = (600 - 19 * s) // 2, (640 - 19 * s) // 2
    np.testing.assert_array_equal(body[y0:y0 + 19 * s:s, x0:x0 + 19 * s:s], small)  # nearest: pixels kept
    assert (f[:20].max(axis=2) > 200).any()  # the label is drawn in white


def test_frames_of_different_sizes_share_one(tmp_path):
    for step, n in ((10, 4), (20, 16)):  # a steered n_preview changes the grid mid-run
        save_png(image_grid(np.zeros((n, 1, 8, 8))), tmp_path / f"step_{step:08d}.png")
    save_png(np.zeros((5, 5, 3), np.uint8), tmp_path / "view_density_00000010.png")
    assert sorted(logged_previews(tmp_path)[1]) == ["density"]
    n, frames = timelapse_frames(tmp_path, [{"step": 10, "loss": 2.0}])
    shapes = {f.shape for f in frames}
    assert n == 2 and len(shapes) == 1


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_cli_writes_every_preview(tiny_run, tmp_path, suffix, capsys, monkeypatch):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(tiny_run.path.parent.parent))
    out = tmp_path / f"tl{suffix}"
    assert main(["timelapse", tiny_run.id, "--out", str(out), "--fps", "2"]) == 0
    assert Path(capsys.readouterr().out.strip()) == out
    back = iio.mimread(out)
    assert len(back) == 4 == len(logged_previews(tiny_run.sample_dir())[0])
    assert min(back[0].shape[:2]) >= FRAME_MIN  # 4x4 digits upscaled to readable cells


def test_cli_errors_are_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(tiny_run.path.parent.parent))
    assert main(["timelapse", "no-such-run", "--out", str(tmp_path / "a.gif")]) == 2
    assert main(["timelapse", tiny_run.id, "--out", str(tmp_path / "a.avi")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("genstudio: error: ") for e in err)
    assert "no-such-run" in err[0] and ".gif or .mp4" in err[1]
    assert not (tmp_path / "a.avi").exists()


def test_train_job_emits_a_stage_before_each_preview(tmp_path, test_plugin):
    store = RunStore(tmp_path / "s")
    run = jobs.create_run(store, jobs.TrainSpec("gaussfit", "moons", steps=120, log_every=10, sample_every=50,
                                                checkpoint_every=0))
    bus = ev.EventBus()
    seen: list[tuple[str, object]] = []
    bus.subscribe(lambda e: seen.append((e.kind, e.data.get("stage", e.data.get("step")))))
    for _ in jobs.train(run, bus=bus):
        pass
    stages = [(k, v) for k, v in seen if k in (ev.STAGE, ev.SAMPLES)]
    # first preview at 5 % (step 6), the cadence (50, 100), then the final checkpoint and preview
    assert stages == [(ev.STAGE, "preview"), (ev.SAMPLES, 6), (ev.STAGE, "preview"), (ev.SAMPLES, 50),
                      (ev.STAGE, "preview"), (ev.SAMPLES, 100), (ev.STAGE, "final checkpoint"),
                      (ev.STAGE, "final preview"), (ev.SAMPLES, 120)]


@pytest.fixture
def test_plugin():
    from tests.fakeplugins import GaussFit

    reg = registry()
    reg.add_class(GaussFit, "tests/fakeplugins.py", "gaussfit")
    yield
    reg.entries.pop("gaussfit", None)


def test_samples_at_every_checkpoint_from_the_cli(tmp_path, capsys, monkeypatch):
    """`sample --checkpoint all --gif`: the same seed from each checkpoint, one labelled frame per
    checkpoint; --keep-checkpoints keeps that many, and a DDPM keeps its newest 3 by default."""
    from PIL import Image

    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(tmp_path))
    tiny = ["--set", "timesteps=10", "--set", "hidden=16", "--sample-every", "0", "--log-every", "4"]
    assert main(["train", "ddpm", "--data", "8gaussians", "--steps", "20", "--checkpoint-every", "4", *tiny]) == 0
    assert main(["train", "ddpm", "--data", "moons", "--steps", "20", "--checkpoint-every", "4",
                 "--keep-checkpoints", "-1", *tiny]) == 0
    runs = {r.info()["dataset"]: r for r in RunStore(tmp_path).list()}
    assert [s for s, _ in runs["8gaussians"].checkpoints()] == [12, 16, 20]
    run = runs["moons"]
    assert [s for s, _ in run.checkpoints()] == [4, 8, 12, 16, 20]
    capsys.readouterr()
    out = tmp_path / "evo.gif"
    assert main(["sample", str(run.path), "--checkpoint", "all", "--gif", str(out), "--n", "100"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with Image.open(out) as im:
        assert im.n_frames == 5
        frames = []
        for i in range(5):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")).astype(int))
    assert np.abs(frames[0] - frames[-1]).mean() > 0.5  # the model moved between step 4 and step 20
    assert main(["sample", str(run.path), "--checkpoint", "8", "--n", "4"]) == 0
    assert main(["sample", str(run.path), "--checkpoint", "9", "--n", "4"]) == 2
    assert "no checkpoint at step 9 (has 4, 8, 12, 16, 20)" in capsys.readouterr().err
    assert main(["sample", str(run.path), "--checkpoint", "all"]) == 2  # all needs --gif
