"""The sd plugin: caption dropout feeds the null caption, the null caption does not depend on the
text encoder, the contract's extras, and the CLI path."""

import torch
from genstudio_plugins.sd import SDConfig, SDPlugin

from genstudio.core.data import get_dataset
from genstudio.core.plugin import final_state


def _model(**kw) -> SDPlugin:
    torch.manual_seed(0)
    m = SDPlugin(SDConfig.tiny().__class__(**{**vars(SDConfig.tiny()), **kw}))
    m.setup(get_dataset("captions16").spec)
    return m


def test_caption_dropout_feeds_the_null_caption():
    m = _model(cond_drop=1.0)
    seen = []
    real = m.text.forward
    m.text.forward = lambda ids: (seen.append(ids.clone()), real(ids))[1]
    x, y = get_dataset("captions16").batch(8, torch.Generator().manual_seed(0))
    m.train_step(x, y, 1)
    null = m.tokenizer.encode("")
    assert torch.equal(seen[0].cpu(), null.expand(8, -1))


def test_text_encoder_swap_changes_nothing_without_prompt_at_guidance_1():
    a, b = _model(), _model()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        for p in b.text.encoder.parameters():
            p.add_(torch.randn_like(p))
    xa = final_state(a.sample(3, seed=4, guidance=1.0)).x
    assert torch.equal(xa, final_state(b.sample(3, seed=4, guidance=1.0)).x)
    # ... but it does change a prompted sample (the encoder is used)
    pa = final_state(a.sample(3, seed=4, prompt="a red circle", guidance=1.0)).extras["stages"]["text encoder"]
    pb = final_state(b.sample(3, seed=4, prompt="a red circle", guidance=1.0)).extras["stages"]["text encoder"]
    assert not torch.allclose(pa, pb)


def test_extras_follow_the_contract():
    m = _model()
    st = final_state(m.sample(2, seed=0, prompt=["a red circle", "two squares"], guidance=3.0))
    attn, tokens = st.extras["attn"], st.extras["tokens"]
    assert attn.shape[:2] == (2, 12) and attn.dim() == 4
    assert tokens[0][:4] == ["a", "red", "circle", "<eos>"] and tokens[0][4] == ""
    pad = torch.tensor([[t == "" for t in row] for row in tokens])
    assert torch.all(attn[pad] == 0)
    names = [n for n, _ in m.pipeline_stages()]
    assert set(st.extras["stages"]) <= set(names)
    assert st.x.shape == (2, 3, 16, 16)
    assert "prompts" in m.views()


TINY = ["vae_latent=16", "vae_steps=3", "channels=8", "text_width=16", "text_layers=1", "heads=2",
        "timesteps=20", "sample_steps=4", "batch_size=8"]


def test_cli_train_and_sample_with_a_prompt(tmp_path, capsys):
    from genstudio import cli
    from genstudio.core.runs import RunStore

    sets = [a for kv in TINY for a in ("--set", kv)]
    assert cli.main(["train", "sd", "--data", "captions16", "--steps", "3", "--sample-every", "0", *sets]) == 0
    run = next(r for r in RunStore().list() if r.info()["plugin"] == "sd")
    out = tmp_path / "s.png"
    assert cli.main(["sample", run.id, "--prompt", "a red circle", "--guidance", "3", "--n", "2", "--steps", "3",
                     "--out", str(out)]) == 0
    assert out.exists()
