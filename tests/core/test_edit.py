"""DDIM inversion, reconstruction and noise interpolation (core/tools/edit.py) and
``genstudio interp``.

Exactness: for data N(mu, s^2 I) the noise predictor is known in closed form,
eps*(x_t, t) = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar), and the probability-flow
ODE maps x0 to sqrt(abar_T) mu + sqrt(abar_T s^2 + 1 - abar_T) (x0 - mu) / s. DDIM inversion with
that eps must land there and the round trip must shrink like 1/steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from genstudio_plugins.ddpm import DDPMPlugin
from PIL import Image

from genstudio.cli import main
from genstudio.core import jobs
from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.diffusion import make_schedule
from genstudio.core.imaging import to_uint8
from genstudio.core.runs import RunStore
from genstudio.core.tools import edit


class GaussEps:
    """A Denoiser (core.faces) with the exact eps of N(mu, s^2 I) data under a cosine VP chain
    (float64), borrowing DDPM's time grid and coefficients."""

    denoise_times = DDPMPlugin.denoise_times
    alpha_sigma = DDPMPlugin.alpha_sigma

    def __init__(self, mu: torch.Tensor, s: float, T: int = 1000) -> None:  # noqa: N803
        self.mu, self.s = mu, s
        self.sched = make_schedule("cosine", T)
        self.device = torch.device("cpu")
        self.data = DataSpec("gauss", "points2d", tuple(mu.shape))

    def denoise(self, x, t, cond=None, guidance=1.0):
        ab = self.sched.alphas_cumprod[t.round().long()].to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))
        eps = (1 - ab).sqrt() * (x - ab.sqrt() * self.mu) / (ab * self.s**2 + 1 - ab)
        return (x - (1 - ab).sqrt() * eps) / ab.sqrt(), eps

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)


