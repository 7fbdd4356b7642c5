"""Audio data, maths and files: the mel filterbank against a loop-by-loop computation and closed
forms, STFT / mel losses against torch.stft-based reference formulas, SI-SDR's invariances, the
procedural datasets (parameters kept, reproducible), the user's WAV folder and the 16-bit WAV
round trip (bit-exact; readable by sox's soxi where it is installed)."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
import torch

from genstudio.core.data import get_dataset
from genstudio.core.data.audio import (
    GENERATORS,
    AudioError,
    load_wav_folder,
    read_wav,
    to_pcm16,
    write_wav,
)
from genstudio.core.metrics import audio as A
from genstudio.core.modality import modality_of


# -- mel filterbank --------------------------------------------------------------------------------
def test_mel_scales_closed_forms():
    assert float(A.hz_to_mel(1000.0)) == pytest.approx(15.0)  # Slaney: 1 kHz is 15 mel (3 mel / 200 Hz below)
    assert float(A.hz_to_mel(200.0)) == pytest.approx(3.0)
    assert float(A.hz_to_mel(6400.0)) == pytest.approx(15.0 + 27.0)  # 27 log-steps per factor 6.4
    assert float(A.hz_to_mel(700.0, htk=True)) == pytest.approx(2595 * math.log10(2))
    f = torch.tensor([0.0, 300.0, 1000.0, 3999.0])
    for htk in (False, True):
        assert torch.allclose(A.mel_to_hz(A.hz_to_mel(f, htk), htk), f.double(), atol=1e-6)


def _loop_filterbank(sr, n_fft, n_mels, htk):
    """Independent: each filter a triangle through three mel-spaced corner frequencies, evaluated
    bin by bin with plain Python floats, then divided by half its base width (unit area in Hz)."""
    def mel(f):
        if htk:
            return 2595 * math.log10(1 + f / 700)
        return f / (200 / 3) if f < 1000 else 15 + math.log(f / 1000) * 27 / math.log(6.4)

    def hz(m):
        if htk:
            return 700 * (10 ** (m / 2595) - 1)
        return m * 200 / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)

    top = mel(sr / 2)
    corners = [hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        lo, mid, hi = corners[m:m + 3]
        for b in range(n_fft // 2 + 1):
            f = b * sr / n_fft
            if lo < f <= mid:
                out[m, b] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                out[m, b] = (hi - f) / (hi - mid)
        out[m] *= 2 / (hi - lo)
    return out


@pytest.mark.parametrize("htk", [False, True])
def test_mel_filterbank_matches_independent_loop(htk):
    fb = A.mel_filterbank(8000, 256, 20, htk=htk).double().numpy()
    ref = _loop_filterbank(8000, 256, 20, htk)
    assert fb.shape == (20, 129)
    np.testing.assert_allclose(fb, ref, atol=1e-6)
    widths = A.mel_to_hz(torch.linspace(0, float(A.hz_to_mel(4000.0, htk)), 22, dtype=torch.float64), htk).diff()
    wide = (widths[:-1] + widths[1:]).numpy() > 8 * 8000 / 256  # triangles spanning many bins integrate to ~1
    np.testing.assert_allclose((fb.sum(1) * 8000 / 256)[wide], 1.0, rtol=0.05)


# -- STFT / mel losses ------------------------------------------------------------------------------
def _ref_mag(x, n_fft, hop):
    return torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, pad_mode="reflect",
                      return_complex=True).abs()


def test_stft_and_mel_losses_match_reference_formulas():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 1, 2048, generator=g), torch.randn(3, 1, 2048, generator=g)
    total = 0.0
    for n_fft, hop in A.STFT_RESOLUTIONS:
        sx, sy = _ref_mag(x.reshape(3, -1), n_fft, hop), _ref_mag(y.reshape(3, -1), n_fft, hop)
        assert torch.allclose(A.stft_mag(x, n_fft, hop).reshape(sx.shape), sx, atol=1e-5)
        sc = torch.sqrt(((sx - sy) ** 2).sum()) / torch.sqrt((sx**2).sum())
        lm = (torch.log(sx + 1e-3) - torch.log(sy + 1e-3)).abs().mean()
        assert float(A.stft_loss(x, y, n_fft, hop)) == pytest.approx(float(sc + lm), rel=1e-5)
        total += float(sc + lm)
    assert float(A.multi_resolution_stft_loss(x, y)) == pytest.approx(total / 3, rel=1e-5)
    fb = A.mel_filterbank(8000, 512, 64)
    lx = torch.log(fb @ _ref_mag(x.reshape(3, -1), 512, 128) ** 2 + 1e-4)
    ly = torch.log(fb @ _ref_mag(y.reshape(3, -1), 512, 128) ** 2 + 1e-4)
    want = (lx - ly).abs().mean(dim=(-2, -1))
    assert torch.allclose(A.mel_distance(x, y, 8000).reshape(3), want, rtol=1e-5)
    assert float(A.mel_distance(x, x, 8000).max()) == 0.0
    assert float(A.multi_resolution_stft_loss(x, x)) == pytest.approx(0.0, abs=1e-6)


# -- SI-SDR -----------------------------------------------------------------------------------------
def test_si_sdr_identity_is_clipped_and_scale_invariant():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 1000, generator=g)
    noisy = s + 0.3 * torch.randn(4, 1000, generator=g)
    assert torch.equal(A.si_sdr(s, s), torch.full((4,), A.SI_SDR_MAX))
    base = A.si_sdr(s, noisy)
    for c in (0.01, 2.0, 37.0):
        assert torch.allclose(A.si_sdr(s, c * noisy), base, atol=1e-4)
    # closed form: estimate = s + e with e orthogonal to s -> 10 log10(|s|^2 / |e|^2)
    t = torch.linspace(0, 1, 1000)
    a, b = torch.sin(2 * math.pi * 5 * t), 0.1 * torch.sin(2 * math.pi * 11 * t)
    a, b = a - a.mean(), b - b.mean()
    b = b - (a @ b) / (a @ a) * a
    assert float(A.si_sdr(a, a + b)) == pytest.approx(10 * math.log10(float(a @ a) / float(b @ b)), abs=1e-3)


def test_si_sdr_loss_is_minus_the_mean_si_sdr_and_rewards_phase():
    """The codec's SI-SDR loss against an independent float64 numpy formula on a toy pair, its
    scale invariance, and that a phase error (which a magnitude spectrum cannot see) costs it."""
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(3, 1, 400, generator=g)
    est = 0.5 * ref + 0.4 * torch.randn(3, 1, 400, generator=g)
    r, e = ref.double().numpy()[:, 0], est.double().numpy()[:, 0]
    r, e = r - r.mean(-1, keepdims=True), e - e.mean(-1, keepdims=True)
    target = (e * r).sum(-1, keepdims=True) / (r * r).sum(-1, keepdims=True) * r
    want = -np.mean(10 * np.log10((target**2).sum(-1) / ((e - target) ** 2).sum(-1)))
    assert float(A.si_sdr_loss(ref, est)) == pytest.approx(want, abs=1e-3)
    assert float(A.si_sdr_loss(ref, 3 * est)) == pytest.approx(want, abs=1e-3)
    t = torch.arange(800) / 8000
    tone = torch.sin(2 * math.pi * 440 * t)
    shifted = torch.sin(2 * math.pi * 440 * t + 1.0)
    assert float(A.si_sdr_loss(tone, shifted)) > float(A.si_sdr_loss(tone, tone)) + 50
    est = est.clone().requires_grad_(True)
    A.si_sdr_loss(ref, est).backward()
    assert torch.isfinite(est.grad).all() and float(est.grad.abs().sum()) > 0


def test_mu_law_round_trip():
    x = torch.linspace(-1, 1, 1001)
    for bits in (4, 8):
        q = A.mu_law_encode(x, bits)
        assert int(q.min()) == 0 and int(q.max()) == 2**bits - 1
        err = (A.mu_law_decode(q, bits) - x).abs()
        assert float(err.max()) < (0.25 if bits == 4 else 0.03)
        assert float(err[450:551].max()) < float(err.max())  # finer steps near zero: mu-law's point
    assert torch.equal(A.mu_law_encode(A.mu_law_decode(torch.arange(256), 8), 8), torch.arange(256))


# -- data ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_procedural_datasets(kind):
    ds = get_dataset(f"audio:{kind}")
    assert ds.spec.kind == "audio" and ds.spec.shape == (1, 8000) and ds.spec.sample_rate == 8000
    x, params = ds.generate(3, torch.Generator().manual_seed(1))
    modality_of("audio").check(x, ds.spec.shape)
    assert len(params) == 3 and all("seed" in p for p in params) and len(params[0]) > 1
    assert float(x.abs().max()) > 0.05
    x2, _ = ds.generate(3, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2)
    assert not torch.equal(x, ds.fixed(3, seed=2)[0])


def test_tone_parameters_are_the_clips():
    ds = get_dataset("audio:tones")
    x, params = ds.generate(2, torch.Generator().manual_seed(3))
    for clip, p in zip(x, params):
        spec = torch.fft.rfft(clip[0]).abs()
        peak = float(spec.argmax()) * 8000 / 8000  # 1 s clip: bin k is k Hz
        assert peak == pytest.approx(p["f0"], abs=2.0)


def test_wav_round_trip_is_bit_exact(tmp_path):
    pcm = np.random.default_rng(0).integers(-32768, 32768, 5000).astype(np.int16)
    path = write_wav(tmp_path / "a.wav", pcm, 8000)
    back, sr = read_wav(path)
    assert sr == 8000 and back.dtype == np.int16 and np.array_equal(back, pcm)
    x = torch.rand(1, 4000) * 2 - 1  # floats: stored as the rounded int16, read back the same
    back, _ = read_wav(write_wav(tmp_path / "b.wav", x, 16000))
    assert np.array_equal(back, to_pcm16(x))
    if shutil.which("soxi"):
        out = subprocess.run(["soxi", str(path)], capture_output=True, text=True, check=True).stdout
        assert "8000" in out and "16-bit" in out and "Channels       : 1" in out


def test_wav_folder_mono_stereo_resampled_and_bad_files(tmp_path):
    import soundfile as sf

    t = np.arange(16000) / 16000
    sf.write(tmp_path / "stereo16k.wav", np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1) * 0.5, 16000)
    sf.write(tmp_path / "mono8k.flac", np.sin(2 * np.pi * 220 * np.arange(12000) / 8000) * 0.5, 8000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
    ds = get_dataset(f"wav:{tmp_path}")
    assert ds.spec.kind == "audio" and ds.spec.shape == (1, 8000) and ds.spec.sample_rate == 8000
    assert len(ds.x) == 3  # 1.5 s -> a clip plus a padded half clip; 1 s at 16 kHz -> one clip
    assert len(ds.errors) == 1 and ds.errors[0].startswith("broken.wav: cannot be read")
    assert int(torch.fft.rfft(ds.x[0, 0]).abs().argmax()) == 220
    assert int(torch.fft.rfft(ds.x[2, 0]).abs().argmax()) == 440  # resampled 16k -> 8k keeps the pitch
    assert float(ds.x[1, 0, 4100:].abs().max()) == 0.0  # the half clip is zero-padded
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioError, match="no audio files"):
        get_dataset(f"wav:{tmp_path / 'empty'}")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.wav").write_bytes(b"junk")
    with pytest.raises(AudioError, match="x.wav: cannot be read"):
        load_wav_folder(str(only_bad))


def test_audio_modality_previews_and_exports(tmp_path):
    m = modality_of("audio")
    x = get_dataset("audio:chords").fixed(3)[0]
    img = m.preview(x)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.std() > 5
    files = m.export(x, str(tmp_path / "s"), get_dataset("audio:chords").spec)
    assert len(files) == 3
    back, sr = read_wav(files[1])
    assert sr == 8000 and np.array_equal(back, to_pcm16(x[1]))
