"""A family added as one folder outside the built-ins (tests/families/gaussdiff) gets every tool and
panel its faces qualify it for, with no edit to core or qt: sampling, DDIM inversion, A/B compare,
the NFE and guidance sweeps, evaluation -- and the panels that drive them enable for its runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from genstudio.core import jobs, tools
from genstudio.core.eval import run_eval
from genstudio.core.registry import PATH_ENV, registry
from genstudio.core.runs import RunStore
from genstudio.core.tools import edit
from genstudio.core.tools.guidance import guidance_sweep
from genstudio.core.tools.nfe import nfe_curve

FAMILIES = Path(__file__).resolve().parents[1] / "families"


@pytest.fixture(scope="module")
def family():
    """The registry with tests/families on the plugin path; afterwards the process-wide registry
    as it was (other tests' plugins, registered at import, included)."""
    import genstudio.core.registry as registry_module

    mp = pytest.MonkeyPatch()
    mp.setenv(PATH_ENV, str(FAMILIES))
    mp.setattr(registry_module, "_cached", None)
    reg = registry()
    yield reg
    mp.undo()


@pytest.fixture(scope="module")
def run(family, tmp_path_factory):
    entry = family.entries["gaussdiff"]
    assert entry.ok and not entry.source.startswith("entry point"), entry.error  # not a built-in
    store = RunStore(tmp_path_factory.mktemp("newfamily"))
    r = jobs.create_run(store, jobs.TrainSpec(plugin="gaussdiff", dataset="8gaussians", steps=20, device="cpu",
                                             checkpoint_every=20, sample_every=0,
                                             overrides=["class_cond=true", "batch_size=512"]))
    for _ in jobs.train(r, device="cpu"):
        pass
    return r


def test_its_faces_qualify_it_for_the_tools(run):
    faces = set(run.info()["faces"])
    assert {"Sampling", "NoisePrior", "Denoiser", "Conditional"} <= faces
    assert {"sample", "invert", "explore", "compare", "nfe", "guidance", "eval"} <= set(tools.tools_for(faces))
    assert tools.why_not("scene", run.info()).endswith("(the Scene face)")


def test_the_core_tools_run_on_it(run):
    model, ds, _ = jobs.load_model(run, "cpu")
    x0, _ = ds.fixed(64, seed=0)
    rec = edit.invert_reconstruct(model, x0, steps=200)  # exact eps: only the discretisation error
    assert float(rec.error.max()) < 0.05
    rows = nfe_curve(model, ds, max_nfe=8, n=400)
    assert [r["nfe"] for r in rows] == [1, 2, 4, 8]  # counted on its GaussStats module
    assert rows[-1]["quality"] < rows[0]["quality"]
    sweep = guidance_sweep(model, ds, (0.0, 4.0), n_per_class=40, steps=10)
    assert sweep[1]["accuracy"] > sweep[0]["accuracy"]  # guidance buys class fidelity
    res = run_eval(run, n=400)
    assert {"energy", "mmd", "w2"} <= set(res["metrics"]) and "nll" not in res["metrics"]  # no Likelihood face


def test_the_panels_take_it(run, family, qtbot, monkeypatch):
    from genstudio.qt.panels.latent import LatentPanel
    from genstudio.qt.panels.metrics import MetricsPanel
    from genstudio.qt.panels.sampler import SamplerPanel
    from genstudio.qt.panels.sweeps import GuidancePanel, NfePanel
    from genstudio.qt.panels.trajectory import TrajectoryPanel

    class Ctx:  # the AppContext a panel talks to, without a window
        store, registry = RunStore(Path(run.path).parent), family
        bus = None

        def current_run(self):
            return run

        def job_running(self, name):
            return False

        def start_job(self, *a, **k):
            raise AssertionError("not in this test")

        def show_error(self, *a):
            pass

        def status_message(self, *a, **k):
            pass

    ctx = Ctx()
    sampler = SamplerPanel(ctx)
    qtbot.addWidget(sampler)
    sampler.set_run(run)
    assert sampler.sample_button.isEnabled()
    assert sampler.invert_button.isEnabled(), sampler.edit_status.text()
    assert not sampler.cls.isHidden() and sampler.cls.count() == 9  # unconditional + 8 classes
    sampler.cls.setCurrentIndex(3)
    assert sampler.option("guidance").isEnabled()
    traj, nfe, guide = TrajectoryPanel(ctx), NfePanel(ctx), GuidancePanel(ctx)
    for p, b in ((traj, traj.compare_button), (nfe, nfe.nfe_button), (guide, guide.guide_button)):
        qtbot.addWidget(p)
        p.set_run(run)
        assert b.isEnabled(), b.toolTip()
    latent = LatentPanel(ctx)
    qtbot.addWidget(latent)
    latent.set_run(run)
    assert latent.encode_button.isEnabled()
    metrics = MetricsPanel(ctx)
    qtbot.addWidget(metrics)
    metrics.set_run(run)
    assert not metrics.why_not("eval", run)
