"""The GUI's cost while a run trains (issue #18), tested as mechanisms with a fake clock: curve
redraws throttled, none while the monitor is out of sight, axes re-fitted only now and then, no
run.json read per event batch, the preview's cost shown."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from genstudio.core import events as ev  # noqa: E402
from genstudio.core import jobs  # noqa: E402
from genstudio.core.events import Event  # noqa: E402
from genstudio.core.runs import Run  # noqa: E402
from genstudio.qt.panels.training import REDRAW_HZ, TrainingPanel  # noqa: E402
from tests.qt import test_panels  # noqa: E402
from tests.qt.test_panels import metric_rows, new_run  # noqa: E402

ctx, reg = test_panels.ctx, test_panels.reg  # the fake AppContext's fixtures (jobs run inline)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live_panel(qtbot, ctx):
    run = new_run(ctx, steps=10_000)
    panel = TrainingPanel(ctx)
    qtbot.addWidget(panel)
    panel.set_run(run)
    clock = Clock()
    panel.redraws._clock = clock
    return panel, run, clock


def test_event_batches_redraw_at_most_a_few_times_a_second(qtbot, ctx):
    panel, run, clock = live_panel(qtbot, ctx)
    rows = metric_rows(range(10, 10_010, 10))
    for i in range(100):  # 100 batches within 1 s, as the bridge's 30 Hz ticks would bring them
        panel.on_events([Event(ev.METRICS, run.id, r) for r in rows[10 * i:10 * i + 10]])
        clock.now += 0.01
    assert panel.redraws.runs <= REDRAW_HZ + 1  # the first at once, then one per interval
    assert panel.redraws.pending  # the newest rows are drawn at the end of the interval
    qtbot.waitUntil(lambda: not panel.redraws.pending, timeout=5000)
    assert panel.curve_points("loss")[0][-1] == 10_000  # nothing lost, only folded


def test_hidden_monitor_does_not_redraw_and_catches_up_when_seen(qtbot, ctx):
    panel, run, clock = live_panel(qtbot, ctx)
    panel.set_on_screen(False)  # its dock went behind another tab
    before = panel.redraws.runs
    for r in metric_rows(range(10, 510, 10)):
        panel.on_events([Event(ev.METRICS, run.id, r)])
        clock.now += 1.0  # however long it stays hidden
    assert panel.redraws.runs == before and panel._curves == {}
    panel.set_on_screen(True)
    assert panel.redraws.runs == before + 1  # one redraw with everything
    np.testing.assert_array_equal(panel.curve_points("loss")[0], np.arange(10, 510, 10))


def test_axes_refit_only_when_the_data_leaves_the_view(qtbot, ctx):
    panel, run, clock = live_panel(qtbot, ctx)
    changes = []
    panel.plot_item.getViewBox().sigRangeChanged.connect(lambda *_: changes.append(1))
    rows = metric_rows(range(10, 3010, 10))
    for i in range(0, 300, 3):  # every batch redrawn (the clock moves past the interval)
        panel.on_events([Event(ev.METRICS, run.id, r) for r in rows[i:i + 3]])
        clock.now += 1.0
    assert panel.redraws.runs >= 100
    assert len(changes) <= 25  # pyqtgraph's auto-range changed the range (and re-ticked the axes) at every one
    (x0, x1), (y0, y1) = panel.plot_item.getViewBox().viewRange()
    x, y = panel.curve_points("loss")
    assert x0 <= x.min() and x.max() <= x1 and y0 <= y.min() and y.max() <= y1  # all of it in view


def test_window_reads_run_json_only_when_it_changes(test_plugins, main_window, monkeypatch):
    w = main_window
    run = jobs.create_run(w.store, jobs.TrainSpec("gaussfit", "moons", steps=100))
    w.select_run(run)
    monkeypatch.setattr(w, "_training_run_id", lambda: run.id)  # as while its job trains
    reads = []
    real = Run.raw_info
    monkeypatch.setattr(Run, "raw_info", lambda self: reads.append(self.id) or real(self))
    for step in range(1, 61):  # 60 ticks of progress, as while the run trains
        w._on_events([Event(ev.PROGRESS, run.id, {"done": step, "total": 100}),
                      Event(ev.METRICS, run.id, {"step": step, "loss": 1.0 / step})])
    assert reads == []
    assert "step 60 / 100" in w.run_header.text()  # the header follows the progress
    w._on_events([Event(ev.STATUS, run.id, {"status": "paused", "message": ""})])
    assert 1 <= len(reads) <= 3  # run.json changed: read again (header, controls), once per change


def test_preview_cost_shown_under_the_preview(qtbot, ctx):
    panel, run, _ = live_panel(qtbot, ctx)
    panel.on_events([Event(ev.SAMPLES, run.id, {"step": 500, "x": torch.randn(100, 2), "path": None,
                                                "seconds": 0.123, "sample_steps": 50})])
    assert panel.sample_label.text() == "step 500 · preview 0.12 s (50 steps)"
