"""The 3-D plugins and datasets: short training runs lower the loss, checkpoints survive
densification, exports have the promised shapes, SDF meshes have the right size, and a
transforms.json folder loads as a dataset."""

import io

import numpy as np
import pytest
import torch
from genstudio_plugins.fields import FieldsConfig, FieldsPlugin
from genstudio_plugins.nerf import NerfConfig, NerfPlugin
from genstudio_plugins.splat import SplatConfig, SplatPlugin

from genstudio.core.data import get_dataset
from genstudio.core.data.scenes import load_transforms_dataset
from genstudio.core.imaging import save_png
from genstudio.core.plugin import final_state
from genstudio.core.scene.cameras import save_transforms
from genstudio.core.scene.exports import MeshScene, VolumeScene
from genstudio.core.scene.fields import marching_cubes, sdf_sphere, sphere_trace
from genstudio.core.scene.gaussians import Gaussians
from genstudio.core.scene.training import heldout_psnr


def _train(model, ds, steps, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(1, steps + 1):
        x, y = ds.batch(batch, g)
        losses.append(model.train_step(x, y, step)["loss"])
    return losses


def test_nerf_training_lowers_the_loss():
    torch.manual_seed(0)
    ds = get_dataset("scene:primitives")
    cfg = NerfConfig(batch_size=256, hidden=32, depth=2, coarse_hidden=16, coarse_samples=16, fine_samples=16,
                     eval_every=0, lr=1e-2)
    m = NerfPlugin(cfg, "cpu")
    m.setup(ds.spec)
    losses = _train(m, ds, 40, cfg.batch_size)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    out = m.render_all(m.scene.test_cameras[0], width=24, height=20)
    assert out["rgb"].shape == (20, 24, 3) and out["depth"].shape == (20, 24)
    vol = m.export_scene(resolution=8)
    assert isinstance(vol, VolumeScene) and vol.density.shape == (8, 8, 8) and vol.rgb.shape == (8, 8, 8, 3)
    last = final_state(m.sample(10, seed=0))
    assert last.x.shape == (10, 3, 64, 64) and last.x.min() >= -1 and last.x.max() <= 1
    assert np.isfinite(last.extras["mean_psnr"])


def test_splat_training_lowers_the_loss_and_checkpoints_after_densify():
    ds = get_dataset("scene:primitives")
    cfg = SplatConfig(init_points=500, densify_from=10, densify_every=10, densify_until=30, eval_every=0,
                      sh_increase_every=15, max_gaussians=1500)
    m = SplatPlugin(cfg, "cpu")
    m.setup(ds.spec)
    train_views = [m.scene.cameras[:6], m.scene.images[:6]]
    before = heldout_psnr(m.render, *train_views)
    _train(m, ds, 40, 1)
    assert heldout_psnr(m.render, *train_views) > before + 2.0
    assert m.g.num != 500 and m.active_degree == 1
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = SplatPlugin(cfg, "cpu")
    m2.setup(ds.spec)
    m2.load_state_dict(torch.load(buf, weights_only=True))
    cam = m.scene.test_cameras[0]
    torch.testing.assert_close(m2.render(cam), m.render(cam))
    _train(m2, ds, 2, 1)  # the rebuilt optimiser steps
    g = m.export_scene()
    assert isinstance(g, Gaussians) and not g.means.requires_grad and g.sh_degree == 1


def test_fields_image_training_lowers_the_loss():
    pytest.importorskip("skimage")
    ds = get_dataset("field:camera")
    cfg = FieldsConfig(batch_size=1024, hidden=64, depth=2, eval_every=0, lr=1e-3)
    m = FieldsPlugin(cfg, "cpu")
    m.setup(ds.spec)
    losses = _train(m, ds, 60, cfg.batch_size)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert m.evaluate()["image_psnr"] > 15
    assert m.render(None, width=32, height=16).shape == (16, 32, 3)  # a continuous function: any size
    assert final_state(m.sample(2, seed=0)).x.shape == (2, 3, 128, 128)


def test_fields_sdf_fits_and_meshes():
    ds = get_dataset("field:sdf-sphere")
    cfg = FieldsConfig(network="fourier", fourier_scale=1.0, lr=1e-3, batch_size=1024, hidden=64, depth=2,
                       mesh_resolution=32, eval_every=0)
    m = FieldsPlugin(cfg, "cpu")
    m.setup(ds.spec)
    losses = _train(m, ds, 150, cfg.batch_size)
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])
    mesh = m.export_scene()
    assert isinstance(mesh, MeshScene) and len(mesh.faces) > 100
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(r.mean() - 0.6) < 0.05


def test_marching_cubes_sphere_radius():
    verts, faces, normals = marching_cubes(lambda p: sdf_sphere(p, 0.6), resolution=64)
    r = np.linalg.norm(verts, axis=1)
    assert abs(r.mean() - 0.6) < 2e-3 and r.std() < 2e-3
    assert faces.max() < len(verts) and normals.shape == verts.shape


def test_sphere_trace_hits_at_the_right_distance():
    o = torch.tensor([[0.0, 0.0, -3.0], [0.0, 2.0, -3.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    hit, t = sphere_trace(lambda p: sdf_sphere(p, 0.6), o, d)
    assert hit.tolist() == [True, False]
    assert abs(t[0].item() - 2.4) < 2e-3


def test_transforms_folder_loads_as_a_scene_dataset(tmp_path):
    src = get_dataset("scene:primitives").scene
    cams = src.cameras[:6]
    paths = []
    for i, img in enumerate(src.images[:6]):
        paths.append(save_png((img.numpy() * 255 + 0.5).astype(np.uint8), tmp_path / "images" / f"{i:03d}.png"))
    save_transforms(tmp_path, cams, paths)
    ds = load_transforms_dataset(tmp_path, max_size=32)
    sc = ds.scene
    assert len(sc.cameras) == 5 and len(sc.test_cameras) == 1  # every 8th frame is held out
    assert sc.images.shape == (5, 32, 32, 3)
    assert sc.cameras[0].fl_x == pytest.approx(cams[1].fl_x / 2)
    assert get_dataset(ds.spec.name) is ds  # registered by name for the jobs
    x, y = ds.batch(7)
    assert x.shape == (7, 9) and y is None


def test_splat_honours_lr_decay_steps():
    """The splat plugin sets its per-parameter lrs in train_step; the app-wide cosine decay
    (lr_decay_steps) multiplies them, so the setting the form offers is not silently ignored."""
    from genstudio.core.plugin import cosine_lr_factor

    ds = get_dataset("scene:primitives")
    base = SplatPlugin(SplatConfig.tiny(), "cpu")
    base.setup(ds.spec)
    decayed = SplatPlugin(_with_decay(SplatConfig.tiny(), 8), "cpu")
    decayed.setup(ds.spec)
    for step in (1, 5, 9):
        for m in (base, decayed):
            m.train_step(torch.zeros(1), None, step)
        f = cosine_lr_factor(step, 8)
        for ga, gb in zip(base.opt.param_groups, decayed.opt.param_groups, strict=True):
            assert gb["lr"] == pytest.approx(ga["lr"] * f, rel=1e-9, abs=1e-15), (step, ga["name"])
    assert decayed.opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # cos(pi): step 9 of 8


def _with_decay(cfg, steps):
    from dataclasses import replace

    return replace(cfg, lr_decay_steps=steps)
