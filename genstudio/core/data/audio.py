"""Built-in procedural audio (nothing downloaded) and the user's own WAV folder.

Clips are mono (1, T) float tensors in [-1, 1] at ``SAMPLE_RATE`` (8 kHz: a 1 s clip is 8000
samples, so a codec trains on a CPU). Each procedural dataset draws fresh clips from a seeded
torch.Generator and keeps every clip's parameters (:meth:`AudioDataset.generate` returns them):
tones, chords, chirps, drum-like hits, noise bursts, formant "vowels" and melodies from a random
pentatonic score. ``wav:PATH[:SECONDS]`` reads every WAV/FLAC/OGG under a folder with soundfile
(stereo averaged to mono, other rates resampled with scipy's polyphase filter) and cuts it into
clips; a file that cannot be read is skipped with one clear line each (``ds.errors``).

:func:`write_wav` / :func:`read_wav` are the 16-bit PCM export the codec panel and
``genstudio sample`` use (a 16-bit file read back as int16 is bit-exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genstudio.core.data import Dataset, DataSpec, register_dataset

SAMPLE_RATE = 8000
CLIP_SECONDS = 1.0
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
PENTATONIC = (0, 2, 4, 7, 9)  # semitones of the major pentatonic scale
VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "o": (570, 840, 2410),
          "u": (300, 870, 2240)}  # formants F1-F3 in Hz (Peterson & Barney 1952, male speakers)

Clip = tuple[np.ndarray, dict[str, Any]]


class AudioError(ValueError):
    """A ``wav:`` folder that gives no usable audio (or a bad argument)."""


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, exponential-ish release to 0 at the end (no clicks at clip edges)."""
    t = np.arange(n) / sr
    a = np.clip(t / max(attack, 1e-4), 0, 1)
    r = np.clip((n / sr - t) / max(release, 1e-4), 0, 1)
    return a * r


def _harmonic(f0: float, n: int, sr: int, partials: int, rng: np.random.Generator) -> np.ndarray:
    """A note: ``partials`` harmonics below Nyquist with 1/k amplitudes and random phases."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k in range(1, partials + 1):
        if k * f0 < sr / 2:
            out += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
    return out


def _normalise(x: np.ndarray, peak: float) -> np.ndarray:
    m = np.abs(x).max()
    return x * (peak / m) if m > 0 else x


def tone(rng: np.random.Generator, n: int, sr: int) -> Clip:
    f0 = float(np.exp(rng.uniform(np.log(100), np.log(min(2000, sr / 4)))))
    amp = float(rng.uniform(0.3, 0.8))
    t = np.arange(n) / sr
    return amp * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi)) * _envelope(n, sr, 0.02, 0.05), \
        {"f0": f0, "amplitude": amp}


def chord(rng: np.random.Generator, n: int, sr: int) -> Clip:
    root = float(110 * 2 ** (rng.integers(0, 24) / 12))
    quality = str(rng.choice(["major", "minor"]))
    steps = (0, 4, 7) if quality == "major" else (0, 3, 7)
    freqs = [root * 2 ** (s / 12) for s in steps]
    x = sum(_harmonic(f, n, sr, 4, rng) for f in freqs) * _envelope(n, sr, 0.03, 0.3)
    return _normalise(x, 0.7), {"root": root, "quality": quality, "freqs": freqs}


def chirp(rng: np.random.Generator, n: int, sr: int) -> Clip:
    f0, f1 = (float(np.exp(rng.uniform(np.log(80), np.log(sr / 2.5)))) for _ in range(2))
    t = np.arange(n) / sr
    dur = n / sr
    k = math.log(f1 / f0) / dur  # exponential sweep: f(t) = f0 e^{kt}
    phase = 2 * np.pi * f0 * (np.expm1(k * t) / k if abs(k) > 1e-9 else t)
    return 0.6 * np.sin(phase) * _envelope(n, sr, 0.02, 0.05), {"f0": f0, "f1": f1}


def drums(rng: np.random.Generator, n: int, sr: int) -> Clip:
    x = np.zeros(n)
    hits = []
    for _ in range(int(rng.integers(2, 6))):
        at = int(rng.integers(0, int(n * 0.85)))
        kind = str(rng.choice(["kick", "snare", "hat"]))
        m = n - at
        t = np.arange(m) / sr
        if kind == "kick":  # a sine whose pitch falls from 150 to 50 Hz
            f = 50 + 100 * np.exp(-t * 30)
            hit = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 12)
        elif kind == "snare":
            hit = (0.6 * rng.standard_normal(m) + 0.4 * np.sin(2 * np.pi * 200 * t)) * np.exp(-t * 25)
        else:
            hit = rng.standard_normal(m) * np.exp(-t * 80)
            hit = np.diff(hit, prepend=0.0)  # brighter: first difference tilts towards high frequencies
        x[at:] += hit
        hits.append({"time": at / sr, "kind": kind})
    return _normalise(x, 0.8), {"hits": sorted(hits, key=lambda h: h["time"])}


def noise_burst(rng: np.random.Generator, n: int, sr: int) -> Clip:
    lo = float(rng.uniform(50, sr / 4))
    hi = float(min(sr / 2, lo * rng.uniform(1.5, 6)))
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    start, length = float(rng.uniform(0, 0.5)), float(rng.uniform(0.2, 0.5))
    t = np.arange(n) / sr
    env = np.clip(np.minimum((t - start) / 0.01, (start + length - t) / 0.05), 0, 1)
    return _normalise(x * env, 0.6), {"band": (lo, hi), "start": start, "length": length}


def vowel(rng: np.random.Generator, n: int, sr: int) -> Clip:
    """A glottal pulse train (harmonics of f0) shaped by resonances at the vowel's formants."""
    name = str(rng.choice(list(VOWELS)))
    f0 = float(rng.uniform(90, 240))
    t = np.arange(n) / sr
    vib = 1 + 0.01 * np.sin(2 * np.pi * 5 * t)
    x = np.zeros(n)
    for k in range(1, int(sr / 2 / f0)):
        fk = k * f0
        gain = sum(1 / (1 + ((fk - fm) / (60 + 0.05 * fm)) ** 2) for fm in VOWELS[name] if fm < sr / 2)
        x += gain / k**0.5 * np.sin(2 * np.pi * fk * np.cumsum(vib) / sr)
    return _normalise(x * _envelope(n, sr, 0.05, 0.1), 0.7), {"vowel": name, "f0": f0}


