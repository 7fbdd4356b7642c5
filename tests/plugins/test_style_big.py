"""StyleGAN- and BigGAN-style blocks and plugins: shapes, the maths each block promises, and that
styles, classes and truncation reach the samples."""

from __future__ import annotations

import math

import pytest
import torch

from genstudio.core.data import get_dataset
from genstudio.core.gan import blocks as B
from genstudio.core.gan.fidelity import truncation_curve
from genstudio.core.plugin import final_state
from genstudio.core.registry import registry


def _model(pid, dataset, **over):
    cls = registry().get(pid)
    cfg = cls.info.config_cls.tiny()
    for k, v in over.items():
        setattr(cfg, k, v)
    torch.manual_seed(0)
    m = cls(cfg)
    m.setup(get_dataset(dataset).spec)
    return m


def test_mapping_network_maps_z_to_w():
    assert tuple(B.MappingNetwork(8, 16, 3)(torch.randn(5, 8)).shape) == (5, 16)


def test_demodulation_gives_unit_variance_outputs_for_unit_variance_inputs():
    torch.manual_seed(0)
    conv = B.ModulatedConv2d(16, 24, 3, w_dim=8)
    conv.affine.weight.data.mul_(5)  # strong, very different styles per sample
    x, w = torch.randn(6, 16, 24, 24), torch.randn(6, 8)
    out = conv(x, w)[:, :, 1:-1, 1:-1]  # the interior: zero padding lowers the border's variance
    var = out.var(dim=(0, 2, 3))  # per output channel, over samples and pixels
    assert torch.allclose(var, torch.ones_like(var), atol=0.12), var
    plain = B.ModulatedConv2d(16, 24, 3, w_dim=8, demodulate=False)
    plain.load_state_dict(conv.state_dict())
    assert not torch.allclose(plain(x, w)[:, :, 1:-1, 1:-1].var(dim=(0, 2, 3)), var, atol=0.12)


def test_noise_changes_the_output_only_where_its_scale_is_nonzero():
    inj = B.NoiseInjection(4, 8, 0)
    x, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 1, 8, 8)
    assert torch.equal(inj(x, noise), x)  # scales start at 0
    inj.scale.data[2] = 0.7
    diff = (inj(x, noise) - x).abs().amax(dim=(0, 2, 3))
    assert diff[2] > 0 and torch.equal(diff[[0, 1, 3]], torch.zeros(3))


def test_style_mixing_crossover_ends_are_the_two_seeds_images():
    m = _model("stylegan", "digits16")
    n = m.gen.n_blocks
    assert n == 3  # 4x4, 8x8, 16x16
    main, mix = final_state(m.sample(3, seed=1)).x, final_state(m.sample(3, seed=2)).x
    at = {k: final_state(m.sample(3, seed=1, mix_seed=2, crossover=k)).x for k in range(n + 1)}
    torch.testing.assert_close(at[0], mix)
    torch.testing.assert_close(at[n], main)
    assert not torch.allclose(at[1], main) and not torch.allclose(at[1], mix)


def test_w_truncation_pulls_every_sample_to_the_mean_image():
    m = _model("stylegan", "digits")
    m.gen.w_avg.normal_()
    x = final_state(m.sample(4, seed=3, truncation=0.0)).x
    torch.testing.assert_close(x, x[:1].expand_as(x))
    full = final_state(m.sample(4, seed=3)).x
    assert float(full.std(0).mean()) > 1e-4


