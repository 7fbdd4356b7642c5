"""The contrastive encoder trains from the Train panel: CLIP is offered captioned data only, and a
run started with Start logs its retrieval accuracy and fills the monitor's retrieval view."""

from __future__ import annotations

from genstudio_plugins.clip import CLIPConfig

from tests.qt.test_main_window import TIMEOUT, configure, start

TINY = {k: getattr(CLIPConfig.tiny(), k) for k in ("batch_size", "embed_dim", "width", "text_layers", "heads",
                                                     "channels", "gallery_per_category")}


def test_clip_trains_from_the_start_button_and_shows_retrieval(main_window, qtbot):
    w = main_window
    assert w.select_plugin("clip")
    offered = [w.dataset_combo.itemData(i) for i in range(w.dataset_combo.count())]
    assert {"captions", "captions16"} <= set(offered) and "digits" not in offered
    configure(w, plugin="clip", dataset="captions16", steps=6, config=TINY, sample_every=3)
    run = start(qtbot, w)
    qtbot.waitUntil(lambda: not w.job_running("train"), timeout=TIMEOUT)
    training = w.panels["training"]
    qtbot.waitUntil(lambda: "retrieval" in training.view_names(), timeout=5000)
    assert {"retrieval", "similarity"} <= set(training.view_names())
    assert [r["step"] for r in run.metrics() if "r1_t2i" in r] == [3, 6]
    assert run.info()["status"] == "completed"
