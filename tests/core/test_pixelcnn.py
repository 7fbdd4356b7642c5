"""PixelCNN: raster-order causality checked by gradients (and no blind spot), exact
normalisation of the autoregressive likelihood by enumerating every tiny image, and the plugin's
pixel-by-pixel sampler."""

from __future__ import annotations

import itertools

import pytest
import torch
from genstudio_plugins.pixelcnn import PixelCNNConfig, PixelCNNPlugin, discretized_logistic_logp

from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.nn.flows import Quantization
from genstudio.core.nn.masked_conv import GatedPixelCNN, MaskedConv2d
from genstudio.core.plugin import final_state


def _randomise(net: torch.nn.Module, seed: int = 0) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)


def _dependency(net, x, r, c):
    """|d out(r, c) / d x| summed over channels: (H, W) map of which inputs pixel (r, c) uses."""
    x = x.clone().requires_grad_(True)
    out = net(x)
    (g,) = torch.autograd.grad(out[..., r, c].sum(), x)
    return g.abs().sum((0, 1))


@pytest.mark.parametrize("channels", [1, 3])
def test_gated_pixelcnn_is_causal_and_has_no_blind_spot(channels):
    h = w = 5
    net = GatedPixelCNN(channels, 4, hidden=8, layers=5, kernel=3).double()
    _randomise(net)
    x = torch.randn(1, channels, h, w, dtype=torch.float64)
    for i in range(h * w):
        r, c = divmod(i, w)
        dep = _dependency(net, x, r, c).flatten()
        assert (dep[i:] == 0).all(), f"pixel {i} depends on pixels >= itself"
        assert (dep[:i] > 0).all(), f"pixel {i} misses some earlier pixel (blind spot)"


def test_plain_masked_conv_types():
    a = MaskedConv2d(1, 1, 3, "A").double()
    b = MaskedConv2d(1, 1, 3, "B").double()
    for conv in (a, b):
        _randomise(conv)
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    for conv, own in ((a, False), (b, True)):
        dep = _dependency(conv, x, 2, 2)
        assert (dep[2, 2] > 0) == own
        assert (dep[2, 3:] == 0).all() and (dep[3:] == 0).all()
        assert (dep[1, 1:4] > 0).all() and dep[2, 1] > 0


@pytest.mark.parametrize("output", ["categorical", "logistic"])
def test_likelihood_sums_to_one_over_every_image(output):
    """1x2x2 images with 3 grey levels: 81 images whose probabilities must sum to exactly 1."""
    m = PixelCNNPlugin(PixelCNNConfig(hidden=8, layers=2, levels=3, output=output, n_mix=2))
    m.setup(DataSpec("tiny", "image", (1, 2, 2)))
    m.net.double()
    _randomise(m.net, 1)
    q = Quantization(3)
    ks = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 1, 2, 2)
    with torch.no_grad():
        lp = m.log_prob(q.value(ks).double())
    assert abs(float(lp.exp().sum()) - 1) < 1e-10
    assert lp.std() > 0.1  # not uniform


def test_discretized_logistic_bins_sum_to_one_and_match_cdf_differences():
    torch.manual_seed(0)
    q = Quantization(6)
    params = torch.randn(50, 9, dtype=torch.float64)  # 3 components
    probs = torch.stack([discretized_logistic_logp(params, torch.full((50,), k), q).exp() for k in range(6)], 1)
    assert torch.allclose(probs.sum(1), torch.ones(50, dtype=torch.float64), atol=1e-12)
    # reference: mixture of sigmoid-CDF differences with open edge bins
    logit_pi, mu, log_s = params.chunk(3, 1)
    pi = torch.softmax(logit_pi, 1)
    edges = torch.tensor([-float("inf"), *[q.value(torch.tensor(k)) + q.half_width for k in range(5)], float("inf")],
                         dtype=torch.float64)
    cdf = torch.sigmoid((edges[None, :, None] - mu[:, None]) / log_s.exp()[:, None])  # (50, 7, 3)
    ref = ((cdf[:, 1:] - cdf[:, :-1]) * pi[:, None]).sum(2)
    assert torch.allclose(probs, ref, atol=1e-10)


def test_pixelcnn_plugin_trains_and_samples_pixel_by_pixel():
    ds = get_dataset("digits")
    torch.manual_seed(0)
    m = PixelCNNPlugin(PixelCNNConfig(batch_size=32, hidden=16, layers=3, levels=4, lr=3e-3))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    xe, _ = ds.fixed(64)
    with torch.no_grad():
        before = m.log_prob(xe).mean().item()
    for step in range(1, 21):
        x, y = ds.batch(32, g)
        out = m.train_step(x, y, step)
    with torch.no_grad():
        after = m.log_prob(xe).mean().item()
    assert after > before and out["bits_per_dim"] < 2.0  # log2(4) = 2 bits/dim is uniform
    states = list(m.sample(3, seed=0, every=1))
    assert len(states) == 64 and [s.step for s in states] == list(range(1, 65))
    assert states[9].extras["pixel"] == (1, 1)
    # pixels not yet sampled are still zero; sampled ones stay fixed afterwards
    assert (states[9].x.flatten(1)[:, 10:] == 0).all()
    assert torch.equal(states[9].x.flatten(1)[:, :10], states[-1].x.flatten(1)[:, :10])
    levels = Quantization(4).value(torch.arange(4))
    assert torch.isin(states[-1].x, levels).all()
    assert len(list(m.sample(3, seed=0, every=16))) == 4


def test_conditional_pixelcnn_uses_labels():
    ds = get_dataset("digits")
    m = PixelCNNPlugin(PixelCNNConfig(hidden=8, layers=2, levels=4, conditional=True))
    m.setup(ds.spec)
    _randomise(m.net)
    x, _ = ds.fixed(4)
    with torch.no_grad():
        a = m.log_prob(x, torch.zeros(4, dtype=torch.long))
        b = m.log_prob(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(a, b)
    st = final_state(m.sample(4, seed=0, cond=torch.tensor([1, 2, 3, 4]), every=64))
    assert st.x.shape == (4, 1, 8, 8)
