"""Plugin discovery and config round trips."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from genstudio.core import config as C
from genstudio.core.registry import discover, plugin_table
from tests.fakeplugins import FakeConfig, GaussFit


def test_builtin_ddpm_comes_through_entry_points():
    reg = discover()  # a fresh registry: the global one may hold fakes other tests registered
    e = reg.entries["ddpm"]
    assert e.source.startswith("entry point"), e.source
    assert e.ok, e.error


def _write_plugin(folder, name, body):
    pkg = folder / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(body))


def test_folder_plugins_good_broken_and_contract_violation(tmp_path, monkeypatch):
    _write_plugin(tmp_path, "good", """
        from tests.fakeplugins import GaussFit
        class Good(GaussFit):
            info = __import__('dataclasses').replace(GaussFit.info, id='good')
        PLUGIN = Good
    """)
    _write_plugin(tmp_path, "broken", "raise ImportError('needs a library that is not installed')\n")
    _write_plugin(tmp_path, "nocontract", "class X:\n    pass\nPLUGIN = X\n")
    _write_plugin(tmp_path, "exits", "import sys\nsys.exit(3)\n")
    monkeypatch.setenv("GENSTUDIO_PLUGIN_PATH", str(tmp_path))
    reg = discover()
    assert reg.entries["good"].ok
    assert "needs a library" in reg.entries["broken"].error
    assert "Traceback" in reg.entries["broken"].details
    assert reg.entries["nocontract"].error.startswith("contract:")
    assert "missing method train_step()" in reg.entries["nocontract"].error
    assert not reg.entries["exits"].ok  # SystemExit is caught too
    assert reg.entries["ddpm"].ok  # the built-ins still load
    rows = {r[0]: r for r in plugin_table(reg)}
    assert rows["good"][3] == "ok" and rows["broken"][3].startswith("broken")
    with pytest.raises(KeyError, match="broken"):
        reg.get("broken")


def test_config_json_round_trip_and_schema():
    cfg = C.replace(FakeConfig(), lr=0.05, nan_at=3)
    text = C.to_json(cfg)
    back = C.from_json(FakeConfig, text)
    assert back == cfg
    d = C.to_dict(cfg)
    assert d["schema_version"] == C.SCHEMA_VERSION
    d["obsolete_field"] = 1  # an old/newer run with a field we no longer have still loads
    assert C.from_dict(FakeConfig, d) == cfg
    with pytest.raises(C.ConfigError, match="newer"):
        C.from_dict(FakeConfig, {**d, "schema_version": C.SCHEMA_VERSION + 1})


def test_overrides_coerce_and_validate():
    cfg = C.apply_overrides(FakeConfig(), ["lr=1e-2", "batch_size=64", "nan_at=5"])
    assert cfg.lr == 0.01 and cfg.batch_size == 64 and isinstance(cfg.batch_size, int)
    with pytest.raises(C.ConfigError, match="unknown setting"):
        C.apply_overrides(cfg, ["nope=1"])
    with pytest.raises(C.ConfigError, match="outside"):
        C.apply_overrides(cfg, ["batch_size=0"])
    with pytest.raises(C.ConfigError, match="expected int"):
        C.apply_overrides(cfg, ["batch_size=abc"])
    with pytest.raises(C.ConfigError, match="key=value"):
        C.apply_overrides(cfg, ["batch_size"])


def test_field_specs_drive_forms():
    specs = {s.name: s for s in C.fields_of(FakeConfig)}
    assert specs["lr"].log and specs["lr"].type is float
    assert specs["batch_size"].range == (1, 4096) and specs["batch_size"].type is int
    assert [f.name for f in dataclasses.fields(FakeConfig)] == list(specs)
    assert GaussFit.info.config_cls is FakeConfig


def test_registering_the_same_class_twice_is_harmless():
    reg = discover(entry_points_too=False)
    reg.add_class(GaussFit, "tests", "gaussfit")
    reg.add_class(GaussFit, "tests", "gaussfit")
    assert [e.id for e in reg.entries.values()] == ["gaussfit"] and reg.entries["gaussfit"].ok


def test_run_reference_fields_need_use_run():
    """A config that names other runs (param(runs_of=...)) is only usable by a plugin that takes
    them: the job hands the loaded models to use_run()."""
    from genstudio.core.plugin import contract_errors
    from tests.fakeplugins import GaussRef, RefConfig

    assert C.run_refs(RefConfig()) == {} and C.run_refs(RefConfig(base_run="abc")) == {"base_run": "abc"}
    assert contract_errors(GaussRef) == []

    class NoHook:  # the contract's methods, no use_run
        info = GaussRef.info
        setup = train_step = sample = state_dict = load_state_dict = GaussRef.setup

    assert contract_errors(NoHook) == ["config has run-reference fields (base_run) but no use_run() method"]
