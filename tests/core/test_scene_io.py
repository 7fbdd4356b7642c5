""".ply and .splat files: exact round trips, the INRIA field layout, and clear errors."""

import numpy as np
import pytest
import torch

from genstudio.core.scene.gaussians import SH_C0, Gaussians
from genstudio.core.scene.io import (
    SceneFileError,
    load_ply,
    load_scene,
    load_splat,
    save_ply,
    save_scene,
    save_splat,
)


def _gaussians(n=50, degree=3, seed=0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    k = (degree + 1) ** 2
    return Gaussians(torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g) * 0.5 - 3,
                     q / q.norm(dim=1, keepdim=True), torch.randn(n, generator=g) * 2,
                     torch.randn(n, 3, generator=g) * 0.5, torch.randn(n, k - 1, 3, generator=g) * 0.1)


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_round_trip_is_exact(tmp_path, degree):
    g = _gaussians(degree=degree)
    back = load_ply(save_ply(tmp_path / "g.ply", g))
    for k, v in g.tensors().items():
        assert torch.equal(getattr(back, k), v), k
    assert back.sh_degree == degree


def test_ply_layout_is_inria(tmp_path):
    g = _gaussians(n=3, degree=3)
    # mark every SH coefficient with a code 100 * channel + k so the layout is visible
    k = torch.arange(1, 16, dtype=torch.float32)
    g.sh_rest = (k[None, :, None] + 100 * torch.arange(3.0)[None, None, :]).expand(3, 15, 3).contiguous()
    data = save_ply(tmp_path / "g.ply", g).read_bytes()
    head, body = data.split(b"end_header\n", 1)
    props = [ln.split()[-1].decode() for ln in head.splitlines() if ln.startswith(b"property")]
    assert props[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert props[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert props[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert b"format binary_little_endian 1.0" in head
    rec = np.frombuffer(body, dtype="<f4").reshape(3, 62)
    # channel-major: f_rest_0..14 are red's coefficients 1..15, then green's, then blue's
    np.testing.assert_array_equal(rec[0, 9:24], np.arange(1, 16))
    np.testing.assert_array_equal(rec[0, 24:39], np.arange(1, 16) + 100)
    np.testing.assert_array_equal(rec[0, 39:54], np.arange(1, 16) + 200)
    np.testing.assert_array_equal(rec[:, 54], g.opacity_logits.numpy())  # a logit, stored as is
    np.testing.assert_array_equal(rec[:, 55:58], g.log_scales.numpy())  # log scales
    np.testing.assert_array_equal(rec[:, 58:62], g.quats.numpy())  # w first


def test_splat_round_trip_to_quantisation(tmp_path):
    g = _gaussians(n=200, degree=1)
    g.sh_dc = ((torch.rand(200, 3) - 0.5) / SH_C0 * 0.9)  # colours inside [0, 1]
    p = save_splat(tmp_path / "g.splat", g)
    assert p.stat().st_size == 200 * 32
    back = load_splat(p)
    assert torch.equal(back.means, g.means)
    torch.testing.assert_close(back.log_scales, g.log_scales, atol=1e-6, rtol=0)
    torch.testing.assert_close(back.base_colors(), g.base_colors(), atol=0.5 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(back.opacities, g.opacities, atol=0.5 / 255 + 1e-6, rtol=0)
    q = g.quats * torch.sign(g.quats[:, :1])
    qb = back.quats * torch.sign(back.quats[:, :1])
    torch.testing.assert_close(qb, q, atol=1.5 / 128, rtol=0)
    assert back.sh_degree == 0
    # the quantised values survive a second save: position, scale and colour bytes are identical;
    # quaternion bytes move by at most one step (loading renormalises them)
    a = np.frombuffer(p.read_bytes(), np.uint8).reshape(-1, 32)
    b = np.frombuffer(save_splat(tmp_path / "again.splat", back).read_bytes(), np.uint8).reshape(-1, 32)
    np.testing.assert_array_equal(a[:, :28], b[:, :28])
    assert np.abs(a[:, 28:].astype(int) - b[:, 28:]).max() <= 1


def test_splat_layout(tmp_path):
    g = Gaussians(torch.tensor([[1.0, 2.0, 3.0]]), torch.log(torch.tensor([[0.5, 0.25, 2.0]])),
                  torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([0.0]),
                  torch.tensor([[(1.0 - 0.5) / SH_C0, -0.5 / SH_C0, 0.0]]), torch.zeros(1, 0, 3))
    raw = save_splat(tmp_path / "one.splat", g).read_bytes()
    np.testing.assert_array_equal(np.frombuffer(raw[:24], "<f4"), [1, 2, 3, 0.5, 0.25, 2.0])
    assert list(raw[24:28]) == [255, 0, 128, 128]  # rgb from SH DC, alpha = sigmoid(0)
    assert list(raw[28:32]) == [255, 128, 128, 128]  # w = 1 -> 1 * 128 + 128, clipped


def test_sorted_splat_keeps_the_set(tmp_path):
    g = _gaussians(n=30, degree=0)
    back = load_splat(save_splat(tmp_path / "s.splat", g, sort=True))
    imp = back.log_scales.sum(1).exp() * back.opacities
    assert (imp[:-1] >= imp[1:] - 1e-3).all()
    assert sorted(back.means[:, 0].tolist()) == sorted(g.means[:, 0].tolist())


def test_truncated_and_corrupt_files_raise(tmp_path):
    g = _gaussians(n=10, degree=1)
    ply = save_ply(tmp_path / "g.ply", g).read_bytes()
    spl = save_splat(tmp_path / "g.splat", g).read_bytes()
    cases = {
        "short.ply": ply[:-7], "header.ply": ply[:40], "empty.ply": b"", "garbage.ply": b"\x00\x01" * 100,
        "ascii.ply": ply.replace(b"binary_little_endian", b"ascii"),
        "nan.ply": ply[: ply.index(b"end_header\n") + 11] + np.full(10 * 26, np.nan, "<f4").tobytes(),
        "list.ply": b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty list uchar int idx\nend_header\n",
        "face_first.ply": b"ply\nformat binary_little_endian 1.0\nelement face 1\nend_header\n",
        "short.splat": spl[:-5], "empty.splat": b"", "zero_scale.splat": b"\x00" * 32,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SceneFileError):
            load_scene(tmp_path / name)
    with pytest.raises(SceneFileError):
        load_scene(tmp_path / "missing.ply")
    with pytest.raises(SceneFileError):
        load_scene(tmp_path / "g.obj")


def test_plain_point_cloud_ply_loads_as_gaussians(tmp_path):
    rec = np.zeros(4, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    rec["x"] = [0, 1, 0, 0]
    rec["y"] = [0, 0, 1, 0]
    rec["z"] = [0, 0, 0, 1]
    rec["red"] = 255
    head = ("ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
            "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    (tmp_path / "pc.ply").write_bytes(head.encode() + rec.tobytes())
    g = load_ply(tmp_path / "pc.ply")
    assert g.num == 4
    torch.testing.assert_close(g.base_colors()[:, 0], torch.ones(4))
    assert (g.scales > 0).all()


def test_save_scene_dispatch(tmp_path):
    g = _gaussians(n=5, degree=0)
    assert load_scene(save_scene(tmp_path / "a.ply", g)).num == 5
    assert load_scene(save_scene(tmp_path / "a.splat", g)).num == 5
