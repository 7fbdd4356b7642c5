"""The token families from the command line (in-process: new entry points are registered by conftest):
train dalle / unified on captions16, sample with a prompt, temperature and top-k, and image2caption."""

from __future__ import annotations

from pathlib import Path

from genstudio.cli import main

TINY = ["--set", "width=16", "--set", "layers=1", "--set", "heads=2", "--set", "vqvae_steps=3",
        "--set", "vqvae_codebook=8", "--set", "batch_size=4"]


def _train(plugin: str, capsys) -> str:
    assert main(["train", plugin, "--data", "captions16", "--steps", "2", "--sample-every", "0", *TINY]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1]).name


def test_dalle_cli(capsys, tmp_path):
    run = _train("dalle", capsys)
    out = tmp_path / "d.png"
    assert main(["sample", run, "--n", "4", "--prompt", "a red circle", "--temperature", "1", "--top-k", "4",
                 "--guidance", "2", "--out", str(out)]) == 0
    assert out.exists()
    assert main(["sample", run, "--mode", "image2caption"]) == 2  # dalle has no modes: a one-line error
    assert "does not take" in capsys.readouterr().err


def test_unified_image2caption_cli(capsys, tmp_path):
    run = _train("unified", capsys)
    assert main(["sample", run, "--n", "3", "--mode", "image2caption", "--temperature", "0",
                 "--out", str(tmp_path / "c.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("caption: ") for line in lines) == 3
    assert main(["sample", run, "--n", "2", "--prompt", "a red", "--decoding", "maskgit", "--mode",
                 "caption_completion", "--out", str(tmp_path / "m.png")]) == 0


def test_sample_writes_the_attention_figure_and_pipeline_diagram(capsys, tmp_path):
    """--attention: one strip per chosen step (sample --index's image + one map per word);
    --pipeline: the diagram; a run without prompts and a bad --index are one-line errors."""
    import numpy as np
    from PIL import Image

    run = _train("dalle", capsys)
    attn, pipe = tmp_path / "attn.png", tmp_path / "pipe.png"
    assert main(["sample", run, "--n", "2", "--prompt", "a red circle", "--prompt", "two blue squares",
                 "--index", "1", "--rows", "3", "--attention", str(attn), "--pipeline", str(pipe),
                 "--out", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert str(attn) in out and str(pipe) in out
    a = np.asarray(Image.open(attn))
    # index 1's prompt has three words ("two", "blue", "squares"): 1 + 3 tiles of 48 px, 3 rows
    assert a.shape[1] == 96 + 4 * (48 + 4) + 4 and a.shape[0] % 3 == 0
    assert Image.open(pipe).size[0] > 4 * 132  # prompt -> tokens -> ... boxes
    assert main(["sample", run, "--n", "2", "--index", "2", "--attention", str(attn)]) == 2
    assert "--index 2" in capsys.readouterr().err
    assert main(["train", "ddpm", "--data", "8gaussians", "--steps", "2", "--sample-every", "0"]) == 0
    plain = Path(capsys.readouterr().out.strip().splitlines()[-1]).name
    assert main(["sample", plain, "--attention", str(attn)]) == 2
    assert "takes no prompt" in capsys.readouterr().err
