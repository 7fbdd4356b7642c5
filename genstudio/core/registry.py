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
import threading
import traceback
from dataclasses import dataclass
from functools import partial
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


class Registry:
    """Plugin id -> :class:`PluginEntry`. A lazy one (:func:`discover` with ``lazy=True``) knows
    its entry points' names but imports a plugin's module only when that plugin is asked for
    (:meth:`entry`, :meth:`get`); anything reading ``entries`` imports the rest first, so code
    that lists plugins sees all of them (issue #18: the GUI paints before importing them)."""

    def __init__(self, entries: dict[str, PluginEntry] | None = None) -> None:
        self._entries: dict[str, PluginEntry] = dict(entries or {})
        self._pending: list[Any] = []  # entry points not imported yet, in order
        self._rest: list[Any] = []  # what load_all does after the entry points (folder plugins)
        self._order: dict[str, int] = {}  # entry-point name -> its place, so a full load lists in order
        self._lock = threading.RLock()  # a job thread may ask for a plugin while the GUI imports the rest

    @property
    def entries(self) -> dict[str, PluginEntry]:
        """Every plugin (imports those not imported yet)."""
        self.load_all()
        return self._entries

    @property
    def loaded(self) -> bool:
        """True once every plugin is imported (then ``entries`` costs nothing)."""
        return not self._pending and not self._rest

    def defer(self, eps: list[Any], rest: Any = None) -> None:
        """Entry points to import on demand, and ``rest()`` to run at the full load."""
        for ep in eps:
            self._order.setdefault(ep.name, len(self._order))
        self._pending += eps
        if rest is not None:
            self._rest.append(rest)

    def load_all(self) -> None:
        """Import every pending plugin, in entry-point order."""
        while self.load_next():
            pass

    def load_next(self) -> bool:
        """Import the next pending plugin (the folder plugins come last, together); True while
        some are left, so a GUI can import them one event-loop turn at a time."""
        with self._lock:
            if self.loaded:
                return False
            if self._pending:
                _load_entry_point(self, self._pending.pop(0))
            else:
                self._rest.pop(0)()
            if self.loaded:  # list them as an eager discovery does, whatever order they came in
                rank = {e.id: self._order.get(e.source.partition(" = ")[0].removeprefix("entry point "),
                                              len(self._order)) for e in self._entries.values()}
                self._entries = dict(sorted(self._entries.items(), key=lambda kv: rank[kv[0]]))
            return not self.loaded

    def entry(self, pid: str | None) -> PluginEntry | None:
        """The entry for ``pid``, importing only its own module when the entry point of that name
        is still pending (a plugin's id is its entry point's name); else a full load."""
        if not pid:
            return None
        if pid not in self._entries:
            with self._lock:
                mine = [ep for ep in self._pending if ep.name == pid][:1]
                if pid not in self._entries and mine:
                    self._pending.remove(mine[0])
                    _load_entry_point(self, mine[0])
                if pid not in self._entries:
                    self.load_all()
        return self._entries.get(pid)

    def add_class(self, cls: Any, source: str, fallback_id: str) -> None:
        errs = contract_errors(cls)
        pid = getattr(getattr(cls, "info", None), "id", None) or fallback_id
        if errs:
            self._record(PluginEntry(pid, source, error="contract: " + "; ".join(errs)))
        elif pid in self._entries and self._entries[pid].cls is cls:
            return  # the same class registered again (tests, reloads): nothing to do
        elif pid in self._entries and self._entries[pid].ok:
            self._record(PluginEntry(pid + "?dup", source, error=f"duplicate plugin id {pid!r} (first from "
                                     f"{self._entries[pid].source})"))
        else:
            self._record(PluginEntry(pid, source, cls=cls))

    def _record(self, entry: PluginEntry) -> None:
        self._entries[entry.id] = entry

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
        e = self.entry(pid)
        if e is None:
            raise KeyError(f"unknown plugin {pid!r}; available: {', '.join(x.id for x in self.ok()) or 'none'}")
        if not e.ok:
            raise KeyError(f"plugin {pid!r} is broken: {e.error}")
        return e.cls


def _load_entry_point(reg: Registry, ep: Any) -> None:
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


def discover(extra_paths: list[str | Path] | None = None, *, entry_points_too: bool = True,
             lazy: bool = False) -> Registry:
    """Find all plugins. Never raises: failures are entries with ``error`` set. ``lazy``: import
    each plugin only when it is asked for (see :class:`Registry`)."""
    reg = Registry()
    reg.defer(list(entry_points(group=GROUP)) if entry_points_too else [],
              partial(_load_folders, reg, [Path(p) for p in (extra_paths or [])]))
    if not lazy:
        reg.load_all()
    return reg


def _load_folders(reg: Registry, paths: list[Path]) -> None:
    """The plugins of ``extra_paths`` and ``$GENSTUDIO_PLUGIN_PATH`` (each probed in a child first)."""
    paths = paths + [Path(p) for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    found = [f for p in paths for f in _folder_plugins(p)]
    refused = plugin_probe.probe_all({target: _modname(name) for name, target in found}, _probe_cache())
    for name, target in found:
        _load_file(reg, name, target, refused.get(target))


_cached: Registry | None = None


def registry(refresh: bool = False) -> Registry:
    """The process-wide registry (discovered once)."""
    global _cached
    if _cached is None or refresh:
        _cached = discover(lazy=True)
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


