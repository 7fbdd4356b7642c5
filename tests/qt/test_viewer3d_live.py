"""The splat viewer is live: while a run trains in the app's worker, each checkpoint reaches the
viewer (Gaussian count and step change before training ends). Needs GL: run under
``QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" python -m pytest -m gl ...``."""

from __future__ import annotations

import pytest

from genstudio.core import jobs


@pytest.mark.gl
def test_splat_viewer_count_changes_while_training(qtbot, main_window):
    w = main_window
    run = jobs.create_run(w.store, jobs.TrainSpec(
        "splat", "scene:primitives", steps=2000, sample_every=0, checkpoint_every=10,
        overrides=["init_points=500", "densify_from=4", "densify_every=4", "densify_until=2000",
                   "grad_threshold=1e-5", "max_gaussians=800", "eval_every=0"]))
    p = w.panels["splats"]
    w.docks["splats"].raise_()
    w.resume_run(run)  # trains in the app's worker thread
    assert w.job_running("train")
    qtbot.waitUntil(lambda: p.step == 0 and p.scene_item is not None, timeout=20000)
    assert p.status.text().startswith("500 Gaussians (step 0")
    assert p.canvas is not None, "no GL context: run under xvfb-run with QT_QPA_PLATFORM=xcb"
    seen: list[tuple[int, int, str, bool]] = []

    def moved() -> bool:
        if p.step:
            seen.append((p.step, len(p.scene_item), p.status.text(), w.job_running("train")))
        return len({s[:2] for s in seen}) >= 2  # two checkpoints shown

    qtbot.waitUntil(moved, timeout=60000)
    assert all(s[3] for s in seen), "the viewer only caught up after training ended"
    steps = sorted({s[0] for s in seen})
    counts = {s[1] for s in seen}
    assert steps[0] >= 10 and all(s % 10 == 0 for s in steps)
    assert counts != {500}, f"the Gaussian count never changed: {seen}"
    assert f"Gaussians (step {steps[-1]:,})" in p.status.text()
    assert run.id.split("-", 2)[-1] in p.run_label.text()
    w.stop_training()
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=20000)
