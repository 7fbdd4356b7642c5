"""The eval job end to end on fake plugins whose sample quality we control exactly."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from genstudio.core import events as ev
from genstudio.core.config import ModelConfig, param
from genstudio.core.data import get_dataset
from genstudio.core.eval import available_metrics, default_metrics, evaluate, load_evals, run_eval
from genstudio.core.faces import Conditional, Likelihood
from genstudio.core.jobs import Cancelled, Control, TrainSpec, create_run, train
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState
from genstudio.core.registry import registry
from genstudio.core.runs import RunStore


@dataclass
class ShiftConfig(ModelConfig):
    shift: float = param(0.0, "offset added to true data samples")
    noise: float = param(0.0, "Gaussian noise added to true data samples")


class _Exact(BasePlugin):
    """'Samples' are fresh draws from the dataset itself plus a controlled error."""

    def setup(self, data):
        self.data = data
        self.ds = get_dataset(data.name)
        self.net = torch.nn.Linear(1, 1)  # something for the checkpoint

    def train_step(self, batch, labels, step):
        return {"loss": 0.0}

    def sample(self, n, *, seed, steps=None, sampler=None, cond=None, every=1):
        g = self.generator(seed)
        if cond is not None:  # images of the requested classes
            pool_x, pool_y = self.ds.x, self.ds.y
            idx = torch.stack([torch.nonzero(pool_y == c)[torch.randint(0, int((pool_y == c).sum()), (1,), generator=g)]
                               for c in cond.tolist()]).ravel()
            x = pool_x[idx]
        else:
            x, _ = self.ds.batch(n, g)
        x = x + self.config.shift + self.config.noise * torch.randn(x.shape, generator=g)
        k = steps or 4
        for i in range(k):
            yield SampleState(i + 1, k, 1 - (i + 1) / k, x, x, {"nfe": 2 * k})


class Fake2D(_Exact):
    info = PluginInfo("fake2d_eval", "Fake 2-D", "test",
                      ShiftConfig, data_kinds=("points2d",))

    def log_prob(self, x):
        return self.ds.log_prob(x - self.config.shift)


class FakeImg(_Exact):
    info = PluginInfo("fakeimg_eval", "Fake images", "test",
                      ShiftConfig, data_kinds=("image",))

    @property
    def num_classes(self) -> int:  # the Conditional face: this run samples per class
        return int(self.data.num_classes or 0)


class UniformImg(_Exact):
    """Uniform model over sklearn digits' 17 levels: log P(discrete x) = -D log 17."""

    info = PluginInfo("uniformimg_eval", "Uniform images", "test",
                      ShiftConfig, data_kinds=("image",))

    def log_prob(self, x):
        return torch.full((len(x),), -x[0].numel() * math.log(17.0))


class UniformDensityImg(UniformImg):
    """The same model written as a continuous density on [-1, 1]: uniform over the 17 dequantisation
    bins of width 2/16, i.e. over [-1 - 1/16, 1 + 1/16]^D."""

    info = PluginInfo("uniformdens_eval", "Uniform density", "test",
                      ShiftConfig, data_kinds=("image",))
    log_prob_continuous = True

    def log_prob(self, x):
        return torch.full((len(x),), -x[0].numel() * math.log(2 + 2 / 16))


for _cls in (Fake2D, FakeImg, UniformImg, UniformDensityImg):
    if _cls.info.id not in registry().entries:
        registry().add_class(_cls, "tests/core/test_eval.py", _cls.info.id)


def make_run(tmp_path, plugin, dataset, steps=4, **cfg):
    store = RunStore(tmp_path)
    run = create_run(store, TrainSpec(plugin=plugin, dataset=dataset, steps=steps, config=cfg or None,
                                      checkpoint_every=2, sample_every=0, log_every=1, n_preview=8))
    for _ in train(run):
        pass
    return run


@pytest.fixture(scope="module")
def extractor_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_metric_lists():
    assert "fcd" in available_metrics("image") and "w2" in available_metrics("points2d")
    assert default_metrics("points2d", {Likelihood})[-1] == "nll"
    assert "accuracy" in default_metrics("image", {Conditional})
    assert "accuracy" not in default_metrics("image", {Likelihood}) and "nll" not in default_metrics("points2d")


