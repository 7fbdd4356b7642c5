"""Video data, space-time blocks and video metrics (issue #17)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from genstudio.core.data import get_dataset
from genstudio.core.data.video import MOTIONS, VideoError, load_video_folder, make_clips
from genstudio.core.metrics.video import (
    direction_scores,
    motion_correct,
    save_clip,
    shuffle_frames,
    temporal_difference,
    track,
)
from genstudio.core.nn.video import SpaceTimeDiT, UNet3D, VideoCond, frame_positions, patchify, unpatchify


@pytest.mark.parametrize("patch", [(1, 1, 1), (2, 4, 4), (4, 2, 8)])
def test_patchify_unpatchify_is_identity(patch):
    x = torch.randn(2, 3, 16, 16, 16)
    tok = patchify(x, patch)
    assert tok.shape == (2, 16 // patch[0], 16 // patch[1], 16 // patch[2], 3 * patch[0] * patch[1] * patch[2])
    assert torch.equal(unpatchify(tok, patch, 3), x)
    # one patch holds exactly the pixels of its t x h x w box
    pt, ph, pw = patch
    box = x[0, :, pt:2 * pt, ph:2 * ph, pw:2 * pw]
    assert torch.equal(torch.sort(tok[0, 1, 1, 1]).values, torch.sort(box.flatten()).values)


def _randomise(m: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for p in m.parameters():  # adaLN-Zero starts every block as the identity: give the gates weight
        p.data = torch.randn(p.shape, generator=g) * 0.05


def test_temporal_attention_mixes_only_the_same_location():
    net = SpaceTimeDiT(3, 8, 16, (1, 4, 4), dim=32, depth=1, attention="factorised")
    _randomise(net)
    h = torch.randn(2, 8, 16, 32)  # (B, T', N, dim) tokens
    c = torch.randn(2, 32)
    h2 = h.clone()
    h2[0, 3, 5] += 3 * torch.randn(32)  # one location (token 5) of one frame (3) of clip 0
    with torch.no_grad():
        a, b = net.temporal_layer(0, h, c), net.temporal_layer(0, h2, c)
    diff = (a - b).abs().amax(-1)  # (B, T', N)
    assert diff[0, :, 5].min() > 1e-6, "every frame at that location hears the change"
    others = torch.ones_like(diff, dtype=torch.bool)
    others[0, :, 5] = False
    assert diff[others].max() == 0, "no other location (or clip) changes"


def test_joint_attention_mixes_everything_and_both_archs_take_other_lengths():
    x = torch.randn(1, 3, 8, 16, 16)
    net = SpaceTimeDiT(3, 8, 16, (2, 4, 4), dim=32, depth=1, attention="joint")
    _randomise(net)
    x2 = x.clone()
    x2[0, :, 0, :4, :4] += 1
    with torch.no_grad():
        d = (net(x, torch.rand(1)) - net(x2, torch.rand(1) * 0 + 0.5)).abs()
        assert net(x[:, :, :6], torch.rand(1)).shape == (1, 3, 6, 16, 16)  # fewer frames
    assert (d[0, :, -1, -4:, -4:] > 0).any()  # a far corner of the last frame changes
    u = UNet3D(3, 8, (1, 2), cond=VideoCond("class", 32, num_classes=4))
    assert u(torch.randn(2, 3, 24, 16, 16), torch.rand(2), torch.tensor([0, 1])).shape == (2, 3, 24, 16, 16)
    assert torch.allclose(frame_positions(8, 8), torch.arange(8.0))
    assert frame_positions(12, 8)[-1] == 7 and frame_positions(12, 8)[0] == 0  # interpolated onto 0..7


def test_caption_condition_and_null():
    vc = VideoCond("caption", 16, vocab_size=30, max_len=10)
    ids = torch.randint(3, 30, (4, 10))
    null = vc.null_like(ids)
    assert (null[:, 0] == 1).all() and (null[:, 1:] == 0).all()
    assert torch.equal(vc.drop(ids, 0.0), ids) and torch.equal(vc.drop(ids, 1.0), null)
    assert vc(ids, 4, torch.device("cpu")).shape == (4, 16)


def test_clips_layout_captions_and_trajectories_match_the_pixels():
    ds = get_dataset("video:moving16")
    c = ds.clips(64, torch.Generator().manual_seed(0))
    assert c.x.shape == (64, 3, 16, 16, 16) and c.x.min() >= -1 and c.x.max() <= 1
    assert ds.spec.shape == (3, 16, 16, 16) and ds.spec.kind == "video" and ds.spec.num_classes == 4
    for cap, lab in zip(c.captions, c.labels):
        assert f"moves {MOTIONS[lab]}" in cap
    # the tracker recovers the known direction from the pixels for every clip
    assert motion_correct(c.x, c.labels).all()
    assert (direction_scores(c.x).argmax(1) == c.labels).all()
    # and the moving object's centroid follows the stored trajectory where it is alone
    alone = torch.isnan(c.centres[:, 0, 1, 0])
    err = (track(c.x[alone]) - c.centres[alone, :, 0]).abs().max()
    assert err < 0.15, err
    xs, ys = get_dataset("video:captions32").batch(2)
    assert xs.shape == (2, 3, 16, 32, 32) and ys.shape[1] == 10


def test_motion_correctness_real_high_shuffled_low():
    c = make_clips(random.Random(3), 128, 16)
    assert float(motion_correct(c.x, c.labels).float().mean()) == 1.0
    assert float(motion_correct(shuffle_frames(c.x), c.labels).float().mean()) < 0.15
    assert temporal_difference(shuffle_frames(c.x)).mean() > temporal_difference(c.x).mean()


def test_motion_correctness_survives_sampler_noise_and_rejects_noise_alone():
    """Generated clips carry per-pixel noise: real clips plus noise of std 0.5 (in [-1, 1] units; the
    old hard-threshold tracker fell to 0.06 there) still count as moving their way; pure noise, still
    clips and shuffled noisy clips do not."""
    c = make_clips(random.Random(4), 128, 16)
    g = torch.Generator().manual_seed(0)
    noisy = (c.x + 0.5 * torch.randn(c.x.shape, generator=g)).clamp(-1, 1)
    assert float(motion_correct(noisy, c.labels).float().mean()) >= 0.9
    assert float(motion_correct(shuffle_frames(noisy), c.labels).float().mean()) < 0.15
    noise = torch.randn(c.x.shape, generator=g).clamp(-1, 1)
    assert float(motion_correct(noise).float().mean()) < 0.05  # "some straight direction": no false positives
    still = c.x[:, :, :1].expand_as(c.x) + 0.3 * torch.randn(c.x.shape, generator=g)
    assert float(motion_correct(still.clamp(-1, 1), c.labels).float().mean()) < 0.05


def test_gif_export_has_t_frames(tmp_path):
    import imageio.v3 as iio

    c = make_clips(random.Random(0), 2, 16)
    path = save_clip(c.x, tmp_path / "clip.gif")
    assert iio.imread(path, index=None).shape[0] == 16


def test_user_video_folder(tmp_path):
    import imageio.v3 as iio

    frames = (np.random.default_rng(0).random((5, 20, 30, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "a.gif", frames)
    (tmp_path / "sub").mkdir()
    iio.imwrite(tmp_path / "sub" / "b.gif", frames[:3])
    ds = get_dataset(f"video:{tmp_path}")
    assert ds.x.shape == (2, 3, 16, 16, 16) and ds.spec.kind == "video"
    assert load_video_folder(f"{tmp_path}:8").x.shape == (2, 3, 16, 8, 8)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    (tmp_path / "bad2.gif").write_bytes(b"nope")
    with pytest.raises(VideoError) as e:
        load_video_folder(str(tmp_path))
    assert "bad.mp4" in str(e.value) and "bad2.gif" in str(e.value) and "2 of 4" in str(e.value)
    with pytest.raises(VideoError, match="not found"):
        load_video_folder(str(tmp_path / "missing"))
