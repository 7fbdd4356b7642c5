"""The imagen cascade: dynamic thresholding's closed form, a 32x32 output, an SR stage that uses
its low-res input, contract extras."""

import torch
from genstudio_plugins.imagen import ImagenConfig, ImagenPlugin, dynamic_threshold

from genstudio.core.data import get_dataset


def test_dynamic_threshold_closed_form():
    x = torch.tensor([[0.5, -3.0, 2.0, 0.1], [0.2, -0.4, 0.3, 0.9]]).view(2, 1, 2, 2)
    p = 0.75
    out = dynamic_threshold(x, p)
    for i in range(2):
        s = max(1.0, float(torch.quantile(x[i].abs().flatten(), p)))
        assert torch.allclose(out[i], x[i].clamp(-s, s) / s)
    assert torch.equal(out[1], x[1])  # s = 1 when every |x0| <= 1: unchanged
    assert out.abs().max() <= 1.0
    assert torch.equal(dynamic_threshold(x, 0.0), x.clamp(-1, 1))


def _model() -> ImagenPlugin:
    torch.manual_seed(0)
    m = ImagenPlugin(ImagenConfig.tiny())
    m.setup(get_dataset("captions").spec)
    for net in (m.sr_ema, m.ema):  # the zero-initialised output layers would hide every input
        torch.nn.init.normal_(net.conv_out.weight, std=0.3)
    return m


def test_cascade_is_32x32_and_reports_both_stages():
    m = _model()
    states = list(m.sample(2, seed=0, prompt="a red circle", guidance=2.0, steps=2))
    st = states[-1]
    assert st.x.shape == (2, 3, 32, 32) and st.total == 4 and len(states) == 4
    assert set(st.extras["stages"]) == {"base 16x16", "super-res 32x32"}
    assert st.extras["stages"]["base 16x16"].shape == (2, 3, 16, 16)
    attn = st.extras["attn"]
    assert attn.shape[:2] == (2, 12)
    pad = torch.tensor([[t == "" for t in row] for row in st.extras["tokens"]])
    assert torch.all(attn[pad] == 0)
    assert [n for n, _ in m.pipeline_stages()][-2:] == ["base 16x16", "super-res 32x32"]


def test_sr_stage_is_conditioned_on_the_low_res_image():
    m = _model()
    ids = m.prompt_ids("a red circle", 2)
    g = torch.Generator().manual_seed(0)
    low, noise, x = torch.randn(2, 3, 16, 16, generator=g), torch.randn(2, 3, 32, 32, generator=g), \
        torch.randn(2, 3, 32, 32, generator=g)
    aug = torch.full((2,), 0.1)
    t = torch.full((2,), 0.5)
    with torch.no_grad():
        a = m.guided(m.sr_ema, x, t, ids, 1.0, m.sr_input(low, aug, noise))
        b = m.guided(m.sr_ema, x, t, ids, 1.0, m.sr_input(low.flip(-1), aug, noise))
        c = m.guided(m.sr_ema, x, t, ids, 1.0, m.sr_input(low, aug, noise))
    assert torch.equal(a, c) and not torch.allclose(a, b)


def test_trains_both_stages():
    m = ImagenPlugin(ImagenConfig.tiny())
    m.setup(get_dataset("captions16").spec)
    x, y = get_dataset("captions16").batch(8, torch.Generator().manual_seed(0))
    out = m.train_step(x, y, 1)
    assert {"loss", "loss_base", "loss_sr"} <= set(out)
    assert all(p.grad is not None for p in m.sr.conv_out.parameters())
