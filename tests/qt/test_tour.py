"""Demo mode in the window: the default tour end to end (quick settings, the tour's own code path),
Esc and Back, a bad tour file as one error, Record tour round trip, and presentation mode
toggling back exactly."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel

from genstudio.core.tour import load_tour
from genstudio.qt.present import FONT_PT, HIDDEN_PANELS
from tests.qt.test_main_window import configure

TOUR_TIMEOUT = 180_000  # ms; the quick tour takes ~20 s here on one core


def full(w):
    return bool(w.windowState() & Qt.WindowFullScreen)


def restored(qtbot, w, before, exact=False):
    """Leaving full screen takes the window system a moment: wait for it, then compare."""
    try:
        qtbot.waitUntil(lambda: layout(w, exact) == before, timeout=3000)
    except qtbot.TimeoutError:
        pass
    now = layout(w, exact)
    assert {k: v for k, v in now.items() if v != before[k]} == {}


def layout(w, exact=False):
    """Everything presentation mode and the tour may change, to compare before / after; ``exact``:
    the saved dock state byte for byte (offscreen, the 800 px screen makes dock sizes after a tour
    depend on timing; the areas and tabs below are what a user sees)."""
    tabs = {k: sorted(t.objectName() for t in w.tabifiedDockWidgets(d)) for k, d in w.docks.items()}
    return {"state": bytes(w.saveState()) if exact else b"", "style": w.styleSheet(), "full": full(w),
            "areas": {k: w.dockWidgetArea(d) for k, d in w.docks.items()}, "tabs": tabs,
            "floating": [k for k, d in w.docks.items() if d.isFloating()],
            "docks": {k: d.isVisibleTo(w) for k, d in w.docks.items()}, "toolbar": w.toolbar.isVisibleTo(w),
            "activity": w.activity.isVisibleTo(w), "size": w.size().toTuple(), "toolbars": len(w.findChildren(type(w.toolbar)))}


@pytest.mark.slow
def test_default_tour_end_to_end_quick(main_window, qtbot):
    """Every stage of the shipped tour reached in order with its caption shown, real jobs run
    (three trained runs, a trajectory, an A/B comparison, a latent map), no error, layout restored."""
    w = main_window
    before = layout(w)
    tour = load_tour()
    player = w.tours.play(None, quick=True, auto=True, hold_scale=0)
    assert player is not None and player.running and w.presentation.active
    shown, results = [], {}

    def entered(i):
        st = tour.stages[i]
        shown.append((i, player.bar.caption.text(), player.bar.isVisible(),
                      w.docks[st.panel].isVisible() if st.panel else True))
        results[tour.stages[i - 1].job] = {  # what the stage just left showed (a later run clears it)
            "sample": w.panels["sampler"].num_states(),
            "compare": tuple(len(t) for t in w.panels["trajectory"].trajectories()),
            "latent": w.panels["latent"].lerp_frames is not None,
            "fly": w.panels["splats"].scene_item is not None}.get(tour.stages[i - 1].job)

    player.stage_entered.connect(entered)
    with qtbot.waitSignal(player.finished, timeout=TOUR_TIMEOUT) as done:
        pass
    assert done.args == ["done"]
    assert player.errors == [] and w.errors == []
    assert [i for i, *_ in shown] == list(range(1, len(tour.stages)))  # stage 0 was entered inside play()
    assert [c for _, c in player.visited] == [s.caption for s in tour.stages]
    assert all(bar and panel for _, _, bar, panel in shown)  # caption bar and the stage's panel on screen
    runs = {r.info()["plugin"]: r.info() for r in w.store.list()}
    assert {p: i["status"] for p, i in runs.items()} == {"ddpm": "completed", "vae": "completed",
                                                         "splat": "completed"}
    assert runs["ddpm"]["steps"] == 30 and runs["ddpm"]["config"]["lr"] == 0.002  # the stage's quick settings
    assert results["sample"] >= 10  # the 10 (quick) steps, played back
    assert results["compare"] == (11, 21)  # 10 shortcut steps against 20 (quick) careful ones
    assert results["latent"] and results["fly"]  # the walk's interpolation strip; the scene was loaded
    restored(qtbot, w, before)  # presentation mode and the tour bar are gone, docks as they were
    assert w.panels["settings"].run_form.values()["sample_every"] != 10  # the user's settings are back


def test_esc_and_back_leave_everything_as_it_was(main_window, qtbot):
    w = main_window
    before = layout(w)
    help_menu = w.menuBar().actions()[-1].menu()
    assert {w.tours.show_action, w.tours.record_action} <= set(help_menu.actions())
    w.tours.show_action.trigger()  # Help → Show me
    player = w.tours.player
    qtbot.waitUntil(lambda: full(w))  # offscreen, the window system answers a moment later
    assert player.index == 0 and player.ready  # a caption-only stage: Next works at once
    assert not player.bar.back_button.isEnabled()
    player.next()
    assert player.index == 1 and w.job_running("train") and not player.ready
    player.next()  # ignored while the stage's job runs
    assert player.index == 1
    player.back()
    assert player.index == 0 and player.bar.caption.text() == player.tour.stages[0].caption
    qtbot.keyClick(w, Qt.Key_Escape)
    assert not player.running
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=30_000)  # the tour's run was stopped
    restored(qtbot, w, before)


def test_a_bad_tour_file_is_one_error_and_no_tour(main_window, tmp_path):
    w = main_window
    before = layout(w)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[stages]]\ntitle = "A"\ncaption = "b"\njob = "sample"\n[stages.settings]\nn = "x"\n')
    assert w.tours.play(bad) is None
    assert len(w.errors) == 1 and "stage 1 ('A'): settings.n must be a whole number" in w.errors[0][0]
    assert layout(w) == before
    w.errors.clear()
    unknown = tmp_path / "unknown.json"  # valid file, but a plugin this install does not have
    unknown.write_text(json.dumps({"stages": [{"title": "T", "caption": "c", "job": "train",
                                               "settings": {"plugin": "nope", "dataset": "moons"}}]}))
    assert w.tours.play(unknown) is None and "no working plugin 'nope'" in w.errors[0][0]


@pytest.mark.slow
def test_record_tour_round_trip(make_window, qtbot, tmp_path, monkeypatch):
    """What the user did (train, sample, look at another panel) becomes a tour file that plays back:
    the played tour trains a new run with the same settings and samples it the same way."""
    w = make_window()
    out = tmp_path / "mine.json"
    monkeypatch.setattr(w.tours, "choose_tour_file", lambda: str(out))
    w.tours.record_action.trigger()
    configure(w, plugin="ddpm", steps=20, config={"hidden": 32}, sample_every=10, preview_steps=5, n_preview=50)
    run = w.start_training()
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=60_000)
    sp = w.panels["sampler"]
    sp.n.setValue(50)
    sp.steps.setValue(5)
    assert sp.start_sampling() is not None
    qtbot.waitUntil(lambda: not w.job_running("sample"), timeout=60_000)
    states = sp.num_states()
    w.docks["latent"].raise_()  # a visited panel without a job: a caption-only stage
    qtbot.waitUntil(lambda: w.docks["latent"].isVisible())
    w.tours.record_action.trigger()
    tour = load_tour(out)
    assert [(s.panel, s.job) for s in tour.stages] == [("training", "train"), ("sampler", "sample"), ("latent", "")]
    train = tour.stages[0].settings
    assert train["plugin"] == "ddpm" and train["dataset"] == "8gaussians" and train["steps"] == 20
    assert train["config"] == {"hidden": 32} and train["preview_steps"] == 5  # config: only what differs
    assert {k: tour.stages[1].settings[k] for k in ("n", "steps", "sampler")} == {"n": 50, "steps": 5, "sampler": "ddpm"}
    player = w.tours.play(out, auto=True, hold_scale=0)
    with qtbot.waitSignal(player.finished, timeout=120_000):
        pass
    assert player.errors == [] and w.errors == []
    replayed = [r for r in w.store.list() if r.id != run.id]
    assert len(replayed) == 1 and replayed[0].info()["config"]["hidden"] == 32
    assert sp.num_states() == states > 1 and sp._traj_run == replayed[0].id


def test_presentation_mode_toggles_back_exactly(main_window, qtbot):
    w = main_window
    act = w.presentation.action
    keys = [a.shortcut() for a in w.findChildren(QAction) if a is not act and not a.shortcut().isEmpty()]
    assert act.shortcut() == QKeySequence("F11") and act.shortcut() not in keys  # no clash
    assert act in w.menuBar().actions()[2].menu().actions()  # View menu
    before = layout(w, exact=True)
    act.trigger()
    qtbot.waitUntil(lambda: full(w))
    assert not w.toolbar.isVisibleTo(w) and not w.activity.isVisibleTo(w)
    assert all(not w.docks[p].isVisibleTo(w) for p in HIDDEN_PANELS)
    assert w.docks["training"].isVisibleTo(w) and w.docks["sampler"].isVisibleTo(w)
    label = w.panels["sampler"].findChild(QLabel)
    label.ensurePolished()
    assert label.font().pointSize() == FONT_PT  # large type everywhere
    assert w.menuBar().isVisibleTo(w) and w.run_actions["Start"].isEnabled()  # shortcuts still reachable
    act.trigger()
    assert not act.isChecked()
    restored(qtbot, w, before, exact=True)


def test_the_latent_walk_crosses_the_map():
    import numpy as np

    from genstudio.qt.tour import walk_ends

    emb = np.array([[0.0, 0], [1, 0], [0.4, 0.1], [5, 0], [6, 0], [2, 2]])
    labels = np.array([0, 0, 0, 1, 1, 2])
    assert walk_ends(labels, emb) == (2, 3)  # the most typical 0 and the most typical 1 (farthest centres)
    assert walk_ends(None, emb) == (0, 4)


def test_a_stage_that_cannot_run_says_why_and_the_tour_goes_on(main_window, qtbot, tmp_path):
    w = main_window
    path = tmp_path / "early.json"  # sampling before anything was trained
    path.write_text(json.dumps({"stages": [{"title": "Too early", "caption": "c", "panel": "sampler", "job": "sample"},
                                           {"title": "End", "caption": "d"}]}))
    player = w.tours.play(path)
    qtbot.waitUntil(lambda: player.ready)
    assert player.errors == [(0, "nothing to sample: select a run")]
    assert player.bar.status.text() == "This stage had a problem: nothing to sample: select a run"
    assert player.bar.next_button.isEnabled()  # Next still works
    player.next()
    assert player.index == 1
    player.next()
    assert not player.running
