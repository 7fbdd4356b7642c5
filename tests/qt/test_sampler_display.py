"""Sampler panel display: x̂0 of 2-D data clipped to the view (title says how many points were left
out), the labelled x_t | x̂0 GIF (trajectory_frame, GUI-free), a stable control row when the sampler
changes, and the t colour bar of "paths coloured by t"."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from genstudio.core import events as ev  # noqa: E402
from genstudio.core.events import Event  # noqa: E402
from genstudio.core.imaging import (  # noqa: E402
    data_lim,
    outside,
    trajectory_frame,
    trajectory_label,
)
from genstudio.core.plugin import SampleState  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.qt.panels.sampler import SamplerPanel  # noqa: E402
from tests.qt.test_panels import FakeCtx, new_run  # noqa: E402
from tests.qt.test_panels import reg as reg  # noqa: E402,F401 - fixture
from tests.qt.test_sampler_edit import _trained  # noqa: E402

N, STEPS = 200, 10


def far_trajectory(seed: int = 0) -> list[SampleState]:
    """x_t contracts from N(0, I) to a small ring; x̂0 at high t lies far outside (|x| ~ 40)."""
    g = torch.Generator().manual_seed(seed)
    xT = torch.randn(N, 2, generator=g)
    ring = torch.randn(N, 2, generator=g)
    ring = ring / ring.norm(dim=1, keepdim=True)
    states = []
    for k in range(STEPS + 1):
        a = k / STEPS
        x = (1 - a) * xT + a * ring
        spread = 40.0 * (1 - a) ** 2  # the prediction blows up at t ~ 1 and settles at the data
        x0 = ring + spread * torch.randn(N, 2, generator=g)
        states.append(SampleState(k, STEPS, 1 - a, x, x0))
    return states


@pytest.fixture
def panel(qtbot, tmp_path, reg):  # noqa: F811
    ctx = FakeCtx(tmp_path / "store", reg)
    p = SamplerPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1100, 480)
    p.set_run(new_run(ctx))
    states = far_trajectory()
    p.on_events([Event(ev.SAMPLE_STATE, p._run.id, {"state": s}) for s in states])
    assert p.num_states() == STEPS + 1
    return p


def test_far_x0_is_clipped_to_the_view_and_counted(panel, tmp_path):
    states = panel.states()
    lim = panel._lim
    assert lim == pytest.approx(data_lim(states[0].x))
    panel.show_step(1)  # high t: most predictions are far out
    x0 = states[1].x0.numpy()
    out = outside(x0, lim)
    assert 0 < out.sum() < N
    xs, ys = panel.view_x0.scatter.getData()
    assert len(xs) == N - out.sum() and np.abs(xs).max() <= lim and np.abs(ys).max() <= lim
    np.testing.assert_allclose(xs, x0[~out, 0], rtol=1e-6)  # the drawn points are the inside ones, unmoved
    assert f"{out.sum()} of {N} outside the view" in panel.view_x0.titleLabel.text
    # no trail segment reaches outside the range (no starburst to the corners)
    tx, ty = panel.view_x0.trails.getData()
    assert np.abs(tx).max() <= lim + 1e-9 and np.abs(ty).max() <= lim + 1e-9
    # the stored states are untouched
    torch.testing.assert_close(panel.states()[1].x0, states[1].x0)
    assert np.abs(panel.states()[1].x0.numpy()).max() > 5 * lim
    # at the end everything is in range: the note goes away
    panel.show_step(STEPS)
    assert panel.view_x0.outside == 0 and "outside" not in panel.view_x0.titleLabel.text
    assert len(panel.view_x0.scatter.getData()[0]) == N
    panel.show_step(1)
    panel.show()
    panel.grab().save(str(tmp_path / "sampler_high_t.png"))
    shot = os.environ.get("GENSTUDIO_SHOT")
    if shot:
        panel.grab().save(shot)


def test_gif_is_x_t_and_x0_side_by_side_labelled(panel, tmp_path):
    gif = panel.export_gif(tmp_path / "traj.gif")
    with Image.open(gif) as im:
        assert im.n_frames == STEPS + 1
        w, h = im.size
        assert w >= 2 * 512 and h >= 512
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
    # the frame is the GUI-free composition, label included
    st = panel.states()[0]
    want = trajectory_frame(st.x, st.x0, trajectory_label(0, STEPS, 1.0), lim=panel._lim)
    assert want.shape == first.shape
    assert np.abs(want.astype(int) - first.astype(int)).mean() < 8  # GIF palette quantisation only
    assert trajectory_label(3, 50, 0.9371) == "step 3/50 · t=0.94"
    # the label strip is not empty, and the x0 half has points (orange) in it
    assert (want[:18] > 200).any()
    right = want[36:, 512 + 4:]
    assert ((right[..., 0] > 200) & (right[..., 2] < 120)).any()


def test_trajectory_frame_images_native_and_upscaled():
    big = torch.rand(4, 3, 32, 32) * 2 - 1
    f = trajectory_frame(big, big, "step 0/1 · t=1.00")
    grid = 2 * (2 * (32 + 1) + 1)  # readable_scale(32) = 2: 2x2 images, 64 px cells (the grid scaled)
    assert f.shape[1] == 2 * grid + 4 and f.shape[0] == grid + 36
    tiny = torch.rand(1, 1, 8, 8) * 2 - 1
    f = trajectory_frame(tiny, None, "x")
    assert f.shape[0] - 36 >= 64  # 8 px -> 64 px cells, nearest
    with pytest.raises(ValueError):
        trajectory_frame(torch.zeros(3, 5), None)


def test_time_colour_bar_follows_whole_paths(panel):
    assert not panel.time_bar.isVisible() or not panel.isVisible()
    panel.show()
    panel.show_step(5)
    assert not panel.time_bar.isVisible()
    panel.whole_paths.setChecked(True)
    assert panel.time_bar.isVisible()
    ticks = [label for _, label in panel.time_bar.axis._tickLevels[0]]
    assert ticks == ["noise", "data"]
    assert "noise → data" in panel.time_bar.axis.labelText and panel.time_bar.axis.isVisible()
    panel.whole_paths.setChecked(False)
    assert not panel.time_bar.isVisible()


def test_sampler_change_keeps_the_row_still(qtbot, tmp_path):
    ctx = FakeCtx(tmp_path / "store", registry())
    p = SamplerPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1400, 480)
    p.show()
    p.set_run(_trained(ctx, "8gaussians", steps=10))
    where = {}
    for name in ("ddpm", "ddim", "ddpm"):
        p.sampler.setCurrentIndex(p.sampler.findData(name))
        qtbot.wait(10)
        p.layout().activate()
        where.setdefault(name, []).append((p.steps.geometry().x(), p.sample_button.geometry().x()))
    assert p.option("eta").isHidden() is (p.sampler.currentData() != "ddim")
    assert where["ddpm"][0] == where["ddim"][0] == where["ddpm"][1]


def _save_dialog(monkeypatch, path, chosen=""):
    """The save dialog answers ``path`` (and the filter ``chosen``); the titles and filters it was shown are kept."""
    from genstudio.qt.panels import sampler as sampler_mod

    asked = []

    def fake(parent, title, start, filters):
        asked.append((title, start, filters))
        return str(path), chosen

    monkeypatch.setattr(sampler_mod.QFileDialog, "getSaveFileName", staticmethod(fake))
    return asked


def test_animation_dialog_offers_mp4_and_gif(panel, tmp_path, monkeypatch):
    import imageio.v2 as iio

    asked = _save_dialog(monkeypatch, tmp_path / "traj", "MP4 video (*.mp4)")  # a bare name: the filter's type
    panel.gif_traj_action.trigger()
    assert "*.mp4" in asked[0][2] and "*.gif" in asked[0][2]
    mp4 = tmp_path / "traj.mp4"
    assert mp4.is_file() and panel.ctx.messages[-1] == f"wrote {mp4}" and not panel.ctx.errors
    st = panel.states()[0]
    want = trajectory_frame(st.x, st.x0, trajectory_label(0, STEPS, 1.0), lim=panel._lim)
    with iio.get_reader(mp4) as r:
        frames = [f for f in r]
    assert len(frames) == STEPS + 1
    h, w = want.shape[:2]
    assert frames[0].shape == (h + h % 2, w + w % 2, 3)  # padded to even sides for H.264
    assert np.abs(frames[0][:h, :w].astype(int) - want.astype(int)).mean() < 12  # lossy video, same picture
    iio.imwrite(tmp_path / "mp4_frame0.png", frames[0])
    _save_dialog(monkeypatch, tmp_path / "t.gif", "MP4 video (*.mp4)")  # a typed suffix wins over the filter
    panel.gif_traj_action.trigger()
    with Image.open(tmp_path / "t.gif") as im:
        assert im.n_frames == STEPS + 1 and im.size == (w, h)


def test_png_of_both_views_at_the_slider_step(panel, tmp_path, monkeypatch):
    panel.show_step(4)
    _save_dialog(monkeypatch, tmp_path / "views.png")
    panel.png_views_action.trigger()
    st = panel.states()[4]
    want = trajectory_frame(st.x, st.x0, trajectory_label(4, STEPS, st.t), lim=panel._lim)
    got = np.asarray(Image.open(tmp_path / "views.png").convert("RGB"))
    np.testing.assert_array_equal(got, want)  # PNG is lossless: exactly the labelled frame
    assert got.shape[1] >= 2 * 512 and (got[:18] > 200).any()  # both halves, a label strip
    # the final-samples PNG is still there, from the same menu
    _save_dialog(monkeypatch, tmp_path / "final.png")
    panel.png_final_action.trigger()
    assert Image.open(tmp_path / "final.png").size == (256, 256)
    # (the cross-attention export is there only for text-to-image runs)
    assert [a.text() for a in panel.png_button.menu().actions() if a.isVisible()] == \
        ["Final samples…", "x_t | x̂0 at this step…"]


def test_colour_bar_never_changes_the_view_widths(panel, qtbot, tmp_path):
    panel.resize(1400, 600)
    panel.show()
    panel.show_step(5)
    qtbot.wait(20)

    def widths():
        panel.layout().activate()
        return panel.canvas_x.width(), panel.canvas_x0.width(), panel.canvas_x.height()

    off = widths()
    panel.whole_paths.setChecked(True)
    qtbot.wait(20)
    on = widths()
    assert panel.time_bar.isVisible() and panel.time_canvas.isVisible()
    assert on == off and abs(on[0] - on[1]) <= 1  # same size with and without the bar, halves equal
    vb_on = panel.view_x.getViewBox().width()
    shots = os.environ.get("GENSTUDIO_SHOT_DIR")
    if shots:
        panel.grab().save(os.path.join(shots, "sampler_bar_on.png"))
    panel.whole_paths.setChecked(False)
    qtbot.wait(20)
    assert widths() == off and not panel.time_bar.isVisible()
    assert panel.view_x.getViewBox().width() == vb_on  # the plot inside x_t keeps its size too
    if shots:
        panel.grab().save(os.path.join(shots, "sampler_bar_off.png"))


def test_image_trajectories_have_no_colour_bar_column(qtbot, tmp_path, reg):  # noqa: F811
    ctx = FakeCtx(tmp_path / "store", reg)
    p = SamplerPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1200, 500)
    p.show()
    p.set_run(new_run(ctx))
    imgs = [SampleState(k, 3, 1 - k / 3, torch.rand(4, 1, 8, 8) * 2 - 1, torch.rand(4, 1, 8, 8) * 2 - 1)
            for k in range(4)]
    p.on_events([Event(ev.SAMPLE_STATE, p._run.id, {"state": s}) for s in imgs])
    p.whole_paths.setChecked(True)  # means nothing for images
    qtbot.wait(20)
    p.layout().activate()
    assert not p.time_canvas.isVisible() and abs(p.canvas_x.width() - p.canvas_x0.width()) <= 1
    png = p.export_views_png(tmp_path / "views.png")
    assert Image.open(png).size[0] == 2 * (2 * 9 + 1) * 8 + 4  # two 2x2 grids of 64 px cells
