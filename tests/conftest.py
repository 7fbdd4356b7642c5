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


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(tmp_path / "gsdata"))
    yield
