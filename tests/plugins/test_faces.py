"""One shared test per face, run over every registered plugin and every face its set-up model
reports (``faces_of``): a plugin that grows a face gets that face's test for free."""

from __future__ import annotations

import copy
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from genstudio.core import faces as F
from genstudio.core.data import get_dataset
from genstudio.core.diffusion.paths import forward_marginal
from genstudio.core.eval import default_metrics
from genstudio.core.plugin import final_state
from genstudio.core.registry import registry

DATASETS = {"points2d": "8gaussians", "image": "digits", "scene": "scene:primitives", "field": "field:sdf-sphere",
            "captioned": "captions16",
            "audio": "audio:tones"}

N = 4


def _models() -> list:
    """(plugin, dataset) per data kind; "+cond" variants for configs with a class_cond switch."""
    out = []
    for e in registry().ok():
        if not e.source.startswith("entry point"):
            continue
        for kind in e.info.data_kinds:
            if kind in DATASETS:
                out.append((e.id, DATASETS[kind]))
                if "class_cond" in {f.name for f in fields(e.info.config_cls)}:
                    out.append((e.id + "+cond", DATASETS[kind]))
    return out


_BUILT: dict = {}


def _model(pid: str, dataset: str):
    """A tiny set-up model per (plugin, dataset), built once for all face tests."""
    key = (pid, dataset)
    if key not in _BUILT:
        cls = registry().get(pid.removesuffix("+cond"))
        cfg = cls.info.config_cls.tiny()
        if pid.endswith("+cond"):
            cfg = replace(cfg, class_cond=True)
        torch.manual_seed(0)
        m = cls(cfg, torch.device("cpu"))
        m.setup(get_dataset(dataset).spec)
        _BUILT[key] = m
    return _BUILT[key]


def _face_cases(face: type) -> list:
    """(plugin, dataset) pairs whose model has ``face``, and a check that some plugin has it."""
    cases = [pytest.param(p, d, id=f"{p}-{d}") for p, d in _models() if F.has_face(_model(p, d), face)]
    return cases or [pytest.param(None, None, marks=pytest.mark.skip(reason=f"no plugin has {face.__name__} yet"))]


def test_every_plugin_samples_and_faces_are_reported():
    for p, d in _models():
        fs = F.faces_of(_model(p, d))
        assert F.Sampling in fs, p
        assert F.face_names(_model(p, d)) == sorted(f.__name__ for f in fs)


@pytest.mark.parametrize("pid,dataset", _face_cases(F.ForwardProcessFace))
def test_forward_process_ends_where_the_sampler_starts(pid, dataset):
    """q(x_1 | x_0) = N(m x_0, s^2 I) with m ~ 0 (or tiny next to s) and s = the NoisePrior's scale:
    the process the model trains against ends at the noise its sampler draws x_T from."""
    m = _model(pid, dataset)
    assert F.has_face(m, F.NoisePrior), "a data-space forward process implies a data-shaped noise start"
    mean1, std1 = forward_marginal(m.forward_process(), 1.0)
    mean0, std0 = forward_marginal(m.forward_process(), 0.0)
    assert mean0 == pytest.approx(1.0, abs=1e-6) and std0 == pytest.approx(0.0, abs=1e-6)
    assert std1 == pytest.approx(m.prior_scale(), rel=0.01)
    assert mean1 <= 0.25 * std1  # the data's share of x_1 is small next to the noise


@pytest.mark.parametrize("pid,dataset", _face_cases(F.NoisePrior))
def test_noise_prior_is_the_seeded_unit_noise_times_the_scale(pid, dataset):
    m = _model(pid, dataset)
    a, b = F.initial_noise(m, N, 3), F.initial_noise(m, N, 3)
    assert torch.equal(a, b) and not torch.equal(a, F.initial_noise(m, N, 4))
    unit = torch.randn((N, *m.data.shape), generator=m.generator(3))
    assert torch.allclose(a, m.prior_scale() * unit)


