"""VQ-VAE tokenizer: the straight-through gradient reaches the encoder, token shapes, and dead-code
restarts show in its views and preview metrics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from genstudio_plugins.vqvae import VQVAEConfig, VQVAEPlugin

from genstudio.core.data import get_dataset
from genstudio.core.faces import PreviewMetrics, Views, faces_of


def _model(**kw) -> tuple[VQVAEPlugin, object]:
    ds = get_dataset("captions16")
    torch.manual_seed(0)
    m = VQVAEPlugin(VQVAEConfig(**(VQVAEConfig.tiny().__dict__ | kw)), "cpu")
    m.setup(ds.spec)
    return m, ds


def test_straight_through_gradient_reaches_the_encoder():
    m, ds = _model()
    x, _ = ds.batch(8, torch.Generator().manual_seed(0))
    m.net.train()
    y, q = m.net(x)
    F.mse_loss(y, x).backward()  # the reconstruction alone: no commitment term
    grads = [p.grad for p in m.net.enc.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_tokens_shape_and_round_trip():
    m, ds = _model()
    x, _ = ds.batch(4, torch.Generator().manual_seed(1))
    m.train_step(x, None, 1)
    t = m.encode_tokens(x)
    assert t.shape == (4, 4, 4) and t.dtype == torch.int64 and int(t.max()) < m.codebook_size
    assert m.decode_tokens(t).shape == x.shape


def test_dead_code_restarts_show_in_views_and_metrics():
    m, ds = _model(dead_threshold=1e6)  # every code is "dead" after an EMA step: all restart
    assert {Views, PreviewMetrics} <= faces_of(m)
    g = torch.Generator().manual_seed(0)
    for step in (1, 2):
        out = m.train_step(ds.batch(8, g)[0], None, step)
    assert out["restarts"] > 0 and m.restart_history.shape == (2, 2) and m.restart_history[-1, 1] == out["restarts"]
    views = m.views()
    assert set(views) == {"codebook_usage", "usage_histogram", "restarts", "reconstruction"}
    assert all(v.dtype.name == "uint8" and v.ndim == 3 for v in views.values())
    # the restarts curve is drawn (not the empty placeholder)
    assert (views["restarts"][20:] > 100).any()
    pm = m.preview_metrics()
    assert pm["restarts"] == out["restarts"] and 1 <= pm["code_perplexity"] <= m.codebook_size
    assert 0 < pm["code_usage"] <= 1
    none, _ = _model(dead_threshold=0.0)
    none.train_step(ds.batch(8, g)[0], None, 1)
    assert none.restarts == 0
