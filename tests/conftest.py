"""Every test gets its own data directory, and Qt runs offscreen unless a test session asks for xcb
(the GL tests run under xvfb-run)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSTUDIO_DATA_DIR", str(tmp_path / "gsdata"))
    yield
