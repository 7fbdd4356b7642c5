"""Sampler panel: class / guidance / eta controls (shown only where the run's plugin takes them,
passed to the sample job) and the Invert / interpolate tab with tiny DDPMs trained in the test."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from genstudio.core import jobs  # noqa: E402
from genstudio.core.imaging import image_grid  # noqa: E402
from genstudio.core.plugin import sample_options  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.core.tools import edit  # noqa: E402
from genstudio.qt.panels.sampler import SamplerPanel  # noqa: E402
from tests.qt.test_panels import FakeCtx  # noqa: E402

TINY = ["batch_size=32", "timesteps=50", "hidden=32", "depth=1", "channels=8", "sample_steps=5"]


def _trained(ctx, dataset, steps=30, extra=()):
    run = jobs.create_run(ctx.store, jobs.TrainSpec(plugin="ddpm", dataset=dataset, steps=steps, device="cpu",
                                                    overrides=[*TINY, *extra], checkpoint_every=steps))
    for _ in jobs.train(run, device="cpu"):
        pass
    return run


@pytest.fixture
def ctx(tmp_path):
    return FakeCtx(tmp_path / "store", registry())


@pytest.fixture
def panel(qtbot, ctx):
    p = SamplerPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1200, 520)
    return p


def test_sample_options_are_declared_by_the_plugin():
    reg = registry()
    ddpm = {o.name: o for o in sample_options(reg.get("ddpm"))}
    assert {"eta", "guidance", "sigma_schedule"} <= set(ddpm)
    assert ddpm["eta"].samplers == ("ddim",) and ddpm["guidance"].needs == "Conditional"
    assert sample_options(reg.get("ldm")) == sample_options(reg.get("ddpm"))  # inherited with the sampler
    assert sample_options(reg.get("flow_matching")) == ()


def test_class_guidance_and_eta_reach_the_job(panel, ctx, monkeypatch):
    plain = _trained(ctx, "8gaussians", steps=10, extra=["eta=0.3"])
    panel.set_run(plain)
    assert panel.cls.isHidden() and panel.option("guidance").isHidden()
    panel.sampler.setCurrentIndex(panel.sampler.findData("ddpm"))
    assert panel.option("eta").isHidden() and panel.sample_kwargs() == {}
    panel.sampler.setCurrentIndex(panel.sampler.findData("ddim"))
    assert not panel.option("eta").isHidden() and panel.sample_kwargs() == {"eta": 0.3}  # the run's own eta

    run = _trained(ctx, "8gaussians", extra=["class_cond=true"])
    panel.set_run(run)
    guidance = panel.option("guidance")
    assert not panel.cls.isHidden() and not guidance.isHidden()
    assert [panel.cls.itemText(i) for i in range(panel.cls.count())] == ["unconditional"] + [
        f"class {c}" for c in range(8)]
    assert not guidance.isEnabled()  # a scale needs a label
    panel.cls.setCurrentIndex(panel.cls.findData(2))
    assert guidance.isEnabled()
    guidance.slider.setValue(30)  # the slider and the spin box are one control
    assert guidance.value() == 3.0
    panel.sampler.setCurrentIndex(panel.sampler.findData("ddim"))
    panel.option("eta").setValue(0.5)
    panel.n.setValue(16)
    panel.steps.setValue(5)
    panel.seed.setValue(4)

    seen = {}
    real = jobs.sample

    def spy(run, **kw):
        seen.update(kw)
        return real(run, **kw)

    monkeypatch.setattr(jobs, "sample", spy)
    panel.start_sampling()
    ctx.deliver(panel)
    assert {k: seen[k] for k in ("cond", "guidance", "eta", "sampler")} == {
        "cond": 2, "guidance": 3.0, "eta": 0.5, "sampler": "ddim"}
    final = panel.states()[-1].x
    ref = list(real(run, n=16, steps=5, seed=4, sampler="ddim", cond=2, guidance=3.0, eta=0.5))[-1].x
    torch.testing.assert_close(final, ref)
    uncond = list(real(run, n=16, steps=5, seed=4, sampler="ddim", eta=0.5))[-1].x
    assert not torch.allclose(final, uncond)


def test_invert_and_interpolate_images(panel, ctx, tmp_path):
    run = _trained(ctx, "digits")
    panel.set_run(run)
    assert panel.invert_button.isEnabled() and panel.interp_button.isEnabled()
    assert not panel.edit_png_button.isEnabled()
    panel.tabs.setCurrentIndex(1)
    assert panel.sample_controls.isHidden() and not panel.checkpoint.isHidden()  # only the checkpoint applies
    panel.item_a.set_spec("data:5")
    panel.item_b.set_spec("seed:2")
    panel.edit_steps.setValue(10)
    panel.frames.setValue(5)
    panel.start_edit(interpolate=False)
    ctx.deliver(panel)
    res = panel.edit_result
    assert res is not None and res.slerp.numel() == 0 and res.labels == ("data:5", "seed:2")
    assert res.recon.shape == (2, 1, 8, 8)
    assert "A (data:5)" in panel.edit_status.text()
    assert panel.view_inv.image.image.shape == edit.inversion_image(res).shape
    assert panel.view_interp.image.image is None

    panel.start_edit(interpolate=True)
    ctx.deliver(panel)
    res = panel.edit_result
    assert res.slerp.shape == res.lerp.shape == (5, 1, 8, 8)
    # the right view is the 2 x 5 strip (slerp over lerp), equal to an independent decode
    model, _, _ = jobs.load_model(run, "cpu")
    ref = edit.interpolate_noises(model, res.z[0], res.z[1], frames=5, steps=10)
    torch.testing.assert_close(res.slerp, ref, atol=1e-5, rtol=0)
    strip = image_grid(torch.cat([res.slerp, res.lerp]), ncol=5, pad=2, scale=8)
    assert (panel.view_interp.image.image == strip).all()
    assert "slerp" in panel.edit_status.text() and panel.edit_png_button.isEnabled()
    out = panel.export_edit_png(tmp_path / "edit.png")
    with Image.open(out) as im:
        assert im.size[::-1] == edit.edit_image(res).shape[:2]
    # an image file as A, read at the dataset's 8 x 8
    src = tmp_path / "src.png"
    Image.new("L", (40, 40), 255).save(src)
    panel.item_a.set_spec(str(src))
    assert panel.item_a.spec() == str(src) and not panel.item_a.open_button.isHidden()
    panel.start_edit(interpolate=False)
    ctx.deliver(panel)
    torch.testing.assert_close(panel.edit_result.x0[0], torch.ones(1, 8, 8))
    if os.environ.get("GENSTUDIO_SHOTS"):
        panel.grab().save(os.path.join(os.environ["GENSTUDIO_SHOTS"], "sampler_edit_digits.png"))


def test_points_run_and_unsupported_plugins(panel, ctx):
    run = _trained(ctx, "8gaussians", steps=10)
    panel.set_run(run)
    file_item = panel.item_a.kind.model().item(panel.item_a.kind.findData("file"))
    assert not file_item.isEnabled()  # no image files for 2-D data
    panel.item_a.set_spec("data:999")
    panel.item_b.set_spec("data:1000")  # out of range: a line in the tab, not a dialog
    panel.start_edit()
    ctx.deliver(panel)
    assert panel.edit_result is None and "out of range" in panel.edit_status.text() and not ctx.errors
    panel.item_b.set_spec("seed:0")
    panel.frames.setValue(4)
    panel.start_edit()
    ctx.deliver(panel)
    assert panel.edit_result.slerp.shape == (4, 2) and panel.edit_result.kind == "points2d"
    assert "lerp" in panel.view_interp.titleLabel.text
    flow = jobs.create_run(ctx.store, jobs.TrainSpec(plugin="realnvp", dataset="moons", steps=2))
    panel.set_run(flow)
    assert panel.edit_result is None  # another run: the old pictures go
    assert not panel.invert_button.isEnabled() and not panel.interp_button.isEnabled()
    assert "needs a DDIM-capable diffusion run (the Denoiser face)" in panel.edit_status.text()
    assert panel.start_edit() is None
    assert panel.cls.isHidden() and not panel.options  # a flow declares no sample options


def test_edit_job_in_the_main_window_worker(main_window, qtbot):
    """The real path: a worker thread, the event bridge, then the panel (stop-free run)."""
    w = main_window
    run = _trained(FakeCtx(w.store.root, registry()), "8gaussians", steps=10)
    w.select_run(run)
    p = w.panels["sampler"]
    assert p._run is not None and p._run.id == run.id
    p.frames.setValue(3)
    assert p.start_edit() is not None and p.invert_button.text() == "Stop"
    qtbot.waitUntil(lambda: p.edit_result is not None, timeout=20_000)
    qtbot.waitUntil(lambda: p.invert_button.text() == "Invert", timeout=5_000)
    assert p.edit_result.slerp.shape == (3, 2) and not w.errors


def test_edit_classes_for_class_conditional_runs(panel, ctx):
    """Invert-as / decode-as class pickers: shown only for class-conditional runs, and they reach
    the edit (decode-as "as inverted" follows the inverting class)."""
    plain = _trained(ctx, "8gaussians", steps=10)
    panel.set_run(plain)
    assert panel.edit_cls_in.isHidden() and panel.edit_cls_out.isHidden()
    run = _trained(ctx, "8gaussians", extra=["class_cond=true"])
    panel.set_run(run)
    assert not panel.edit_cls_in.isHidden() and panel.edit_cls_in.count() == 9
    panel.tabs.setCurrentIndex(1)
    panel.item_a.set_spec("data:5")
    panel.item_b.set_spec("seed:2")
    panel.edit_steps.setValue(5)
    panel.frames.setValue(3)
    panel.edit_cls_in.setCurrentIndex(panel.edit_cls_in.findData(2))
    panel.start_edit(True)
    ctx.deliver(panel)
    assert panel.edit_result.meta == {"cond_in": 2, "cond_out": 2}
    panel.edit_cls_out.setCurrentIndex(panel.edit_cls_out.findData(5))
    panel.start_edit(True)
    ctx.deliver(panel)
    assert panel.edit_result.meta == {"cond_in": 2, "cond_out": 5}
    assert "decoded as class 5" in panel.edit_status.text()
