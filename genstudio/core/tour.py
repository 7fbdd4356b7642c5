"""Guided tours as data: a TOML or JSON file of stages (panel, job, settings, caption) that
``genstudio demo`` and Help → Show me play, and that Record tour writes.

Qt-free on purpose: the file format, its validation (one clear error naming the file, the stage
and the field) and the "kept from a previous tour" memory are plain Python, so a tour can be
checked without a display. The Qt side (``genstudio.qt.tour``) runs each stage's job through the
same panel methods a user's clicks call.

A stage::

    [[stages]]
    title = "Noise in, data out"
    panel = "training"          # the panel brought to the front ("" = leave the layout)
    job = "train"               # one of JOBS ("" = nothing runs: a caption only)
    caption = "What you see, and why it matters."
    hold = 4                    # seconds an automatic tour (--auto) lingers after the job
    [stages.settings]           # the job's settings (JOBS lists the keys): plugin, dataset, steps...
    [stages.quick]              # overrides used by --quick (tests, a fast check of the tour)
    steps = 40
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

try:  # Python 3.11+; older Pythons read JSON tours (or TOML with tomli installed)
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

DEFAULT_TOUR = "basics"
TOUR_SUFFIXES = (".toml", ".json")
MEMORY_FILE = "tours.json"  # in the run store's root: settings of a tour's train stage -> the run it made

_SIDE = {"sampler": str, "steps": int, "seed": int}
_RUN_OPTIONS = {"log_every": int, "sample_every": int, "checkpoint_every": int, "n_preview": int,
                "preview_steps": int}
# job -> {setting: type, or a nested schema for a table}; "required" lists the keys a stage must set
JOBS: dict[str, dict[str, Any]] = {
    "": {},
    "train": {"plugin": str, "dataset": str, "steps": int, "seed": int, "config": dict, "reuse": bool,
              **_RUN_OPTIONS},
    "sample": {"n": int, "steps": int, "sampler": str, "seed": int, "play": bool},
    "compare": {"n": int, "a": _SIDE, "b": _SIDE, "play": bool},
    "latent": {"n": int, "method": str, "clusters": int, "walk": bool},
    "fly": {"seconds": float, "degrees": float},
}
REQUIRED = {"train": ("plugin", "dataset")}
_STAGE_KEYS = {"title": str, "caption": str, "panel": str, "job": str, "settings": dict, "quick": dict,
               "hold": float}
_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false", dict: "a table"}


class TourError(ValueError):
    """A tour file that cannot be played; the message names the file, stage and field."""


@dataclass(frozen=True)
class Stage:
    """One step of a tour: bring ``panel`` forward, run ``job`` with ``settings``, show ``caption``."""

    title: str
    caption: str
    panel: str = ""
    job: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    quick: Mapping[str, Any] = field(default_factory=dict)
    hold: float = 3.0

    def settings_for(self, quick: bool = False) -> dict[str, Any]:
        """The job's settings; with ``quick``, the stage's quick overrides on top (tables merged)."""
        out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in self.settings.items()}
        if quick:
            for k, v in self.quick.items():
                out[k] = {**out.get(k, {}), **v} if isinstance(v, Mapping) else v
        return out


@dataclass(frozen=True)
class Tour:
    name: str
    stages: tuple[Stage, ...]
    description: str = ""
    source: str = ""  # the file it came from ("" = built in code)


def builtin_tours() -> dict[str, Path]:
    """Tours shipped in the package (``genstudio/tours/*.toml``), by name."""
    root = resources.files("genstudio.tours")
    return {Path(str(p)).stem: Path(str(p)) for p in root.iterdir() if Path(str(p)).suffix in TOUR_SUFFIXES}


def resolve_tour(spec: str | Path | None = None) -> Path:
    """A tour file: None = the default tour, a built-in tour's name, or a path."""
    shipped = builtin_tours()
    name = str(spec) if spec is not None else DEFAULT_TOUR
    if name in shipped:
        return shipped[name]
    path = Path(name).expanduser()
    if path.is_file():
        return path
    raise TourError(f"no tour {name!r}: give a .toml or .json file, or one of: {', '.join(sorted(shipped))}")


def load_tour(spec: str | Path | None = None) -> Tour:
    """Read and validate a tour (see :func:`resolve_tour` for ``spec``); raises TourError."""
    path = resolve_tour(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TourError(f"{path}: cannot read it ({exc})") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TourError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    else:
        if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
            raise TourError(f"{path}: reading TOML needs Python 3.11 or the tomli package; or write the tour as JSON")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TourError(f"{path}: not valid TOML ({exc})") from None
    return parse_tour(data, str(path))


def _check_type(value: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):  # a nested table with its own keys
        if not isinstance(value, Mapping):
            raise TourError(f"{where} must be a table, got {value!r}")
        for k, v in value.items():
            if k not in want:
                raise TourError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(want))})")
            _check_type(v, want[k], f"{where}.{k}")
        return
    ok = (isinstance(value, bool) if want is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if want is float else
          isinstance(value, int) and not isinstance(value, bool) if want is int else isinstance(value, want))
    if not ok:
        raise TourError(f"{where} must be {_TYPE_NAMES[want]}, got {value!r}")


def _check_settings(settings: Mapping[str, Any], job: str, where: str) -> None:
    schema = JOBS[job]
    for k, v in settings.items():
        if k not in schema:
            known = ", ".join(sorted(schema)) or "none: this job takes no settings"
            raise TourError(f"{where}: unknown setting {k!r} for {'a ' + job + ' job' if job else 'a caption-only stage'}"
                            f" (known: {known})")
        _check_type(v, schema[k], f"{where}.{k}")


def parse_tour(data: Mapping[str, Any], source: str = "<tour>") -> Tour:
    """Validate a tour read from a file (a dict) and build it; the first problem is a TourError."""
    if not isinstance(data, Mapping):
        raise TourError(f"{source}: a tour is a table with a 'stages' list")
    unknown = set(data) - {"name", "description", "stages"}
    if unknown:
        raise TourError(f"{source}: unknown top-level key {sorted(unknown)[0]!r} (known: name, description, stages)")
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise TourError(f"{source}: no stages (write at least one [[stages]] table with a title and a caption)")
    out = []
    for i, raw in enumerate(stages, 1):
        label = f"stage {i}"
        if not isinstance(raw, Mapping):
            raise TourError(f"{source}: {label} must be a table, got {raw!r}")
        if isinstance(raw.get("title"), str) and raw["title"].strip():
            label += f" ({raw['title'].strip()!r})"
        where = f"{source}: {label}"
        for k, v in raw.items():
            if k not in _STAGE_KEYS:
                raise TourError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(_STAGE_KEYS))})")
            _check_type(v, _STAGE_KEYS[k], f"{where}: {k}")
        for k in ("title", "caption"):
            if not str(raw.get(k, "")).strip():
                raise TourError(f"{where}: needs a non-empty {k}")
        job = raw.get("job", "")
        if job not in JOBS:
            raise TourError(f"{where}: unknown job {job!r} (known: {', '.join(repr(j) for j in JOBS)})")
        settings, quick = raw.get("settings", {}), raw.get("quick", {})
        _check_settings(settings, job, f"{where}: settings")
        _check_settings(quick, job, f"{where}: quick")
        missing = [k for k in REQUIRED.get(job, ()) if k not in settings]
        if missing:
            raise TourError(f"{where}: a {job} job needs settings.{missing[0]}")
        if raw.get("hold", 0) < 0:
            raise TourError(f"{where}: hold must be >= 0 seconds")
        out.append(Stage(title=raw["title"].strip(), caption=" ".join(raw["caption"].split()),
                         panel=raw.get("panel", ""), job=job, settings=dict(settings), quick=dict(quick),
                         hold=float(raw.get("hold", 3.0))))
    name = data.get("name", "")
    if not isinstance(name, str) or not isinstance(data.get("description", ""), str):
        raise TourError(f"{source}: name and description must be text")
    return Tour(name=name or Path(source).stem, stages=tuple(out), description=data.get("description", ""),
                source=source)


def check_names(tour: Tour, *, panels: set[str], plugins: Mapping[str, type], datasets: set[str]) -> None:
    """The checks that need the installed panels, plugins and datasets (done before a tour starts, so
    a typo fails at once instead of at stage 5): unknown names and config keys are a TourError."""
    import dataclasses

    for i, st in enumerate(tour.stages, 1):
        where = f"{tour.source or tour.name}: stage {i} ({st.title!r})"
        if st.panel and st.panel not in panels:
            raise TourError(f"{where}: no panel {st.panel!r} (panels: {', '.join(sorted(panels))})")
        if st.job != "train":
            continue
        s = st.settings_for(quick=False)
        cls = plugins.get(s["plugin"])
        if cls is None:
            raise TourError(f"{where}: no working plugin {s['plugin']!r} (see `genstudio plugins`)")
        if s["dataset"] not in datasets and not str(s["dataset"]).startswith(("folder:", "transforms:")):
            raise TourError(f"{where}: no dataset {s['dataset']!r} (see `genstudio datasets`)")
        names = {f.name for f in dataclasses.fields(cls.info.config_cls)}
        for key in {**s.get("config", {}), **st.quick.get("config", {})}:
            if key not in names:
                raise TourError(f"{where}: {s['plugin']} has no setting {key!r} "
                                f"(see `genstudio train {s['plugin']} --list-settings`)")


def tour_to_dict(tour: Tour) -> dict[str, Any]:
    """The file form of ``tour`` (what :func:`parse_tour` reads back); defaults are left out."""
    stages = []
    for st in tour.stages:
        d: dict[str, Any] = {"title": st.title, "panel": st.panel, "job": st.job, "caption": st.caption}
        if st.settings:
            d["settings"] = dict(st.settings)
        if st.quick:
            d["quick"] = dict(st.quick)
        if st.hold != Stage.hold:
            d["hold"] = st.hold
        stages.append(d)
    return {"name": tour.name, "description": tour.description, "stages": stages}


def save_tour(tour: Tour, path: str | Path) -> Path:
    """Write ``tour`` as JSON (the standard library writes JSON, not TOML; both are read back)."""
    path = Path(path)
    if path.suffix != ".json":
        path = path.with_suffix(".json")
    path.write_text(json.dumps(tour_to_dict(tour), indent=2) + "\n", encoding="utf-8")
    return path


def _memory_key(settings: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in settings.items() if k != "reuse"}, sort_keys=True)


def remembered_run(root: str | Path, settings: Mapping[str, Any]) -> str | None:
    """The run id an earlier tour trained with exactly these train settings (None = none kept)."""
    try:
        memory = json.loads((Path(root) / MEMORY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rid = memory.get(_memory_key(settings)) if isinstance(memory, dict) else None
    return rid if isinstance(rid, str) else None


def remember_run(root: str | Path, settings: Mapping[str, Any], run_id: str) -> None:
    """Keep ``run_id`` as the model these train settings produce (a later tour may reuse it)."""
    path = Path(root) / MEMORY_FILE
    try:
        memory = json.loads(path.read_text(encoding="utf-8"))
        memory = memory if isinstance(memory, dict) else {}
    except (OSError, ValueError):
        memory = {}
    memory[_memory_key(settings)] = run_id
    path.write_text(json.dumps(memory, indent=1, sort_keys=True), encoding="utf-8")
