"""Training monitor: the "Samples / <view>" combo shows model views from SAMPLES events and from
``view_<name>_<step>.png`` files of an opened run."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from genstudio.core import events as ev  # noqa: E402
from genstudio.core.events import Event  # noqa: E402
from genstudio.core.imaging import save_png  # noqa: E402
from genstudio.core.registry import Registry  # noqa: E402
from genstudio.qt.panels.training import TrainingPanel  # noqa: E402
from tests.qt.test_panels import FakeCtx, new_run  # noqa: E402


@pytest.fixture
def ctx(tmp_path):
    return FakeCtx(tmp_path / "store", Registry())


def solid(rgb, h=12, w=16) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def displayed(panel: TrainingPanel) -> np.ndarray:
    """The RGB array the sample view's image item holds, as handed to show_image."""
    assert panel.sample_view.mode == "image"
    return np.asarray(panel.sample_view.image.image)


def test_views_from_events_switch_with_the_combo(qtbot, ctx):
    run = new_run(ctx)
    panel = TrainingPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    assert panel.view_names() == [] and not panel.view_combo.isEnabled()
    x = torch.zeros(8, 2)
    panel.on_events([Event(ev.SAMPLES, run.id, {"step": s, "x": x, "path": None,
                                                 "views": {"density": solid((s, 0, 0))}})
                     for s in (100, 200)])
    assert panel.view_names() == ["density"] and panel.view_combo.isEnabled()
    assert [panel.view_combo.itemText(i) for i in range(panel.view_combo.count())] == ["Samples", "Density"]
    assert panel.sample_steps() == [100, 200]
    samples_img = displayed(panel).copy()

    panel.show_view("density")
    assert panel.view_combo.currentText() == "Density"
    np.testing.assert_array_equal(displayed(panel), solid((200, 0, 0)))  # follows the newest step
    assert panel.sample_label.text() == "step 200"
    panel.show_sample_step(100)
    np.testing.assert_array_equal(displayed(panel), solid((100, 0, 0)))

    assert panel.sample_view.titleLabel.text == "Density"
    panel.show_view(None)  # back to the samples
    assert displayed(panel).shape == samples_img.shape
    panel.show_view("density")
    panel.set_run(new_run(ctx))  # a run without views: back to "Samples", title included
    assert panel.view_combo.currentData() is None and panel.sample_view.titleLabel.text == "Samples"


def test_views_loaded_from_run_folder(qtbot, ctx):
    run = new_run(ctx)
    for s in (10, 20):
        save_png(solid((0, 50, 0)), run.sample_dir() / f"step_{s:08d}.png")
        save_png(solid((0, 0, 9 * s), 8, 8), run.sample_dir() / f"view_energy_map_{s:08d}.png")
    panel = TrainingPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    assert panel.view_names() == ["energy_map"] and panel.sample_steps() == [10, 20]
    panel.show_view("energy_map")
    np.testing.assert_array_equal(displayed(panel), solid((0, 0, 180), 8, 8))
    panel.set_run(None)
    assert panel.view_names() == [] and panel.view_combo.count() == 1