def melody(rng: np.random.Generator, n: int, sr: int) -> Clip:
    notes = int(rng.integers(4, 9))
    base = int(rng.integers(55, 70))  # MIDI note of the scale root
    score = [base + 12 * int(rng.integers(0, 2)) + int(rng.choice(PENTATONIC)) for _ in range(notes)]
    edges = np.linspace(0, n, notes + 1).astype(int)
    x = np.zeros(n)
    for midi, a, b in zip(score, edges[:-1], edges[1:]):
        f = 440 * 2 ** ((midi - 69) / 12)
        x[a:b] = _harmonic(f, b - a, sr, 3, rng) * _envelope(b - a, sr, 0.01, 0.05)
    return _normalise(x, 0.7), {"score": score}


GENERATORS: dict[str, tuple[Callable[[np.random.Generator, int, int], Clip], str]] = {
    "tones": (tone, "one sine tone, 100 Hz - 2 kHz, random level"),
    "chords": (chord, "major/minor triads of harmonic notes"),
    "chirps": (chirp, "exponential frequency sweeps"),
    "drums": (drums, "kick / snare / hi-hat hits at random times"),
    "noise": (noise_burst, "band-limited noise bursts"),
    "vowels": (vowel, "formant-filtered pulse trains: a e i o u"),
    "melodies": (melody, "random pentatonic melodies of harmonic notes"),
}


