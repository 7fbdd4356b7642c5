"""Every test gets its own data directory; Qt runs offscreen unless the session asks for xcb (the
GL tests run under xvfb-run); torch uses one thread.

One thread because tests train tiny networks: on a busy 2-core machine OpenMP barriers made small
convolutions ~20x slower with two threads (measured 29 s vs 1.5 s for one contract test).
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def _register_declared_plugins() -> None:
    """Plugins declared in this checkout's pyproject.toml but missing from the installed package's
    entry points (a branch adding a plugin, before a reinstall) join the registry as entry points, so
    the contract and face tests hold them to the contract too."""
    import importlib
    from pathlib import Path

    import tomllib

    from genstudio.core.registry import registry

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text("utf-8"))
    reg = registry()
    for name, value in declared["project"]["entry-points"]["genstudio.plugins"].items():
        if name not in reg.entries:
            mod, _, attr = value.partition(":")
            reg.add_class(getattr(importlib.import_module(mod), attr), f"entry point {name} = {value}", name)


_register_declared_plugins()


def pytest_addoption(parser):
    parser.addoption("--device", default=None, help="compute device of the device-marked tests (cpu, cuda, "
                     "cuda:N, mps); also GENSTUDIO_DEVICE for the jobs they run. bench/gpu_check.sh: --device cuda")


def pytest_configure(config):
    config.addinivalue_line("markers", "device: takes the ``device`` fixture (runs on --device; the GPU check's subset)")
    if config.getoption("--device"):
        os.environ["GENSTUDIO_DEVICE"] = config.getoption("--device")


def pytest_collection_modifyitems(items):
    for item in items:  # the tests that take a device are the device-parametrised subset
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture
def device(request) -> torch.device:
    """The device ``--device`` names (default cpu); an unavailable one fails the test with the reason."""
    from genstudio.core.device import pick_device

    return pick_device(request.config.getoption("--device") or "cpu")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(tmp_path / "gsdata"))
    yield
