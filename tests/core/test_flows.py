"""Normalising flows: densities integrate to one, log-dets equal autograd Jacobians, inverses are
exact, MADE/MAF/IAF are autoregressive (triangular Jacobians) with the one-pass / D-pass costs
the GUI shows, and the plugins train."""

from __future__ import annotations

import pytest
import torch
from genstudio_plugins.flows import (
    FlowConfig,
    GlowPlugin,
    IAFPlugin,
    MAFPlugin,
    RealNVPPlugin,
    autoregressive_timing,
)

from genstudio.core.data import get_dataset
from genstudio.core.nn.flows import (
    ActNorm,
    MaskedAutoregressive,
    Quantization,
    autoregressive,
    glow,
    realnvp,
)
from genstudio.core.nn.made import MADE
from genstudio.core.plugin import LatentModel, LikelihoodModel, final_state

BUILDERS = {
    "realnvp": realnvp,
    "glow": glow,
    "maf": lambda shape, **kw: autoregressive(shape, **kw),
    "iaf": lambda shape, **kw: autoregressive(shape, iaf=True, **kw),
}


def _random_flow(name: str, shape, quant=None, seed: int = 0, scale: float = 0.15):
    """A flow with every parameter perturbed (a freshly built flow is the identity by design)."""
    torch.manual_seed(seed)
    m = BUILDERS[name](shape, hidden=16, steps=2, quant=quant).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn_like(p))
    return m.eval()


@pytest.mark.parametrize("name", list(BUILDERS))
def test_2d_density_integrates_to_one(name):
    """Riemann sum over [-9, 9]^2 with spacing 0.03: |mass - 1| < 5e-3."""
    m = _random_flow(name, (2,))
    g = torch.linspace(-9, 9, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        mass = torch.cat([m.log_prob(c).exp() for c in pts.split(60000)]).sum() * (g[1] - g[0]) ** 2
    assert abs(float(mass) - 1) < 5e-3
    # and the density is not just the base Gaussian
    with torch.no_grad():
        base = -0.5 * (pts[:2000] ** 2).sum(1) - torch.log(torch.tensor(2 * torch.pi, dtype=torch.float64))
        assert (m.log_prob(pts[:2000]) - base).abs().max() > 0.05


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("shape", [(2,), (1, 4, 4)], ids=["2d", "image"])
def test_logdet_matches_autograd_jacobian_and_inverse_is_exact(name, shape):
    quant = Quantization(17) if len(shape) == 3 else None
    m = _random_flow(name, shape, quant)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, *shape, generator=g, dtype=torch.float64) * 1.6 - 0.8
    z, ld = m(x)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: m(v.reshape(1, *shape))[0].reshape(-1),
                                                 x[i].reshape(-1))
        assert torch.allclose(torch.linalg.slogdet(jac)[1], ld[i], atol=1e-8)
    xr, ld_inv = m.flow.inverse(z)
    assert torch.allclose(xr, x, atol=1e-10)
    assert torch.allclose(ld + ld_inv, torch.zeros_like(ld), atol=1e-9)
    # float32 round trip
    m32 = m.float()
    x32 = x.float()
    assert (m32.flow.inverse(m32(x32)[0])[0] - x32).abs().max() < 1e-4


def test_made_output_depends_only_on_earlier_inputs():
    torch.manual_seed(0)
    order = torch.randperm(6)
    made = MADE(6, (32, 32), n_out=2, order=order).double()
    with torch.no_grad():
        made.out.weight.normal_()
    x = torch.randn(1, 6, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: made(v)[0, 1], x)[:, 0]  # (out dim, in dim)
    rank = torch.empty(6, dtype=torch.long)
    rank[order] = torch.arange(6)
    allowed = rank[None, :] < rank[:, None]
    assert (jac[~allowed] == 0).all()
    assert (jac[allowed].abs() > 0).float().mean() > 0.9  # and it does use the allowed inputs


