"""Panels in tabs behind others are built when first seen or asked for (issue #18: cold start)."""

from __future__ import annotations

from genstudio.qt.shot import scratch_window


def test_hidden_tabs_are_built_on_first_use(qtbot):
    with scratch_window((1400, 880)) as w:
        deferred = set(w._deferred)
        assert deferred, "the panels behind the sampler's tab should wait"
        built = set(dict.keys(w.panels))
        assert {"training", "sampler", "runs", "settings"} <= built and not built & deferred
        pid = sorted(deferred)[0]
        assert pid in w.panels and pid not in dict.keys(w.panels)  # listed, still not built
        panel = w.panels[pid]  # asking builds it, into its dock
        assert w.docks[pid].widget() is panel and pid not in w._deferred
        other = sorted(deferred)[1]
        w.docks[other].raise_()  # raising its tab builds it too
        qtbot.waitUntil(lambda: other not in w._deferred, timeout=5000)
        assert w.docks[other].widget() is w.panels[other]
        assert w.panels.get("no_such_panel") is None and "no_such_panel" not in w.panels
