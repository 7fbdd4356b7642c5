"""The text-to-image views' pictures (core, no Qt): which positions get a map, one shared colour
scale across words, the strip/figure layout, the pipeline diagram, and where the vocabulary comes from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genstudio.core.plugin import SampleState
from genstudio.core.tools.text2image import (
    attention_figure,
    attention_overlays,
    attention_strip,
    has_attention,
    pipeline_image,
    run_vocabulary,
    state_pipeline_image,
    word_positions,
)

TOKENS = ["two", "red", "circles", "<eos>", "", ""]


def _state(step: int = 1, total: int = 4, b: int = 2) -> SampleState:
    attn = torch.zeros(b, len(TOKENS), 4, 4)
    attn[:, 0, 0, 0] = 1.0  # "two" peaks top-left
    attn[:, 1, 3, 3] = 0.5  # "red" bottom-right, at half the weight
    attn[:, 2] = 0.1
    x = torch.zeros(b, 3, 16, 16)
    return SampleState(step, total, 1 - step / total, x, x.clone(),
                       {"attn": attn, "tokens": [TOKENS] * b,
                        "stages": {"denoiser": torch.randn(b, 4, 4, 4), "VAE decoder": x}})


def test_word_positions_skip_padding_and_the_end_token_unless_asked():
    assert word_positions(TOKENS) == [0, 1, 2]
    assert word_positions(TOKENS, eos=True) == [0, 1, 2, 3]
    assert has_attention(_state()) and not has_attention(SampleState(1, 1, 0.0, torch.zeros(1, 3, 4, 4)))


def test_overlays_peak_where_the_map_does_on_one_shared_scale():
    st = _state()
    img = np.full((64, 64, 3), 128, np.uint8)
    two, red, circles = attention_overlays(img, st.extras["attn"][0], [0, 1, 2])
    lum = [o.astype(float).sum(2) for o in (two, red, circles)]
    assert np.unravel_index(lum[0].argmax(), lum[0].shape)[0] < 16  # top-left for "two"
    assert np.unravel_index(lum[1].argmax(), lum[1].shape)[0] >= 48  # bottom-right for "red"
    # one scale: "red" (max 0.5) is drawn dimmer than "two" (max 1.0), not stretched to full brightness
    assert lum[1].max() < lum[0].max()
    alone = attention_overlays(img, st.extras["attn"][0], [1])[0]  # alone, red is its own max
    assert alone.astype(float).sum(2).max() > lum[1].max()


def test_strip_and_figure_layout():
    st = _state()
    strip = attention_strip(st, 0, cell=32)
    assert strip.shape[1] == (1 + 3) * (32 + 4) + 4  # the image + one tile per word
    states = [_state(s) for s in range(1, 5)]
    fig = attention_figure(states, 1, rows=2, cell=32)
    assert fig.shape[0] == 2 * strip.shape[0] and fig.shape[1] == 96 + strip.shape[1]
    empty = _state()
    empty.extras["tokens"] = [["<eos>", "", "", "", "", ""]] * 2  # no prompt: only the sample itself
    assert attention_strip(empty, 0, cell=32).shape[1] == 32 + 8
    with pytest.raises(ValueError, match="no cross-attention"):
        attention_figure([SampleState(1, 1, 0.0, torch.zeros(1, 3, 4, 4))])


def test_pipeline_diagram_draws_every_stage_even_without_its_tensor():
    stages = [("prompt", "text"), ("tokens", "WordLevel"), ("text encoder", "transformer"),
              ("denoiser", "U-Net"), ("scheduler", "DDIM"), ("VAE decoder", "decoder")]
    im = pipeline_image(stages, {}, prompt="two red circles", tokens=TOKENS, t=0.5)
    assert im.shape[1] == 6 * (132 + 28) - 28 + 12 and im.dtype == np.uint8
    live = state_pipeline_image(_state(), stages)
    assert live.shape == im.shape and not np.array_equal(live, im)  # the live tensors are drawn


def test_run_vocabulary_from_the_run_else_its_dataset():
    assert run_vocabulary({"vocabulary": ["a", "red"], "dataset": "captions16"}) == ["a", "red"]
    words = run_vocabulary({"dataset": "captions16"})
    assert {"red", "circle", "triangle"} <= set(words)
    assert run_vocabulary({"dataset": "8gaussians"}) == [] and run_vocabulary({}) == []
