"""Captioned shapes: reproducible scenes, captions that say exactly what is drawn, held-out
combinations kept out of training, and a tokenizer that round-trips through JSON."""

from __future__ import annotations

import random

import pytest
import torch

from genstudio.core.data import captions as C
from genstudio.core.data import get_dataset
from genstudio.core.text import Tokenizer, padding_mask


@pytest.mark.parametrize("name,size", [("captions", 32), ("captions16", 16)])
def test_batches_are_images_with_token_ids_and_reproducible(name, size):
    ds = get_dataset(name)
    x, y = ds.batch(64, torch.Generator().manual_seed(3))
    x2, y2 = ds.batch(64, torch.Generator().manual_seed(3))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == (64, 3, size, size) and y.shape == (64, C.MAX_LEN) and y.dtype == torch.long
    ds.spec.modality.check(x, ds.spec.shape)
    assert ds.spec.kind == "captioned" and ds.spec.num_classes == 0  # ids are never taken for class labels
    s = ds.scene_batch(64, torch.Generator().manual_seed(3))
    assert torch.equal(s.x, x) and ds.captions(y) == s.captions


def test_training_never_shows_a_held_out_combination_and_the_heldout_set_always_does():
    ds = get_dataset("captions16")
    train = ds.scene_batch(2000, torch.Generator().manual_seed(0))
    assert not any((o.colour, o.shape) in C.HELD_OUT for s in train.scenes for o in s.objects)
    held = ds.test_set("heldout", 30)
    assert set(held.categories) == set(C.HELDOUT_CATEGORIES)
    for s in held.scenes:
        p = C.parse_prompt(s.caption)
        assert any((o.colour, o.shape) in C.HELD_OUT for o in p.objects), s.caption
    seen = ds.test_set("seen", 30)
    assert set(seen.categories) == set(C.CATEGORIES)
    assert not any((o.colour, o.shape) in C.HELD_OUT for s in seen.scenes for o in s.objects)
    assert torch.equal(ds.test_set("seen", 30).x, seen.x)  # fixed
    assert not torch.equal(ds.test_set("seen", 30, seed=1).x, seen.x)


def test_every_caption_parses_back_and_its_scene_satisfies_it():
    caps = C.all_captions()
    assert len(caps) == 123
    for text in caps:
        p = C.parse_prompt(text)
        assert p is not None and C.caption_of(p) == text
    rng = random.Random(0)
    for cat in C.CATEGORIES:
        for _ in range(50):
            s = C.scene_for(rng, C.draw_prompt(rng, cat, "seen"), "seen")
            assert C.satisfies(C.parse_prompt(s.caption), s.objects), s
            assert len(s.objects) == len(C.parse_prompt(s.caption).objects)
    assert C.parse_prompt("a purple circle") is None and C.parse_prompt("three red squares") is None


def test_satisfies_checks_count_colour_binding_and_relation():
    red_circle, blue_square = C.Obj("circle", "red", "small", 0, 0), C.Obj("square", "blue", "large", 0, 1)
    p = C.parse_prompt
    assert C.satisfies(p("a red circle and a blue square"), [blue_square, red_circle])
    assert not C.satisfies(p("a blue circle and a red square"), [red_circle, blue_square])  # colours swapped
    assert C.satisfies(p("a circle left of a square"), [red_circle, blue_square])
    assert not C.satisfies(p("a circle right of a square"), [red_circle, blue_square])
    assert not C.satisfies(p("a circle above a square"), [red_circle, blue_square])  # same row
    assert not C.satisfies(p("a circle"), [red_circle, blue_square])  # exactly one object
    assert C.satisfies(p("two circles"), [red_circle, C.Obj("circle", "green", "small", 1, 1)])
    assert not C.satisfies(p("three circles"), [red_circle, C.Obj("circle", "green", "small", 1, 1)])


def test_render_draws_each_object_in_its_colour_and_cell():
    o = C.Obj("square", "blue", "large", 1, 0)
    x = C.render([C.SceneGraph((o,))], 32)[0]
    on = (x > -1).any(0)
    ys, xs = torch.nonzero(on, as_tuple=True)
    assert ys.min() >= 16 and xs.max() < 16  # bottom-left cell
    centre = x[:, 24, 8]
    assert torch.allclose((centre + 1) / 2, torch.tensor(C.COLOURS["blue"]), atol=1e-6)


def test_tokenizer_pads_after_eos_and_round_trips_json():
    tok = get_dataset("captions16").tokenizer
    assert tok.vocab_size == 3 + len(tok.words) and "triangles" in tok.words
    ids = tok.encode(["a red circle left of a blue square", "", "a red dodecahedron"])
    assert ids[0].tolist()[:9] == tok.encode("a red circle left of a blue square")[0].tolist()[:9]
    assert ids[1, 0] == tok.eos_id and (ids[1, 1:] == tok.pad_id).all()
    assert ids[2, 2] == tok.unk_id
    assert tok.decode(ids)[:2] == ["a red circle left of a blue square", ""]
    pad = tok.padding_mask(ids)
    assert pad.sum(1).tolist() == [C.MAX_LEN - 9, C.MAX_LEN - 1, C.MAX_LEN - 4]
    back = Tokenizer.from_json(tok.to_json())
    assert torch.equal(back.encode(C.all_captions()), tok.encode(C.all_captions()))
    long = tok.encode(" ".join(["a"] * 40))
    assert long[0, -1] == tok.eos_id  # truncated, EOS kept
    assert torch.equal(padding_mask(torch.tensor([[5, 1, 7, 1]])), torch.tensor([[False, False, True, True]]))
