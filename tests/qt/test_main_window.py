"""The Qt shell end to end: window, pickers, training from the Start button, pause/resume/stop,
a failing plugin, a NaN loss, persistence, the run list, and the pieces (bridge, worker, forms)."""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from genstudio.core import events as ev
from genstudio.core.config import ConfigError, param
from genstudio.core.device import worker_threads
from genstudio.core.events import EventBus
from genstudio.core.jobs import Cancelled, Control
from genstudio.qt.bridge import EventBridge, coalesce
from genstudio.qt.forms import ConfigForm, SciSpinBox, step_125
from genstudio.qt.worker import CANCELLED, FAILED, FINISHED, JobThread

TIMEOUT = 60_000  # ms; real runs here take a few seconds


def status_of(run) -> str:
    return run.info()["status"]


def configure(w, plugin="gaussfit", dataset="8gaussians", steps=60, config=None, **run_opts):
    assert w.select_plugin(plugin)
    assert w.select_dataset(dataset)
    w.steps_spin.setValue(steps)
    settings = w.panels["settings"]
    if config:
        settings.form.set_values(config)
    settings.run_form.set_values({"log_every": 5, "sample_every": 30, "checkpoint_every": 30, **run_opts})


def click(qtbot, button):
    assert button.isEnabled(), f"{button.objectName()} is disabled"
    qtbot.mouseClick(button, Qt.LeftButton)


def start(qtbot, w):
    click(qtbot, w.start_button)
    run = w.current_run()
    assert run is not None, w.errors
    return run


# -- the window -----------------------------------------------------------------------------------
def test_window_opens_with_docks(main_window):
    w = main_window
    assert not w.panel_errors
    assert {"training", "sampler", "runs", "settings"} <= set(w.docks)
    for pid, dock in w.docks.items():
        assert dock.isVisible() and dock.objectName() == f"dock_{pid}" and w.panels[pid].panel_id == pid
    if "metrics" in w.docks:  # placed as a tab behind the sampler
        assert w.docks["metrics"] in w.tabifiedDockWidgets(w.docks["sampler"])
    assert w.plugin_combo.findData("ddpm") >= 0
    assert w.dataset_combo.findData("8gaussians") >= 0
    assert w.start_button.isEnabled()
    assert not w.pause_button.isEnabled() and not w.stop_button.isEnabled()
    assert "Device: cpu" in w.device_label.text()
    assert not gc.isenabled()  # Python's GC runs from the GUI thread's timer while a window lives


def test_broken_plugin_is_listed_disabled_with_its_error(make_window, test_plugins):
    test_plugins.add_failure("brokenplug", "tests", RuntimeError("boom at import"))
    try:
        w = make_window()
        i = w.plugin_combo.findData("brokenplug")
        assert i >= 0
        assert not w.plugin_combo.model().item(i).isEnabled()
        assert "boom at import" in w.plugin_combo.itemData(i, Qt.ToolTipRole)
        assert not w.select_plugin("brokenplug")
        assert w.select_plugin("gaussfit")
    finally:
        test_plugins.entries.pop("brokenplug", None)


def test_dataset_picker_follows_plugin_kinds_and_adds_folders(main_window, tmp_path, monkeypatch):
    from PIL import Image

    w = main_window
    assert w.select_plugin("ddpm")
    names = [w.dataset_combo.itemData(i) for i in range(w.dataset_combo.count())]
    assert "8gaussians" in names and "digits" in names  # ddpm takes both kinds
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    monkeypatch.setattr(w, "choose_folder", lambda: str(folder))
    w.dataset_combo.activated.emit(w.dataset_combo.findData("__open_folder__"))
    assert w.current_dataset() == f"folder:{folder}"


def test_scene_plugins_open_a_transforms_folder(main_window, tmp_path, monkeypatch):
    from PIL import Image

    from genstudio.core.scene.cameras import save_transforms, sphere_cameras

    w = main_window
    assert w.select_plugin("nerf")
    names = [w.dataset_combo.itemData(i) for i in range(w.dataset_combo.count())]
    assert "scene:primitives" in names and "digits" not in names and "__open_scene__" in names
    cams = sphere_cameras(3, 3.0, width=16, height=16)
    imgs = []
    for c in cams:
        p = tmp_path / "scene" / "imgs" / f"{c.name}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(p)
        imgs.append(p)
    path = save_transforms(tmp_path / "scene", cams, imgs)
    monkeypatch.setattr(w, "choose_folder", lambda: str(path.parent))
    w.dataset_combo.activated.emit(w.dataset_combo.findData("__open_scene__"))
    assert w.current_dataset() == f"transforms:{path.parent.resolve()}" and not w.errors
    monkeypatch.setattr(w, "choose_folder", lambda: str(tmp_path / "scene" / "imgs"))  # no transforms.json there
    w.dataset_combo.activated.emit(w.dataset_combo.findData("__open_scene__"))
    assert w.errors and "Cannot use" in w.errors[-1][0]
    assert w.current_dataset() == f"transforms:{path.parent.resolve()}"  # the previous choice stays


