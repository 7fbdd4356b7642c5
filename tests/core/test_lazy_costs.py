"""What the window and the sampler must not pay for (issue #18), checked as mechanisms: modules a
fresh process does not import, datasets not built to learn their kind, trajectories not kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genstudio.core import jobs
from genstudio.core.runs import RunStore

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("scipy.signal", "scipy.spatial", "scipy.stats", "scipy.integrate", "sklearn", "ot", "skimage")


def _fresh(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          timeout=300).stdout


def test_registry_and_window_module_load_no_scipy_sklearn_pot():
    """Every plugin imported (the registry) and the main window's module: none of the heavy
    libraries a training run or a tool only needs when used."""
    out = _fresh("import sys\n"
                 "from genstudio.core.registry import registry\n"
                 "import genstudio.qt.main_window\n"
                 "assert registry().ok()\n"
                 f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert out.strip() == "[]"


def test_picker_kinds_build_no_dataset():
    """The dataset picker's kinds come from the registrations: no scene ray-traced, no digits loaded."""
    out = _fresh("import sys\n"
                 "from genstudio.core import data\n"
                 "calls = []\n"
                 "for name, (fn, desc) in list(data._FACTORIES.items()):\n"
                 "    data._FACTORIES[name] = (lambda fn=fn, name=name: calls.append(name) or fn(), desc)\n"
                 "kinds = {n: data.dataset_kind(n) for n in data.dataset_names()}\n"
                 "print(calls, kinds['scene:primitives'], kinds['digits'], kinds['moons'], kinds['field:camera'])")
    assert out.split() == ["[]", "scene", "image", "points2d", "field"]


@pytest.mark.parametrize("name", ["moons", "8gaussians", "digits", "sprites16", "field:sdf-sphere"])
def test_declared_kind_is_the_built_kind(name):
    from genstudio.core.data import _KINDS, dataset_kind, get_dataset

    assert dataset_kind(name) == _KINDS[name] == get_dataset(name).spec.kind


def test_sample_keeps_no_trajectory_unless_asked(tmp_path):
    """Without ``keep_states`` the job holds O(1) states whatever the step count; thinned, every
    k-th state and the last."""
    run = jobs.create_run(RunStore(tmp_path), jobs.TrainSpec("ddpm", "moons", steps=2, sample_every=0,
                                                             checkpoint_every=0, overrides=["timesteps=40"]))
    for _ in jobs.train(run):
        pass

    def result(**kw):
        gen = jobs.sample(run, n=8, seed=0, sampler="ddpm", **kw)
        seen = 0
        try:
            while True:
                next(gen)
                seen += 1
        except StopIteration as stop:
            return seen, stop.value

    seen, res = result(keep_states=False)
    assert seen == 40 and res.states == [] and res.x.shape == (8, 2)
    import numpy as np

    assert "traj_x" not in np.load(res.npz).files
    seen, res = result(keep_states=True, thin=16)
    assert [s.step for s in res.states] == [1, 17, 33, 40]
    assert np.load(res.npz)["traj_x"].shape == (4, 8, 2)