@pytest.fixture
def gauss():
    mu = torch.linspace(-1, 1, 16, dtype=torch.float64)
    model = GaussEps(mu, 0.5)
    x0 = mu + 0.5 * torch.randn(6, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return model, x0


def test_inversion_with_exact_eps_recovers_x0_and_the_ode_noise(gauss):
    model, x0 = gauss
    errs = {}
    for steps in (200, 1000):
        noise, recon, err = edit.invert_reconstruct(model, x0, steps)
        assert noise.dtype == torch.float64 and err.shape == (6,)
        errs[steps] = float(err.max())
    assert errs[1000] < 4e-3  # data spread s = 0.5
    assert errs[200] / errs[1000] > 3.5  # first order: 5x the steps, ~5x smaller error
    ab = model.sched.alphas_cumprod[-1]
    ode = ab.sqrt() * model.mu + (ab * model.s**2 + 1 - ab).sqrt() * (x0 - model.mu) / model.s
    torch.testing.assert_close(noise, ode, atol=1e-2, rtol=0)
    torch.testing.assert_close(edit.rms(recon, x0), err)
    torch.testing.assert_close(err, (recon - x0).pow(2).mean(1).sqrt())


def test_noise_paths_slerp_keeps_the_norm_lerp_sags():
    d = 64
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    b = b - (a @ b) / (a @ a) * a  # orthogonal to a
    a, b = a / a.norm() * d**0.5, b / b.norm() * d**0.5
    s, lin = edit.noise_path(a, b, 9, "slerp"), edit.noise_path(a, b, 9, "lerp")
    np.testing.assert_allclose(s.norm(dim=1).numpy(), d**0.5, rtol=1e-9)
    assert float(lin[4].norm()) == pytest.approx(d**0.5 / 2**0.5, rel=1e-9)  # ||(a + b) / 2||, a ⟂ b
    # two independent unit-Gaussian noises in high dimension: the same picture, approximately
    za, zb = torch.randn(1, 4096, generator=g), torch.randn(1, 4096, generator=g)
    s, lin = edit.noise_path(za, zb, 7, "slerp"), edit.noise_path(za, zb, 7, "lerp")
    assert s.shape == (7, 1, 4096)
    assert (s.flatten(1).norm(dim=1) / 64).sub(1).abs().max() < 0.03
    assert float(lin[3].norm()) == pytest.approx(float((za + zb).norm() / 2), rel=1e-5)
    assert float(lin[3].norm()) / 64 == pytest.approx(2**-0.5, abs=0.03)
    with pytest.raises(ValueError, match="slerp"):
        edit.noise_path(za, zb, 3, "cubic")


def test_interpolation_ends_are_the_decoded_noises(gauss):
    model, _ = gauss
    face = edit.face_for(model, 40)
    za, zb = torch.randn(2, 1, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for mode in ("slerp", "lerp"):
        frames = edit.interpolate_noises(face, za, zb, frames=6, steps=40, mode=mode)
        assert frames.shape == (6, 16)
        torch.testing.assert_close(frames[0], face.decode(za)[0])
        torch.testing.assert_close(frames[-1], face.decode(zb)[0])


def test_items_parse_and_resolve(tmp_path):
    assert edit.parse_item("data:12") == edit.ItemSpec("data", 12)
    assert edit.parse_item(" seed:3 ") == edit.ItemSpec("seed", 3)
    for bad in ("data:x", "seed:-1", "nosuch.png", "", "data:"):
        with pytest.raises(ValueError):
            edit.parse_item(bad)
    # an image file: converted to grey and resized to the dataset's (1, 8, 8), in [-1, 1]
    a = np.zeros((32, 32, 3), np.uint8)
    a[:, 16:] = 255  # left half black, right half white
    path = tmp_path / "half.png"
    Image.fromarray(a).save(path)
    assert edit.parse_item(str(path)) == edit.ItemSpec("file", str(path))
    x = edit.load_image(path, (1, 8, 8))
    assert x.shape == (1, 1, 8, 8)
    tol = dict(atol=2 / 255, rtol=0)  # Lanczos rings by a grey level near the edge
    torch.testing.assert_close(x[0, 0, :, :3], torch.full((8, 3), -1.0), **tol)
    torch.testing.assert_close(x[0, 0, :, 5:], torch.full((8, 3), 1.0), **tol)
    with pytest.raises(ValueError, match="image dataset"):
        edit.load_image(path, (2,))
    # dataset examples: stored ones by position, procedural ones from a fixed reference set
    digits = get_dataset("digits")
    torch.testing.assert_close(edit.dataset_item(digits, 5), digits.x[5:6])
    moons = get_dataset("moons")
    torch.testing.assert_close(edit.dataset_item(moons, 7), edit.dataset_item(moons, 7))
    with pytest.raises(ValueError, match="out of range"):
        edit.dataset_item(moons, edit.DATA_REF)


def test_unsupported_model_says_so():
    from tests.fakeplugins import GaussFit

    assert not edit.supports_class(GaussFit)
    model = GaussFit(GaussFit.info.config_cls(), torch.device("cpu"))
    with pytest.raises(edit.EditUnsupported, match="DDIM-capable"):
        edit.invert_reconstruct(model, torch.zeros(1, 2))


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory):
    """A small DDPM on 8 Gaussians (T = 100; ~3 s on one thread)."""
    store = RunStore(tmp_path_factory.mktemp("edit_store"))
    run = jobs.create_run(store, jobs.TrainSpec(
        plugin="ddpm", dataset="8gaussians", steps=500, device="cpu", checkpoint_every=500,
        overrides=["batch_size=128", "timesteps=100", "hidden=64", "depth=2", "lr=0.003", "ema_decay=0.9"]))
    for _ in jobs.train(run, device="cpu"):
        pass
    return run


def test_trained_ddpm_round_trip_and_seed_items(ddpm_run):
    model, ds, _ = jobs.load_model(ddpm_run, "cpu")
    assert edit.supports(model)
    x, _ = ds.fixed(256, seed=3)
    _, recon, err = edit.invert_reconstruct(model, x, steps=100)
    baseline = edit.rms(x, x.roll(1, 0))  # distance to another data point
    assert float(err.median()) < 0.1 < 1.0 < float(baseline.median())
    # a seed item is the plugin's own x_T: decoding it is the plugin's DDIM (eta 0) sample
    states = list(model.sample(1, seed=7, sampler="ddim", steps=20, eta=0.0))
    item = edit.resolve_item(model, ds, "seed:7", steps=20)
    torch.testing.assert_close(item.noise, edit.seed_noise(model, 7))
    torch.testing.assert_close(item.x0, states[-1].x, atol=1e-5, rtol=0)
    res = edit.edit_pair(model, ds, "data:3", "seed:7", frames=5, steps=20)
    assert res.slerp.shape == res.lerp.shape == (5, 2) and res.kind == "points2d"
    torch.testing.assert_close(res.z[1], item.noise[0])  # a seed interpolates from its exact noise
    torch.testing.assert_close(res.z[0], res.noise[0])  # a data item from its inverted one
    torch.testing.assert_close(res.slerp[0], res.recon[0])
    torch.testing.assert_close(res.slerp[-1], item.x0[0], atol=1e-5, rtol=0)
    img = edit.edit_image(res)
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > img.shape[1]
    # a job's Stop: the check between stages is called, and what it raises ends the edit
    calls = []
    edit.edit_pair(model, ds, "data:3", "seed:7", frames=3, steps=5, check=lambda: calls.append(1))
    assert len(calls) == 3

    def stop():
        raise jobs.Cancelled()

    with pytest.raises(jobs.Cancelled):
        edit.edit_pair(model, ds, "data:3", "seed:7", frames=3, steps=5, check=stop)


def test_cli_interp(ddpm_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(ddpm_run.path.parent.parent))
    out = tmp_path / "strip.png"
    assert main(["interp", str(ddpm_run.path), "--a", "data:12", "--b", "seed:3", "--frames", "6",
                 "--steps", "20", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "reconstruction RMS error" in text and "A (data:12)" in text and "B (seed:3)" in text
    with Image.open(out) as im:
        assert im.size[0] > 100 and im.mode == "RGB"
    assert main(["interp", str(ddpm_run.path), "--a", "data:12", "--b", "bogus:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genstudio: error:") and "bogus" in err and len(err.strip().splitlines()) == 1
    assert main(["interp", str(ddpm_run.path), "--a", str(out), "--b", "seed:1"]) == 2  # an image, 2-D run
    assert "image dataset" in capsys.readouterr().err


def test_cli_interp_needs_a_ddim_run(capsys):
    assert main(["train", "realnvp", "--data", "moons", "--steps", "2", "--sample-every", "0",
                 "--checkpoint-every", "2"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1]).name
    assert main(["interp", run, "--a", "data:0", "--b", "data:1"]) == 2
    assert "needs a DDIM-capable diffusion run" in capsys.readouterr().err


def test_latent_diffusion_goes_through_its_decoder(tmp_path):
    """LDM: inversion encodes images to latents first; a seed decodes to the LDM's own DDIM image."""
    store = RunStore(tmp_path / "ldm")
    run = jobs.create_run(store, jobs.TrainSpec(
        plugin="ldm", dataset="digits", steps=10, device="cpu", checkpoint_every=10,
        overrides=["vae_steps=20", "vae_latent=4", "timesteps=50", "hidden=32", "depth=1"]))
    for _ in jobs.train(run, device="cpu"):
        pass
    model, ds, _ = jobs.load_model(run, "cpu")
    res = edit.edit_pair(model, ds, "data:1", "seed:2", frames=3, steps=10)
    assert res.x0.shape == res.recon.shape == (2, 1, 8, 8) and res.noise.shape == (2, 4)
    assert res.slerp.shape == (3, 1, 8, 8)
    final = list(model.sample(1, seed=2, sampler="ddim", steps=10, eta=0.0))[-1].x
    torch.testing.assert_close(res.x0[1:], final, atol=1e-5, rtol=0)
    torch.testing.assert_close(res.x0[0], ds.x[1])
    inv = edit.inversion_image(res)  # the latent noise is drawn as a square of its 4 entries
    k = edit._scale_for(8)  # image_grid(pad=2) scales cells and padding alike
    noise_cell = inv[2 * k:10 * k, 12 * k:20 * k, 0]
    want = to_uint8((res.noise[0] / 2.5).clamp(-1, 1)).reshape(2, 2)  # entries row-major
    np.testing.assert_array_equal(noise_cell[::4 * k, ::4 * k], want)
    np.testing.assert_array_equal(noise_cell, want.repeat(4 * k, 0).repeat(4 * k, 1))


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    """A class-conditional DDPM on 8 Gaussians (labels = the mode index; T = 100)."""
    store = RunStore(tmp_path_factory.mktemp("edit_cls"))
    run = jobs.create_run(store, jobs.TrainSpec(
        plugin="ddpm", dataset="8gaussians", steps=600, device="cpu", checkpoint_every=600,
        overrides=["batch_size=128", "timesteps=100", "hidden=64", "depth=2", "lr=0.003", "ema_decay=0.9",
                   "class_cond=true"]))
    for _ in jobs.train(run, device="cpu"):
        pass
    return run


def test_class_conditional_inversion_and_class_editing(class_run, ddpm_run, capsys):
    """Invert along class a's ODE and decode as a: a round trip; decode as b: the points move to
    mode b (class editing). A seed decoded as class c is the plugin's own DDIM sample of class c."""
    model, ds, _ = jobs.load_model(class_run, "cpu")
    x, y = ds.fixed(2000, seed=4)
    centre = torch.stack([x[y == k].mean(0) for k in range(8)])
    a = x[y == 2][:64]
    face_same = edit.InversionFace(model, 50, cond_in=2, cond_out=2)
    noise = face_same.encode(a)
    same = face_same.decode(noise)
    moved = edit.InversionFace(model, 50, cond_in=2, cond_out=5).decode(noise)
    assert float(edit.rms(same, a).median()) < 0.15
    nearest = torch.cdist(moved.double(), centre.double()).argmin(1)
    assert float((nearest == 5).double().mean()) > 0.8  # edited into class 5's mode
    states = list(model.sample(1, seed=7, sampler="ddim", steps=20, eta=0.0, cond=6, guidance=1.0))
    item = edit.resolve_item(edit.InversionFace(model, 20, cond_out=6), ds, "seed:7")
    torch.testing.assert_close(item.x0, states[-1].x, atol=1e-5, rtol=0)
    res = edit.edit_pair(model, ds, "data:3", "seed:7", frames=3, steps=10, cond_in=1, cond_out=4)
    assert res.meta == {"cond_in": 1, "cond_out": 4} and "decoded as class 4" in res.summary()
    plain, _, _ = jobs.load_model(ddpm_run, "cpu")
    with pytest.raises(edit.EditUnsupported, match="class-conditional"):
        edit.edit_pair(plain, ds, "data:3", "seed:7", steps=5, cond_in=1)
    # CLI: --class-in/--class-out; a class on an unconditional run is a one-line error
    assert main(["interp", str(class_run.path), "--a", "data:3", "--b", "seed:1", "--steps", "10", "--frames", "3",
                 "--class-in", "2", "--class-out", "5", "--out", str(class_run.path / "e.png")]) == 0
    assert "decoded as class 5" in capsys.readouterr().out
    assert main(["interp", str(ddpm_run.path), "--a", "data:3", "--b", "seed:1", "--class-in", "2"]) == 2
    assert "class-conditional" in capsys.readouterr().err
