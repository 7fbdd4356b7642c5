"""The video diffusion plugin: architectures, conditions, faces, frame-count extrapolation, CLI."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from genstudio_plugins.video_diffusion import VideoDiffusionConfig, VideoDiffusionPlugin

from genstudio.core.data import get_dataset
from genstudio.core.faces import Conditional, Denoiser, TextConditional, faces_of
from genstudio.core.plugin import final_state


def _trained(data: str, **kw) -> tuple[VideoDiffusionPlugin, object]:
    ds = get_dataset(data)
    cfg = dataclasses.replace(VideoDiffusionConfig.tiny(), **kw)
    m = VideoDiffusionPlugin(cfg, torch.device("cpu"))
    m.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 3):
        x, y = ds.batch(cfg.batch_size, g)
        assert torch.isfinite(torch.tensor(m.train_step(x, y, step)["loss"]))
    return m, ds


@pytest.mark.parametrize("arch,attention", [("dit", "factorised"), ("dit", "joint"), ("unet3d", "factorised")])
def test_class_conditional_archs_sample_with_guidance_and_more_frames(arch, attention):
    m, _ = _trained("video:moving16", arch=arch, attention=attention, cond="class")
    assert Conditional in faces_of(m) and Denoiser in faces_of(m) and TextConditional not in faces_of(m)
    x = final_state(m.sample(2, seed=0, cond=torch.tensor([0, 3]), guidance=2.0)).x
    assert x.shape == (2, 3, 16, 16, 16) and torch.isfinite(x).all()
    long = final_state(m.sample(2, seed=0, frames=24, sampler="ddim")).x
    assert long.shape == (2, 3, 24, 16, 16) and m.data.shape[1] == 16  # the trained length is kept


def test_caption_conditional_takes_prompts():
    m, ds = _trained("video:captions16", cond="caption")
    assert TextConditional in faces_of(m) and Conditional not in faces_of(m)
    assert m.text_tokenizer().to_json() == ds.tokenizer.to_json()
    x = final_state(m.sample(3, seed=1, prompt=["a red circle moves right", "a blue square moves up"],
                             guidance=3.0)).x
    assert x.shape == (3, 3, 16, 16, 16)
    fresh = VideoDiffusionPlugin(m.config, torch.device("cpu"))
    fresh.setup(ds.spec)
    fresh.load_state_dict(m.state_dict())
    assert fresh.tokenizer.to_json() == m.tokenizer.to_json()


def test_x0_prediction_is_what_the_denoiser_returns():
    """predict=x0: the network's output is the clean clip; the eps the samplers and CFG use is the
    noise it implies, so the Denoiser face hands the network's clip back unchanged (inside the clip
    range) and a DDIM sample runs on it."""
    m, _ = _trained("video:moving16", cond="class", predict="x0", clip_x0=False)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 3, 16, 16, 16, generator=g), torch.tensor([0, 2])
    for p in m.ema.proj_out.parameters():  # zero-initialised: give the output some structure
        p.data.normal_(0, 0.1, generator=g)
    for k in (0, 7, 19):
        t = torch.full((2,), k)
        x0, eps = m.denoise(x, t, cond=y)
        assert torch.allclose(x0, m.ema(x, m._time(t), y), atol=1e-4)
        a, s = m.alpha_sigma(t)
        assert torch.allclose(a.float().view(-1, 1, 1, 1, 1) * x0 + s.float().view(-1, 1, 1, 1, 1) * eps, x, atol=1e-3)
    out = final_state(m.sample(2, seed=0, cond=y, guidance=2.0, sampler="ddim")).x
    assert out.shape == x.shape and torch.isfinite(out).all()
    # auto: x0 exactly where the DiT's patch does not fit through its width
    for kw, want in (({"arch": "dit", "width": 64}, "x0"), ({"arch": "dit", "width": 96}, "eps"),
                     ({"arch": "unet3d"}, "eps"), ({"arch": "unet3d", "predict": "x0"}, "x0")):
        assert _trained("video:moving16", **kw)[0].predict == want, kw


def test_bad_settings_fail_clearly():
    with pytest.raises(ValueError, match="captioned clips"):
        _trained("video:moving16", cond="caption")
    m, _ = _trained("video:moving16")
    with pytest.raises(ValueError, match="multiple"):
        m.sample(1, seed=0, frames=15)
    with pytest.raises(ValueError, match="caption-conditioned"):
        m.sample(1, seed=0, prompt="a red circle moves right")
    assert not hasattr(m, "text_tokenizer")


def test_cli_train_sample_gif_eval(tmp_path, capsys):
    import imageio.v3 as iio

    from genstudio.cli import main

    assert main(["train", "video_diffusion", "--data", "video:moving16", "--steps", "3", "--set", "timesteps=10",
                 "--set", "width=16", "--set", "blocks=1", "--set", "batch_size=2", "--set", "cond=class",
                 "--sample-every", "0"]) == 0
    from genstudio.core.runs import RunStore

    run = RunStore().list()[-1]
    gif = tmp_path / "clip.gif"
    assert main(["sample", str(run.path), "--n", "2", "--steps", "2", "--frames", "24", "--gif", str(gif)]) == 0
    assert iio.imread(gif, index=None).shape[0] == 24
    assert main(["eval", str(run.path), "--n", "8", "--steps", "2", "--boot", "0", "--metrics", "temporal,motion"]) == 0
    out = capsys.readouterr().out
    assert "motion" in out and "temporal" in out