# -- training from the GUI ---------------------------------------------------------------------------
def test_ddpm_training_from_start_button_updates_curve_and_samples(main_window, qtbot):
    w = main_window
    configure(w, plugin="ddpm", dataset="8gaussians", steps=60)
    run = start(qtbot, w)
    assert w.job_running("train") and w.stop_button.isEnabled() and not w.start_button.isEnabled()
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    assert not w.errors
    info = run.info()
    assert info["status"] == "completed" and info["step"] == 60

    training = w.panels["training"]
    qtbot.waitUntil(lambda: len(training.curve_points("loss")[0]) >= 12)
    x, y = training.curve_points("loss")
    rows = run.metrics()  # the curve is the logged loss, step by step
    assert np.array_equal(x, [r["step"] for r in rows])
    assert np.allclose(y, [r["loss"] for r in rows])
    assert training.sample_steps() == [30, 60]
    assert "steps/s" in w.throughput_label.text()
    assert w.panels["runs"].row_text(run.id)["Status"] == "completed"
    assert w.start_button.isEnabled() and not w.stop_button.isEnabled()

    sampler = w.panels["sampler"]  # and sample from it, as the Sample button does
    sampler.steps.setValue(10)
    assert sampler.start_sampling() is not None
    qtbot.waitUntil(lambda: not w.job_running("sample") and sampler.num_states() > 0, timeout=TIMEOUT)
    assert sampler.num_states() >= 10
    assert not w.errors


def test_pause_resume_stop_change_run_status(test_plugins, main_window, qtbot):
    w = main_window
    configure(w, steps=10**7, log_every=50, sample_every=0, checkpoint_every=0)
    run = start(qtbot, w)
    qtbot.waitUntil(lambda: status_of(run) == "running", timeout=TIMEOUT)

    click(qtbot, w.pause_button)
    qtbot.waitUntil(lambda: status_of(run) == "paused", timeout=TIMEOUT)
    assert run.checkpoints(), "pausing writes a checkpoint"
    qtbot.waitUntil(lambda: w.resume_button.isEnabled() and not w.pause_button.isEnabled())

    click(qtbot, w.resume_button)
    qtbot.waitUntil(lambda: status_of(run) == "running", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: w.pause_button.isEnabled())

    click(qtbot, w.stop_button)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    info = run.info()
    assert info["status"] == "stopped"
    assert run.checkpoints()[-1][0] == info["step"] > 0
    assert w.start_button.isEnabled() and w.resume_button.isEnabled()

    # Resume on a stopped run continues it from its checkpoint in a new job
    stopped_at = info["step"]
    click(qtbot, w.resume_button)
    qtbot.waitUntil(lambda: status_of(run) == "running", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: run.read_log().count("from step") >= 2, timeout=TIMEOUT)
    assert f"from step {stopped_at}" in run.read_log()
    click(qtbot, w.stop_button)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    assert status_of(run) == "stopped" and run.info()["step"] > stopped_at
    assert not w.errors


def test_failing_plugin_shows_error_marks_run_failed_and_app_stays_usable(test_plugins, main_window, qtbot):
    w = main_window
    configure(w, steps=50, config={"raise_at": 7})
    run = start(qtbot, w)
    qtbot.waitUntil(lambda: bool(w.errors) and not w.job_running("train"), timeout=TIMEOUT)
    message, details = w.errors[-1]
    assert "deliberate failure in train_step" in message
    assert "Traceback" in details and "train_step" in details
    assert status_of(run) == "failed"
    assert "Training failed" in w.banner_text()
    qtbot.waitUntil(lambda: w.panels["runs"].row_text(run.id)["Status"] == "failed")

    # still usable: the next run trains to the end
    configure(w, steps=20, config={"raise_at": 0})
    run2 = start(qtbot, w)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    assert status_of(run2) == "completed"
    assert len(w.errors) == 1
    assert w.banner_text() == ""