@pytest.mark.parametrize("pid,dataset", _face_cases(F.Conditional))
def test_conditional_samples_change_with_the_condition(pid, dataset):
    m = _model(pid, dataset)
    ds = get_dataset(dataset)
    assert m.num_classes == ds.spec.num_classes
    g = torch.Generator().manual_seed(0)
    for step in range(1, 4):  # nets start with zero-initialised output layers: let the labels in
        m.train_step(*ds.batch(m.config.batch_size, g), step)
    x0 = final_state(m.sample(N, seed=5, cond=0)).x
    x1 = final_state(m.sample(N, seed=5, cond=1)).x
    assert not torch.allclose(x0, x1), "the class label must reach the sampler"
    if dataset == DATASETS["image"]:
        assert "accuracy" in default_metrics("image", F.faces_of(m))  # the evaluator asks the face


@pytest.mark.parametrize("pid,dataset", _face_cases(F.Likelihood))
def test_likelihood_is_finite_per_sample(pid, dataset):
    m = _model(pid, dataset)
    x, _ = get_dataset(dataset).fixed(N, seed=0)
    with torch.no_grad():
        lp = m.log_prob(x)
    assert lp.shape == (N,) and torch.isfinite(lp).all()


@pytest.mark.parametrize("pid,dataset", [c for c in _face_cases(F.Likelihood) if c.values[1] == DATASETS["points2d"]])
def test_every_2d_likelihood_integrates_to_one(pid, dataset):
    """exp(log_prob) over a grid holding the mass sums to 1 for exact densities (change of
    variables) and to at most 1 for bounds, after 200 training steps (untrained couplings are near
    the identity, which would pass trivially). PF-ODE densities of a briefly trained score model
    are too spiky for a 100x100 grid; they are checked against a closed form in tests/core/test_sde.py."""
    from genstudio.core.latent import density_grid

    m = _trained(pid, dataset)
    kind = F.log_prob_kind(m)
    if kind == "ode":
        pytest.skip("PF-ODE density: closed-form check in tests/core/test_sde.py")
    with torch.no_grad():
        mass = density_grid(m.log_prob, 8.0, n=100).mass
    if kind == "exact":
        assert mass == pytest.approx(1.0, abs=0.01)
    else:
        assert kind == "bound" and 0.05 < mass <= 1.05  # a bound, up to the grid's quadrature error


@pytest.mark.parametrize("pid,dataset", _face_cases(F.Latent))
def test_latent_codes_decode_to_data(pid, dataset):
    """encode gives one finite code per sample, decode maps codes back to data-shaped samples; a
    bijective model (an exact-density flow) gives the data back exactly."""
    m = _model(pid, dataset)
    x, _ = get_dataset(dataset).fixed(N, seed=0)
    with torch.no_grad():
        z = m.encode(x)
        back = m.decode(z)
    assert z.shape[0] == N and torch.isfinite(z).all()
    assert back.shape == x.shape and torch.isfinite(back).all()
    if F.has_face(m, F.Likelihood) and F.log_prob_kind(m) == "exact" and dataset == DATASETS["points2d"]:
        assert torch.allclose(back.cpu(), x, atol=1e-3), float((back.cpu() - x).abs().max())


@pytest.mark.parametrize("pid,dataset", _face_cases(F.Scene))
def test_scene_exports_a_declared_item(pid, dataset):
    m = _model(pid, dataset)
    item = m.export_scene()
    assert isinstance(item, tuple(m.scene_items)), (type(item), m.scene_items)


@pytest.mark.parametrize("pid,dataset", _face_cases(F.Views))
def test_views_are_rgb_pictures(pid, dataset):
    m = _model(pid, dataset)
    with torch.no_grad():
        views = m.views()
    for name, img in views.items():
        a = np.asarray(img)
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3, name


def test_conditional_face_follows_the_run_config():
    """DDPM has the class machinery always, but only a class_cond run is Conditional (so only such
    runs get the class picker, guidance and the class-accuracy metric)."""
    cls = registry().get("ddpm")
    spec = get_dataset("8gaussians").spec
    for cond in (False, True):
        m = cls(replace(cls.info.config_cls.tiny(), class_cond=cond), "cpu")
        m.setup(spec)
        assert F.has_face(m, F.Conditional) is cond


_TRAINED: dict = {}
STEPS = 200



