"""The procedural sprites dataset (factors known, full factorial grid, reproducible) and the
disentanglement metrics at their two ends: a code equal to the factors and a random code."""

from __future__ import annotations

import pytest
import torch

from genstudio.core.data import get_dataset
from genstudio.core.metrics.disentangle import dci, evaluate_disentanglement, factorvae_score, mig


@pytest.fixture(scope="module")
def sprites():
    return get_dataset("sprites16")


def test_sprites_is_the_full_factor_grid_and_renders_every_factor(sprites):
    assert sprites.factor_names == ("shape", "scale", "rotation", "x", "y", "colour")
    n = 1
    for s in sprites.factor_sizes:
        n *= s
    assert sprites.factors.shape == (n, 6) and sprites.spec.size == n
    assert len({tuple(f) for f in sprites.factors.tolist()}) == n
    x, y = sprites.batch(32, torch.Generator().manual_seed(0))
    x2, _ = sprites.batch(32, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and x.shape == (32, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert get_dataset("sprites").spec.shape == (3, 32, 32)
    # changing any single factor changes the image
    base = torch.tensor([[1, 2, 3, 4, 4, 1]])
    img = sprites.render(base)
    assert (img > -1).any()  # something is drawn
    for j, size in enumerate(sprites.factor_sizes):
        other = base.clone()
        other[0, j] = (base[0, j] + 1) % size
        assert not torch.allclose(sprites.render(other), img), sprites.factor_names[j]
    xi, yi, fi = sprites.fixed_with_factors(10, seed=3)
    assert torch.equal(xi, sprites.render(fi)) and torch.equal(yi, fi[:, 0])
    # colour factor sets the RGB ratio; x factor moves the centre of mass to the right
    left, right = base.clone(), base.clone()
    left[0, 3], right[0, 3] = 0, 7
    cols = torch.arange(16, dtype=torch.float32)
    com = [((sprites.render(f)[0] + 1).sum((0, 1)) * cols).sum() / (sprites.render(f)[0] + 1).sum() for f in (left, right)]
    assert com[1] > com[0] + 4


def test_metrics_are_one_for_a_perfect_code_and_zero_for_a_random_one(sprites):
    _, _, f = sprites.fixed_with_factors(1500, seed=0)
    g = torch.Generator().manual_seed(0)
    perfect = f.float() * 0.3 + 0.01 * torch.randn(f.shape, generator=g)  # any monotone per-factor map
    random = torch.randn(len(f), 8, generator=g)
    m_p, m_r = mig(perfect, f)["mig"], mig(random, f)["mig"]
    assert m_p > 0.95 and m_r < 0.05
    d_p, d_r = dci(perfect, f), dci(random, f)
    assert d_p["disentanglement"] > 0.95 and d_p["completeness"] > 0.95 and d_p["informativeness"] > 0.95
    assert d_r["disentanglement"] < 0.1 and d_r["completeness"] < 0.1
    assert factorvae_score(perfect, f) == 1.0
    assert factorvae_score(random, f) < 0.5
    # a perfect code with its dimensions shuffled and an extra dead dimension is still perfect
    shuffled = torch.cat([perfect[:, [3, 0, 5, 1, 4, 2]], torch.zeros(len(f), 1)], 1)
    assert mig(shuffled, f)["mig"] > 0.95 and factorvae_score(shuffled, f) == 1.0


def test_evaluate_disentanglement_runs_an_encoder(sprites):
    w = torch.randn(3 * 16 * 16, 5, generator=torch.Generator().manual_seed(0))
    out = evaluate_disentanglement(lambda x: x.flatten(1) @ w, sprites, n=600)
    assert set(out) == {"mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "factorvae"}
    assert all(0 <= v <= 1 for v in out.values())
