"""Built-in datasets: shapes, ranges, reproducibility, and exact mixture densities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from genstudio.core.data import dataset_names, get_dataset
from genstudio.core.data.folder import FolderError


@pytest.mark.parametrize("name", ["moons", "8gaussians", "swissroll", "checkerboard", "rings", "gmm2d",
                                  "digits", "digits16"])
def test_datasets_shape_and_reproducible(name):
    ds = get_dataset(name)
    x, y = ds.batch(100, torch.Generator().manual_seed(1))
    x2, _ = ds.batch(100, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2)
    ds.spec.modality.check(x, ds.spec.shape)  # (100, *shape), finite, inside the value range (images)
    if ds.spec.num_classes:
        assert y is not None and int(y.max()) < ds.spec.num_classes
    assert name in dataset_names()


def test_mixture_density_integrates_to_one_and_score_is_gradient():
    ds = get_dataset("gmm2d")
    g = torch.linspace(-5, 5, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    for sigma in (0.0, 0.7):
        mass = ds.log_prob(pts, sigma).exp().sum() * (g[1] - g[0]) ** 2
        assert abs(float(mass) - 1) < 2e-3
        x = torch.randn(50, 2, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(ds.log_prob(x, sigma).sum(), x)
        assert torch.allclose(ds.score(x.detach(), sigma), grad, atol=1e-10)


def test_mixture_samples_match_weights():
    ds = get_dataset("gmm2d")
    x, comp = ds.batch(40000, torch.Generator().manual_seed(0))
    freq = torch.bincount(comp, minlength=3).double() / len(comp)
    assert torch.allclose(freq, ds.weights, atol=0.01)
    m = (ds.weights[:, None] * ds.means).sum(0)
    assert torch.allclose(x.double().mean(0), m, atol=0.03)


def test_image_folder(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "cats" / "broken.png").write_bytes(b"not an image")
    ds = get_dataset(f"folder:{tmp_path}:16")
    assert ds.spec.shape == (1, 16, 16)  # all grey -> one channel
    assert ds.spec.num_classes == 2 and ds.spec.size == 6
    assert "1 unreadable skipped" in ds.spec.description
    with pytest.raises(FolderError, match="not found"):
        get_dataset(f"folder:{tmp_path}/missing")


def test_transforms_scene_reopens_by_name(tmp_path):
    """A run trained on a user's transforms.json folder must reopen after a restart (by name)."""
    from genstudio.core.data import _FACTORIES
    from genstudio.core.scene.cameras import save_transforms, sphere_cameras

    cams = sphere_cameras(4, 3.0, width=16, height=16)
    imgs = []
    for i, c in enumerate(cams):
        p = tmp_path / "scene" / "imgs" / f"{c.name}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(p)
        imgs.append(p)
    path = save_transforms(tmp_path / "scene", cams, imgs)
    name = f"transforms:{path.parent.resolve()}"
    _FACTORIES.pop(name, None)  # as in a fresh process
    ds = get_dataset(name)
    rays, labels = ds.batch(32, torch.Generator().manual_seed(0))
    assert rays.shape == (32, 9) and labels is None
