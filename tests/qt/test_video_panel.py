"""The video sampler panel, standalone with the fake AppContext (jobs inline): offered for video runs
only, one sampling job fills the whole (step x frame) scrub, the sliders show exactly that step's and
frame's clips, playback loops over the frames, and the GIF export has T frames."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from genstudio_plugins.video_diffusion import VideoDiffusionPlugin  # noqa: E402

import genstudio.core.registry as registry_mod  # noqa: E402
from genstudio.core import jobs  # noqa: E402
from genstudio.core.registry import Registry  # noqa: E402
from genstudio.core.tools.video import scrub_image, x0_strip  # noqa: E402
from genstudio.qt.panels.video import VideoPanel  # noqa: E402
from tests.fakeplugins import GaussFit  # noqa: E402
from tests.qt.test_panels import FakeCtx  # noqa: E402

# predict=eps: a 2-step x0 DiT (zero-initialised output) draws one grey frame 16 times, and GIF writers
# merge identical consecutive frames (same duration, fewer frames), which the frame count below would miss
TINY = ["batch_size=2", "timesteps=10", "width=16", "blocks=1", "cond=class", "predict=eps"]


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    reg = Registry()
    reg.add_class(VideoDiffusionPlugin, "tests", "video_diffusion")
    reg.add_class(GaussFit, "tests", "gaussfit")
    monkeypatch.setattr(registry_mod, "_cached", reg)
    return FakeCtx(tmp_path / "store", reg)


def _trained(ctx, plugin="video_diffusion", data="video:moving16", overrides=TINY):
    torch.manual_seed(0)
    run = jobs.create_run(ctx.store, jobs.TrainSpec(plugin, data, steps=2, sample_every=0, checkpoint_every=2,
                                                    overrides=overrides))
    for _ in jobs.train(run):
        pass
    return run


def test_scrub_shows_the_right_step_and_frame_and_exports(qtbot, ctx, tmp_path):
    import imageio.v3 as iio

    panel = VideoPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(_trained(ctx, "gaussfit", "8gaussians", []))
    assert not panel.sample_button.isEnabled() and "video" in panel.status.text()
    run = _trained(ctx)
    panel.set_run(run)
    assert panel.sample_button.isEnabled() and panel.cond_spin.isEnabled() and not panel.prompt.isEnabled()
    panel.n_spin.setValue(2)
    panel.steps_spin.setValue(4)
    panel.cond_spin.setValue(1)
    panel.start_sample()
    ctx.deliver(panel)
    sc = panel.scrub
    assert sc is not None and sc.x.shape == (4, 2, 3, 16, 16, 16) and sc.x0.shape == sc.x.shape
    assert panel.step_slider.maximum() == 3 and panel.frame_slider.maximum() == 15
    assert panel.step_slider.value() == 3  # starts at the final clips
    panel.step_slider.setValue(1)
    panel.frame_slider.setValue(7)
    main, strip = panel.images()
    assert np.array_equal(main, scrub_image(sc, 1, 7)) and np.array_equal(strip, x0_strip(sc, 1))
    assert not np.array_equal(main, scrub_image(sc, 1, 6)) and not np.array_equal(main, scrub_image(sc, 2, 7))
    assert np.array_equal(panel.main_item.image, main)
    assert panel.step_label.text().startswith("step 2/4") and panel.frame_label.text() == "frame 8/16"
    # playback advances the frame and loops back to 0
    panel.frame_slider.setValue(15)
    panel.toggle_play()
    panel._tick()
    assert panel.frame_slider.value() == 0 and panel.timer.isActive()
    panel.toggle_play()
    gif = panel.export_clip(tmp_path / "clips.gif")
    assert iio.imread(gif, index=None).shape[0] == 16
    # more frames than trained
    panel.frames_spin.setValue(24)
    panel.start_sample()
    ctx.deliver(panel)
    assert panel.scrub.frames == 24 and panel.frame_slider.maximum() == 23
