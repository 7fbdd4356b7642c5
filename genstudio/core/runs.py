"""RunStore: one folder per run, append-only metrics, atomic checkpoints, sample images, a log.

Layout of a run folder::

    run.json            plugin, dataset, config, seed, device, status, step, timestamps
    metrics.jsonl       one JSON object per logged step (append-only; a torn last line is skipped)
    checkpoints/        step_00001000.pt  (torch, loaded with weights_only=True)
    samples/            step_00001000.png / .npz, sample_*.png|npz from `genstudio sample`
    evals/              metric results (JSON) written by evaluation jobs
    log.txt             human-readable log

Every file that is rewritten (run.json, checkpoints) goes through write-temp-then-rename, so a
process killed mid-write leaves the previous version intact.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"
CKPT_RE = re.compile(r"^step_(\d+)\.pt$")


class RunError(Exception):
    """A missing or unreadable run."""


def default_root() -> Path:
    """Data directory: $GENSTUDIO_DATA_DIR, else the platform's user data dir."""
    env = os.environ.get("GENSTUDIO_DATA_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("genstudio", appauthor=False)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_torch_load(path: Path) -> Any:
    """Load a checkpoint without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt / truncated / foreign file
        raise RunError(f"cannot read checkpoint {path.name}: {e.__class__.__name__}: {str(e)[:200]}") from e


@dataclass
class Run:
    """A handle on one run folder. Cheap to create; reads files on demand."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    # -- run.json -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / RUN_FILE).read_text("utf-8"))
        except FileNotFoundError:
            raise RunError(f"not a run folder (no run.json): {self.path}") from None
        except json.JSONDecodeError as e:
            raise RunError(f"run.json of {self.id} is corrupt: {e}") from None

    def update(self, **fields: Any) -> dict[str, Any]:
        info = self.info()
        info.update(fields, updated=time.time())
        atomic_write_text(self.path / RUN_FILE, json.dumps(info, indent=2, sort_keys=True))
        return info

    # -- metrics ----------------------------------------------------------------------------
    def append_metrics(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
            f.flush()

    def metrics(self) -> list[dict[str, Any]]:
        """All metric rows; a torn line from a killed process is skipped, and rows logged after
        the checkpoint a resume restarted from are superseded by the resumed ones."""
        rows: list[dict[str, Any]] = []
        try:
            with open(self.path / METRICS_FILE, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(row, dict):
                        rows.append(row)
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for r in rows:  # a resume rewinds: drop earlier rows at or after its step
            step = r.get("step", 0)
            while out and out[-1].get("step", 0) >= step:
                out.pop()
            out.append(r)
        return out

    # -- log --------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        with open(self.path / LOG_FILE, "a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + message.rstrip() + "\n")

    def read_log(self) -> str:
        p = self.path / LOG_FILE
        return p.read_text("utf-8", errors="replace") if p.exists() else ""

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoints(self) -> list[tuple[int, Path]]:
        d = self.path / "checkpoints"
        if not d.is_dir():
            return []
        out = []
        for p in d.iterdir():
            m = CKPT_RE.match(p.name)
            if m:
                out.append((int(m.group(1)), p))
        return sorted(out)

    def save_checkpoint(self, step: int, state: dict[str, Any], keep: int = 3) -> Path:
        path = self.path / "checkpoints" / f"step_{step:08d}.pt"
        atomic_torch_save({"step": step, "state": state}, path)
        for _, old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: Path | None = None) -> tuple[int, dict[str, Any]]:
        """Load ``path`` or the newest readable checkpoint (skipping corrupt ones)."""
        if path is not None:
            ck = safe_torch_load(Path(path))
            return int(ck["step"]), ck["state"]
        errors = []
        for _, p in reversed(self.checkpoints()):
            try:
                ck = safe_torch_load(p)
                return int(ck["step"]), ck["state"]
            except (RunError, KeyError) as e:
                errors.append(str(e))
        raise RunError(f"run {self.id} has no readable checkpoint" + (f" ({'; '.join(errors)})" if errors else ""))

    # -- files ------------------------------------------------------------------------------
    def sample_dir(self) -> Path:
        d = self.path / "samples"
        d.mkdir(exist_ok=True)
        return d

    def eval_dir(self) -> Path:
        d = self.path / "evals"
        d.mkdir(exist_ok=True)
        return d


class RunStore:
    """All runs under ``root/runs``."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.runs_dir = self.root / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)

    def create(self, *, plugin: str, dataset: str, config: dict[str, Any], seed: int, device: str,
               steps: int, extra: dict[str, Any] | None = None) -> Run:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        safe_ds = re.sub(r"[^A-Za-z0-9]+", "-", dataset.split("/")[-1])[:20].strip("-") or "data"
        run_id = f"{stamp}-{plugin}-{safe_ds}-{secrets.token_hex(2)}"
        path = self.runs_dir / run_id
        path.mkdir(parents=True)
        info = {
            "id": run_id, "plugin": plugin, "dataset": dataset, "config": config, "seed": seed,
            "device": device, "steps": steps, "step": 0, "status": "created",
            "created": time.time(), "updated": time.time(), **(extra or {}),
        }
        atomic_write_text(path / RUN_FILE, json.dumps(info, indent=2, sort_keys=True))
        return Run(path)

    def get(self, ref: str | Path) -> Run:
        """A run by id, unique id prefix, or folder path."""
        p = Path(ref).expanduser()
        if (p / RUN_FILE).exists():
            return Run(p)
        direct = self.runs_dir / str(ref)
        if (direct / RUN_FILE).exists():
            return Run(direct)
        matches = [r for r in self.list() if r.id.startswith(str(ref)) or r.id.endswith(str(ref))]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RunError(f"run reference {ref!r} is ambiguous ({len(matches)} runs match)")
        raise RunError(f"no run {ref!r} under {self.runs_dir}")

    def list(self) -> list[Run]:
        return sorted((Run(p) for p in self.runs_dir.iterdir() if (p / RUN_FILE).exists()), key=lambda r: r.id)

    def __iter__(self) -> Iterator[Run]:
        return iter(self.list())

    def delete(self, run: Run) -> None:
        if run.path.parent != self.runs_dir:
            raise RunError("refusing to delete a folder outside the run store")
        shutil.rmtree(run.path)