@pytest.mark.parametrize("iaf", [False, True], ids=["maf", "iaf"])
def test_autoregressive_layer_jacobians_are_triangular(iaf):
    torch.manual_seed(0)
    d = 5
    order = torch.tensor([3, 0, 4, 1, 2])
    layer = MaskedAutoregressive(d, (24, 24), order, iaf=iaf).double()
    with torch.no_grad():
        layer.made.out.weight.normal_(0, 0.3)
    x = torch.randn(1, d, dtype=torch.float64)
    perm = order  # permute rows/cols into the autoregressive order
    for fn in (lambda v: layer(v)[0][0], lambda v: layer.inverse(v)[0][0]):
        jac = torch.autograd.functional.jacobian(fn, x)[:, 0][perm][:, perm]
        assert torch.allclose(jac, torch.tril(jac), atol=0)  # nothing above the diagonal
        assert (torch.tril(jac, -1).abs() > 0).any() and (torch.diagonal(jac).abs() > 0).all()


def _count_made_calls(model, fn):
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in model.modules() if isinstance(m, MADE)]
    with torch.no_grad():
        fn()
    for h in hooks:
        h.remove()
    return len(calls)


def test_maf_density_and_iaf_sampling_take_one_pass_per_layer():
    d, steps = 7, 3
    for iaf in (False, True):
        m = autoregressive((d,), hidden=16, steps=steps, iaf=iaf).eval()
        x = torch.randn(4, d)
        density = _count_made_calls(m, lambda m=m, x=x: m.log_prob(x))
        sampling = _count_made_calls(m, lambda m=m: m.decode(torch.randn(4, d)))
        fast, slow = (sampling, density) if iaf else (density, sampling)
        assert fast == steps and slow == steps * d


def test_maf_iaf_timing_shows_the_asymmetry():
    t = autoregressive_timing((16,), n=64, hidden=32, steps=2, repeats=2)
    assert t["maf"]["sample_s"] > 3 * t["maf"]["density_s"]
    assert t["iaf"]["density_s"] > 3 * t["iaf"]["sample_s"]


def test_actnorm_data_dependent_init():
    a = ActNorm(3)
    x = torch.randn(64, 3, 4, 4) * torch.tensor([2.0, 0.5, 3.0])[None, :, None, None] + 1.0
    y, _ = a(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std((0, 2, 3)), torch.ones(3), atol=1e-3)
    assert int(a.initialized) == 1


def test_quantization_bound_matches_uniform_model():
    """A model uniform on the dequantised range gives exactly log P = -D log K per image."""
    q = Quantization(5)
    x = q.value(torch.randint(0, 5, (3, 4)))
    lo, hi = q.bounds
    logp_uniform = -4 * torch.log(torch.tensor(hi - lo))  # density of U[lo, hi)^4
    assert torch.allclose(logp_uniform + q.log_bin_volume(4), -4 * torch.log(torch.tensor(5.0)))
    y = q.dequantize(x)
    assert (q.index(y) == q.index(x)).all() and ((y - x).abs() <= q.half_width).all()


@pytest.mark.parametrize("cls", [RealNVPPlugin, GlowPlugin, MAFPlugin, IAFPlugin])
def test_flow_plugins_train_on_digits(cls):
    ds = get_dataset("digits")
    torch.manual_seed(0)
    m = cls(FlowConfig(batch_size=32, hidden=16, steps=1, lr=3e-3))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    xe, _ = ds.fixed(64)
    with torch.no_grad():
        before = m.log_prob(xe).mean().item()
    for step in range(1, 16):
        x, y = ds.batch(32, g)
        out = m.train_step(x, y, step)
    assert "bits_per_dim" in out
    with torch.no_grad():
        after = m.log_prob(xe).mean().item()
    assert after > before
    assert isinstance(m, LatentModel) and isinstance(m, LikelihoodModel)
    z = m.encode(xe[:5])
    assert z.shape == (5, 64)
    assert torch.allclose(m.decode(z), m.quant.snap(xe[:5]), atol=1e-4)  # snap: bin centres
    st = final_state(m.sample(6, seed=1))
    assert st.x.shape == (6, 1, 8, 8) and st.x.abs().max() <= 1


def test_2d_flow_sample_trajectory_has_every_layer():
    ds = get_dataset("moons")
    m = GlowPlugin(FlowConfig(hidden=8, steps=2))
    m.setup(ds.spec)
    states = list(m.sample(10, seed=0))
    assert len(states) == len(m.model.flow.layers) + 1
    assert [s.step for s in states] == list(range(len(states)))
    assert states[0].t == 1.0 and states[-1].t == 0.0