def test_nan_loss_pauses_with_a_visible_message(test_plugins, main_window, qtbot):
    w = main_window

    def diverge():
        configure(w, steps=200, config={"nan_at": 8}, checkpoint_every=4)
        run = start(qtbot, w)
        qtbot.waitUntil(lambda: status_of(run) == "diverged", timeout=TIMEOUT)
        qtbot.waitUntil(lambda: "NaN" in w.banner_text(), timeout=TIMEOUT)
        assert w.banner.isVisible()
        assert "NaN" in w.statusBar().currentMessage()
        assert w.job_running("train")  # paused, not dead
        qtbot.waitUntil(lambda: w.resume_button.isEnabled() and not w.pause_button.isEnabled())
        return run

    run = diverge()
    click(qtbot, w.resume_button)  # rolls back to the step-4 checkpoint and trains on
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    assert "resumed from checkpoint step 4" in run.read_log()
    assert status_of(run) == "completed" and w.banner_text() == ""

    run = diverge()
    click(qtbot, w.stop_button)  # stopping a diverged run keeps its last good checkpoint
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    assert status_of(run) == "diverged" and "stopped" in run.info()["message"]
    assert run.checkpoints()[-1][0] == 4
    assert not w.errors
    assert w.start_button.isEnabled()


# -- runs, persistence -------------------------------------------------------------------------------
def test_run_list_open_and_delete(test_plugins, main_window, qtbot, monkeypatch):
    w = main_window
    configure(w, steps=10)
    run_a = start(qtbot, w)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    run_b = start(qtbot, w)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    runs = w.panels["runs"]
    assert runs.run_ids() == [run_b.id, run_a.id]  # newest first
    assert runs.row_text(run_a.id)["Step"] == "10/10"

    opened = []
    w.run_changed.connect(opened.append)
    runs.tree.setCurrentItem(runs._items[run_a.id])  # selecting a row opens the run
    assert w.current_run().id == run_a.id and opened[-1].id == run_a.id

    monkeypatch.setattr(w, "ask", lambda q: False)
    click(qtbot, runs.delete_button)
    assert run_a.path.exists()
    monkeypatch.setattr(w, "ask", lambda q: True)
    click(qtbot, runs.delete_button)
    assert not run_a.path.exists()
    assert w.current_run() is None and runs.run_ids() == [run_b.id]


def test_layout_and_last_choices_persist(test_plugins, make_window, qtbot):
    w = make_window()
    configure(w, plugin="gaussfit", dataset="moons", steps=123, config={"lr": 0.02}, log_every=7)
    w.seed_spin.setValue(42)
    w.docks["sampler"].hide()
    w.close()

    w2 = make_window()
    assert w2.current_plugin() == "gaussfit" and w2.current_dataset() == "moons"
    assert w2.steps_spin.value() == 123 and w2.seed_spin.value() == 42
    assert w2.panels["settings"].config_values()["lr"] == pytest.approx(0.02)
    assert w2.panels["settings"].run_values()["log_every"] == 7
    assert not w2.docks["sampler"].isVisible() and w2.docks["training"].isVisible()


# -- pieces ------------------------------------------------------------------------------------------
def test_bridge_coalesces_progress_and_keeps_history(qtbot):
    bus = EventBus()
    bridge = EventBridge(bus)

    def publish():  # from another thread, like a job
        for i in range(100):
            for rid in ("a", "b"):
                bus.emit(ev.PROGRESS, rid, done=i, total=100)
            bus.emit(ev.METRICS, "a", step=i, loss=float(i))
            bus.emit(ev.SAMPLES, "a", step=i, x=None)
        bus.emit(ev.STATUS, "a", status="completed")

    t = threading.Thread(target=publish)
    t.start()
    t.join()
    with qtbot.waitSignal(bridge.events, timeout=2000) as blocker:
        pass
    batch = blocker.args[0]
    kinds = [e.kind for e in batch]
    assert [e.data["step"] for e in batch if e.kind == ev.METRICS] == list(range(100))
    assert [(e.run_id, e.data["done"]) for e in batch if e.kind == ev.PROGRESS] == [("a", 99), ("b", 99)]
    assert [e.data["step"] for e in batch if e.kind == ev.SAMPLES] == list(range(100))  # every grid kept
    assert kinds[-1] == ev.STATUS and len(batch) == 100 + 2 + 100 + 1
    assert bridge.pending() == 0
    bridge.close()
    bus.emit(ev.METRICS, "a", step=0)
    assert bridge.pending() == 0  # unsubscribed


