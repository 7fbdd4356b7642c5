"""The metrics dashboard: table (sorting, intervals, extractor names), charts, exports, and the
Evaluate button driving the real eval job through a fake window context."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import csv  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from genstudio.core import jobs  # noqa: E402
from genstudio.core.events import Event, EventBus  # noqa: E402
from genstudio.core.registry import registry  # noqa: E402
from genstudio.core.runs import RunStore  # noqa: E402
from genstudio.qt.panels.metrics import MetricsPanel, short_id  # noqa: E402


class Ctx:
    """The slice of the main window a panel uses; jobs run inline (or in a thread)."""

    def __init__(self, root, threaded: bool = False) -> None:
        self.store = RunStore(root)
        self.registry = registry()
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.threaded = threaded
        self.jobs: dict[str, threading.Thread] = {}
        self.started: list[str] = []
        self.messages: list[str] = []
        self.run = None

    def current_run(self):
        return self.run

    def start_job(self, name, run, job):
        control = jobs.Control()
        self.started.append(name)

        def drive():
            for _ in job(control):
                pass

        if self.threaded:
            t = self.jobs[name] = threading.Thread(target=drive, daemon=True)
            t.start()
        else:
            drive()
        return control

    def job_running(self, name):
        t = self.jobs.get(name)
        return t is not None and t.is_alive()

    def show_error(self, message, details=""):
        raise AssertionError(message)

    def status_message(self, text, ms=4000):
        self.messages.append(text)

    def deliver(self, panel):
        batch, self.events[:] = list(self.events), []
        panel.on_events(batch)


def entry(v, half=None, ext="cnn-digits", note=""):
    return {"value": v, "ci_low": None if half is None else v - half, "ci_high": None if half is None else v + half,
            "note": note, "extractor": ext}


def write_eval(run, step, metrics, plugin="ddpm", dataset="digits", ext="cnn-digits", t=None):
    rec = {"schema": 1, "job": "eval", "run": run.id, "plugin": plugin, "dataset": dataset, "step": step,
           "checkpoint": f"step_{step:08d}.pt", "n": 1000, "seed": 0, "metrics": metrics, "skipped": {},
           "extractor": {"name": ext, "hash": "abc123", "dim": 128, "val_acc": 0.98},
           "extractors": {ext: {"name": ext, "hash": "abc123", "dim": 128, "val_acc": 0.98}},
           "time": t or time.time()}
    p = run.eval_dir() / f"eval_{step:08d}_{int((t or time.time()) * 1000)}.json"
    p.write_text(json.dumps(rec))
    return rec


def synthetic_store(root):
    """Three runs of two families with evals over training (numbers shaped like real ones)."""
    store = RunStore(root)
    runs = []
    for plugin, scale, nfe, secs in (("ddpm", 1.0, 1000, 4.1), ("ddpm", 0.6, 250, 1.2), ("pixelcnn", 1.6, 64, 0.6)):
        run = store.create(plugin=plugin, dataset="digits", config={}, seed=0, device="cpu", steps=2000)
        for i, step in enumerate((500, 1000, 1500, 2000)):
            fcd = scale * (40.0 / (i + 1) + 3)
            m = {"fcd": entry(fcd, 0.08 * fcd), "kid": entry(fcd / 800, fcd / 4000),
                 "precision": entry(0.5 + 0.1 * i, 0.03), "recall": entry(0.3 + 0.12 * i / scale, 0.03),
                 "sampling_time": entry(secs, ext="timer"), "nfe": entry(float(nfe), ext="plugin")}
            if plugin == "pixelcnn":
                m["nll"] = entry(95.0 - 5 * i, 1.0, ext="model")
            write_eval(run, step, m, plugin=plugin, t=1000.0 + step)
        runs.append(run)
    return store, runs


@pytest.fixture
def panel_with_data(qtbot, tmp_path):
    store, runs = synthetic_store(tmp_path)
    ctx = Ctx(tmp_path)
    panel = MetricsPanel(ctx)
    qtbot.addWidget(panel)
    panel.resize(1300, 820)
    panel.show()
    return panel, ctx, runs


def test_table_shows_latest_eval_per_run_with_intervals_and_extractor(panel_with_data):
    panel, ctx, runs = panel_with_data
    t = panel.table
    assert panel.panel_id == "metrics" and panel.title == "Metrics"
    assert t.rowCount() == 3
    headers = [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]
    assert headers[:5] == ["Run", "Plugin", "Dataset", "Step", "n"]
    assert "fcd ↓" in headers and "precision ↑" in headers and "nll ↓" in headers
    c = headers.index("fcd ↓")
    row = panel.table_rows().index(runs[0].id)
    text = t.item(row, c).text()
    assert text.startswith("13") and "[" in text and text.endswith("\ncnn-digits")  # 40/4+3 = 13 at step 2000
    assert "extractor cnn-digits" in t.item(row, c).toolTip()
    assert t.item(row, headers.index("Step")).text() == "2000"
    assert t.item(row, headers.index("nll ↓")).text() == ""  # ddpm has no likelihood
    # numeric sort (not text sort) on fcd: 7.8 < 13 < 20.8
    t.sortItems(c, Qt.AscendingOrder)
    assert panel.table_rows() == [runs[1].id, runs[0].id, runs[2].id]
    t.sortItems(c, Qt.DescendingOrder)
    assert panel.table_rows() == [runs[2].id, runs[0].id, runs[1].id]


def test_checkpoint_curve_and_scatter(panel_with_data):
    panel, ctx, runs = panel_with_data
    panel.curve_combo.setCurrentText("fcd")
    panel.set_run(runs[0])
    curves = panel.curve_plot.getPlotItem().listDataItems()
    assert len(curves) == 1
    x, y = curves[0].getData()
    assert list(x) == [500, 1000, 1500, 2000] and y[0] == pytest.approx(43.0)
    panel.set_run(None)  # no selection: every run
    assert len(panel.curve_plot.getPlotItem().listDataItems()) == 3
    panel.x_combo.setCurrentText("nfe")
    panel.y_combo.setCurrentText("fcd")
    items = panel.scatter_plot.getPlotItem().listDataItems()
    assert len(items) == 2  # one series per plugin family
    xs = sorted(float(v) for it in items for v in it.getData()[0])
    assert xs == [64.0, 250.0, 1000.0]
    assert "nfe" in panel.scatter_plot.getPlotItem().getAxis("bottom").labelText
    assert "cnn-digits" in panel.scatter_plot.getPlotItem().getAxis("left").labelText
    assert panel.scatter_note.text() == ""


def test_mixed_extractors_are_flagged(qtbot, tmp_path):
    store = RunStore(tmp_path)
    a = store.create(plugin="ddpm", dataset="digits", config={}, seed=0, device="cpu", steps=10)
    b = store.create(plugin="ddpm", dataset="digits16", config={}, seed=0, device="cpu", steps=10)
    write_eval(a, 10, {"fcd": entry(5.0, 0.5), "nfe": entry(100.0, ext="plugin")})
    write_eval(b, 10, {"fcd": entry(7.0, 0.5, ext="cnn-digits16"), "nfe": entry(100.0, ext="plugin")},
               dataset="digits16", ext="cnn-digits16")
    panel = MetricsPanel(Ctx(tmp_path))
    qtbot.addWidget(panel)
    panel.x_combo.setCurrentText("nfe")
    panel.y_combo.setCurrentText("fcd")
    assert "not comparable" in panel.scatter_note.text() and "cnn-digits16" in panel.scatter_note.text()


def test_exports(panel_with_data, tmp_path):
    panel, ctx, runs = panel_with_data
    out = panel.export_csv(tmp_path / "m.csv")
    rows = list(csv.DictReader(open(out, newline="")))
    assert {r["run"] for r in rows} == {r.id for r in runs}
    r0 = next(r for r in rows if r["run"] == runs[0].id)
    assert float(r0["fcd"]) == pytest.approx(13.0) and float(r0["fcd_ci_low"]) == pytest.approx(13.0 * 0.92)
    assert r0["fcd_extractor"] == "cnn-digits" and r0["step"] == "2000" and r0["nll"] == ""
    png = panel.export_png(tmp_path / "m.png")
    img = QImage(str(png))
    assert img.width() > 400 and img.height() > 150


def test_evaluate_button_runs_the_eval_job(qtbot, tmp_path):
    from tests.core.test_eval import make_run  # the fake 2-D plugin, registered on import

    run = make_run(tmp_path, "fake2d_eval", "gmm2d")
    ctx = Ctx(tmp_path)
    panel = MetricsPanel(ctx)
    qtbot.addWidget(panel)
    assert panel.table.rowCount() == 0 and "No evaluations" in panel.info_label.text()
    panel.evaluate_selected()
    assert ctx.messages[-1] == "Select a run to evaluate" and not ctx.started
    panel.set_run(run)
    panel.metrics_edit.setText("energy,w2")
    panel.n_spin.setValue(200)
    panel.evaluate_selected()
    assert ctx.started == ["eval"]
    kinds = {(e.kind, e.data.get("job")) for e in ctx.events}
    assert ("progress", "eval") in kinds and ("result", "eval") in kinds
    ctx.deliver(panel)
    assert panel.table_rows() == [run.id]
    headers = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    assert "energy ↓" in headers and "w2 ↓" in headers and "sampling_time ↓" in headers
    assert "raw-points" in panel.table.item(0, headers.index("energy ↓")).text()
    assert short_id(run.id) in panel.table.item(0, 0).text()
