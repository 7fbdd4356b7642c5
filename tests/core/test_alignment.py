"""The evaluator reads real held-out images back near perfectly; GenEval-like scores of real images
against their own captions are ~1 and against shuffled captions low; retrieval and CLIPScore match
brute-force counts; `genstudio eval --metrics geneval,clipscore` works on a text-conditioned run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from genstudio_plugins.clip import retrieval

from genstudio.core import jobs
from genstudio.core.data import captions as C
from genstudio.core.data import get_dataset
from genstudio.core.eval import run_eval
from genstudio.core.metrics.alignment import clip_scores, geneval_scores
from genstudio.core.metrics.functional import wilson_interval
from genstudio.core.metrics.scene_reader import ATTRIBUTES, reader_accuracy, scene_reader
from genstudio.core.runs import RunStore


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    # trained once per process (about 15 s of one core), then shared by every scene_reader() call
    return scene_reader(root=tmp_path_factory.mktemp("extractors"))


@pytest.mark.parametrize("name", ["captions16", "captions"])
def test_reader_reads_real_held_out_images_at_98_percent_per_attribute(reader, name):
    ds = get_dataset(name)
    acc = reader_accuracy(reader, [ds.test_set("seen", 20, seed=5), ds.test_set("heldout", 20, seed=5)])
    assert set(acc) == set(ATTRIBUTES)
    assert min(acc.values()) >= 0.98, acc
    assert min(reader.meta["heldout_accuracy"].values()) >= 0.98  # what eval records report


def test_real_images_satisfy_their_own_captions_and_not_shuffled_ones(reader):
    ds = get_dataset("captions16")
    for split in ("seen", "heldout"):
        s = ds.test_set(split, 20, seed=2)
        own = geneval_scores(s.x, s.captions, reader)
        assert set(own) == set(s.categories) | {"overall"}
        for cat, v in own.items():
            assert v["value"] >= 0.95, (split, cat, v)
        cat = s.categories[0]
        lo, hi = wilson_interval(own[cat]["hits"], int(own[cat]["n"]))
        assert (own[cat]["ci_low"], own[cat]["ci_high"]) == (lo, hi)
        wrong = geneval_scores(s.x, list(np.roll(s.captions, 7)), reader)
        assert wrong["overall"]["value"] < 0.5
    with pytest.raises(ValueError, match="outside the captioned-shapes grammar"):
        geneval_scores(s.x[:1], ["a purple dodecahedron"], reader)


def test_retrieval_accuracy_matches_a_brute_force_count():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(12, 6, generator=g), dim=-1)
    unique = ["a", "b", "c", "d"]
    caps = [unique[i % 4] for i in range(12)]
    txt = torch.nn.functional.normalize(torch.randn(4, 6, generator=g), dim=-1)
    r = retrieval(img, txt, caps, unique, ks=(1, 2))
    sim = (img @ txt.T).numpy()
    for k in (1, 2):
        i2t = np.mean([unique.index(c) in np.argsort(-sim[i])[:k] for i, c in enumerate(caps)])
        t2i = np.mean([any(caps[i] == u for i in np.argsort(-sim[:, j])[:k]) for j, u in enumerate(unique)])
        assert r[f"r{k}_i2t"] == pytest.approx(i2t) and r[f"r{k}_t2i"] == pytest.approx(t2i)
    perfect = retrieval(txt[[unique.index(c) for c in caps]], txt, caps, unique)
    assert perfect["r1_i2t"] == perfect["r1_t2i"] == 1.0


class _Enc:
    def embed_images(self, x):
        return x.reshape(len(x), -1)[:, :3]

    def embed_text(self, prompts):
        return torch.tensor([[1.0, 0.0, 0.0] if p == "x" else [-1.0, 1.0, 0.0] for p in prompts])


def test_clip_score_is_100_times_the_clipped_cosine():
    x = torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0]]).reshape(2, 3, 1, 1)
    s = clip_scores(_Enc(), x, ["x", "y"])
    assert s == pytest.approx([100 / np.sqrt(2), 0.0])  # cos 45 degrees; cos 135 degrees clipped to 0


def test_eval_scores_a_text_conditioned_run(tmp_path, reader):
    store = RunStore(tmp_path)
    run = jobs.create_run(store, jobs.TrainSpec(plugin="clip", dataset="captions16", steps=3, sample_every=3,
                                                checkpoint_every=3, overrides=[
                                                    "batch_size=16", "embed_dim=16", "width=16", "text_layers=1",
                                                    "heads=2", "channels=8", "gallery_per_category=4"]))
    for _ in jobs.train(run):
        pass
    logged = [r for r in run.metrics() if "r1_t2i" in r]  # retrieval accuracy logged at the preview
    assert [r["step"] for r in logged] == [3] and 0.0 <= logged[0]["r5_i2t_heldout"] <= 1.0
    assert (run.sample_dir() / "view_retrieval_00000003.png").exists()
    rec = run_eval(run, "geneval,clipscore", n=40, n_boot=0)
    m = rec["metrics"]
    for key in ("geneval", "geneval_heldout"):
        assert 0.0 <= m[key]["value"] <= 1.0 and m[key]["ci_low"] <= m[key]["ci_high"]
        assert set(m[key]["categories"]) == set(C.CATEGORIES if key == "geneval" else C.HELDOUT_CATEGORIES)
        assert min(m[key]["reader_accuracy"].values()) >= 0.98
    assert 0.0 <= m["clipscore"]["value"] <= 100.0 and "real_matched" in m["clipscore"]
    from genstudio.core.eval import default_metrics
    from genstudio.core.faces import faces_of

    model, _, _ = jobs.load_model(run)
    assert "geneval" in default_metrics("captioned", faces_of(model))
    _, state = run.load_checkpoint()  # weights-only load; the tokenizer travels as its JSON text
    assert isinstance(state["tokenizer"], str) and json.loads(state["tokenizer"])["max_len"] == C.MAX_LEN
    assert model.text_tokenizer().to_json() == state["tokenizer"]


def test_clip_captions_by_retrieving_the_most_similar_caption_of_the_grammar():
    """CLIP as the single-direction image -> caption baseline: argmax cosine over every caption."""
    from genstudio_plugins.clip import CLIPConfig, CLIPPlugin

    caps = C.all_captions()
    m = CLIPPlugin(CLIPConfig.tiny(), "cpu")
    m.setup(get_dataset("captions16").spec)
    picks = [5, 0, len(caps) - 1]
    m.embed_text = lambda prompts: torch.eye(len(caps))[[caps.index(p) for p in prompts]]
    m.embed_images = lambda x: torch.eye(len(caps))[picks[: len(x)]]
    assert m.caption_images(torch.zeros(3, 3, 16, 16)) == [caps[i] for i in picks]
    real = get_dataset("captions16").test_set("seen", 4, seed=0)
    m.embed_images = lambda x: torch.eye(len(caps))[[caps.index(s.caption) for s in real.scenes]]
    from genstudio.core.metrics.alignment import caption_scores

    assert caption_scores(m.caption_images(real.x), real.scenes)["exact"] == 1.0  # its own captions: perfect
