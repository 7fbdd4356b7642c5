"""The Metrics panel is readable (issue 12): every table row visible, plain tick numbers, intervals
clipped to each metric's valid range, and each metric says what is good (direction, real-vs-real
floor as a dashed line)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from genstudio.core.eval import METRIC_INFO, METRIC_RANGE, clipped_interval, format_value, load_evals  # noqa: E402
from genstudio.core.runs import RunStore  # noqa: E402
from genstudio.qt.panels.metrics import MetricsPanel, ReadableAxis, tick_label  # noqa: E402
from tests.qt.test_metrics_panel import Ctx, entry, panel_with_data, write_eval  # noqa: E402, F401 (a fixture)


def _settle(qtbot, ms=50):
    QApplication.processEvents()
    qtbot.wait(ms)
    QApplication.processEvents()


def _headers(panel):
    t = panel.table
    return [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]


def two_d_store(root):
    """Three 2-D runs; energy/mmd intervals reach below 0 (bootstrap of a near-zero distance) and
    the records carry the real-vs-real floor as ``reference``."""
    store = RunStore(root)
    runs = []
    for k, (plugin, scale) in enumerate((("ddpm", 1.0), ("flow", 0.3), ("ddpm", 3.0))):
        run = store.create(plugin=plugin, dataset="8gaussians", config={}, seed=k, device="cpu", steps=2000)
        for i, step in enumerate((500, 1000, 1500, 2000)):
            en = scale * 0.02 / (i + 1) + 0.0012
            m = {"energy": {**entry(en, 0.004, ext="raw-points"), "reference": 0.0011},
                 "mmd": {**entry(en / 3, 0.003, ext="raw-points"), "reference": 0.0004},
                 "w2": {**entry(0.1 + en * 5, ext="raw-points"), "reference": 0.09},
                 "precision": entry(min(0.99, 0.7 + 0.08 * i), 0.03, ext="raw-points"),
                 "sampling_time": entry(0.8 * scale + 0.1, ext="timer"), "nfe": entry(100.0 * scale, ext="plugin")}
            write_eval(run, step, m, plugin=plugin, dataset="8gaussians", ext="raw-points", t=1000.0 + step)
        runs.append(run)
    return store, runs


@pytest.fixture
def panel2d(qtbot, tmp_path):
    store, runs = two_d_store(tmp_path)
    panel = MetricsPanel(Ctx(tmp_path))
    qtbot.addWidget(panel)
    panel.resize(1300, 820)
    panel.show()
    _settle(qtbot)
    return panel, runs


# -- ranges in one place -------------------------------------------------------------------------
def test_every_metric_has_a_range_and_distances_are_non_negative():
    assert set(METRIC_INFO) <= set(METRIC_RANGE)
    for m in ("energy", "mmd", "fid", "fcd", "kid", "w2"):
        assert METRIC_RANGE[m][0] == 0.0
    assert METRIC_RANGE["is"][0] == 1.0 and METRIC_RANGE["precision"] == (0.0, 1.0)
    assert METRIC_RANGE["nll"] == (None, None)  # a density above 1 gives a negative NLL
    e = {"value": 0.001, "ci_low": -0.002, "ci_high": 0.004}
    assert clipped_interval("energy", e) == (0.0, 0.004) and clipped_interval("nll", e) == (-0.002, 0.004)
    assert format_value(e, name="mmd") == "0.001 [0, 0.004]"
    assert format_value(e) == "0.001 [-0.002, 0.004]"  # without a name: raw, as before
    assert e["ci_low"] == -0.002  # never mutated


# -- 1. all rows visible, table vs charts resizable ---------------------------------------------------
def test_table_shows_every_row_and_the_split_resizes(panel_with_data, qtbot):  # noqa: F811 (the fixture)
    panel, ctx, _ = panel_with_data
    _settle(qtbot)
    t = panel.table
    assert t.rowCount() == 3
    last = t.rowCount() - 1
    assert t.rowViewportPosition(last) >= 0
    assert t.rowViewportPosition(last) + t.rowHeight(last) <= t.viewport().height()
    assert t.verticalScrollBar().maximum() == 0  # nothing hidden behind a scroll
    assert t.rowHeight(0) >= 2 * t.fontMetrics().height()  # value and extractor lines both fit
    split = panel.split
    assert split.indexOf(t) == 0 and split.indexOf(panel.charts) == 1 and not split.childrenCollapsible()
    a, b = split.sizes()
    split.setSizes([a + 100, b - 100])
    assert split.sizes()[0] == a + 100
    split.splitterMoved.emit(a + 100, 1)  # what a drag of the handle sends
    panel.refresh()  # a new eval arriving rebuilds the table: the dragged size stays
    _settle(qtbot)
    assert split.sizes()[0] == a + 100
    assert panel.charts.height() >= panel.charts.minimumHeight() > 0


# -- 2. tick labels -------------------------------------------------------------------------------
@pytest.mark.parametrize("v,spacing,text", [
    (1.0761389279996, 0.01, "1.08"), (1.0761389279996, 0.2, "1.1"), (0.000945, 0.0001, "0.000945"),
    (0.95, 0.05, "0.95"), (0.0035, 0.0005, "0.0035"), (2000.0, 500.0, "2000"), (25000.0, 5000.0, "25000"), (1.5e6, 5e5, "1.5e+06"),
    (3e-17, 0.2, "0"), (12.5, 2.5, "12.5"),
])
def test_tick_label(v, spacing, text):
    assert tick_label(v, spacing) == text


def _tick_strings(axis):
    lo, hi = axis.range
    size = axis.width() if axis.orientation in ("left", "right") else axis.width()
    out = []
    for spacing, values in axis.tickValues(lo, hi, max(size, 200)):
        out += axis.tickStrings(values, 1.0, spacing)
    return out


def test_charts_have_plain_ticks(panel2d, qtbot):
    panel, runs = panel2d
    for p in (panel.curve_plot, panel.scatter_plot):
        for side in ("left", "bottom"):
            ax = p.getPlotItem().getAxis(side)
            assert isinstance(ax, ReadableAxis) and not ax.autoSIPrefix
    panel.curve_combo.setCurrentText("mmd")  # values ~0.001: the default axis wrote "1 ×0.001"
    panel.set_run(runs[0])
    _settle(qtbot)
    ax = panel.curve_plot.getPlotItem().getAxis("left")
    assert ax.autoSIPrefixScale == 1.0 and "×" not in ax.labelString() and "x0.0" not in ax.labelString()
    strings = _tick_strings(ax)
    assert strings
    for s in strings:
        digits = s.split("e")[0].replace("-", "").replace(".", "").lstrip("0")
        assert len(digits) <= 4, s


# -- 3. intervals clipped to the range ---------------------------------------------------------------
def test_intervals_clipped_in_table_and_error_bars_record_untouched(panel2d, qtbot):
    panel, runs = panel2d
    t = panel.table
    h = _headers(panel)
    row = panel.table_rows().index(runs[1].id)
    for m in ("energy ↓", "mmd ↓"):
        item = t.item(row, h.index(m))
        assert "[0, " in item.text() and "[-" not in item.text(), item.text()
        assert "clipped to the valid range ≥ 0" in item.toolTip() and "raw bootstrap interval [-" in item.toolTip()
    assert load_evals(runs[1])[-1]["metrics"]["energy"]["ci_low"] < 0  # stored record keeps the raw bound
    panel.curve_combo.setCurrentText("energy")
    panel.set_run(runs[1])
    bars = [i for i in panel.curve_plot.getPlotItem().items if isinstance(i, pg.ErrorBarItem)]
    assert bars
    o = bars[0].opts
    assert min(o["y"] - o["bottom"]) >= -1e-12  # no whisker below 0
    panel.x_combo.setCurrentText("mmd")
    panel.y_combo.setCurrentText("energy")
    sbars = [i for i in panel.scatter_plot.getPlotItem().items if isinstance(i, pg.ErrorBarItem)]
    assert sbars and all(min(b.opts["x"] - b.opts["left"]) >= -1e-12 for b in sbars)
    assert all(min(b.opts["y"] - b.opts["bottom"]) >= -1e-12 for b in sbars)


# -- 4. what is good ---------------------------------------------------------------------------------
def test_header_tooltips_say_what_is_good(panel_with_data, panel2d):  # noqa: F811 (the fixture)
    panel, _, _ = panel_with_data
    t, h = panel.table, _headers(panel)
    assert "Lower is better" in t.horizontalHeaderItem(h.index("fcd ↓")).toolTip()
    assert "≥ 0" in t.horizontalHeaderItem(h.index("fcd ↓")).toolTip()
    assert "Higher is better" in t.horizontalHeaderItem(h.index("precision ↑")).toolTip()
    assert "[0, 1]" in t.horizontalHeaderItem(h.index("precision ↑")).toolTip()
    p2, _ = panel2d
    h2 = _headers(p2)
    tip = p2.table.horizontalHeaderItem(h2.index("energy ↓")).toolTip()
    assert "Real-vs-real floor" in tip and "0.0011" in tip


def test_reference_is_a_dashed_line_and_in_the_cell_tooltip(panel2d, qtbot):
    panel, runs = panel2d
    panel.curve_combo.setCurrentText("energy")
    panel.set_run(runs[0])
    lines = panel.reference_lines
    assert len(lines) == 1 and lines[0].value() == pytest.approx(0.0011) and lines[0].angle == 0
    assert lines[0] in panel.curve_plot.getPlotItem().items
    from PySide6.QtCore import Qt

    assert lines[0].pen.style() == Qt.DashLine
    assert len(panel.curve_plot.getPlotItem().listDataItems()) == 1  # the line is not a data series
    vb = panel.curve_plot.getPlotItem().getViewBox()
    vb.updateAutoRange()
    assert vb.viewRange()[1][0] <= 0.0011  # the floor stays in view though every point is above it
    h = _headers(panel)
    row = panel.table_rows().index(runs[0].id)
    assert "real-vs-real floor at n=1000: 0.0011" in panel.table.item(row, h.index("energy ↓")).toolTip()
    assert "↓ better" in panel.curve_plot.getPlotItem().getAxis("left").labelText
    panel.set_run(None)  # three runs on the same data at the same n share one floor: one line
    assert len(panel.reference_lines) == 1
    panel.curve_combo.setCurrentText("precision")  # no reference there
    assert panel.reference_lines == []


def test_inception_score_shows_what_real_data_scores(qtbot, tmp_path):
    store = RunStore(tmp_path)
    run = store.create(plugin="ddpm", dataset="digits", config={}, seed=0, device="cpu", steps=10)
    for step, v in ((5, 4.0), (10, 6.5)):
        write_eval(run, step, {"is": {**entry(v, 0.2), "ref": 9.1}}, t=1000.0 + step)
    panel = MetricsPanel(Ctx(tmp_path))
    qtbot.addWidget(panel)
    panel.curve_combo.setCurrentText("is")
    panel.set_run(run)
    assert [ln.value() for ln in panel.reference_lines] == [pytest.approx(9.1)]
    assert "real data scores 9.1" in panel.table.item(0, _headers(panel).index("is ↑")).toolTip()


def test_eval_records_the_real_vs_real_floor(tmp_path):
    from genstudio.core.eval import run_eval
    from tests.core.test_eval import make_run

    good = make_run(tmp_path, "fake2d_eval", "8gaussians")
    bad = make_run(tmp_path, "fake2d_eval", "8gaussians", shift=0.5)
    g = run_eval(good, "energy,mmd,w2", n=300, n_boot=10)["metrics"]
    b = run_eval(bad, "energy,mmd,w2", n=300, n_boot=10)["metrics"]
    for m in ("energy", "mmd", "w2"):
        ref = g[m]["reference"]
        assert isinstance(ref, float) and ref == pytest.approx(b[m]["reference"])  # data only, same n
        assert b[m]["value"] > (2 if m == "w2" else 5) * abs(ref)  # finite-n W2 in 2-D is large
    assert g["energy"]["reference"] >= 0 and 0 < g["w2"]["reference"] < 0.6
    # the exact model sits at the floor: within a few times of it
    assert g["w2"]["value"] < 2 * g["w2"]["reference"]
    on_disk = json.loads(Path(load_evals(good)[-1]["path"]).read_text())
    assert on_disk["metrics"]["energy"]["reference"] == g["energy"]["reference"]


def test_screenshot_with_three_runs(panel2d, qtbot, tmp_path):
    panel, runs = panel2d
    panel.curve_combo.setCurrentText("energy")
    panel.x_combo.setCurrentText("nfe")
    panel.y_combo.setCurrentText("energy")
    panel.set_run(None)
    _settle(qtbot, 100)
    out = Path(os.environ.get("GENSTUDIO_SHOT_DIR", tmp_path)) / "metrics_readable.png"
    assert panel.grab().save(str(out))
    assert out.stat().st_size > 10_000


def test_ticks_of_a_narrow_range_far_from_zero_stay_distinct():
    """One checkpoint at step 1500: the axis spans 1499.6 … 1500.4; the labels must differ."""
    from genstudio.qt.panels.metrics import tick_label

    labels = [tick_label(v, 0.2) for v in (1499.6, 1499.8, 1500.0, 1500.2, 1500.4)]
    assert len(set(labels)) == 5 and labels[0] == "1499.6"


def test_fcd_floor_of_an_image_run_is_drawn_and_in_the_cell(qtbot, tmp_path):
    """Image distances (fcd, kid) carry the real-vs-real floor like the 2-D ones: a dashed line in the
    chart, the value in the cell, where it was measured (n) in the tooltips."""
    from PySide6.QtCore import Qt

    store = RunStore(tmp_path)
    run = store.create(plugin="ddpm", dataset="digits", config={}, seed=0, device="cpu", steps=3000)
    for i, step in enumerate((1000, 2000, 3000)):
        write_eval(run, step, {"fcd": {**entry(40.0 / (i + 1), 2.0), "reference": 5.94, "reference_n": 797},
                               "kid": {**entry(3.0 / (i + 1), 0.5), "reference": 0.22, "reference_n": 797}},
                   t=1000.0 + step)
    panel = MetricsPanel(Ctx(tmp_path))
    qtbot.addWidget(panel)
    panel.resize(1300, 820)
    panel.show()
    panel.curve_combo.setCurrentText("fcd")
    panel.set_run(run)
    _settle(qtbot)
    lines = panel.reference_lines
    assert len(lines) == 1 and lines[0].value() == pytest.approx(5.94) and lines[0].pen.style() == Qt.DashLine
    assert "n=797" in lines[0].toolTip()
    h = _headers(panel)
    cell = panel.table.item(0, h.index("fcd ↓"))
    assert "floor 5.94" in cell.text() and "real-vs-real floor at n=797: 5.94" in cell.toolTip()
    assert "floor 0.22" in panel.table.item(0, h.index("kid ↓")).text()
    assert "Real-vs-real floor" in panel.table.horizontalHeaderItem(h.index("kid ↓")).toolTip()
