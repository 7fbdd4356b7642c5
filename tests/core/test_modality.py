"""Modalities: each kind of data validates and previews its batches, every built-in dataset has one,
and a new modality reaches the training job's previews and the evaluator without editing them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from genstudio.core import data as D
from genstudio.core import jobs, modality
from genstudio.core.data import Dataset, DataSpec, dataset_names, get_dataset
from genstudio.core.eval import default_metrics, run_eval
from genstudio.core.imaging import scatter_image
from genstudio.core.modality import MODALITIES, Modality, modality_of
from genstudio.core.registry import registry
from genstudio.core.runs import RunStore
from tests.fakeplugins import GaussFit

# a good data batch and its sample shape, and a batch of samples as plugins produce them (scene
# and field plugins sample rendered views, the LDM decoded images)
GOOD = {
    "points2d": (torch.randn(16, 2), (2,), torch.randn(16, 2)),
    "image": (torch.rand(4, 1, 8, 8) * 2 - 1, (1, 8, 8), torch.rand(4, 3, 8, 8) * 2 - 1),
    "scene": (torch.rand(16, 9), (9,), torch.rand(2, 3, 8, 8) * 2 - 1),
    "field": (torch.rand(16, 4) * 2 - 1, (4,), torch.rand(2, 3, 8, 8) * 2 - 1),
    "latent": (torch.randn(16, 8) * 3, (8,), torch.rand(4, 1, 8, 8) * 2 - 1),
    "captioned": (torch.rand(4, 3, 8, 8) * 2 - 1, (3, 8, 8), torch.rand(4, 3, 8, 8) * 2 - 1),
    "audio": (torch.rand(4, 1, 800) * 2 - 1, (1, 800), torch.rand(4, 1, 800) * 2 - 1),
    "video": (torch.rand(2, 3, 4, 8, 8) * 2 - 1, (3, 4, 8, 8), torch.rand(2, 3, 4, 8, 8) * 2 - 1),
}


def test_every_registered_modality_is_tested():
    assert set(GOOD) == set(MODALITIES)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_check_accepts_good_and_rejects_wrong_shape(name):
    mod, (x, shape, _) = MODALITIES[name], GOOD[name]
    assert mod.check(x, shape) is x and mod.check(x) is x
    with pytest.raises(ValueError, match=rf"{name} batch has shape \(16, 3\); expected \(N, "):
        mod.check(torch.zeros(16, 3), shape)
    with pytest.raises(ValueError, match="non-finite"):
        mod.check(torch.full_like(x, float("nan")), shape)
    with pytest.raises(ValueError, match="expected"):
        mod.check(x[..., :-1], shape)


def test_image_range_is_checked_and_clamped():
    img = MODALITIES["image"]
    assert img.value_range == (-1.0, 1.0) and MODALITIES["points2d"].value_range is None
    with pytest.raises(ValueError, match=r"spans \[0, 2\]; image data lies in \[-1, 1\]"):
        img.check(torch.linspace(0, 2, 64).reshape(1, 1, 8, 8))
    assert img.clamp(torch.tensor([3.0, -3.0])).tolist() == [1.0, -1.0]
    assert MODALITIES["points2d"].check(torch.full((4, 2), 50.0)) is not None  # unbounded


@pytest.mark.parametrize("name", sorted(GOOD))
def test_preview_is_rgb_uint8(name):
    img = MODALITIES[name].preview(GOOD[name][2])
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


def test_every_builtin_dataset_has_a_registered_modality():
    for name in dataset_names():
        ds = get_dataset(name)
        assert ds.spec.modality is MODALITIES[ds.spec.kind] is modality_of(ds.spec) is modality_of(ds.spec.kind)
        ds.spec.modality.check(ds.batch(8, torch.Generator().manual_seed(0))[0], ds.spec.shape)


def test_unknown_kind_says_what_is_registered():
    with pytest.raises(KeyError, match="unknown data kind 'hologram'; registered: points2d, image"):
        modality_of("hologram")


def test_metric_defaults_follow_the_modality():
    assert MODALITIES["points2d"].preview_n == 400 and jobs.preview_count(0, MODALITIES["image"]) == 64
    assert default_metrics("scene") == [] and not MODALITIES["field"].metrics


# -- a fifth modality, registered here only ----------------------------------------------------------
class Vec3(Modality):
    """Points in 3-D: previewed as their (x, y) shadow, compared raw."""

    name = "vec3_test"
    network = "vector"
    metrics = ("energy", "mmd", "nll")
    base_metrics = ("energy", "mmd")

    def preview(self, x: torch.Tensor) -> np.ndarray:
        return scatter_image(x[:, :2], size=64)


class Blob3(Dataset):
    def __init__(self) -> None:
        self.spec = DataSpec("blob3_test", "vec3_test", (3,))

    def batch(self, n, generator=None):
        return torch.randn(n, 3, generator=generator) * 0.5, None


class GaussFit3(GaussFit):
    info = dataclasses.replace(GaussFit.info, id="gaussfit_vec3_test", data_kinds=("vec3_test",))


@pytest.fixture
def vec3(monkeypatch):
    monkeypatch.setitem(MODALITIES, "vec3_test", Vec3())
    D._load_builtin()
    monkeypatch.setitem(D._FACTORIES, "blob3_test", (Blob3, "3-D blob (test)"))
    if GaussFit3.info.id not in registry().entries:
        registry().add_class(GaussFit3, "tests/core/test_modality.py", GaussFit3.info.id)
    return MODALITIES["vec3_test"]


def test_a_new_modality_needs_no_edit_to_jobs_or_eval(tmp_path, vec3):
    assert modality.modality_of("vec3_test") is vec3
    run = jobs.create_run(RunStore(tmp_path), jobs.TrainSpec(plugin=GaussFit3.info.id, dataset="blob3_test",
                                                             steps=3, sample_every=3, checkpoint_every=3))
    for _ in jobs.train(run):
        pass
    png = run.sample_dir() / "step_00000003.png"
    assert np.asarray(Image.open(png)).shape == (64, 64, 3)  # drawn by Vec3.preview, 64 samples (preview_n)
    rec = run_eval(run, n=200, n_boot=5)
    assert {"energy", "mmd"} <= set(rec["metrics"]) and "w2" not in rec["metrics"]
    assert rec["extractor"]["name"] == "raw-points"
