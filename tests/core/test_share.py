"""Sharing a run without the app (issue #16): the HTML report (opened in headless Chromium, its
slider moved by the page's own script) and the TensorBoard export, after the fact and while training
(read back with TensorBoard's own EventAccumulator)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from genstudio.cli import main
from genstudio.core import jobs
from genstudio.core.eval import run_eval
from genstudio.core.report import build_report, svg_chart
from genstudio.core.runs import RunStore
from genstudio.core.tboard import read_back

CHROMIUM = "/usr/bin/chromium"
SPEC = dict(steps=40, overrides=["timesteps=20"], log_every=5, sample_every=10, checkpoint_every=20, n_preview=100)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """A DDPM run on 8 Gaussians: 40 steps, a preview every 10, both checkpoints evaluated."""
    store = RunStore(tmp_path_factory.mktemp("share"))
    run = jobs.create_run(store, jobs.TrainSpec("ddpm", "8gaussians", **SPEC))
    for _ in jobs.train(run):
        pass
    for step in (20, 40):
        run_eval(run, "energy,w2", n=200, n_boot=10, checkpoint=step)
    return run


@pytest.fixture(scope="module")
def report(shared_run, tmp_path_factory):
    return build_report(shared_run, tmp_path_factory.mktemp("report") / "out", n=64)


def test_report_is_self_contained_with_every_section(report):
    page = report.read_text("utf-8")
    assert not re.search(r"(src|href)=\"?(https?:)?//", page) and "http://" not in page and "https://" not in page
    for section in ("Settings", "Training curves", "Samples over training", "How a sample is made", "Sample quality"):
        assert f"<h2>{section}</h2>" in page
    assert page.count("<svg class=\"chart\"") >= 4  # loss, grad_norm ... and energy/w2 over the two evals
    assert "timesteps" in page and "real-vs-real floor" in page and "class=\"band\"" in page
    assert page.count("data:image/") == 1 + 4 + 1 + 20  # each player's first frame + its frames: 4 previews, 20 steps
    assert "step 1/20" in page and "step 20/20" in page
    assert report.stat().st_size < 3_000_000


def test_svg_chart_skips_nan_and_draws_a_band():
    svg = svg_chart([0, 1, 2, 3], [1.0, float("nan"), 3.0, 2.0], "loss", lo=[0.5, 0, 2.5, 1.5], hi=[1.5, 0, 3.5, 2.5],
                    floor=0.2)
    assert svg.startswith("<svg") and "<polygon" in svg and "class=\"floor\"" in svg
    assert len(re.search(r'polyline points="([^"]+)"', svg).group(1).split()) == 3
    assert svg_chart([1, 2], [float("nan")] * 2, "x") == ""


def _dump_dom(url: str, tmp_path: Path) -> str:
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (installer/install.sh --test)")
def test_chromium_moves_the_trajectory_slider(report, tmp_path):
    """The page's script, run by a real browser: #traj=K puts the slider, the image and its label at
    frame K (without it the first frame shows)."""
    def player_state(dom: str, pid: str) -> tuple[str, str, str]:
        img = re.search(rf'<img id="{pid}-img" data-index="(\d+)" src="([^"]{{60}})', dom)
        label = re.search(rf'<output id="{pid}-label">([^<]*)</output>', dom).group(1)
        return img.group(1), img.group(2), label

    url = report.resolve().as_uri()
    first = player_state(_dump_dom(url, tmp_path), "traj")
    moved = _dump_dom(url + "#traj=7&train=2", tmp_path)
    seventh = player_state(moved, "traj")
    assert first[0] == "0" and seventh[0] == "7"
    assert first[2] == "step 1/20 \u00b7 t=0.95" and seventh[2].startswith("step 8/20")
    assert player_state(moved, "train")[0] == "2" and player_state(moved, "train")[2].startswith("step 30 ")
    frames = re.search(r'<script type="application/json" id="traj-frames">(.*?)</script>', moved, re.S).group(1)
    assert f'"src": "{seventh[1]}' in frames.replace("<\\/", "</")  # the image really is frame 7's


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (installer/install.sh --test)")
def test_report_cli_and_screenshot(shared_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(shared_run.path.parent.parent))
    assert main(["report", shared_run.id, "--out", str(tmp_path / "r"), "--no-trajectory"]) == 0
    path = Path(capsys.readouterr().out.split()[0])
    assert path == tmp_path / "r" / "index.html" and "How a sample is made" not in path.read_text("utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1000,800", f"--screenshot={shot}",
                    path.as_uri()], capture_output=True, timeout=60, check=True)
    assert shot.stat().st_size > 10_000


def test_tensorboard_export_reads_back(shared_run, tmp_path, capsys, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(shared_run.path.parent.parent))
    assert main(["tensorboard", shared_run.id, "--out", str(tmp_path / "tb")]) == 0
    tags = read_back(tmp_path / "tb")
    assert tags["train/loss"] == list(range(5, 41, 5))
    assert tags["samples"] == [10, 20, 30, 40]
    assert tags["eval/w2"] == [20, 40] and tags["eval/energy_ci_low"] == [20, 40]
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    img = acc.Images("samples")[0]
    assert img.width > 100 and img.encoded_image_string[:4] == b"\x89PNG"
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["timesteps"].number_value == 20
    assert start.session_start_info.hparams["plugin"].string_value == "ddpm"
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert {"train/loss", "eval/w2"} <= {m.name.tag for m in exp.experiment.metric_infos}


def test_train_streams_to_tensorboard(tmp_path, capsys):
    out = tmp_path / "live"
    assert main(["train", "ddpm", "--data", "8gaussians", "--steps", "12", "--set", "timesteps=5", "--log-every", "3",
                 "--sample-every", "6", "--checkpoint-every", "0", "--n-preview", "50", "--tensorboard", str(out)]) == 0
    tags = read_back(out)
    assert tags["train/loss"] == [3, 6, 9, 12] and tags["samples"] == [6, 12]
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())
    shutil.rmtree(out)
    run = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["resume", run, "--steps", "6", "--tensorboard", str(out)]) == 0  # resumed steps stream too
    assert read_back(out)["train/loss"] == [15, 18]