def test_mixing_grid_view_layout():
    m = _model("stylegan", "digits")
    x, cut = m.mixing_grid()
    r, c = 4, 4
    assert tuple(x.shape) == ((r + 1) * (c + 1), 1, 8, 8) and cut == 1
    assert torch.equal(x[0], torch.full_like(x[0], -1.0))  # top-left blank
    torch.testing.assert_close(x[1:c + 1], m.mixing_grid(crossover=0)[0][1:c + 1])  # first row: column sources
    rows = x.reshape(r + 1, c + 1, 1, 8, 8)
    # crossover = blocks: every cell is its row source
    full = m.mixing_grid(crossover=m.gen.n_blocks)[0].reshape(r + 1, c + 1, 1, 8, 8)
    torch.testing.assert_close(full[1:, 1:], rows[1:, :1].expand(-1, c, -1, -1, -1))
    img = m.views()["style_mixing"]
    assert img.dtype.name == "uint8" and img.ndim == 3 and img.shape[2] == 3


def test_conditional_batch_norm_has_per_class_affine_params():
    torch.manual_seed(0)
    cbn = B.ConditionalBatchNorm(5, 3, spatial=True)
    x = torch.randn(8, 5, 4, 4)
    c0, c1 = torch.eye(3)[0].expand(8, 3), torch.eye(3)[1].expand(8, 3)
    y0, y1 = cbn(x, c0), cbn(x, c1)
    assert not torch.allclose(y0, y1)
    xn = torch.nn.functional.batch_norm(x, None, None, training=True)
    for c, y in ((c0, y0), (c1, y1)):
        gain, bias = 1 + cbn.gain(c[:1]), cbn.bias(c[:1])
        torch.testing.assert_close(y, xn * gain.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1))


