"""DALL-E-style: the AR log-likelihood is the sum of its per-token terms (the same conditionals the
sampler draws from), greedy decoding, and what each sampling state carries (contract extras)."""

from __future__ import annotations

import pytest
import torch
from genstudio_plugins.dalle import DalleConfig, DallePlugin

from genstudio.core.data import get_dataset
from genstudio.core.faces import TextConditional, has_face
from genstudio.core.nn.seq import attention_mask, segment_logp
from genstudio.core.plugin import final_state


@pytest.fixture(scope="module")
def model():
    ds = get_dataset("captions16")
    torch.manual_seed(0)
    m = DallePlugin(DalleConfig(batch_size=8, width=16, layers=2, heads=2, vqvae_steps=5, vqvae_codebook=16), "cpu")
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 4):
        m.train_step(*ds.batch(8, g), step)
    m.net.eval()
    return m


def test_log_likelihood_is_the_sum_of_per_token_conditionals(model):
    ds = get_dataset("captions16")
    x, ids = ds.batch(3, torch.Generator().manual_seed(5))
    codes = model.encode_images(x)
    with torch.no_grad():
        terms = model.token_terms(ids, codes)
        total = model.token_log_prob(ids, codes)
        assert torch.allclose(total, terms.sum(1))
        # each term again from a forward pass over its prefix only (the sampler's view of it)
        prefix, pad = model.t2i_prefix(ids)
        for j in range(codes.shape[1]):
            seq = torch.cat([prefix, codes[:, :j] + model.vocab.image_offset], 1)
            kp = torch.cat([pad, torch.zeros(3, j, dtype=torch.bool)], 1)
            logits = model.net(seq, attention_mask(seq.shape[1]), kp)[:, -1]
            lp = segment_logp(logits, codes[:, j] + model.vocab.image_offset, model.vocab.image_range())
            assert torch.allclose(lp, terms[:, j], atol=1e-5)


def test_greedy_is_deterministic_and_top_k_1_is_greedy(model):
    p = ["a red circle", "two squares"]
    a = final_state(model.sample(2, seed=1, prompt=p, temperature=0.0)).extras["image_tokens"]
    b = final_state(model.sample(2, seed=2, prompt=p, temperature=0.0)).extras["image_tokens"]
    c = final_state(model.sample(2, seed=3, prompt=p, top_k=1)).extras["image_tokens"]
    assert torch.equal(a, b) and torch.equal(a, c)
    d = final_state(model.sample(2, seed=3, prompt=p, temperature=0.001)).extras["image_tokens"]
    assert torch.equal(a, d), "temperature -> 0 is greedy"


def test_states_fill_tokens_one_by_one_with_attention_to_the_caption(model):
    assert has_face(model, TextConditional)
    states = list(model.sample(2, seed=0, prompt=["a red circle", ""], guidance=2.0))
    h, w = model.grid
    assert [s.extras["filled"] for s in states] == list(range(1, h * w + 1))
    first = states[0]
    assert (first.x[:, :, 4:, :] == 0).all(), "undecided tokens are grey"
    attn = states[-1].extras["attn"]
    assert attn.shape == (2, model.text_len, h, w)
    toks = states[-1].extras["tokens"]
    assert toks[0][:4] == ["a", "red", "circle", "<eos>"] and toks[0][4] == "" and toks[1][0] == "<eos>"
    assert (attn[0, 4:] == 0).all() and (attn[1, 1:] == 0).all(), "padding positions get zero attention"
    assert (attn[0, :4] > 0).all()
    names = [n for n, _ in model.pipeline_stages()]
    assert set(states[-1].extras["stages"]) <= set(names)


def test_loading_a_checkpoint_does_not_retrain_the_on_the_fly_vqvae(tmp_path, monkeypatch):
    """The VQ-VAE's weights travel in the checkpoint: a load (sample, eval, the GUI) must not spend
    vqvae_steps training one it then overwrites."""
    from dataclasses import replace

    from genstudio_plugins.vqvae import VQVAEPlugin

    from genstudio.core import jobs
    from genstudio.core.config import to_dict
    from genstudio.core.runs import RunStore
    from tests.restoring import trained_and_reloaded

    run = jobs.create_run(RunStore(tmp_path), jobs.TrainSpec(
        "dalle", "captions16", device="cpu", steps=2, checkpoint_every=2, sample_every=0,
        config=to_dict(replace(DalleConfig.tiny(), vqvae_steps=3))))
    trained, again, step, calls = trained_and_reloaded(run, VQVAEPlugin, monkeypatch)
    assert step == 2 and calls == []
    for a, b in zip(again.vq_net.state_dict().values(), trained.vq_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