class AudioDataset(Dataset):
    """Procedural clips: each one drawn from its own numpy generator seeded from the torch one,
    so a batch is reproducible per generator state and every clip's parameters can be given back."""

    def __init__(self, kind: str, sr: int = SAMPLE_RATE, seconds: float = CLIP_SECONDS) -> None:
        self.kind, self.sr = kind, int(sr)
        self.n = int(round(sr * seconds))
        self.fn, desc = GENERATORS[kind]
        self.spec = DataSpec(f"audio:{kind}", "audio", (1, self.n), description=f"{desc}; {seconds:g} s at "
                             f"{sr / 1000:g} kHz", sample_rate=self.sr)

    def generate(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """``n`` clips (n, 1, T) and each clip's parameters."""
        seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist()
        clips, params = [], []
        for s in seeds:
            x, p = self.fn(np.random.default_rng(s), self.n, self.sr)
            clips.append(np.clip(x, -1, 1))
            params.append({"seed": s, **p})
        return torch.from_numpy(np.stack(clips)).float()[:, None], params

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.generate(n, generator)[0], None


def _register(kind: str) -> None:
    register_dataset(f"audio:{kind}", f"audio: {GENERATORS[kind][1]} (1 s, 8 kHz)")(lambda: AudioDataset(kind))


for _k in GENERATORS:
    _register(_k)


# -- the user's files -----------------------------------------------------------------------------
class AudioFolder(Dataset):
    """Clips cut from the user's audio files, held in memory; batches drawn with replacement."""

    def __init__(self, spec: DataSpec, x: torch.Tensor, errors: list[str]) -> None:
        self.spec, self.x, self.errors = spec, x, errors

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.x[torch.randint(0, len(self.x), (n,), generator=generator)], None

    def fixed(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(seed))[: min(n, len(self.x))]
        return self.x[idx], None


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling along the last axis (scipy's anti-aliased ``resample_poly``)."""
    if sr_from == sr_to:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(int(sr_from), int(sr_to))
    return resample_poly(x, sr_to // g, sr_from // g, axis=-1)


def load_wav_folder(arg: str, sr: int = SAMPLE_RATE) -> AudioFolder:
    """``arg`` is ``PATH`` or ``PATH:SECONDS`` (clip length, default 1): every audio file under
    PATH, mono, at ``sr``, cut into clips (a tail shorter than half a clip is dropped, a longer
    one zero-padded). Unreadable files are skipped with a line each in ``errors``."""
    import soundfile as sf

    path, seconds = arg, CLIP_SECONDS
    head, sep, tail = arg.rpartition(":")
    if sep and head:
        try:
            seconds = float(tail)
            path = head
        except ValueError:
            pass
    if not 0.05 <= seconds <= 30:
        raise AudioError(f"wav:{arg}: SECONDS must be between 0.05 and 30, got {seconds:g}")
    from genstudio.core.data.folder import user_files

    root, files = user_files(path, AUDIO_SUFFIXES, "audio folder",
                             f"audio files ({', '.join(sorted(AUDIO_SUFFIXES))})", AudioError)
    n = int(round(sr * seconds))
    clips, errors = [], []
    for p in files:
        try:
            data, file_sr = sf.read(str(p), dtype="float64", always_2d=True)
        except Exception as e:  # noqa: BLE001 - libsndfile raises several types; each file gets its line
            errors.append(f"{p.name}: cannot be read ({e.__class__.__name__}: {str(e).strip()[:120]})")
            continue
        if data.size == 0:
            errors.append(f"{p.name}: no samples")
            continue
        mono = resample(data.mean(1), int(file_sr), sr)
        for a in range(0, len(mono), n):
            piece = mono[a:a + n]
            if len(piece) >= n // 2:
                clips.append(np.pad(piece, (0, n - len(piece))))
    if not clips:
        raise AudioError(f"none of the {len(files)} audio files under {root} gave a clip: " + "; ".join(errors)
                         if errors else f"every file under {root} is shorter than half a clip ({seconds:g} s)")
    x = torch.from_numpy(np.clip(np.stack(clips), -1, 1)).float()[:, None]
    desc = f"{len(clips)} clips of {seconds:g} s from {len(files) - len(errors)} files in {root}" + (
        f" ({len(errors)} unreadable skipped)" if errors else "")
    spec = DataSpec(f"wav:{arg}", "audio", (1, n), size=len(x), description=desc, sample_rate=sr)
    return AudioFolder(spec, x, errors)


# -- WAV export -------------------------------------------------------------------------------------
def to_pcm16(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 (rounded, clipped): what a 16-bit WAV stores."""
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).reshape(-1)
    return np.clip(np.round(a * 32767), -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, x: torch.Tensor | np.ndarray, sr: int) -> Path:
    """A mono 16-bit PCM WAV of ``x`` (float in [-1, 1], or int16 as is) that any player reads."""
    import soundfile as sf

    a = np.asarray(x)
    pcm = a.reshape(-1) if a.dtype == np.int16 else to_pcm16(x)
    path = Path(path)
    sf.write(str(path), pcm, int(sr), subtype="PCM_16", format="WAV")
    return path


def read_wav(path: str | Path, dtype: str = "int16") -> tuple[np.ndarray, int]:
    """(samples, sample rate); ``dtype="int16"`` returns the stored integers untouched."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype=dtype)
    return data, int(sr)
