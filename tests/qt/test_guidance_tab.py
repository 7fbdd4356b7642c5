"""Guidance tab of the Compare / NFE panel: accuracy and diversity against the guidance scale for a
class-conditional DDPM trained in the test; disabled for runs without class conditioning."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from genstudio.core import jobs  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.qt.panels.sweeps import GuidancePanel  # noqa: E402
from tests.qt.test_panels import FakeCtx  # noqa: E402
from tests.qt.test_trajectory_panel import trained  # noqa: E402

COND = ["batch_size=256", "timesteps=50", "hidden=64", "depth=2", "lr=0.002", "ema_decay=0.99",
        "class_cond=true", "cond_drop=0.2", "sample_steps=50"]


def _run(ctx, overrides, steps):
    run = jobs.create_run(ctx.store, jobs.TrainSpec(plugin="ddpm", dataset="8gaussians", steps=steps, device="cpu",
                                                    overrides=overrides, checkpoint_every=steps))
    for _ in jobs.train(run, device="cpu"):
        pass
    return run


def test_guidance_tab(qtbot, tmp_path):
    ctx = FakeCtx(tmp_path, registry())
    p = GuidancePanel(ctx)
    qtbot.addWidget(p)
    p.resize(900, 500)
    assert p.title == "Guidance" and p.tools == ("guidance",)
    plain = trained(ctx, "8gaussians", extra=[])
    p.set_run(plain)
    assert not p.guide_button.isEnabled() and "class-conditional" in p.guide_button.toolTip()
    assert p.start_guidance() is None
    run = _run(ctx, COND, 300)
    p.set_run(run)
    assert p.guide_button.isEnabled()
    p.guide_scales.setText("0, 1, 4")
    p.guide_n.setValue(40)
    p.start_guidance()
    ctx.deliver(p)
    rows = p.guidance_rows()
    assert [r["scale"] for r in rows] == [0.0, 1.0, 4.0]
    acc = {r["scale"]: r["accuracy"] for r in rows}
    div = {r["scale"]: r["diversity"] for r in rows}
    assert acc[4.0] >= acc[0.0] and div[4.0] < div[0.0]
    x, y = p.guide_curves["accuracy"].getData()
    assert np.allclose(x, [0, 1, 4]) and np.allclose(y, [acc[s] for s in (0.0, 1.0, 4.0)])
    assert "done" in p.status.text()
    if os.environ.get("GENSTUDIO_SHOTS"):
        p.grab().save(os.path.join(os.environ["GENSTUDIO_SHOTS"], "guidance_8gaussians.png"))
    # rows of an older sweep of the same run that arrive after a new sweep started are dropped
    p.guide_n.setValue(5)
    p.guide_scales.setText("2")
    p.start_guidance()
    late = list(ctx.pending)
    ctx.pending.clear()
    p.guide_scales.setText("8")
    p.start_guidance()
    p.on_events(late)
    assert p.guidance_rows() == []
    ctx.deliver(p)
    assert [r["scale"] for r in p.guidance_rows()] == [8.0]


def test_guidance_tab_text_run(qtbot, tmp_path):
    """A text-conditional sd run qualifies (TextConditional face); its rows carry saturation, which
    joins the chart's legend."""
    ctx = FakeCtx(tmp_path, registry())
    p = GuidancePanel(ctx)
    qtbot.addWidget(p)
    p.resize(900, 500)
    tiny = ["vae_steps=3", "vae_latent=16", "channels=8", "text_width=16", "text_layers=1", "sample_steps=3"]
    run = jobs.create_run(ctx.store, jobs.TrainSpec(plugin="sd", dataset="captions16", steps=2, device="cpu",
                                                    overrides=tiny, checkpoint_every=2))
    for _ in jobs.train(run, device="cpu"):
        pass
    p.set_run(run)
    assert p.guide_button.isEnabled(), p.guide_button.toolTip()
    p.guide_scales.setText("1, 4")
    p.guide_n.setValue(4)
    p.start_guidance()
    ctx.deliver(p)
    rows = p.guidance_rows()
    assert [r["scale"] for r in rows] == [1.0, 4.0] and all(0 <= r["accuracy"] <= 1 for r in rows)
    x, y = p.guide_curves["saturation"].getData()
    assert np.allclose(x, [1, 4]) and np.allclose(y, [r["saturation"] for r in rows])
    labels = [label.text for _, label in p.guide_legend.items]
    assert labels == ["accuracy", "diversity", "saturation"]  # once, however many rows streamed in
    p.set_guidance_rows([{"scale": 1.0, "accuracy": 0.5, "diversity": 1.0}])  # a class run's rows: no saturation
    assert [label.text for _, label in p.guide_legend.items] == ["accuracy", "diversity"]