def test_eval_2d_exact_model_against_truth(tmp_path):
    good = make_run(tmp_path, "fake2d_eval", "8gaussians")
    bad = make_run(tmp_path, "fake2d_eval", "8gaussians", shift=0.5)
    bus = ev.EventBus()
    seen = []
    bus.subscribe(seen.append)
    steps = [p["stage"] for p in evaluate(good, "energy,mmd,w2,pr,nll", n=400, n_boot=20, bus=bus)]
    assert steps[0].startswith("sampling") and steps[-1] == "nll"
    kinds = {e.kind for e in seen}
    assert {ev.PROGRESS, ev.RESULT} <= kinds
    rec_good = [e for e in seen if e.kind == ev.RESULT][0].data["record"]
    rec_bad = run_eval(bad, ["energy", "mmd", "w2"], n=400, n_boot=20)
    g, b = rec_good["metrics"], rec_bad["metrics"]
    # exact sampler: distances are at noise level and the intervals cover 0; a 0.5 shift is far
    assert g["energy"]["ci_low"] <= 0.01 and b["energy"]["value"] > 20 * max(g["energy"]["value"], 1e-3)
    assert g["mmd"]["ci_low"] < 0 < g["mmd"]["ci_high"] and b["mmd"]["ci_low"] > 0
    # shift (0.5, 0.5): W2 = |shift| = 0.707 between the distributions; finite-n noise adds in quadrature
    assert g["w2"]["value"] < 0.3
    assert b["w2"]["value"] ** 2 - g["w2"]["value"] ** 2 == pytest.approx(0.5, abs=0.06)
    assert g["precision"]["value"] > 0.9 and g["recall"]["value"] > 0.9
    # NLL of the exact density = -mean log p over the reference points
    ds = get_dataset("8gaussians")
    x_ref, _ = ds.fixed(400, seed=0)
    assert g["nll"]["value"] == pytest.approx(float(-ds.log_prob(x_ref).double().mean()), rel=1e-5)
    assert g["bpd"]["value"] == pytest.approx(g["nll"]["value"] / (2 * math.log(2)))
    assert g["nfe"]["value"] == 8 and g["sample_steps"]["value"] == 4 and g["sampling_time"]["value"] > 0
    assert rec_good["step"] == 4 and rec_good["checkpoint"] == "step_00000004.pt" and rec_good["n"] == 400
    assert rec_good["extractor"]["name"] == "raw-points"
    # stored on disk and read back
    on_disk = json.loads(open(rec_good["path"]).read())
    assert on_disk["metrics"]["energy"] == g["energy"]
    assert [r["run"] for r in load_evals(good)] == [good.id]


def test_eval_checkpoint_choice_and_cancel(tmp_path):
    run = make_run(tmp_path, "fake2d_eval", "gmm2d")
    rec = run_eval(run, "energy", n=200, n_boot=5, checkpoint=2)
    assert rec["step"] == 2 and rec["checkpoint"] == "step_00000002.pt"
    with pytest.raises(ValueError, match="no checkpoint at step 3"):
        run_eval(run, "energy", n=200, checkpoint=3)
    with pytest.raises(ValueError, match="unknown metric 'fid'"):
        run_eval(run, "fid", n=200)
    c = Control()
    gen = evaluate(run, "energy", n=200, control=c, batch_size=50)
    next(gen)
    c.cancel()
    with pytest.raises(Cancelled):
        list(gen)
    assert len(load_evals(run)) == 1  # the cancelled job wrote nothing
    assert [r["step"] for r in load_evals(run)] == [2]
    assert "nll" in run_eval(run, "nll", n=100)["metrics"]
    assert "mmd" not in run_eval(run, "w2", n=100)["metrics"]


def test_eval_images_fcd_orders_quality(tmp_path, extractor_root):
    exact = make_run(tmp_path, "fakeimg_eval", "digits", steps=2)
    noisy = make_run(tmp_path, "fakeimg_eval", "digits", steps=2, noise=0.6)
    kw = dict(n=300, n_boot=20, extractor_root=extractor_root)
    r0 = run_eval(exact, "fcd,kid,is,pr,accuracy,nll", **kw)
    r1 = run_eval(noisy, "fcd,kid,is,pr,accuracy", **kw)
    m0, m1 = r0["metrics"], r1["metrics"]
    assert r0["extractor"]["name"] == "cnn-digits" and r0["extractor"]["hash"] == r1["extractor"]["hash"]
    assert m0["fcd"]["extractor"] == "cnn-digits" and "FID" not in m0["fcd"]["note"].split(":")[0]
    assert m1["fcd"]["value"] > 5 * m0["fcd"]["value"] and m1["fcd"]["ci_low"] > m0["fcd"]["ci_high"]
    assert m1["fcd"]["bootstrap_bias"] > 0 and m1["fcd"]["debiased"] < m1["fcd"]["value"]
    assert m0["kid"]["ci_low"] < 3 * abs(m0["kid"]["value"]) + 1e-3 and m1["kid"]["value"] > m0["kid"]["ci_high"]
    assert m0["accuracy"]["value"] > 0.9 and m0["accuracy"]["ci_low"] <= m0["accuracy"]["value"]
    assert m0["is"]["value"] == pytest.approx(m0["is"]["ref"], rel=0.15)  # real images score like real data
    assert m0["precision"]["value"] > 0.8 and m1["precision"]["value"] < m0["precision"]["value"]
    assert r0["conditional"] is True
    assert r0["skipped"] == {"nll": "the model has no log_prob (Likelihood face)"}
    with pytest.raises(ValueError, match="Inception"):
        run_eval(exact, "fid", **kw)