def test_coalesce_keeps_order_of_kept_events():
    bus_events = [ev.Event(ev.PROGRESS, "a", {"done": 1}), ev.Event(ev.METRICS, "a", {"step": 1}),
                  ev.Event(ev.PROGRESS, "a", {"done": 2}), ev.Event(ev.ERROR, "a", {"message": "x"})]
    out = coalesce(bus_events)
    assert [(e.kind, e.data) for e in out] == [(ev.METRICS, {"step": 1}), (ev.PROGRESS, {"done": 2}),
                                               (ev.ERROR, {"message": "x"})]


def _run_thread(qtbot, job, control=None):
    t = JobThread("test", None, job, control)
    failures = []
    t.failed.connect(lambda m, tb: failures.append((m, tb)))
    with qtbot.waitSignal(t.finished, timeout=10_000):
        t.start()
    t.wait()
    qtbot.waitUntil(lambda: t.outcome != FAILED or bool(failures), timeout=2000)
    return t, failures


def test_worker_sets_threads_returns_result_and_reports_exceptions(qtbot):
    seen = {}

    def good(control):
        seen["threads"] = torch.get_num_threads()
        seen["thread"] = threading.current_thread() is not threading.main_thread()
        yield 1
        return "done"

    t, failures = _run_thread(qtbot, good)
    assert t.outcome == FINISHED and t.result == "done" and not failures
    assert seen == {"threads": worker_threads(gui_running=True), "thread": True}

    def bad(control):
        yield 1
        raise ValueError("plugin exploded")

    t, failures = _run_thread(qtbot, bad)
    assert t.outcome == FAILED
    assert failures[0][0] == "ValueError: plugin exploded" and "Traceback" in failures[0][1]


def test_worker_cancel_ends_a_paused_job(qtbot):
    control = Control()
    control.pause()

    def job(control):
        while True:
            control.check()
            yield

    t = JobThread("test", None, job, control)
    t.start()
    assert not t.wait(200)  # paused: still alive
    assert t.stop(5000)
    assert t.outcome == CANCELLED and Cancelled is not None


@dataclass
class FormConfig:
    count: int = param(5, "how many", range=(1, 10))
    lr: float = param(1e-3, "learning rate", range=(1e-6, 1.0), log=True)
    scale: float = param(0.25, "a scale", range=(0.0, 2.0))
    flag: bool = param(True, "a switch")
    kind: str = param("b", "a choice", choices=("a", "b", "c"))
    name: str = param("hello", "free text")
    limit: int | None = param(None, "optional")


def test_form_widgets_values_and_round_trip(qtbot):
    form = ConfigForm(FormConfig)
    qtbot.addWidget(form)
    types = {n: type(form.widget(n)) for n in form.fields}
    assert types == {"count": QSpinBox, "lr": SciSpinBox, "scale": QDoubleSpinBox, "flag": QCheckBox,
                     "kind": QComboBox, "name": QLineEdit, "limit": QLineEdit}
    assert form.values() == {"count": 5, "lr": 1e-3, "scale": 0.25, "flag": True, "kind": "b",
                             "name": "hello", "limit": None}
    spin = form.widget("count")
    assert (spin.minimum(), spin.maximum()) == (1, 10)
    assert form.widget("lr").toolTip().startswith("learning rate")
    assert form.widget("lr").text() == "0.001"

    new = {"count": 9, "lr": 3e-5, "scale": 1.5, "flag": False, "kind": "c", "name": "x", "limit": 12}
    form.set_values({**new, "unknown_field": 1, })
    assert form.values() == new
    form.set_values({"kind": "zzz", "count": 99})  # out of choices / range: ignored, old values kept
    assert form.values()["kind"] == "c" and form.values()["count"] == 9
    form.widget("limit").setText("abc")
    with pytest.raises(ConfigError):
        form.values()
    form.reset()
    assert form.values()["lr"] == 1e-3