def _trained(pid: str, dataset: str):
    """The (pid, dataset) model on a fine chain (T = 1000 where the run has one; tiny configs use
    20) after STEPS training steps: enough for a denoiser whose high-noise predictions are
    consistent, which inversion needs (an untrained net's eps = 0 passes trivially, a random one
    is ill-conditioned where alpha ~ 0)."""
    key = (pid, dataset)
    if key not in _TRAINED:
        m0 = _model(pid, dataset)
        cfg = m0.config
        names = {f.name for f in fields(cfg)}
        if "timesteps" in names:
            cfg = replace(cfg, timesteps=1000)
        torch.manual_seed(0)
        m = type(m0)(cfg, torch.device("cpu"))
        ds = get_dataset(dataset)
        m.setup(ds.spec)
        g = torch.Generator().manual_seed(0)
        for step in range(1, STEPS + 1):
            m.train_step(*ds.batch(cfg.batch_size, g), step)
        _TRAINED[key] = m
    return _TRAINED[key]


def _prior(m, n: int, seed: int) -> torch.Tensor:
    """Noise at the Denoiser's first time (sigma(t_0) times unit noise), in the space it denoises."""
    s0 = float(m.alpha_sigma(m.denoise_times(50)[:1])[1][0])
    return s0 * torch.randn((n, *m.data.shape), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("pid,dataset", _face_cases(F.Denoiser))
def test_denoiser_times_run_from_the_prior_to_clean_data(pid, dataset):
    m = _model(pid, dataset)
    ts = m.denoise_times(6)
    assert ts.shape == (7,) and ts.dtype == torch.float64
    a, s = m.alpha_sigma(ts)
    assert float(a[-1]) == pytest.approx(1.0) and float(s[-1]) == pytest.approx(0.0, abs=1e-12)
    snr = a / s.clamp(min=1e-300)
    assert bool((snr[1:] > snr[:-1]).all()), "noise must fall along the times"
    if F.has_face(m, F.NoisePrior):  # the first time is where the sampler's prior noise lives
        assert float(s[0] / a[0].clamp(min=1e-3)) >= 0.5 * m.prior_scale()
    x = torch.randn((N, *m.data.shape)).clamp(-1, 1)
    t = ts[2].expand(N)
    x0, eps = m.denoise(x, t)
    assert x0.shape == x.shape == eps.shape
    assert torch.allclose(a[2].float() * x0 + s[2].float() * eps, x, atol=1e-4), "x_t = alpha x0_hat + sigma eps_hat"


def _one_dataset_each(cases: list) -> list:
    """2-D where a plugin takes it (fast), else its first dataset."""
    first: dict = {}
    for c in cases:
        pid, ds = c.values
        if pid not in first or ds == DATASETS["points2d"]:
            first[pid] = c
    return list(first.values())


@pytest.mark.parametrize("pid,dataset", _one_dataset_each(_face_cases(F.Denoiser)))
def test_every_denoiser_inverts_and_reconstructs(pid, dataset):
    """DDIM inversion then DDIM sampling over the same times gives the point back, up to a
    discretisation error that shrinks with the step count (class-conditional runs along a class)."""
    from genstudio.core.diffusion.denoiser import ddim_invert, ddim_sample

    m = _trained(pid, dataset)
    cond = 0 if F.has_face(m, F.Conditional) else None
    x0 = ddim_sample(m, _prior(m, N, 7), 50, cond)  # points the model itself reaches
    errs = []
    for steps in (25, 200):
        z = ddim_invert(m, x0, steps, cond)
        assert torch.isfinite(z).all()
        errs.append(float((ddim_sample(m, z, steps, cond) - x0).pow(2).mean().sqrt()))
    assert errs[1] < 0.06 * float(x0.pow(2).mean().sqrt()), errs  # 200 steps: a few % of the scale
    assert errs[0] > 2.5 * errs[1], errs  # and shrinking: first order, 8x the steps


OWN_DDIM = {"ddpm": "ddim", "flow_matching": "euler", "ncsn": "euler"}  # the first-order sampler DDIM is


@pytest.mark.parametrize("pid", sorted(OWN_DDIM))
def test_face_ddim_is_the_plugins_own_first_order_sampler(pid):
    """The generic (alpha, sigma) DDIM of core.diffusion.denoiser reproduces each family's own
    deterministic first-order sampler from the same prior noise: DDIM eq. 12 (VP), Euler in
    sigma (VE), Euler in t (flow matching)."""
    from genstudio.core.diffusion.denoiser import ddim_sample

    m = _trained(pid, DATASETS["points2d"])
    own = final_state(m.sample(N, seed=3, steps=7, sampler=OWN_DDIM[pid], every=100)).x
    ours = ddim_sample(m, F.initial_noise(m, N, 3), 7)
    assert torch.allclose(ours, own, rtol=1e-4, atol=1e-4 * float(own.abs().max())), float((ours - own).abs().max())


@pytest.mark.parametrize("pid,dataset", _models())
def test_class_faces_are_the_models_faces_but_run_dependent_ones(pid: str, dataset: str) -> None:
    """`genstudio plugins` lists class_faces (no model built): the set-up model's faces, except
    Conditional, which depends on the run's config."""
    model = _model(pid, dataset)
    assert F.class_faces(type(model)) == [n for n in F.face_names(model) if n != "Conditional"]


@pytest.mark.parametrize("pid,dataset", _face_cases(F.Adversarial))
def test_adversarial_generates_data_and_scores_it(pid, dataset):
    """generate(z) is data-shaped, critic(x) one finite score per sample, and sample(seed) is
    generate of that seed's latent noise (the fixed-noise grid over checkpoints relies on it)."""
    m = _model(pid, dataset)
    shape = get_dataset(dataset).spec.shape
    z = torch.randn(N, m.latent_dim)
    with torch.no_grad():
        x = m.generate(z)
        s = m.critic(x)
        st = final_state(m.sample(N, seed=3))
        again = m.generate(st.extras["z"])
    assert tuple(x.shape) == (N, *shape) and tuple(s.shape) == (N,) and torch.isfinite(s).all()
    torch.testing.assert_close(st.x, again)


@pytest.mark.parametrize("pid,dataset", _face_cases(F.TextConditional))
def test_text_conditional_samples_follow_the_prompt_and_keep_its_tokenizer(pid, dataset):
    """sample(prompt=[...]) gives one data-shaped sample per prompt (cycled), a prompt changes the
    samples, and the run's tokenizer survives a JSON round trip with the same ids."""
    from genstudio.core.text import Tokenizer

    m = copy.deepcopy(_model(pid, dataset))
    with torch.no_grad():  # zero-initialised output layers make an untrained model ignore its input
        g = torch.Generator().manual_seed(0)
        for mod in m._stateful().values():
            for p in mod.parameters() if isinstance(mod, torch.nn.Module) else ():
                p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    tok = m.text_tokenizer()
    ids = tok.encode(["a red circle", ""])
    assert torch.equal(Tokenizer.from_json(tok.to_json()).encode(["a red circle", ""]), ids)
    assert tok.decode(ids) == ["a red circle", ""]
    shape = get_dataset(dataset).spec.shape
    a = final_state(m.sample(3, seed=1, prompt=["a red circle"])).x
    b = final_state(m.sample(3, seed=1, prompt=["three squares", "a blue triangle"])).x
    assert tuple(a.shape) == (3, *shape) and torch.isfinite(a).all()
    assert not torch.equal(a, b)


@pytest.mark.parametrize("pid,dataset", _face_cases(F.TextImageEmbedding))
def test_text_image_embeddings_are_unit_vectors_in_one_space(pid, dataset):
    m = _model(pid, dataset)
    x, ids = get_dataset(dataset).fixed(N, seed=0)
    with torch.no_grad():
        a, b = m.embed_images(x), m.embed_text(ids)
        c = m.embed_text(m.text_tokenizer().decode(ids))  # strings and their ids embed alike
    assert a.shape == b.shape and a.shape[0] == N
    assert torch.allclose(a.norm(dim=-1), torch.ones(N), atol=1e-5)
    assert torch.allclose(b, c, atol=1e-6)