@pytest.mark.parametrize("plugin", ["uniformimg_eval", "uniformdens_eval"])
def test_eval_bits_per_dim_of_a_uniform_image_model(tmp_path, plugin):
    run = make_run(tmp_path, plugin, "digits", steps=2)
    rec = run_eval(run, "nll", n=50)
    per_dim = math.log(17) if plugin == "uniformimg_eval" else math.log(2 + 2 / 16)
    assert rec["metrics"]["nll"]["value"] == pytest.approx(64 * per_dim)
    assert rec["metrics"]["bpd"]["value"] == pytest.approx(math.log2(17))  # with or without the log-det offset
    assert ("continuous density" in rec["metrics"]["bpd"]["note"]) == (plugin == "uniformdens_eval")


def test_eval_images_with_inception_weights(tmp_path, extractor_root):
    from genstudio.core.metrics.inception import FIDInceptionV3

    torch.manual_seed(0)
    wpath = tmp_path / "pt_inception-random.pth"
    torch.save(FIDInceptionV3().state_dict(), wpath)
    run = make_run(tmp_path, "fakeimg_eval", "digits", steps=2)
    rec = run_eval(run, "fid,fcd", n=6, n_boot=3, inception=wpath, extractor_root=extractor_root, batch_size=3)
    m = rec["metrics"]
    assert m["fid"]["extractor"] == "inception-v3" and m["fcd"]["extractor"] == "cnn-digits"
    assert "WARNING" in m["fid"]["note"] and "KID" in m["fid"]["warning"]  # n=6 << 2048
    assert set(rec["extractors"]) == {"inception-v3", "cnn-digits"}
    assert np.isfinite(m["fid"]["value"])


def test_cli_eval_prints_table_and_stores_record(tmp_path, capsys):
    from genstudio.cli import main

    run = make_run(tmp_path, "fake2d_eval", "gmm2d")
    assert main(["eval", str(run.path), "--metrics", "energy,w2,nll", "--n", "150", "--boot", "5"]) == 0
    out = capsys.readouterr().out
    assert "energy" in out and "raw-points" in out and "bpd" in out and out.strip().endswith(".json")
    assert "real-vs-real floor" in out  # energy and w2 carry one
    assert len(load_evals(run)) == 1
    assert main(["eval", str(run.path), "--metrics", "energy", "--n", "100", "--boot", "0", "--checkpoint", "all"]) == 0
    assert sorted(r["step"] for r in load_evals(run)) == [2, 4, 4]
    assert main(["eval", str(run.path), "--metrics", "fid"]) == 2  # one-line error, no traceback
    assert "unknown metric 'fid'" in capsys.readouterr().err


@pytest.mark.parametrize("plugin", ["score_sde", "flow_matching"])
def test_eval_a_model_whose_sampler_takes_no_cond(tmp_path, plugin):
    """Only Conditional models are handed ``cond`` (score SDE and flow matching's sample() have
    no such keyword: the Metrics panel's Evaluate failed on them with a TypeError)."""
    run = make_run(tmp_path, plugin, "8gaussians", steps=2, **{"hidden": 16, "depth": 1, "sample_steps": 4})
    rec = run_eval(run, "energy", n=64, n_boot=2)
    assert rec["metrics"]["energy"]["value"] >= 0


def test_image_metrics_store_a_real_vs_real_floor(tmp_path, extractor_root):
    """fcd and kid carry ``reference``: the metric between the reference images and a disjoint second
    draw of real ones at the same n. An untrained model is far above it; the floor is data-only."""
    from genstudio.core.metrics import functional as M
    from genstudio.core.modality import MODALITIES

    exact = make_run(tmp_path, "fakeimg_eval", "digits", steps=2)
    untrained = make_run(tmp_path, "ddpm", "digits", steps=1, channels=8, timesteps=10, batch_size=8)
    kw = dict(n=200, n_boot=0, extractor_root=extractor_root)
    m0 = run_eval(exact, "fcd,kid", **kw)["metrics"]
    m1 = run_eval(untrained, "fcd,kid", **kw)["metrics"]
    for m in ("fcd", "kid"):
        ref = m0[m]["reference"]
        assert isinstance(ref, float) and ref >= 0 and ref == pytest.approx(m1[m]["reference"])
        assert "reference_n" not in m0[m]  # digits has room for two disjoint sets of 200
        assert m1[m]["value"] > 3 * max(ref, 1e-3), (m, m1[m]["value"], ref)
    # the floor is exactly the metric between the first n of the reference permutation and the next n
    ds = get_dataset("digits")
    both, _ = ds.fixed(400, seed=0)
    cnn = MODALITIES["image"].extractors(ds, ["fcd"], root=extractor_root, device="cpu")["cnn"]
    fa, fb = cnn.features_and_probs(both[:200])[0], cnn.features_and_probs(both[200:])[0]
    assert m0["fcd"]["reference"] == pytest.approx(M.fid_from_features(fa, fb), rel=1e-6)
    # digits (1797 images) has no second 1000: the floor is measured on the 797 left, and says so
    big = run_eval(exact, "kid", n=1000, n_boot=0, extractor_root=extractor_root)["metrics"]["kid"]
    assert big["reference_n"] == 797 and big["reference"] >= 0