def test_projection_critic_score_changes_with_the_label_by_the_projection():
    torch.manual_seed(0)
    critic = B.ProjectionCritic(torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.ReLU()), 6, 3)
    critic.eval()
    x = torch.randn(4, 2)
    s0, s1 = critic(x, torch.zeros(4, dtype=torch.long)), critic(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(s0, s1)
    phi = critic.body(x)
    e = critic.embed.weight
    torch.testing.assert_close(s0 - s1, phi @ (e[0] - e[1]))
    torch.testing.assert_close(critic(x), critic.psi(phi).squeeze(1) + (phi @ e.t()).max(1).values)


def test_orthogonal_penalty_closed_form():
    a = 0.3
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    assert float(B.orthogonal_penalty([rot])) == pytest.approx(0.0, abs=1e-12)
    assert float(B.orthogonal_penalty([torch.diag(torch.tensor([2.0, 5.0]))])) == 0.0  # norms are free
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # W W^T off-diagonal: 1*3 + 2*4 = 11, twice
    assert float(B.orthogonal_penalty([w, torch.ones(7)])) == pytest.approx(2 * 11.0**2)


@pytest.fixture(scope="module")
def biggan_8g():
    """BigGAN on 8 Gaussians with the mixture components as classes, ~200 short steps."""
    torch.manual_seed(0)
    m = _model("biggan", "8gaussians", batch_size=64, latent_dim=8, hidden=32, depth=1, embed_dim=8, lr=2e-3)
    ds = get_dataset("8gaussians")
    g = torch.Generator().manual_seed(0)
    for step in range(1, 201):
        m.train_step(*ds.batch(64, g), step)
    return m, ds


def test_biggan_samples_the_requested_class(biggan_8g):
    m, ds = biggan_8g
    assert m.num_classes == 8
    for k in (0, 3, 6):
        x = final_state(m.sample(200, seed=k, cond=k)).x
        nearest = torch.cdist(x.double(), ds.means).argmin(1)
        assert float((nearest == k).double().mean()) > 0.5  # chance is 1/8
    with pytest.raises(ValueError):
        m.labels(torch.tensor([8]), 1)


def test_truncation_lowers_diversity_and_keeps_fidelity(biggan_8g):
    m, ds = biggan_8g
    rows = truncation_curve(m, ds, [0.0, 1.0, 0.3], n=400)
    div = [r["diversity"] for r in rows]
    assert div[0] > div[1] > div[2]
    assert all(r["accuracy"] > 0.5 for r in rows)
    assert rows[2]["recall"] < rows[0]["recall"]


def test_training_forward_mixes_styles_with_the_given_probability_and_tracks_w_mean(monkeypatch):
    torch.manual_seed(0)
    gen = B.StyleGenerator(4, (1, 16, 16), 4, 8, 1, mixing_prob=1.0, w_avg_beta=0.0)
    seen = []
    real = gen.synthesis
    monkeypatch.setattr(gen, "synthesis", lambda ws, *a: seen.append(ws) or real(ws, *a))
    z = torch.randn(32, 4)
    gen.train()(z)
    ws = seen[-1]
    assert not torch.isclose(ws[:, 0], ws[:, -1]).all(1).any()  # every sample switched w at some block
    torch.testing.assert_close(gen.w_avg, gen.mapping(z).mean(0))  # beta = 0: the batch mean itself
    gen.mixing_prob = 0.0
    gen(z)
    assert torch.equal(seen[-1][:, 0], seen[-1][:, -1])


# -- StyleGAN on 2-D points: the modulated-linear synthesis -------------------------------------------


def test_stylegan_on_points_uses_the_modulated_mlp_and_the_decision_view():
    m = _model("stylegan", "8gaussians", depth=3)
    assert isinstance(m.gen, B.StyleMLPGenerator) and m.gen.n_blocks == 3  # one style block per layer
    assert all(layer.conv.weight.shape[2:] == (1, 1) for layer in m.gen.blocks)  # 1x1 modulated conv = linear
    x = final_state(m.sample(7, seed=1)).x
    assert tuple(x.shape) == (7, 2)
    assert list(m.views()) == ["decision"]
    with pytest.raises(ValueError):
        m.gen.synthesis(m.gen.styles(torch.randn(2, m.latent_dim)), "bogus")


def test_modulated_linear_layer_is_demodulated_per_output_unit():
    torch.manual_seed(0)
    layer = B.ModulatedConv2d(32, 24, 1, w_dim=8)
    layer.affine.weight.data.mul_(5)
    x, w = torch.randn(4000, 32, 1, 1), torch.randn(1, 8).expand(4000, -1)  # one style, many inputs
    var = layer(x, w).flatten(1).var(0)
    torch.testing.assert_close(var, torch.ones_like(var), atol=0.12, rtol=0)


def test_stylegan_points_mixing_ends_truncation_and_noise():
    m = _model("stylegan", "8gaussians", depth=3)
    for layer in m.gen.blocks:
        layer.noise.scale.data.fill_(0.5)  # noise reaches the points
    n = m.gen.n_blocks
    main, mix = final_state(m.sample(5, seed=1)).x, final_state(m.sample(5, seed=2)).x
    at = {k: final_state(m.sample(5, seed=1, mix_seed=2, crossover=k)).x for k in (0, 1, n)}
    torch.testing.assert_close(at[0], mix)
    torch.testing.assert_close(at[n], main)
    assert not torch.allclose(at[1], main) and not torch.allclose(at[1], mix)
    m.gen.w_avg.normal_()
    x = final_state(m.sample(6, seed=3, truncation=0.0)).x
    torch.testing.assert_close(x, x[:1].expand_as(x))  # psi = 0: one point
    assert not torch.allclose(final_state(m.sample(5, seed=1, noise="random")).x, main)
    torch.testing.assert_close(final_state(m.sample(5, seed=1, noise="const")).x, main)


def test_stylegan_learns_8_gaussians_in_a_few_hundred_steps():
    from genstudio.core.metrics.functional import energy_distance

    ds = get_dataset("8gaussians")
    m = _model("stylegan", "8gaussians", batch_size=128, latent_dim=8, hidden=64, depth=3, w_dim=32,
               mapping_depth=2, lr=2e-3)
    real = ds.batch(1000, torch.Generator().manual_seed(1))[0]
    before = energy_distance(final_state(m.sample(1000, seed=5)).x, real)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 301):
        m.train_step(*ds.batch(128, g), step)
    after = energy_distance(final_state(m.sample(1000, seed=5)).x, real)
    assert after < 0.5 * before, (before, after)
