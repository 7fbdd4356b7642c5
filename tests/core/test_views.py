"""Model views (the optional ``views()`` face): the heat-map / filter helpers against closed forms,
the training job saving and publishing views, and a broken ``views()`` never failing a run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from genstudio_plugins.cnf import CNFConfig, CNFPlugin
from genstudio_plugins.ebm import EBMConfig, EBMPlugin
from genstudio_plugins.flows import FlowConfig, MAFPlugin, RealNVPPlugin
from genstudio_plugins.rbm import RBMConfig, RBMPlugin
from genstudio_plugins.vae import VAEConfig, VAEPlugin
from PIL import Image

from genstudio.core import events as ev
from genstudio.core import jobs
from genstudio.core.data import get_dataset
from genstudio.core.imaging import colormap, density_image, grid_points, heatmap_image, tile_filters
from genstudio.core.plugin import ViewsModel
from genstudio.core.registry import registry
from genstudio.core.runs import RunStore
from tests.fakeplugins import GaussFit


def brightness(img: np.ndarray) -> np.ndarray:
    return img.astype(int).sum(-1)


def test_colormap_is_monotone_in_brightness():
    rgb = colormap(np.linspace(0, 1, 101))
    assert rgb.shape == (101, 3) and rgb.dtype == np.uint8
    assert np.all(np.diff(brightness(rgb)) >= 0)  # perceptual map: more value, more light
    np.testing.assert_array_equal(colormap(np.array([-5.0, np.nan, 7.0])), rgb[[0, 0, -1]])


def test_heatmap_maps_peak_to_brightest_pixel():
    f = np.zeros((20, 30))
    f[13, 4] = 3.0
    img = heatmap_image(f)
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    assert np.unravel_index(brightness(img).argmax(), f.shape) == (13, 4)


def test_density_image_of_gaussian_peaks_at_its_mean():
    # grid of 61 over [-3, 3]: step 0.1, column 0 is x = -3, row 0 is y = +3 (image y points down)
    mean = torch.tensor([1.0, -1.0])
    img = density_image(lambda x: -0.5 * ((x - mean) ** 2).sum(1) / 0.3**2, size=61, lim=3.0)
    assert img.shape == (61, 61, 3) and img.dtype == np.uint8
    assert np.unravel_index(brightness(img).argmax(), (61, 61)) == (40, 40)
    np.testing.assert_allclose(grid_points(61)[40 * 61 + 40], mean, atol=1e-6)
    assert brightness(img)[0, 0] == brightness(colormap(np.zeros(1)))[0]  # far tail: the darkest colour


def test_tile_filters_scales_each_filter():
    w = torch.zeros(6, 1, 4, 4)
    w[:, 0, 1, 2] = torch.arange(1, 7, dtype=torch.float32)  # very different magnitudes
    w[:, 0, 3, 0] = -torch.arange(1, 7, dtype=torch.float32) / 2
    img = tile_filters(w, ncol=3, scale=1)
    assert img.shape == (2 * 5 + 1, 3 * 5 + 1, 3) and img.dtype == np.uint8
    for i in range(6):
        r, c = divmod(i, 3)
        tile = img[1 + 5 * r:5 + 5 * r, 1 + 5 * c:5 + 5 * c, 0]
        assert tile[1, 2] == 255 and tile[0, 0] == 128 and tile[3, 0] == 64  # +max, 0, -max/2


def _store(tmp_path):
    return RunStore(tmp_path / "store")


def test_flow_training_writes_and_publishes_density_views(tmp_path):
    store = _store(tmp_path)
    run = jobs.create_run(store, jobs.TrainSpec(plugin="realnvp", dataset="moons", steps=4, sample_every=2,
                                                checkpoint_every=0, n_preview=8,
                                                overrides=["batch_size=16", "hidden=8", "steps=1"]))
    bus = ev.EventBus()
    got = []
    bus.subscribe(got.append, ev.SAMPLES)
    list(jobs.train(run, bus=bus))
    names = sorted(p.name for p in run.sample_dir().glob("view_*.png"))
    assert names == ["view_density_00000002.png", "view_density_00000004.png"]
    assert [e.data["step"] for e in got] == [2, 4]
    img = got[-1].data["views"]["density"]
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(Image.open(run.sample_dir() / names[-1])), img)


class BrokenViews(GaussFit):
    info = dataclasses.replace(GaussFit.info, id="brokenviews")

    def views(self):
        raise RuntimeError("deliberately broken views")


def test_broken_views_are_logged_and_skipped(tmp_path):
    reg = registry()
    reg.add_class(BrokenViews, "tests", "brokenviews")
    try:
        run = jobs.create_run(_store(tmp_path), jobs.TrainSpec(plugin="brokenviews", dataset="moons", steps=4,
                                                               sample_every=2, n_preview=8))
        bus = ev.EventBus()
        got = []
        bus.subscribe(got.append, ev.SAMPLES)
        assert list(jobs.train(run, bus=bus)) == [1, 2, 3, 4]
    finally:
        reg.entries.pop("brokenviews", None)
    assert run.info()["status"] == "completed"
    assert "deliberately broken views" in (run.path / "log.txt").read_text()
    assert not list(run.sample_dir().glob("view_*.png"))
    assert len(got) == 2 and all(e.data["views"] == {} for e in got)
    assert sorted(p.name for p in run.sample_dir().glob("step_*.png")) == ["step_00000002.png", "step_00000004.png"]


@pytest.mark.parametrize("cls, cfg, dataset, name", [
    (RealNVPPlugin, FlowConfig.tiny(), "moons", "density"),
    (EBMPlugin, EBMConfig.tiny(), "moons", "energy"),
    (CNFPlugin, CNFConfig.tiny(), "moons", "density"),
    (RBMPlugin, RBMConfig.tiny(), "digits", "filters"),
    (VAEPlugin, VAEConfig.tiny(), "digits", "reconstructions"),
])
def test_plugin_views(cls, cfg, dataset, name):
    ds = get_dataset(dataset)
    m = cls(cfg, "cpu")
    m.setup(ds.spec)
    x, y = ds.batch(cfg.batch_size, torch.Generator().manual_seed(0))
    m.train_step(x, y, 1)
    assert isinstance(m, ViewsModel)
    with torch.no_grad():  # as the training job calls it
        views = m.views()
    assert list(views) == [name]
    img = views[name]
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.std() > 0
    if cls is VAEPlugin:  # 8 inputs over their 8 reconstructions, 8x8 digits at 3x
        assert img.shape == (3 * (2 * 9 + 1), 3 * (8 * 9 + 1), 3)
    if cls is RBMPlugin:  # 8 hidden units' filters in a 3 x 3 grid
        assert img.shape == (3 * (3 * 9 + 1), 3 * (3 * 9 + 1), 3)


def test_maf_logs_density_and_sampling_times():
    ds = get_dataset("moons")
    m = MAFPlugin(FlowConfig.tiny(), "cpu")
    m.setup(ds.spec)
    x, y = ds.batch(16, torch.Generator().manual_seed(0))
    assert "density_ms" not in m.train_step(x, y, m.timing_every - 1)
    out = m.train_step(x, y, m.timing_every)
    assert out["density_ms"] > 0 and out["sample_ms"] > 0
    assert np.isfinite(m.train_step(x, y, m.timing_every + 1)["loss"])
