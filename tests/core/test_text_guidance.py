"""The text guidance sweep: one row per scale, real images as samples score diversity ~1, a model
that ignores its noise scores 0, and ``genstudio guidance`` runs on a text run."""

from __future__ import annotations

import pytest
import torch
from genstudio_plugins.sd import SDConfig, SDPlugin

from genstudio.cli import main
from genstudio.core.data import captions as C
from genstudio.core.data import get_dataset
from genstudio.core.plugin import SampleState
from genstudio.core.tools.guidance import guidance_sweep, real_images, saturation, text_guidance_sweep


class _Real:
    """A TextConditional stand-in: real images of each prompt, freshly drawn per call (as varied as the
    data), or with ``frozen`` the same image for every sample of a prompt (whatever the noise)."""

    device = "cpu"

    def __init__(self, ds, frozen: bool = False) -> None:
        self.ds, self.frozen = ds, frozen

    def text_tokenizer(self):
        return self.ds.tokenizer

    def sample(self, n, *, seed, steps=None, prompt=None, guidance=1.0, every=1, sampler=None):
        if self.frozen:
            x = torch.cat([real_images(self.ds, [p], 1, seed=123) for p in prompt])
        else:
            x = real_images(self.ds, prompt, 1, seed=seed + 1000)
        yield SampleState(1, 1, 0.0, x)


@pytest.fixture(scope="module")
def ds():
    return get_dataset("captions16")


def test_real_images_score_like_data(ds):
    rows = text_guidance_sweep(_Real(ds), ds, (1, 3), per_category=3, per_prompt=4)
    assert [r["scale"] for r in rows] == [1.0, 3.0]
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["accuracy"] > 0.9  # the reader reads real images right
        assert 0.75 < r["diversity"] < 1.25  # real images are as varied as real images
        assert r["n"] == 6 * 3 * 4 and set(r["categories"]) == set(C.CATEGORIES)
        assert r["saturation"] == pytest.approx(r["data_saturation"], abs=0.05)


def test_same_image_for_every_seed_has_no_diversity(ds):
    (row,) = guidance_sweep(_Real(ds, frozen=True), ds, (2,), n_per_class=8)  # dispatches to the text sweep
    assert row["diversity"] == pytest.approx(0.0, abs=1e-6) and row["accuracy"] > 0.9
    assert row["n"] == 6 * 2 * 4


def test_saturation_counts_the_range_limits():
    x = torch.tensor([-1.0, 1.0, 0.0, 0.5, 1.7, -0.999])
    assert saturation(x) == pytest.approx(4 / 6)


def test_tiny_sd_one_row_per_scale(ds):
    torch.manual_seed(0)
    m = SDPlugin(SDConfig.tiny(), "cpu")
    m.setup(ds.spec)
    steps = []
    rows = guidance_sweep(m, ds, (0, 1, 4), n_per_class=4, steps=3, on_step=lambda w, s, t: steps.append(w))
    assert [r["scale"] for r in rows] == [0.0, 1.0, 4.0] and set(steps) == {0.0, 1.0, 4.0}
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["diversity"] >= 0 and 0 <= r["saturation"] <= 1 for r in rows)
    assert {"scale", "accuracy", "diversity", "seconds", "data_accuracy", "sampler"} <= set(rows[0])


def test_cli_on_a_tiny_text_run(capsys):
    tiny = [a for kv in ("vae_steps=3", "vae_latent=16", "channels=8", "text_width=16", "text_layers=1")
            for a in ("--set", kv)]
    assert main(["train", "sd", "--data", "captions16", "--steps", "2", "--sample-every", "0", *tiny]) == 0
    run = capsys.readouterr().out.split()[-1]
    assert main(["guidance", run, "--scales", "1,3", "--n", "4", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "per prompt" in out and "saturation" in out
    rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["1"], ["3"])]
    assert len(rows) == 2 and all(0 <= float(r[1]) <= 1 for r in rows)