def test_log_spin_box_steps_along_1_2_5():
    assert step_125(1e-3, up=True) == pytest.approx(2e-3)
    assert step_125(2e-3, up=True) == pytest.approx(5e-3)
    assert step_125(5e-3, up=True) == pytest.approx(1e-2)
    assert step_125(1e-3, up=False) == pytest.approx(5e-4)
    assert step_125(3e-4, up=False) == pytest.approx(2e-4)
    box = SciSpinBox()
    box.setRange(1e-6, 1.0)
    box.setValue(1e-3)
    box.stepBy(3)
    assert box.value() == pytest.approx(1e-2)
    box.stepBy(-100)
    assert box.value() == pytest.approx(1e-6)


def test_shot_writes_window_and_panel_pngs(qapp, tmp_path):
    from genstudio.qt.shot import shot

    out = shot(None, tmp_path / "win.png", size=(1400, 880))
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1400, 880)
    seen = []
    out = shot("runs", tmp_path / "runs.png", setup=seen.append)
    img = QImage(str(out))
    assert seen and 100 < img.width() < 1400
    with pytest.raises(KeyError):
        shot("nope", tmp_path / "x.png")


def _refuses_an_empty_folder_then(w, opener, says: str, tmp_path):
    """An empty folder is one clear error (``says``); returns a fresh folder for the clips to open."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not opener(str(empty)) and says in w.errors[-1][0]
    w.errors.clear()
    clips = tmp_path / "clips"
    clips.mkdir()
    return clips


def test_codec_trains_on_an_audio_folder_opened_in_the_picker(main_window, qtbot, tmp_path):
    """Issue 15's own WAV folder from the GUI: "Open audio folder…" checks it (a folder without audio
    is one error), adds wav:PATH to the picker and a codec run trains on it."""
    import numpy as np

    from genstudio.core.data.audio import write_wav

    w = main_window
    assert w.select_plugin("codec")
    assert w.dataset_combo.findText("Open audio folder…") >= 0
    clips = _refuses_an_empty_folder_then(w, w.open_audio_folder, "no audio files", tmp_path)
    t = np.arange(8000) / 8000
    for i, f0 in enumerate((220.0, 330.0, 440.0)):
        write_wav(clips / f"tone{i}.wav", 0.5 * np.sin(2 * np.pi * f0 * t), 8000)
    assert w.open_audio_folder(str(clips))
    assert w.current_dataset() == f"wav:{clips}"
    configure(w, plugin="codec", dataset=f"wav:{clips}", steps=4, config={"batch_size": 2, "channels": 4},
              log_every=2, sample_every=0, checkpoint_every=0)
    run = start(qtbot, w)
    qtbot.waitUntil(lambda: status_of(run) == "completed", timeout=TIMEOUT)
    assert run.info()["dataset"] == f"wav:{clips}" and run.checkpoints() and not w.errors


def test_video_folder_opened_from_menu_and_picker(main_window, tmp_path, monkeypatch):
    """Issue 17's own GIF folder from the GUI: the picker's "Open video folder…" (and the File menu
    action) turn the folder the dialog returns into ``video:PATH``; a folder without readable clips
    is one clear error and the previous choice stays."""
    import imageio.v3 as iio

    w = main_window
    assert w.select_plugin("video_diffusion")
    combo = w.dataset_combo
    assert combo.findData("__open_video__") >= 0 and combo.findData("video:moving16") >= 0
    assert w.select_dataset("video:moving16")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.gif").write_bytes(b"not a gif")
    monkeypatch.setattr(w, "choose_folder", lambda: str(bad))
    combo.activated.emit(combo.findData("__open_video__"))
    assert w.errors and "cannot be read" in w.errors[-1][0] and "broken.gif" in w.errors[-1][0]
    assert w.current_dataset() == "video:moving16"
    clips = _refuses_an_empty_folder_then(w, w.open_video_folder, "no video files", tmp_path)
    for i in range(2):  # a square moving right, 8 frames
        frames = np.zeros((8, 20, 24, 3), np.uint8)
        for f in range(8):
            frames[f, 8:12, 2 * f + i:2 * f + i + 4] = 255
        iio.imwrite(clips / f"clip{i}.gif", frames, duration=100, loop=0)
    monkeypatch.setattr(w, "choose_folder", lambda: str(clips))
    action = next(a for a in w.menuBar().actions()[0].menu().actions() if a.text() == "Open video folder…")
    action.trigger()
    assert w.current_dataset() == f"video:{clips}" and not w.errors
    assert combo.itemText(combo.currentIndex()) == "video: clips"
    from genstudio.core.data import get_dataset

    assert get_dataset(w.current_dataset()).spec.shape == (3, 16, 16, 16)
