"""Camera paths for fly-throughs (core/scene/camera_path.py) and `genstudio flythrough`: the MP4
decodes with the asked frame count and size (issue #16)."""

from __future__ import annotations

import json
import math

import imageio.v2 as iio
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from genstudio.cli import main
from genstudio.core import jobs
from genstudio.core.runs import RunStore
from genstudio.core.scene import camera_path as cp
from genstudio.core.scene.cameras import CameraFileError, look_at


def _key(eye, fov=40.0, target=(0, 0, 0)):
    return cp.Keyframe(look_at(eye, target).double().numpy(), fov)


def test_interpolation_hits_the_keyframes_and_slerps_between():
    keys = [_key((4, 0, 1), 30.0), _key((0, 4, 1), 50.0), _key((-4, 0, 1), 40.0)]
    path = cp.interpolate(keys, 9)
    assert len(path) == 9
    for i, k in ((0, keys[0]), (4, keys[1]), (8, keys[2])):
        np.testing.assert_allclose(path[i].c2w, k.c2w, atol=1e-9)
    mid = path[2]  # half-way between key 0 and key 1
    np.testing.assert_allclose(mid.c2w[:3, 3], (keys[0].c2w[:3, 3] + keys[1].c2w[:3, 3]) / 2, atol=1e-9)
    assert mid.fov_y_deg == pytest.approx(40.0)
    r = mid.c2w[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)  # a rotation, not a blend of matrices
    a, b = (Rotation.from_matrix(k.c2w[:3, :3]) for k in keys[:2])
    m = Rotation.from_matrix(r)
    assert (a.inv() * m).magnitude() == pytest.approx((m.inv() * b).magnitude(), abs=1e-9)  # equal angles: slerp
    assert len(cp.interpolate(keys[:1], 5)) == 5 and np.allclose(cp.interpolate(keys[:1], 5)[3].c2w, keys[0].c2w)
    with pytest.raises(ValueError):
        cp.interpolate([], 3)


def test_keyframes_file_round_trip_and_bad_files(tmp_path):
    keys = cp.orbit_keyframes(3.0, n=4)
    assert len(keys) == 5 and np.allclose(keys[0].c2w, keys[-1].c2w, atol=1e-6)  # a closed orbit
    path = cp.save_keyframes(tmp_path / "k.json", keys)
    back = cp.load_keyframes(path)
    assert len(back) == 5 and all(np.allclose(a.c2w, b.c2w) for a, b in zip(keys, back))
    cam = cp.to_camera(back[1], 64, 48)
    assert (cam.width, cam.height) == (64, 48) and math.degrees(cam.fov_y) == pytest.approx(40.0)
    for bad in ("{", json.dumps({"keyframes": []}), json.dumps({"keyframes": [{"c2w": [[1, 0], [0, 1]]}]}),
                json.dumps({"keyframes": [{"c2w": (2 * np.eye(4)).tolist()}]})):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(CameraFileError):
            cp.load_keyframes(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def splat_run(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("fly"))
    run = jobs.create_run(store, jobs.TrainSpec("splat", "scene:primitives", steps=4, sample_every=0,
                                                checkpoint_every=0, overrides=["init_points=300", "eval_every=0"]))
    for _ in jobs.train(run):
        pass
    return run


def test_flythrough_cli_writes_a_decodable_mp4(splat_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(splat_run.path.parent.parent))
    keys = cp.save_keyframes(tmp_path / "keys.json", [_key((3, -3, 2)), _key((3, 3, 2), 55.0), _key((-3, 3, 1))])
    out = tmp_path / "fly.mp4"
    assert main(["flythrough", splat_run.id, "--out", str(out), "--keyframes", str(keys), "--frames", "10",
                 "--size", "64x48", "--fps", "10"]) == 0
    assert "10 frames 64x48" in capsys.readouterr().out
    frames = np.stack(iio.mimread(out))  # decoded by imageio-ffmpeg's ffmpeg
    assert frames.shape == (10, 48, 64, 3)
    assert frames[0].std() > 1 and np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # it moves
    gif = tmp_path / "orbit.gif"  # no keyframes: an orbit around the scene's training cameras
    assert main(["flythrough", splat_run.id, "--out", str(gif), "--frames", "4", "--size", "32x32"]) == 0
    assert np.stack(iio.mimread(gif)).shape[:3] == (4, 32, 32)


def test_flythrough_cli_errors_are_one_line(splat_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(splat_run.path.parent.parent))
    assert main(["flythrough", splat_run.id, "--out", str(tmp_path / "x.avi")]) == 2
    assert main(["flythrough", splat_run.id, "--out", str(tmp_path / "x.mp4"), "--size", "big"]) == 2
    (tmp_path / "k.json").write_text("[]")
    assert main(["flythrough", splat_run.id, "--out", str(tmp_path / "x.mp4"), "--keyframes", str(tmp_path / "k.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("genstudio: error:") for e in err) and "keyframes" in err[2]
