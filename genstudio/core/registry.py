"""Plugin discovery. Built-in plugins come through the entry-point group ``genstudio.plugins``
exactly like third-party ones; folders listed in ``GENSTUDIO_PLUGIN_PATH`` (os.pathsep-separated)
add packages that expose ``PLUGIN`` (a class) or ``PLUGINS`` (a list).

A plugin that fails to import or breaks the contract is recorded with its error and listed as
broken; discovery itself never raises. Folder plugins are imported in a child process first
(:mod:`genstudio.core.plugin_probe`), so one that hangs or ends the process at import is only listed.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from genstudio.core import plugin_probe
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


def _modname(name: str) -> str:
    return f"genstudio_ext_{name}"


def _folder_plugins(folder: Path) -> list[tuple[str, Path]]:
    """(name, file to import) of each plugin in ``folder``: a package or a single ``.py`` file."""
    if not folder.is_dir():
        return []
    found = []
    for pkg in sorted(folder.iterdir()):
        init = pkg / "__init__.py"
        if init.is_file():
            found.append((pkg.stem, init))
        elif pkg.suffix == ".py" and pkg.is_file():
            found.append((pkg.stem, pkg))
    return found


def _load_file(reg: Registry, name: str, target: Path, refused: str | None) -> None:
    """Import one folder plugin, unless its probe ``refused`` it (then it is only recorded)."""
    modname = _modname(name)
    src = str(target.parent if target.name == "__init__.py" else target)
    if refused:
        reg._record(PluginEntry(name, src, error=refused, details=f"{refused} when imported in a child process (time "
                                f"limit: ${plugin_probe.TIMEOUT_ENV}), so it was not imported in this one"))
        return
    try:
        mod = plugin_probe.import_file(modname, target)
        classes = getattr(mod, "PLUGINS", None) or ([mod.PLUGIN] if hasattr(mod, "PLUGIN") else [])
        if not classes:
            raise AttributeError(f"{Path(src).name} defines neither PLUGIN nor PLUGINS")
        for cls in classes:
            reg.add_class(cls, src, name)
    except BaseException as exc:  # noqa: BLE001
        sys.modules.pop(modname, None)
        reg.add_failure(name, src, exc)


def _probe_cache() -> Path:
    """Where probe results of folder plugins are kept (the data directory)."""
    from genstudio.core.runs import default_root

    return default_root() / "plugin_probe.json"


def discover(extra_paths: list[str | Path] | None = None, *, entry_points_too: bool = True) -> Registry:
    """Find all plugins. Never raises: failures are entries with ``error`` set."""
    reg = Registry()
    if entry_points_too:
        _load_entry_points(reg)
    paths = [Path(p) for p in (extra_paths or [])]
    paths += [Path(p) for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    found = [f for p in paths for f in _folder_plugins(p)]
    refused = plugin_probe.probe_all({target: _modname(name) for name, target in found}, _probe_cache())
    for name, target in found:
        _load_file(reg, name, target, refused.get(target))
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


