"""Import a folder plugin in a child process first, so one that hangs at import or ends the process
(``os._exit``) is listed as broken instead of freezing or silently ending every command and the app.

Only folder plugins (``GENSTUDIO_PLUGIN_PATH``) are probed; entry-point plugins are installed
packages and trusted. A passed or failed probe is cached per plugin by the newest mtime of its
``.py`` files (editing the plugin probes it again); a time-out is not cached, since a busy machine
may cause it. A frozen app (PyInstaller) has no interpreter to start, so it imports unprobed.
This module loads neither torch nor Qt: the child must start fast.

    python -m genstudio.core.plugin_probe TARGET MODNAME    (what the probe runs)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

TIMEOUT_ENV = "GENSTUDIO_PLUGIN_IMPORT_TIMEOUT"  # seconds; 0 = no probe (trust folder plugins)
DEFAULT_TIMEOUT = 10.0
OK_MARK = "genstudio-plugin-probe: imported"


def import_file(modname: str, target: Path) -> ModuleType:
    """Import ``target`` (a package's ``__init__.py`` or a single ``.py`` file) as ``modname``; the
    same code runs in the probe and in-process, so the probe tests what the registry will do."""
    pkg = target.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        modname, target, submodule_search_locations=[str(target.parent)] if pkg else None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return mod


def timeout() -> float:
    """The probe's time limit from ``GENSTUDIO_PLUGIN_IMPORT_TIMEOUT`` (a bad value: the default)."""
    try:
        return max(0.0, float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT)))
    except ValueError:
        return DEFAULT_TIMEOUT


def _stamp(target: Path) -> int:
    """Newest mtime (ns) of the plugin's Python files: a changed plugin is probed again."""
    files = list(target.parent.rglob("*.py")) if target.name == "__init__.py" else [target]
    return max((f.stat().st_mtime_ns for f in files), default=0)


def _start(target: Path, modname: str) -> subprocess.Popen:
    """A child process importing ``target`` (with this process's import path)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
    env[TIMEOUT_ENV] = "0"  # a plugin that discovers plugins must not probe recursively
    return subprocess.Popen([sys.executable, "-m", __name__, str(target), modname], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _verdict(child: subprocess.Popen, deadline: float, limit: float) -> str | None:
    """None when the child imported its plugin by ``deadline``; else why not, in one line."""
    try:
        out, err = child.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        child.kill()
        try:  # a grandchild the plugin started may hold the pipes open: do not wait for it
            child.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        return f"import timed out after {limit:g} s"
    if OK_MARK in out:
        return None
    tail = (err.strip().splitlines() or [""])[-1][:160]
    return f"import exited the process with code {child.returncode}" + (f" ({tail})" if tail else "")


def _run_probes(targets: dict[Path, str], limit: float) -> dict[Path, str | None]:
    """Probe all at once: discovery waits for the slowest plugin, not for their sum."""
    deadline = time.monotonic() + limit
    children = {t: _start(t, m) for t, m in targets.items()}
    return {t: _verdict(c, deadline, limit) for t, c in children.items()}


def probe_all(targets: dict[Path, str], cache: Path | None = None) -> dict[Path, str]:
    """Plugin file -> why it must not be imported in this process, for ``targets`` (file -> module
    name); the plugins that may be imported are left out (all of them when probing is off)."""
    limit = timeout()
    if not limit or not targets or getattr(sys, "frozen", False):  # frozen: sys.executable is the app itself
        return {}
    seen = _read(cache)
    stamps = {t: _stamp(t) for t in targets}
    verdicts, todo = {}, {}
    for t, modname in targets.items():
        hit = seen.get(str(t.resolve()))
        if isinstance(hit, dict) and hit.get("stamp") == stamps[t]:
            verdicts[t] = hit.get("error")
        else:
            todo[t] = modname
    if todo:
        for t, error in _run_probes(todo, limit).items():
            verdicts[t] = error
            if error is None or not error.startswith("import timed out"):
                seen[str(t.resolve())] = {"stamp": stamps[t], "error": error}
        _write(cache, seen)
    return {t: e for t, e in verdicts.items() if e}


def _read(cache: Path | None) -> dict:
    try:
        data = json.loads(cache.read_text(encoding="utf-8")) if cache else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(cache: Path | None, data: dict) -> None:
    """Best effort: an unwritable data folder only means probing again next time."""
    if cache is None:
        return
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass


if __name__ == "__main__":
    try:
        import_file(sys.argv[2], Path(sys.argv[1]))
    except BaseException:  # noqa: BLE001, S110 - an ordinary failure: the registry records it in-process
        pass
    sys.stdout.write(OK_MARK + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter shutdown: a plugin's stray non-daemon thread must not hang the probe
