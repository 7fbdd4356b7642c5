"""Unified text+image model: every direction trains, caption decoding stops at the end token,
MaskGIT decoding unmasks on its schedule, and the captioning metric reads the scene graph."""

from __future__ import annotations

import pytest
import torch
from genstudio_plugins.unified import UnifiedConfig, UnifiedPlugin

from genstudio.core.data import get_dataset
from genstudio.core.metrics.alignment import caption_scores
from genstudio.core.plugin import final_state


@pytest.fixture(scope="module")
def model():
    ds = get_dataset("captions16")
    torch.manual_seed(0)
    m = UnifiedPlugin(UnifiedConfig.tiny(), "cpu")
    m.setup(ds.spec)
    out = m.train_step(*ds.batch(4, torch.Generator().manual_seed(0)), 1)
    assert {"loss_t2i", "loss_masked", "loss_i2t", "loss_lm"} <= set(out)
    m.net.eval()
    return m


def test_caption_streams_word_by_word_and_stops_at_eos(model):
    states = list(model.sample(3, seed=0, mode="image2caption", temperature=0.0))
    assert states[-1].step == states[-1].total and states[-1].x.shape == (3, 3, 16, 16)
    words = [s.extras["words"] for s in states]
    assert words == list(range(1, len(states) + 1))
    assert all(s.extras["pipeline"] is None for s in states)  # the Sampler draws no text -> image diagram for it
    # an end token forced at once: one state, empty captions
    eos = model.vocab.text_offset + model.tokenizer.eos_id
    with torch.no_grad():
        model.net.head.bias[eos] += 1e4
    try:
        st = list(model.sample(2, seed=0, mode="image2caption"))
        assert len(st) == 1 and st[0].extras["caption"] == ["", ""]
    finally:
        with torch.no_grad():
            model.net.head.bias[eos] -= 1e4


def test_rows_after_their_eos_stay_padding(model):
    prefix = model.i2t_prefix(model.encode_images(model.test_images(4, 0)))
    start = torch.zeros(4, 0, dtype=torch.long)
    ids = done = None
    for ids, done in model.ar_text(prefix, start, model.generator(0), 1.0, 0):  # noqa: B007
        pass
    assert done.all() or ids.shape[1] == model.text_len
    for row in ids.tolist():
        if model.tokenizer.eos_id in row:
            k = row.index(model.tokenizer.eos_id)
            assert all(t == model.tokenizer.pad_id for t in row[k + 1:])


def test_caption_log_prob_is_the_sum_of_its_terms(model):
    ds = get_dataset("captions16")
    x, ids = ds.batch(3, torch.Generator().manual_seed(2))
    codes = model.encode_images(x)
    with torch.no_grad():
        terms = model.text_terms(model.i2t_prefix(codes), ids)
        assert torch.allclose(model.caption_log_prob(codes, ids), terms.sum(1))
        assert (terms[model.tokenizer.padding_mask(ids)] == 0).all()


def test_maskgit_and_completion_modes(model):
    states = list(model.sample(2, seed=0, prompt="a red circle", decoding="maskgit", steps=4))
    filled = [s.extras["filled"] for s in states]
    assert len(states) == 4 and filled[-1] == model.n_image and filled == sorted(filled)
    a = final_state(model.sample(2, seed=0, prompt="a red", mode="caption_completion", temperature=0.0))
    assert all(c.startswith("a red") for c in a.extras["caption"]) and a.extras["filled"] == model.n_image
    states = list(model.sample(2, seed=0, prompt="a red", mode="caption_completion", temperature=0.0))
    text = [s for s in states if "filled" not in s.extras]  # the caption streams word by word first
    words = [s.extras["words"] for s in text]
    assert text and words == sorted(words) and words[0] == 3 and len(set(words)) == len(words)
    assert [len(c.split()) for c in text[0].extras["caption"]] == [3, 3]  # "a red" + one word
    assert text[-1].extras["caption"] == states[-1].extras["caption"]  # then drawn
    steps = [s.step for s in states]  # one trajectory: the Sampler starts a new one when a step goes back
    assert all(a < b for a, b in zip(steps, steps[1:])) and states[-1].step == states[-1].total


def test_captioning_metric_on_the_scene_graph():
    s = get_dataset("captions16").test_set("seen", 2)
    perfect = caption_scores(s.captions, s.scenes)
    assert perfect["precision"] == perfect["recall"] == perfect["exact"] == 1.0
    wrong = caption_scores(["three triangles"] * len(s), s.scenes)
    assert wrong["precision"] < 1 and wrong["recall"] < 0.5
    assert caption_scores(["gibberish words"] * len(s), s.scenes)["precision"] == 0.0
