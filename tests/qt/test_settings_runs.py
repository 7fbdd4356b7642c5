"""Run-reference config fields (a consistency teacher, latent diffusion's VAE) get a picker of the
runs of the right plugins in the Settings form; typing an id still works."""

from __future__ import annotations

from genstudio_plugins.consistency import ConsistencyConfig
from genstudio_plugins.ldm import LDMConfig

from genstudio.core.config import fields_of
from genstudio.core.registry import registry
from genstudio.qt.forms import RunPicker
from genstudio.qt.panels.settings import SettingsPanel
from tests.qt.test_panels import FakeCtx
from tests.qt.test_trajectory_panel import trained


def test_teacher_field_lists_ddpm_runs_only(qtbot, tmp_path):
    assert {s.name: s.runs_of for s in fields_of(ConsistencyConfig)}["teacher_run"] == ("ddpm",)
    assert {s.name: s.runs_of for s in fields_of(LDMConfig)}["vae_run"] == ("vae", "betavae")
    ctx = FakeCtx(tmp_path, registry())
    ddpm = trained(ctx, "8gaussians", steps=4)
    trained(ctx, "8gaussians", steps=2, plugin="flow_matching")
    panel = SettingsPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_plugin("consistency", ConsistencyConfig)
    picker = panel.form.widget("teacher_run")
    assert isinstance(picker, RunPicker)
    assert [picker.itemData(i) for i in range(picker.count())] == ["", ddpm.id]  # not the flow-matching run
    picker.setCurrentIndex(1)
    assert picker.currentText().startswith(ddpm.id) and panel.config_values()["teacher_run"] == ddpm.id
    picker.setEditText("some-prefix")  # a typed id / prefix / folder is kept as typed
    assert panel.config_values()["teacher_run"] == "some-prefix"
    newer = trained(ctx, "8gaussians", steps=4)
    picker.refresh()  # what opening the popup does
    assert [picker.itemData(i) for i in range(picker.count())] == ["", newer.id, ddpm.id]  # newest first
    assert panel.config_values()["teacher_run"] == "some-prefix"
    panel.form.set_values({"teacher_run": ddpm.id})
    assert picker.currentIndex() == 2 and panel.config_values()["teacher_run"] == ddpm.id
