"""Plugin discovery. Built-in plugins come through the entry-point group ``genstudio.plugins``
exactly like third-party ones; folders listed in ``GENSTUDIO_PLUGIN_PATH`` (os.pathsep-separated)
add packages that expose ``PLUGIN`` (a class) or ``PLUGINS`` (a list).

A plugin that fails to import or breaks the contract is recorded with its error and listed as
broken; discovery itself never raises.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from genstudio.core.faces import class_faces
from genstudio.core.plugin import PluginInfo, contract_errors

GROUP = "genstudio.plugins"
# The one place outside plugins/ that names plugins: what a fresh install offers first (the
# reference slice) and what `genstudio shot --demo` trains. Everything else asks models for faces.
DEFAULT_PLUGINS: tuple[str, ...] = ("ddpm",)
PATH_ENV = "GENSTUDIO_PLUGIN_PATH"


@dataclass
class PluginEntry:
    """One discovered plugin: ``cls`` is set when it loaded and passed the contract check."""

    id: str
    source: str  # "entry point x = mod:Cls" or a folder path
    cls: Any = None
    error: str | None = None
    details: str = ""  # traceback, for "show details"

    @property
    def ok(self) -> bool:
        return self.cls is not None and self.error is None

    @property
    def info(self) -> PluginInfo | None:
        return self.cls.info if self.ok else None


@dataclass
class Registry:
    entries: dict[str, PluginEntry] = field(default_factory=dict)

    def add_class(self, cls: Any, source: str, fallback_id: str) -> None:
        errs = contract_errors(cls)
        pid = getattr(getattr(cls, "info", None), "id", None) or fallback_id
        if errs:
            self._record(PluginEntry(pid, source, error="contract: " + "; ".join(errs)))
        elif pid in self.entries and self.entries[pid].cls is cls:
            return  # the same class registered again (tests, reloads): nothing to do
        elif pid in self.entries and self.entries[pid].ok:
            self._record(PluginEntry(pid + "?dup", source, error=f"duplicate plugin id {pid!r} (first from "
                                     f"{self.entries[pid].source})"))
        else:
            self._record(PluginEntry(pid, source, cls=cls))

    def _record(self, entry: PluginEntry) -> None:
        self.entries[entry.id] = entry

    def add_failure(self, pid: str, source: str, exc: BaseException) -> None:
        self._record(PluginEntry(pid, source, error=f"{exc.__class__.__name__}: {exc}",
                                 details="".join(traceback.format_exception(exc))))

    # -- queries --------------------------------------------------------------------------
    def ok(self) -> list[PluginEntry]:
        return [e for e in self.entries.values() if e.ok]

    def broken(self) -> list[PluginEntry]:
        return [e for e in self.entries.values() if not e.ok]

    def get(self, pid: str) -> Any:
        """The plugin class for ``pid``; KeyError with a readable message otherwise."""
        e = self.entries.get(pid)
        if e is None:
            raise KeyError(f"unknown plugin {pid!r}; available: {', '.join(x.id for x in self.ok()) or 'none'}")
        if not e.ok:
            raise KeyError(f"plugin {pid!r} is broken: {e.error}")
        return e.cls


def _load_entry_points(reg: Registry) -> None:
    for ep in entry_points(group=GROUP):
        src = f"entry point {ep.name} = {ep.value}"
        try:
            reg.add_class(ep.load(), src, ep.name)
        except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
            reg.add_failure(ep.name, src, exc)


def _load_folder(reg: Registry, folder: Path) -> None:
    if not folder.is_dir():
        return
    for pkg in sorted(folder.iterdir()):
        init = pkg / "__init__.py"
        if not init.is_file() and not (pkg.suffix == ".py" and pkg.is_file()):
            continue
        name = pkg.stem
        modname = f"genstudio_ext_{name}"
        src = str(pkg)
        try:
            target = init if init.is_file() else pkg
            spec = importlib.util.spec_from_file_location(
                modname, target, submodule_search_locations=[str(pkg)] if init.is_file() else None)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            spec.loader.exec_module(mod)
            classes = getattr(mod, "PLUGINS", None) or ([mod.PLUGIN] if hasattr(mod, "PLUGIN") else [])
            if not classes:
                raise AttributeError(f"{pkg.name} defines neither PLUGIN nor PLUGINS")
            for cls in classes:
                reg.add_class(cls, src, name)
        except BaseException as exc:  # noqa: BLE001
            sys.modules.pop(modname, None)
            reg.add_failure(name, src, exc)


def discover(extra_paths: list[str | Path] | None = None, *, entry_points_too: bool = True) -> Registry:
    """Find all plugins. Never raises: failures are entries with ``error`` set."""
    reg = Registry()
    if entry_points_too:
        _load_entry_points(reg)
    paths = [Path(p) for p in (extra_paths or [])]
    paths += [Path(p) for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    for p in paths:
        _load_folder(reg, p)
    return reg


_cached: Registry | None = None


def registry(refresh: bool = False) -> Registry:
    """The process-wide registry (discovered once)."""
    global _cached
    if _cached is None or refresh:
        _cached = discover()
    return _cached


def plugin_table(reg: Registry) -> list[tuple[str, str, str, str]]:
    """Rows (id, family, faces, status) for `genstudio plugins` and the GUI; the faces are those
    the plugin class declares (:func:`genstudio.core.faces.class_faces`: no model is built)."""
    rows = []
    for e in reg.entries.values():
        if e.ok:
            rows.append((e.id, e.info.family, ",".join(class_faces(e.cls)), "ok"))
        else:
            rows.append((e.id, "?", "", "broken: " + (e.error or "")[:120]))
    return rows


