"""Bad user inputs (issue #11): transforms.json scenes, image folders, .ply / .splat files. Each
must fail with one readable error naming the file and the field, and the CLI must turn it into one
`genstudio: error:` line with exit status 2, before any run folder exists."""

from __future__ import annotations

import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from genstudio.cli import main
from genstudio.core.data.folder import FolderError, load_folder
from genstudio.core.data.images import MAX_PIXELS, ImageFileError, read_image
from genstudio.core.data.scenes import load_transforms_dataset
from genstudio.core.scene.cameras import CameraFileError, load_transforms, save_transforms, sphere_cameras
from genstudio.core.scene.gaussians import Gaussians
from genstudio.core.scene.io import SceneFileError, load_ply, load_splat, save_ply, save_splat
from genstudio.core.scene.multiview import SceneLoadError

DROP = object()  # an override that removes the key


# -- helpers -------------------------------------------------------------------------------------
def _scene(folder: Path, n: int = 3, size: tuple[int, int] = (16, 16), **overrides) -> Path:
    """A transforms.json folder with ``n`` tiny PNG views; ``overrides`` replace (or with ``DROP``
    remove) top-level keys; ``frame0`` replaces keys of the first frame."""
    cams = sphere_cameras(n, 3.0, width=size[0], height=size[1])
    paths = []
    for i, c in enumerate(cams):
        p = folder / "images" / f"{c.name}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size[1], size[0], 3), 60 * i, np.uint8)).save(p)
        paths.append(p)
    path = save_transforms(folder, cams, paths)
    doc = json.loads(path.read_text())
    doc["frames"][0].update(overrides.pop("frame0", {}))
    doc.update(overrides)
    doc = {k: v for k, v in doc.items() if v is not DROP}
    path.write_text(json.dumps(doc))
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A ~60-byte PNG whose header declares ``width`` x ``height`` (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _gaussians(n: int = 6) -> Gaussians:
    return Gaussians.create(torch.randn(n, 3, generator=torch.Generator().manual_seed(0)), torch.rand(n, 3))


def _no_runs() -> bool:
    runs = Path(os.environ["GENSTUDIO_DATA_DIR"]) / "runs"
    return not runs.exists() or not any(runs.iterdir())


def _cli_fails(argv: list[str], capsys, *needles: str) -> str:
    """``main(argv)`` exits 2 with one stderr line holding every needle, and no run folder."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genstudio: error:") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    assert _no_runs()
    return err


# -- 1. transforms.json scenes -------------------------------------------------------------------
@pytest.mark.parametrize("overrides, field", [
    ({"fl_x": DROP, "fl_y": DROP, "camera_angle_x": 0}, "camera_angle_x"),  # fov 0: infinite focal length
    ({"fl_x": DROP, "fl_y": DROP, "camera_angle_x": 4.0}, "camera_angle_x"),  # beyond pi
    ({"w": 0}, "w"),
    ({"w": -16}, "w"),
    ({"h": 15.5}, "h"),
    ({"w": "16"}, "w"),
    ({"fl_x": None}, "fl_x"),  # JSON null
    ({"fl_y": float("nan")}, "fl_y"),
    ({"cx": True}, "cx"),
    ({"frame0": {"fl_x": 0}}, "fl_x"),  # frame-level keys are checked too
])
def test_bad_intrinsics_name_the_file_and_field(tmp_path, overrides, field):
    path = _scene(tmp_path, **overrides)
    with pytest.raises(CameraFileError, match=rf"transforms\.json frame \d+: {field} must be"):
        load_transforms(tmp_path)
    with pytest.raises(SceneLoadError, match=str(path).replace(".", r"\.")):
        load_transforms_dataset(tmp_path)


def test_mismatched_image_sizes_are_an_error_naming_both_sizes(tmp_path):
    _scene(tmp_path)
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(tmp_path / "images" / "view_001.png")
    with pytest.raises(SceneLoadError, match=r"view_001\.png: image is 24x16 but its camera says 16x16"):
        load_transforms_dataset(tmp_path)


@pytest.mark.parametrize("file_path", ["../../x.png", "/etc/passwd", "images/../../outside.png"])
def test_file_paths_outside_the_scene_folder_are_refused(tmp_path, file_path, monkeypatch):
    (tmp_path / "x.png").write_bytes(b"")
    scene = tmp_path / "a" / "scene"
    _scene(scene, frame0={"file_path": file_path})
    opened: list[str] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(str(fp)) or real_open(fp, *a, **k))
    with pytest.raises(CameraFileError, match="frame 0: file_path .* is outside the scene folder"):
        load_transforms(scene)
    assert not opened  # refused before anything is opened


def test_save_transforms_refuses_images_it_could_not_read_back(tmp_path):
    cams = sphere_cameras(2, 3.0, width=8)
    with pytest.raises(CameraFileError, match="outside the scene folder"):
        save_transforms(tmp_path / "scene", cams, [tmp_path / "elsewhere" / "a.png"] * 2)
    assert not (tmp_path / "scene").exists()


def test_good_scene_still_loads(tmp_path):
    _scene(tmp_path, n=4)
    ds = load_transforms_dataset(tmp_path, max_size=8)
    assert ds.scene.images.shape[1:] == (8, 8, 3)


def test_cli_bad_scene_is_one_line_and_no_run(tmp_path, capsys):
    _scene(tmp_path / "s", w=0)
    _cli_fails(["train", "nerf", "--data", f"transforms:{tmp_path / 's'}", "--steps", "1"], capsys,
               "transforms.json frame 0: w must be a positive number")


# -- 2. image folders ----------------------------------------------------------------------------
def test_header_declaring_20000_squared_is_refused(tmp_path):
    _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageFileError, match=r"bomb\.png: image is over .* Mpx"):
        load_folder(str(tmp_path))


@pytest.mark.parametrize("side", [6400, 12000])  # just over our 40 Mpx; 144 Mpx (pillow only warns)
def test_large_real_image_is_refused_before_decoding(tmp_path, side, monkeypatch):
    Image.new("1", (side, side)).save(tmp_path / "big.png")
    decoded: list[int] = []
    real_load = ImageFile.ImageFile.load  # where a file's pixels get decoded
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or real_load(self))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pillow's DecompressionBombWarning would be a second line
        with pytest.raises(ImageFileError, match=rf"big\.png: image is {side}x{side} .* at most {MAX_PIXELS // 10**6} Mpx"):
            load_folder(str(tmp_path))
    assert not decoded


def test_16_bit_gradient_loads_as_a_gradient(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (8, 1))  # (8, 64)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I")  # really stored as 16-bit
    got = np.asarray(read_image(tmp_path / "ramp16.png", "L"), np.float64)
    np.testing.assert_allclose(got[0], np.linspace(0, 255, 64), atol=0.51)
    ds = load_folder(f"{tmp_path}:64")  # through the folder loader: [-1, 1], first column -1, last 1
    row = ds.x[0, 0, 0].numpy()
    assert row[0] == pytest.approx(-1, abs=0.01) and row[-1] == pytest.approx(1, abs=0.01)
    assert np.all(np.diff(row) > 0)


@pytest.mark.parametrize("size", ["0", "100000"])
def test_folder_size_out_of_range(tmp_path, size):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    with pytest.raises(FolderError, match="SIZE must be between 1 and"):
        load_folder(f"{tmp_path}:{size}")


def test_cli_image_bomb_is_one_line_and_no_run(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    _png_header_only(tmp_path / "imgs" / "bomb.png", 20000, 20000)
    _cli_fails(["train", "ddpm", "--data", f"folder:{tmp_path / 'imgs'}", "--steps", "1"], capsys,
               "bomb.png: image is over")


# -- 3. .ply / .splat ----------------------------------------------------------------------------
def _ply_with(tmp_path: Path, field: str, value: float, rows: int = 2) -> Path:
    """An INRIA .ply of six Gaussians whose first ``rows`` rows have ``field`` set to ``value``."""
    p = save_ply(tmp_path / "g.ply", _gaussians())
    data = p.read_bytes()
    off = data.index(b"end_header\n") + len(b"end_header\n")
    names = [line.split()[-1] for line in data[:off].decode().splitlines() if line.startswith("property")]
    rec = np.frombuffer(data[off:], dtype=[(n, "<f4") for n in names]).copy()
    for f in field.split(","):
        rec[f][:rows] = value
    p.write_bytes(data[:off] + rec.tobytes())
    return p


@pytest.mark.parametrize("field, value, message", [
    ("x", np.nan, "2 of 6 rows have NaN or infinite x, y, z"),
    ("scale_0", 1e30, r"2 of 6 rows have scale_0\.\.2 beyond exp\(\+-30\)"),
    ("scale_1", -np.inf, r"2 of 6 rows have NaN or infinite scale_0\.\.2"),
    ("rot_0,rot_1,rot_2,rot_3", 0.0, r"2 of 6 rows have an all-zero quaternion rot_0\.\.3"),
    ("opacity", np.nan, "2 of 6 rows have NaN or infinite opacity"),
])
def test_ply_with_unrenderable_values_is_refused(tmp_path, field, value, message):
    p = _ply_with(tmp_path, field, value)
    with pytest.raises(SceneFileError, match=rf"g\.ply: {message}"):
        load_ply(p)


def test_plain_point_cloud_with_nan_is_refused(tmp_path):
    rec = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    rec["y"][1] = np.nan
    head = "ply\nformat binary_little_endian 1.0\nelement vertex 3\n" + "".join(
        f"property float {c}\n" for c in "xyz") + "end_header\n"
    (tmp_path / "pc.ply").write_bytes(head.encode() + rec.tobytes())
    with pytest.raises(SceneFileError, match=r"pc\.ply: 1 of 3 rows have NaN or infinite x, y, z"):
        load_ply(tmp_path / "pc.ply")


@pytest.mark.parametrize("column, value, message", [
    ("pos", np.nan, "1 of 6 rows have NaN or infinite position"),
    ("scale", 1e30, r"1 of 6 rows have scale beyond exp\(\+-30\)"),
    ("scale", 0.0, "1 of 6 rows have a zero or negative scale"),
    ("rot", 128, "1 of 6 rows have an all-zero quaternion rotation"),
])
def test_splat_with_unrenderable_values_is_refused(tmp_path, column, value, message):
    from genstudio.core.scene.io import SPLAT_DTYPE

    p = save_splat(tmp_path / "g.splat", _gaussians())
    rec = np.frombuffer(p.read_bytes(), dtype=SPLAT_DTYPE).copy()
    rec[column][3] = value
    p.write_bytes(rec.tobytes())
    with pytest.raises(SceneFileError, match=rf"g\.splat: {message}"):
        load_splat(p)


def test_good_files_still_load(tmp_path):
    g = _gaussians()
    assert load_ply(save_ply(tmp_path / "g.ply", g)).num == 6
    back = load_splat(save_splat(tmp_path / "g.splat", g))
    torch.testing.assert_close(back.quats.norm(dim=1), torch.ones(6))

