"""The codec panel, standalone with the fake AppContext (jobs inline): it is offered by face, the
decode job fills every bitrate at once, the slider re-decodes without a job, the play buttons say
when there is no audio device and export WAVs instead, and a player is called when there is one."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from genstudio_plugins.codec import CodecPlugin  # noqa: E402

import genstudio.core.registry as registry_mod  # noqa: E402
from genstudio.core import jobs  # noqa: E402
from genstudio.core.data.audio import read_wav, to_pcm16  # noqa: E402
from genstudio.core.registry import Registry  # noqa: E402
from genstudio.qt.panels import audio as audio_panel  # noqa: E402
from genstudio.qt.panels.audio import CodecPanel  # noqa: E402
from tests.fakeplugins import GaussFit  # noqa: E402
from tests.qt.test_panels import FakeCtx  # noqa: E402

TINY = ["batch_size=4", "channels=4", "strides=4,5", "latent_dim=8", "n_codebooks=3", "codebook_size=16"]


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    reg = Registry()
    reg.add_class(CodecPlugin, "tests", "codec")
    reg.add_class(GaussFit, "tests", "gaussfit")
    monkeypatch.setattr(registry_mod, "_cached", reg)
    return FakeCtx(tmp_path / "store", reg)


def _trained(ctx, plugin="codec", data="audio:tones", overrides=TINY):
    torch.manual_seed(0)
    run = jobs.create_run(ctx.store, jobs.TrainSpec(plugin, data, steps=3, sample_every=0, checkpoint_every=3,
                                                    overrides=overrides))
    for _ in jobs.train(run):
        pass
    return run


@pytest.fixture
def panel(qtbot, ctx, monkeypatch):
    monkeypatch.setattr(audio_panel, "audio_output", lambda: (None, "no audio output device"))
    p = CodecPanel(ctx)
    qtbot.addWidget(p)
    return p


def test_offered_by_face_and_decodes_every_bitrate(panel, ctx, tmp_path, monkeypatch):
    other = _trained(ctx, "gaussfit", "8gaussians", [])
    panel.set_run(other)
    assert not panel.decode_button.isEnabled() and "Codec" in panel.decode_button.toolTip()
    run = _trained(ctx)
    panel.set_run(run)
    assert panel.decode_button.isEnabled() and not panel.slider.isEnabled()
    panel.start_decode()
    ctx.deliver(panel)
    r = panel.result
    assert r is not None and r.n_codebooks == 3 and panel.slider.maximum() == 3 and panel.codebooks == 3
    assert "4.8 kbps" in panel.rate_label.text()
    _, y3 = panel.current()
    panel.slider.setValue(1)  # instant: no job, a precomputed row
    assert not ctx.pending and "1.6 kbps" in panel.rate_label.text()
    x, y1 = panel.current()
    assert np.array_equal(y1, r.recon[0, 0].reshape(-1)) and not np.array_equal(y1, y3)
    xs, ys = panel.curves["difference"].getData()
    assert np.allclose(ys, y1 - x, atol=1e-6)
    assert panel.code_item.image is not None and panel.code_item.image.shape[0] == 3 * 6
    assert f"{r.si_sdr[0, 0]:.1f} dB" in panel.summary.text()
    panel.clip_spin.setValue(2)
    assert np.array_equal(panel.current()[0], r.x[2].reshape(-1))

    # no device: the buttons say so, and a click exports WAVs (the folder dialog answered)
    assert "no audio device, export WAV" in panel.play_out.text()
    monkeypatch.setattr(audio_panel.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    panel.play(True)
    wavs = sorted(p.name for p in tmp_path.glob("*.wav"))
    assert wavs == ["clip2_1cb_1.6kbps.wav", "clip2_input.wav"] and ctx.messages
    back, sr = read_wav(tmp_path / "clip2_1cb_1.6kbps.wav")
    assert sr == 8000 and np.array_equal(back, to_pcm16(r.recon[0, 2]))


def test_plays_through_a_device_when_there_is_one(qtbot, ctx, monkeypatch):
    played = []
    monkeypatch.setattr(audio_panel, "audio_output", lambda: (lambda x, sr: played.append((x, sr)), ""))
    p = CodecPanel(ctx)
    qtbot.addWidget(p)
    p.set_run(_trained(ctx))
    p.start_decode()
    ctx.deliver(p)
    assert p.play_in.text() == "▶ input"
    p.play(False)
    p.play(True)
    assert [sr for _, sr in played] == [8000, 8000]
    assert np.array_equal(played[0][0], p.result.x[0].reshape(-1))
    assert np.array_equal(played[1][0], p.result.recon[-1, 0].reshape(-1))


def test_audio_output_reports_why_not():
    player, why = audio_panel.audio_output()
    assert (player is None) == bool(why)
