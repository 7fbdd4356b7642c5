"""Cameras and camera files: known 3-D points must land on hand-computed pixels."""

import json
import math

import pytest
import torch

from genstudio.core.scene.cameras import (
    Camera,
    CameraFileError,
    load_inria_cameras,
    load_transforms,
    look_at,
    save_inria_cameras,
    save_transforms,
    sphere_cameras,
)

# A camera at (0, -4, 0) looking at the origin with z up: in OpenGL camera axes +x = world +x,
# +y = world +z, and it looks down world +y (camera -z).
C2W = [[1, 0, 0, 0], [0, 0, -1, -4], [0, 1, 0, 0], [0, 0, 0, 1]]
# the same camera as COLMAP / INRIA store it (OpenCV axes: y down, z forward), camera-to-world rows
R_CV = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]


def _expected(fx, fy, cx, cy):
    """Pixels of three world points for the camera above, by hand: depth 4 along world +y."""
    return {(0.0, 0.0, 0.0): (cx, cy), (1.0, 0.0, 0.0): (cx + fx / 4, cy), (0.0, 0.0, 1.0): (cx, cy - fy / 4),
            (1.0, 2.0, -1.0): (cx + fx / 6, cy + fy / 6)}


def _check(cam: Camera, fx, fy, cx, cy):
    for p, (u, v) in _expected(fx, fy, cx, cy).items():
        uv, depth = cam.project(torch.tensor([p]))
        torch.testing.assert_close(uv[0], torch.tensor([u, v]), atol=1e-4, rtol=0)
        assert depth[0] > 0


def test_look_at_matches_hand_matrix():
    torch.testing.assert_close(look_at((0, -4, 0), (0, 0, 0), (0, 0, 1)), torch.tensor(C2W, dtype=torch.float32))


def test_transforms_json_reprojects_known_points(tmp_path):
    doc = {"fl_x": 50.0, "fl_y": 60.0, "cx": 31.0, "cy": 25.0, "w": 64, "h": 48,
           "frames": [{"file_path": "images/frame_0001.png", "transform_matrix": C2W}]}
    (tmp_path / "transforms.json").write_text(json.dumps(doc))
    (cam,) = load_transforms(tmp_path)
    assert (cam.width, cam.height) == (64, 48)
    assert cam.image_path == str((tmp_path / "images/frame_0001.png").resolve())
    _check(cam, 50.0, 60.0, 31.0, 25.0)


def test_transforms_json_camera_angle_x_blender_style(tmp_path):
    angle = 0.6911112070083618  # the NeRF Blender sets' value
    doc = {"camera_angle_x": angle, "w": 100, "h": 100, "frames": [{"file_path": "./r_0", "transform_matrix": C2W}]}
    (tmp_path / "transforms.json").write_text(json.dumps(doc))
    (cam,) = load_transforms(tmp_path / "transforms.json")
    f = 0.5 * 100 / math.tan(0.5 * angle)
    assert cam.fl_x == pytest.approx(f) and cam.fl_y == pytest.approx(f)
    _check(cam, f, f, 50.0, 50.0)


def test_rays_pass_through_projected_points():
    cam = Camera(torch.tensor(C2W), 40.0, 44.0, 16.0, 12.0, 32, 24)
    o, d = cam.rays()
    # the point seen at pixel (row 3, col 20) centre, 5 units along its ray, projects back there
    p = o[3, 20] + 5.0 * d[3, 20]
    uv, depth = cam.project(p[None])
    torch.testing.assert_close(uv[0], torch.tensor([20.5, 3.5]), atol=1e-4, rtol=0)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(24, 32))


def test_transforms_round_trip(tmp_path):
    cams = sphere_cameras(5, 3.0, width=40, height=30)
    imgs = [tmp_path / "out" / "imgs" / f"{c.name}.png" for c in cams]
    path = save_transforms(tmp_path / "out", cams, imgs)
    doc = json.loads(path.read_text())
    assert doc["frames"][0]["file_path"] == "imgs/view_000.png"  # relative to the file's folder
    back = load_transforms(path)
    for a, b in zip(cams, back):
        torch.testing.assert_close(a.c2w, b.c2w)
        assert (a.fl_x, a.fl_y, a.cx, a.cy, a.width, a.height) == pytest.approx((b.fl_x, b.fl_y, b.cx, b.cy, b.width, b.height))


def test_inria_cameras_json_convention_and_round_trip(tmp_path):
    doc = [{"id": 0, "img_name": "00000", "width": 64, "height": 48, "position": [0, -4, 0], "rotation": R_CV,
            "fy": 60.0, "fx": 50.0}]
    (tmp_path / "cameras.json").write_text(json.dumps(doc))
    (cam,) = load_inria_cameras(tmp_path)
    torch.testing.assert_close(cam.c2w, torch.tensor(C2W, dtype=torch.float32))
    _check(cam, 50.0, 60.0, 32.0, 24.0)
    out = save_inria_cameras(tmp_path / "again.json", [cam])
    saved = json.loads(out.read_text())[0]
    assert saved["position"] == pytest.approx([0, -4, 0]) and saved["rotation"] == [pytest.approx(r) for r in R_CV]


def test_sphere_cameras_look_at_target():
    for cam in sphere_cameras(7, 4.0, target=(0.1, 0.2, 0.3), width=32):
        uv, depth = cam.project(torch.tensor([[0.1, 0.2, 0.3]]))
        torch.testing.assert_close(uv[0], torch.tensor([16.0, 16.0]), atol=1e-4, rtol=0)
        assert depth[0] == pytest.approx(4.0, rel=1e-5)


@pytest.mark.parametrize("text", ["not json", "{}", '{"frames": [{"transform_matrix": [[1, 2]]}], "fl_x": 1, "w": 2, "h": 2}',
                                  '{"frames": [{"transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}'])
def test_bad_transforms_raise_camera_file_error(tmp_path, text):
    (tmp_path / "transforms.json").write_text(text)
    with pytest.raises(CameraFileError):
        load_transforms(tmp_path)
