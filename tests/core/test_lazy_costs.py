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
    assert res.states == []  # streamed to disk: nothing held unless asked
    assert np.load(res.npz)["traj_x"].shape == (4, 8, 2)
    seen, res = result(keep_states=True, thin=16, hold_states=True)
    assert [s.step for s in res.states] == [1, 17, 33, 40]
    z = np.load(res.npz)
    # the streamed arrays are exactly what stacking the held states gives, x0 and t included
    assert np.array_equal(z["traj_x"], np.stack([s.x.numpy() for s in res.states]))
    assert np.array_equal(z["traj_x0"], np.stack([s.x0.numpy() for s in res.states]))
    assert np.array_equal(z["traj_t"], [s.t for s in res.states]) and np.array_equal(z["x"], res.x.numpy())
    assert not [p for p in run.sample_dir().iterdir() if p.name.startswith(".")]  # no scratch left


def test_trajectory_stream_drops_x0_when_a_state_lacks_it_and_cleans_up(tmp_path):
    import numpy as np
    import torch

    from genstudio.core.npzstream import TrajectoryStream

    s = TrajectoryStream(tmp_path)
    s.add(torch.ones(2, 3), torch.zeros(2, 3), 1.0)
    s.add(torch.full((2, 3), 2.0), None, 0.5)
    s.add(torch.arange(6).reshape(2, 3).double(), None, 0.0)  # cast to the first state's dtype
    out = s.write_npz(tmp_path / "a.npz", {"x": np.arange(3)})
    s.close()
    z = np.load(out)
    assert sorted(z.files) == ["traj_t", "traj_x", "x"] and z["traj_x"].dtype == np.float32
    assert z["traj_x"][:, 1].tolist() == [[1, 1, 1], [2, 2, 2], [3, 4, 5]] and z["traj_t"].tolist() == [1, 0.5, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_lazy_registry_imports_a_plugin_only_when_asked():
    """The process-wide registry imports one plugin's module for ``entry``/``get``; reading
    ``entries`` imports the rest, listed in the order an eager discovery gives."""
    out = _fresh("import sys\n"
                 "from genstudio.core.registry import discover, registry\n"
                 "mods = lambda: sorted(m for m in sys.modules if m.count('.') == 1\n"
                 "                      and m.startswith('genstudio_plugins.'))\n"
                 "r = registry()\n"
                 "print(r.loaded, mods())\n"
                 "print(r.get('ddpm').info.id, mods())\n"
                 "print(r.entry('no_such') is None, r.loaded, list(r.entries) == list(discover().entries))")
    assert out.split() == ["False", "[]", "ddpm", "['genstudio_plugins.ddpm']", "True", "True", "True"]
