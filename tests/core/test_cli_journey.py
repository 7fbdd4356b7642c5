"""Issue #12: the command-line journey of a new user following README.md on a fresh clone.

Tiny runs throughout: 8 Gaussians with a 50-step chain, digits with the plugin's tiny network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genstudio.cli import _Progress, build_parser, main, panel_ids
from genstudio.core import events as ev
from genstudio.core.runs import RunStore


def _train(capsys, *extra: str, data: str = "8gaussians", steps: int = 20) -> str:
    assert main(["train", "ddpm", "--data", data, "--steps", str(steps), "--set", "timesteps=50",
                 "--set", "hidden=32", "--set", "depth=1", "--sample-every", "0", "--checkpoint-every", "10",
                 "--preview-steps", "5", "--seed", "1", *extra]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1]).name


def _run(ref: str):
    return RunStore().get(ref)


# 1. guidance: DDIM at the run's sample_steps, 25 per class, a bar per scale ---------------------
def test_guidance_defaults_are_quick_with_a_bar_per_scale(capsys):
    run = _train(capsys, "--set", "class_cond=true", "--set", "sample_steps=7")
    g = build_parser().parse_args(["guidance", run])
    assert g.n == 25 and g.sampler is None and g.steps is None
    assert main(["guidance", run, "--scales", "0,2"]) == 0
    out, err = capsys.readouterr()
    assert "sampler ddim" in out and "25 per class" in out
    assert "scale 0:" in err and "scale 2:" in err and "0/7" in err  # the run's sample_steps, per scale


def test_guidance_sweep_on_step_and_sampler(capsys):
    from genstudio.core.jobs import load_model
    from genstudio.core.tools.guidance import default_sampler, guidance_sweep

    ref = _train(capsys, "--set", "class_cond=true", "--set", "sample_steps=4")
    model, ds, _ = load_model(_run(ref), "cpu")
    assert default_sampler(model) == "ddim"
    seen = []
    rows = guidance_sweep(model, ds, (1.0,), n_per_class=3, on_step=lambda w, s, t: seen.append((w, s, t)))
    assert rows[0]["sampler"] == "ddim" and seen[-1] == (1.0, 4, 4) and len(seen) == 4


# 2. eval: which metrics fit which data; progress inside a batch ---------------------------------
def test_eval_image_metric_on_points_names_the_points_metrics(capsys):
    run = _train(capsys)
    assert main(["eval", run, "--metrics", "fcd,kid,is,pr"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'fcd'" in err and "image" in err and "energy, mmd, w2, w1, sliced, pr, nll, modes" in err


def test_eval_progress_moves_inside_a_batch(capsys):
    from genstudio.core.eval import run_eval
    from genstudio.core.events import EventBus

    run = _train(capsys)
    bus = EventBus()
    stages = []
    bus.subscribe(lambda e: stages.append(e.data["stage"]), ev.PROGRESS)
    run_eval(_run(run), "energy", n=40, n_boot=0, batch_size=20, steps=5, sampler="ddim", bus=bus)
    inner = [s for s in stages if "batch step" in s]
    assert any(s.startswith("sampling 0/40") for s in inner) and any(s.startswith("sampling 20/40") for s in inner)


# 3. the training bar: time-based refresh, a stage while previews draw --------------------------
def test_progress_bar_counts_every_step_and_shows_a_stage():
    prog = _Progress(total=120, initial=0, desc="ddpm")
    for i in range(1, 121):
        prog(ev.Event(ev.PROGRESS, "r", {"done": i, "total": 120}))
    assert prog.bar.n == 120
    prog.stage("final checkpoint, preview")
    assert "[final checkpoint, preview]" in prog.bar.desc
    prog(ev.Event(ev.PROGRESS, "r", {"done": 120, "total": 120}))
    assert "[" not in prog.bar.desc
    prog.bar.close()


def test_train_cli_shows_the_final_preview_stage(capsys):
    _train(capsys)  # output consumed; run again to look at stderr
    assert main(["train", "ddpm", "--data", "8gaussians", "--steps", "3", "--set", "timesteps=20",
                 "--set", "hidden=16", "--set", "depth=1", "--sample-every", "0", "--preview-steps", "2"]) == 0
    err = capsys.readouterr().err  # the job's own STAGE events name what it does after the last step
    assert "[final checkpoint]" in err and "[final preview]" in err


# 4. interp: a progress line per stage -----------------------------------------------------------
def test_interp_shows_its_stages(capsys, tmp_path):
    run = _train(capsys)
    out = tmp_path / "strip.png"
    assert main(["interp", run, "--a", "data:0", "--b", "seed:1", "--frames", "3", "--steps", "5",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    for stage in ("inverting A and B", "reconstructing A and B", "decoding the slerp strip",
                  "decoding the lerp strip"):
        assert stage in err
    assert out.is_file()


# 5. shot: the panel ids in --help; View → Save screenshot… ------------------------------------
def test_shot_help_lists_the_panel_ids(capsys):
    from importlib.metadata import entry_points

    with pytest.raises(SystemExit):
        main(["shot", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert panel_ids() and all(p in text for p in panel_ids())
    for ep in entry_points(group="genstudio.panels"):
        try:
            cls = ep.load()
        except Exception:  # noqa: BLE001 - a panel needing an optional GL stack
            continue
        assert cls.panel_id == ep.name


def test_view_menu_saves_a_screenshot(qapp, tmp_path):
    from genstudio.qt.main_window import MainWindow

    w = MainWindow(store=RunStore(tmp_path / "data"), settings_path=tmp_path / "s.ini", restore=False)
    try:
        w.resize(900, 600)
        w.show()
        qapp.processEvents()
        view = next(m for m in (a.menu() for a in w.menuBar().actions()) if m and m.title() == "&View")
        act = next(a for a in view.actions() if a.text() == "Save screenshot…")
        target = tmp_path / "win"
        w.choose_screenshot_file = lambda: str(target)
        act.trigger()
        png = tmp_path / "win.png"
        assert png.is_file() and Image.open(png).size[0] > 100
        w.choose_screenshot_file = lambda: None  # cancelled: nothing written, no error
        assert w.save_screenshot() is None
    finally:
        w.close()
        w.deleteLater()
        qapp.processEvents()


# 6. --help shows defaults; --list-settings ------------------------------------------------------
def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--steps STEPS (default: 2000)" in text and "(default: 500)" in text and "(default: None)" not in text


def test_list_settings(capsys):
    assert main(["train", "ddpm", "--list-settings"]) == 0
    out = capsys.readouterr().out
    assert "lr=0.001  (float)  range: 1e-06 .. 1" in out and "Adam learning rate" in out
    assert "choices:" in out  # e.g. the schedule
    assert main(["train", "ddpm"]) == 2
    assert "--data" in capsys.readouterr().err


# 7. resume of a completed run without --steps ---------------------------------------------------
def test_resume_completed_run_refuses_and_writes_nothing(capsys):
    ref = _train(capsys)
    run = _run(ref)
    before = {p: p.stat().st_mtime_ns for p in run.path.rglob("*") if p.is_file()}
    assert main(["resume", ref]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"genstudio: error: run {run.id} is completed (20/20 steps); pass --steps to train further"
    assert {p: p.stat().st_mtime_ns for p in run.path.rglob("*") if p.is_file()} == before
    assert main(["resume", ref, "--steps", "2"]) == 0  # --steps still trains further
    assert json.loads((run.path / "run.json").read_text())["step"] == 22


# 8. pruned checkpoints are said once in the run log ---------------------------------------------
def test_checkpoint_pruning_is_logged_once(capsys):
    ref = _train(capsys, "--checkpoint-every", "2")
    run = _run(ref)
    assert len(run.checkpoints()) == 3
    assert run.read_log().count("[checkpoints] keeping the newest 3; older ones are deleted") == 1


# 9. sample PNGs of images are upscaled; the NPZ is not -----------------------------------------
def test_image_preview_cells_are_at_least_64px():
    from genstudio.core.imaging import readable_scale
    from genstudio.core.modality import MODALITIES

    assert readable_scale(8, 8) == 8 and readable_scale(28, 28) == 3 and readable_scale(64, 64) == 1
    img = MODALITIES["image"].preview(torch.zeros(4, 1, 8, 8))
    assert img.shape == ((2 * 9 + 1) * 8, (2 * 9 + 1) * 8, 3)


def test_sample_digits_png_is_readable_npz_unchanged(capsys, tmp_path):
    assert main(["train", "ddpm", "--data", "digits", "--steps", "1", "--set", "timesteps=20", "--set", "channels=8",
                 "--set", "batch_size=8", "--sample-every", "0", "--preview-steps", "2", "--n-preview", "4"]) == 0
    ref = Path(capsys.readouterr().out.strip().splitlines()[-1]).name
    assert main(["sample", ref, "--n", "4", "--steps", "2", "--sampler", "ddim", "--no-trajectory"]) == 0
    png, npz = capsys.readouterr().out.strip().splitlines()[-2:]
    w, h = Image.open(png).size
    assert w >= 2 * 64 and h >= 2 * 64
    assert np.load(npz)["x"].shape == (4, 1, 8, 8)


def test_gui_without_a_display_is_one_line_not_an_abort(monkeypatch, capsys):
    """Qt would abort (SIGABRT) with a misleading libxcb-cursor0 hint; the CLI says what is missing."""
    import sys as _sys

    monkeypatch.setattr(_sys, "platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert main(["gui"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genstudio: error: no display") and "xvfb-run" in err and "\n" not in err


# 10. sample --gif: the Sampler's x_t | x0 animation from the command line -----------------------
def test_sample_writes_the_trajectory_animation(capsys, tmp_path):
    import imageio.v2 as iio

    from genstudio.core.imaging import trajectory_frame, trajectory_label

    ref = _train(capsys)
    mp4, gif = tmp_path / "traj.mp4", tmp_path / "traj.gif"
    assert main(["sample", ref, "--n", "50", "--steps", "6", "--sampler", "ddim", "--gif", str(mp4)]) == 0
    out, err = capsys.readouterr()
    png, npz, anim = out.strip().splitlines()[-3:]
    assert Path(anim) == mp4 and Path(png).is_file()
    assert "sampling" in err and "frames" in err  # both bars
    traj = np.load(npz)
    states = len(traj["traj_x"])
    assert states == 6  # one state per DDIM step
    x, x0 = torch.from_numpy(traj["traj_x"][0]), torch.from_numpy(traj["traj_x0"][0])
    from genstudio.core.imaging import data_lim

    want = trajectory_frame(x, x0, trajectory_label(0, 6, float(traj["traj_t"][0])), lim=data_lim(x))
    with iio.get_reader(mp4) as r:
        frames = [f for f in r]  # list(r) asks len(), which is inf for a video
    assert len(frames) == states and frames[0].shape[:2] == (want.shape[0] + want.shape[0] % 2,
                                                              want.shape[1] + want.shape[1] % 2)
    assert frames[0].shape[1] >= 2 * 512  # x_t | x0, 512 px each
    body = slice(36, want.shape[0])  # below the label strips (the step number is the job's own)
    assert np.abs(frames[0][body, :want.shape[1]].astype(int) - want[body].astype(int)).mean() < 12
    assert (frames[0][:18] > 200).any()  # the "step k/N · t=..." label is drawn
    assert main(["sample", ref, "--n", "20", "--steps", "3", "--sampler", "ddim", "--gif", str(gif)]) == 0
    capsys.readouterr()
    with Image.open(gif) as im:
        assert im.n_frames == 3 and im.size[0] >= 2 * 512


def test_sample_gif_bad_suffix_is_one_line(capsys, tmp_path):
    ref = _train(capsys)
    assert main(["sample", ref, "--gif", str(tmp_path / "traj.avi")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "traj.avi" in err and ".gif or .mp4" in err
    assert not (tmp_path / "traj.avi").exists()
    assert main(["sample", ref, "--gif", str(tmp_path / "t.gif"), "--no-trajectory"]) == 2
    assert "--no-trajectory" in capsys.readouterr().err
