"""The plugin picker reads as groups (issue 12): a bold, unselectable header per family, then that
family's plugins by name, each with its one-line description as tooltip."""

from __future__ import annotations

from PySide6.QtCore import Qt


def test_plugins_are_grouped_by_family(main_window):
    combo = main_window.plugin_combo
    items = [(combo.itemText(i), combo.itemData(i), combo.model().item(i).isEnabled()) for i in range(combo.count())]
    headers = [t for t, d, _ in items if d is None]
    assert "— diffusion —" in headers and "— flow —" in headers
    assert all(not ok for t, d, ok in items if d is None)  # headers cannot be picked
    family = None
    for t, d, _ in items:
        if d is None:
            family = t.strip("— ").strip()
        elif family is not None and main_window.registry.entries[d].ok:
            assert main_window.registry.get(d).info.family == family, (d, family)
    i = combo.findData("ddpm")
    assert "ddpm (diffusion)" in combo.itemData(i, Qt.ToolTipRole)
    assert main_window.select_plugin("vae") and main_window.current_plugin() == "vae"


def test_settings_grey_out_fields_that_do_not_apply_to_the_data(main_window):
    """U-Net widths are greyed for 2-D points, MLP widths for images; the values are kept."""
    w = main_window
    assert w.select_plugin("ddpm") and w.select_dataset("8gaussians")
    form = w.panels["settings"].form
    assert {"channels", "num_res", "backbone"} <= set(form.disabled_fields())
    assert "hidden" not in form.disabled_fields() and "lr" not in form.disabled_fields()
    assert "only for image data" in form.widget("channels").toolTip()
    assert w.select_dataset("digits")
    assert {"hidden", "depth", "fourier"} <= set(form.disabled_fields()) and "channels" not in form.disabled_fields()
    assert form.values()["hidden"] == 128  # greyed, not lost


def test_run_controls_have_keyboard_shortcuts(main_window):
    w = main_window
    keys = {name: a.shortcut().toString() for name, a in w.run_actions.items()}
    assert keys == {"Start": "Ctrl+Return", "Pause": "Ctrl+P", "Resume": "Ctrl+R", "Step": "Ctrl+T", "Stop": "Ctrl+.",
                    "Space": "Space"}
    assert "Ctrl+Return" in w.start_button.toolTip()
    w.run_actions["Stop"].trigger()  # nothing trains: a disabled button's shortcut does nothing
    assert w.space_pressed() == ""  # nothing trains and no trajectory to play: Space does nothing
    assert not w.errors


def test_space_pauses_and_resumes_training_and_arrows_step_the_trajectory(test_plugins, main_window, qtbot):
    from tests.qt.test_main_window import TIMEOUT, configure, start, status_of

    w = main_window
    configure(w, steps=10**7, log_every=5, sample_every=0, checkpoint_every=0)
    run = start(qtbot, w)
    qtbot.waitUntil(lambda: status_of(run) == "running", timeout=TIMEOUT)
    assert w.space_pressed() == "paused"
    qtbot.waitUntil(lambda: status_of(run) == "paused", timeout=TIMEOUT)
    assert w.space_pressed() == "resumed"
    qtbot.waitUntil(lambda: status_of(run) == "running", timeout=TIMEOUT)
    w.stop_training()
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    sampler = w.panels["sampler"]
    sampler.slider.setEnabled(True)
    sampler.slider.setRange(0, 5)
    sampler.slider.setValue(2)
    sampler.step_by(1)
    assert sampler.slider.value() == 3
    sampler.step_by(-9)
    assert sampler.slider.value() == 0
    assert not w.errors
