"""Text-to-image from the GUI: the prompt box completes words from the run's vocabulary, the
Sampler passes the prompts and shows the per-word attention and pipeline views, and the Compare
panel samples a different prompt on each side from the same noise."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from genstudio.core.registry import registry  # noqa: E402
from genstudio.qt.panels.sampler import SamplerPanel  # noqa: E402
from genstudio.qt.panels.trajectory import TrajectoryPanel  # noqa: E402
from genstudio.qt.panels.views import PromptEdit  # noqa: E402
from tests.qt.test_panels import FakeCtx  # noqa: E402
from tests.qt.test_trajectory_panel import trained  # noqa: E402


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("t2i")


@pytest.fixture(scope="module")
def dalle_run(root):
    return trained(FakeCtx(root, registry()), "captions16", steps=2, plugin="dalle")


def _sampled(qtbot, root, run, size=None, prompt="", n=2):
    """A shown Sampler on ``run`` that has sampled ``n`` images (``prompt`` typed first)."""
    ctx = FakeCtx(root, registry())
    p = SamplerPanel(ctx)
    qtbot.addWidget(p)
    if size:
        p.resize(*size)
        p.show()
    p.set_run(run)
    if prompt:
        p.prompt.setText(prompt)
    p.n.setValue(n)
    p.start_sampling()
    ctx.deliver(p)
    return p


def test_prompt_box_completes_the_word_under_the_cursor(qtbot):
    box = PromptEdit()
    qtbot.addWidget(box)
    box.set_vocabulary(["red", "circle", "right", "", "blue"])
    assert box.vocabulary() == ["blue", "circle", "red", "right"]
    box.show()
    qtbot.keyClicks(box, "two re")
    assert box.prefix() == "re"
    assert box.completer_.completionCount() == 1 and box.completer_.currentCompletion() == "red"
    box.insert_word("red")  # what Tab / Enter on the highlighted word does
    assert box.text() == "two red " and box.cursorPosition() == len("two red ")
    qtbot.keyClicks(box, "ci | a blu")
    assert box.prefix() == "blu"
    box.setText("two red circles |  | a blue square ")
    assert box.prompts() == ["two red circles", "a blue square"]
    box.clear()
    assert box.prompts() is None


def test_tab_takes_the_highlighted_completion(qtbot):
    box = PromptEdit()
    qtbot.addWidget(box)
    box.set_vocabulary(["triangle", "two"])
    box.show()
    qtbot.keyClicks(box, "a tr")
    qtbot.waitUntil(box.completer_.popup().isVisible, timeout=2000)
    qtbot.keyClick(box, Qt.Key_Tab)
    assert box.text() == "a triangle "


def test_sampler_passes_prompts_and_shows_attention_and_pipeline(qtbot, root, dalle_run, tmp_path):
    ctx = FakeCtx(root, registry())
    p = SamplerPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1200, 800)
    p.show()
    p.set_run(dalle_run)
    assert p.prompt_row.isVisibleTo(p) and "red" in p.prompt.vocabulary()
    p.prompt.setText("a red circle | two blue squares")
    assert p.sample_kwargs()["prompt"] == ["a red circle", "two blue squares"]
    p.n.setValue(2)
    p.start_sampling()
    ctx.deliver(p)
    assert p.num_states() > 1
    assert p.text_views.isVisibleTo(p) and p.png_attn_action.isVisible()
    tokens = p._states[-1].extras["tokens"]
    assert [w for w in tokens[1] if w and w != "<eos>"] == ["two", "blue", "squares"]
    out = p.export_attention(tmp_path / "attn.png", rows=2)
    assert out.is_file() and out.stat().st_size > 0
    if os.environ.get("GENSTUDIO_SHOTS"):
        p.grab().save(os.path.join(os.environ["GENSTUDIO_SHOTS"], "sampler_dalle_prompt.png"))


def test_compare_panel_samples_one_prompt_per_side(qtbot, root, dalle_run):
    ctx = FakeCtx(root, registry())
    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.resize(1100, 500)
    p.set_run(dalle_run)
    assert p.prompt_row.isVisibleTo(p)
    p.a.prompt.setText("a red circle")
    p.b.prompt.setText("a blue square")
    assert p._sample_kwargs(p.a)["prompt"] == ["a red circle"]
    assert p._sample_kwargs(p.b)["prompt"] == ["a blue square"]
    p.n.setValue(2)
    p.start_compare()
    ctx.deliver(p)
    a, b = p.trajectories()
    words = [[w for w in s[-1].extras["tokens"][0] if w and w != "<eos>"] for s in (a, b)]
    assert words == [["a", "red", "circle"], ["a", "blue", "square"]]  # each side sampled its own prompt
    assert torch.equal(a[0].x, b[0].x)  # from the same start


def test_compare_guidance_starts_where_the_sampler_does(qtbot, root):
    """The run config's guidance (what the Sampler starts at), else the plugin's declared default."""
    ctx = FakeCtx(root, registry())
    run = trained(ctx, "captions16", steps=1, plugin="sd", guidance=4.5)
    p = TrajectoryPanel(ctx)
    qtbot.addWidget(p)
    p.set_run(run)
    assert p.guidance.value() == 4.5 and p._sample_kwargs(p.a)["guidance"] == 4.5
    s = SamplerPanel(ctx)
    qtbot.addWidget(s)
    s.set_run(run)
    assert s.option("guidance").value() == 4.5


def test_text_views_stand_beside_the_samples_in_a_short_wide_panel(qtbot, root, dalle_run):
    """Under the default layout's short Sampler dock the strip below left x_t / x̂0 60 px: there
    the text views stand in a column beside them, and below them again when the panel is tall."""
    p = _sampled(qtbot, root, dalle_run, size=(1100, 330))
    qtbot.waitUntil(lambda: p.text_views.isVisibleTo(p), timeout=2000)
    assert p.split.orientation() == Qt.Horizontal and p.split.sizes()[0] > p.split.sizes()[1]
    p.resize(1100, 1000)
    qtbot.waitUntil(lambda: p.split.orientation() == Qt.Vertical, timeout=2000)
    assert p.split.sizes()[0] > p.split.sizes()[1]


def test_x0_pane_says_why_it_is_empty_for_a_token_model(qtbot, root, dalle_run):
    p = _sampled(qtbot, root, dalle_run)
    assert p._states[-1].x0 is None and "none for this model" in p.view_x0.note
