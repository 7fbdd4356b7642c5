"""Neural audio codec numbers (issue 15): SI-SDR and mel distance against bitrate for the RVQ codec
after a fixed CPU budget, next to two baselines at the same bitrates, plus encode / decode
real-time factors and codebook use per level.

    python bench/bench_codec.py [--data audio:tones] [--seconds 240] [--clips 16] [--set strides=2,4,5]

- codec: the codec plugin trained for ``--seconds`` of CPU time (``time.process_time``, one thread,
  so a loaded machine gives the same number of steps), then every
  prefix of its codebooks decoded (1 .. N codebooks = the bitrates);
- mu-law: the clip resampled to rate r, mu-law quantised to b bits with r x b = the bitrate,
  resampled back (the best b of 2..8 is reported: a fair classic waveform coder at that rate);
- plain VQ: one big codebook (1024 codes, 10 bits) over raw waveform frames of L samples with
  L chosen so sr / L x 10 bits is the bitrate, k-means trained on the training clips (the same
  VectorQuantizer block the codec uses, just not residual and with no network).

Measured on held-out reference clips (seed 123). SI-SDR in dB (higher is better, clipped at 100),
mel distance = mean |log-mel difference| (lower is better). RTF = compute seconds per second of audio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from fractions import Fraction

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from genstudio_plugins.codec import CodecConfig, CodecPlugin  # noqa: E402

from genstudio.core.config import apply_overrides  # noqa: E402
from genstudio.core.data import get_dataset  # noqa: E402
from genstudio.core.data.audio import resample  # noqa: E402
from genstudio.core.metrics.audio import mel_distance, mu_law_decode, mu_law_encode, si_sdr  # noqa: E402
from genstudio.core.nn.vq import VectorQuantizer  # noqa: E402
from genstudio.core.tools.codec import reconstruct_all  # noqa: E402

VQ_BITS = 10


def measure(x: torch.Tensor, y: torch.Tensor, sr: int) -> tuple[float, float]:
    y = y.reshape(x.shape).clamp(-1, 1)
    return float(si_sdr(x, y).mean()), float(mel_distance(x, y, sr).mean())


def mu_law_at(x: torch.Tensor, sr: int, kbps: float) -> tuple[float, float, int]:
    """(SI-SDR, mel distance, bits) of the best resampled mu-law coder at ``kbps``."""
    best = None
    for bits in range(2, 9):
        rate = Fraction(kbps * 1000 / bits).limit_denominator(50)
        if rate > sr or rate < 100:
            continue
        a = x.numpy().astype(np.float64)
        up, down = rate.numerator, rate.denominator * sr  # sr -> rate = sr * up / down
        low = resample(a, down, up)
        q = mu_law_decode(mu_law_encode(torch.from_numpy(np.clip(low, -1, 1)), bits), bits).double().numpy()
        back = resample(q, up, down)[..., : x.shape[-1]]
        back = np.pad(back, [(0, 0)] * (back.ndim - 1) + [(0, x.shape[-1] - back.shape[-1])])
        s, m = measure(x, torch.from_numpy(back).float(), sr)
        if best is None or s > best[0]:
            best = (s, m, bits)
    return best


def plain_vq(train: torch.Tensor, x: torch.Tensor, sr: int, kbps: float) -> tuple[float, float, float]:
    """(SI-SDR, mel distance, actual kbps) of one 2^VQ_BITS codebook over raw frames at ~``kbps``."""
    length = max(1, round(sr * VQ_BITS / (kbps * 1000)))
    t = x.shape[-1] // length * length
    rows = train[..., :t].reshape(-1, length)
    torch.manual_seed(0)
    vq = VectorQuantizer(length, 2**VQ_BITS, kmeans_iters=25, dead_threshold=0.0)
    vq.kmeans_init(rows)
    codes = vq.encode(x[..., :t].reshape(-1, length))
    y = torch.zeros_like(x)
    y[..., :t] = vq.embed[codes].reshape(*x.shape[:-1], t)
    s, m = measure(x, y, sr)
    return s, m, sr / length * VQ_BITS / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="audio:tones")
    ap.add_argument("--seconds", type=float, default=240.0, help="codec training budget (CPU seconds, 1 thread)")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="codec config override")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ds = get_dataset(args.data)
    cfg = apply_overrides(CodecConfig(), args.set)
    model = CodecPlugin(cfg, "cpu")
    model.setup(ds.spec)
    sr = model.sr
    g = torch.Generator().manual_seed(0)
    t0, step = time.process_time(), 0
    while time.process_time() - t0 < args.seconds:
        step += 1
        out = model.train_step(ds.batch(cfg.batch_size, g)[0], None, step)
    train_s = time.process_time() - t0
    print(f"# codec on {args.data}: {step} steps in {train_s:.0f} CPU s (batch {cfg.batch_size}, strides {cfg.strides}, "
          f"{cfg.n_codebooks} x {cfg.codebook_size} codes), last loss {out['loss']:.3f}")

    x = ds.fixed(args.clips, seed=123)[0]
    res = reconstruct_all(model, x)
    t = time.perf_counter()
    tokens = model.encode_tokens(x)
    enc_s = time.perf_counter() - t
    t = time.perf_counter()
    model.decode_tokens(tokens)
    dec_s = time.perf_counter() - t
    audio_s = x.shape[0] * x.shape[-1] / sr
    train_clips = ds.fixed(64, seed=7)[0]

    print("\n| codebooks | kbps | codec SI-SDR | codec mel | mu-law SI-SDR | mu-law mel (bits) | "
          "plain VQ SI-SDR | plain VQ mel (kbps) |")
    print("|---|---|---|---|---|---|---|---|")
    for k in range(1, res.n_codebooks + 1):
        kbps = res.kbps[k - 1]
        ms, mm, bits = mu_law_at(x, sr, kbps)
        vs, vm, vk = plain_vq(train_clips, x, sr, kbps)
        print(f"| {k} | {kbps:.2f} | {res.si_sdr[k - 1].mean():.1f} | {res.mel[k - 1].mean():.3f} | {ms:.1f} | "
              f"{mm:.3f} ({bits}) | {vs:.1f} | {vm:.3f} ({vk:.2f}) |", flush=True)
    print(f"\nreal-time factor on this CPU (1 thread, {audio_s:.0f} s of audio): encode {enc_s / audio_s:.4f}, "
          f"decode {dec_s / audio_s:.4f} (all {res.n_codebooks} codebooks)")
    print("\n| level | perplexity | codes used |")
    print("|---|---|---|")
    for i, (p, u) in enumerate(zip(res.perplexity, res.utilisation), start=1):
        print(f"| {i} | {p:.1f} / {res.codebook_size} | {100 * u:.0f} % |")


if __name__ == "__main__":
    main()
