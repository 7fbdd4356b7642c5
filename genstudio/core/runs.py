"""RunStore: one folder per run, append-only metrics, atomic checkpoints, sample images, a log.

Layout of a run folder::

    run.json            plugin, dataset, config, seed, device, status, step, timestamps
    metrics.jsonl       one JSON object per logged step (append-only; a torn last line is skipped)
    checkpoints/        step_00001000.pt  (torch, loaded with weights_only=True)
    samples/            step_00001000.png / .npz, sample_*.png|npz from `genstudio sample`
    evals/              metric results (JSON) written by evaluation jobs
    log.txt             human-readable log
    run.lock            held (filelock) by the one process training the run; run.json's ``owner``
                        names it (pid, host, start time)

Every file that is rewritten (run.json, checkpoints) goes through write-temp-then-rename, so a
process killed mid-write leaves the previous version intact. Appends start on a fresh line, so a
torn line (kill, disk full) costs only itself. Nothing is written or deleted through a symlink: a
run folder cannot be made to write or rotate files outside itself.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"
PREVIEWS_FILE = "previews.jsonl"  # in samples/: what each training preview cost (a watcher shows it too)
LOCK_FILE = "run.lock"
CKPT_RE = re.compile(r"^step_(\d+)\.pt$")
TMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")  # what atomic_write_* leaves when killed mid-write
REQUIRED_KEYS = ("plugin", "dataset", "config", "steps")

log = logging.getLogger(__name__)

WAKE_FD_ENV = "GENSTUDIO_WAKE_FD"  # a pipe's write end: the window that started this trainer, watching
_wake_fd: int | None = -2  # -2: the environment not looked at yet; None: no window to wake


def claim_wake_fd() -> int | None:
    """This trainer's wake pipe (``GENSTUDIO_WAKE_FD``), taken out of the environment so that no
    child process inherits a number that is not its pipe; None without one (a CLI run)."""
    global _wake_fd
    if _wake_fd == -2:
        _wake_fd = None
        raw = os.environ.pop(WAKE_FD_ENV, "")
        try:
            fd = int(raw)
            # never stdin/out/err (a CLI piped into `tee` has a FIFO there) nor a file that has the number
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.set_blocking(fd, False)
                _wake_fd = fd
        except (ValueError, OSError):
            pass
    return _wake_fd


def wake_watcher() -> None:
    """Tell the window watching this trainer's run that its folder changed, so it looks now rather
    than at its next poll (a status, metric rows, a checkpoint, a preview). Never blocks or raises:
    a full pipe means the window has not looked yet, a closed one that it stopped watching."""
    fd = claim_wake_fd()
    if fd is not None:
        try:
            os.write(fd, b".")
        except OSError:
            pass


class RunError(Exception):
    """A missing or unreadable run."""


class RunBusy(RunError):
    """Another process (or job) holds the run's lock."""


def _open_append(path: Path) -> int:
    """An O_APPEND fd that refuses a symlink (O_NOFOLLOW: a planted link cannot redirect writes;
    where the OS lacks it, a racy is_symlink check stands in)."""
    if not hasattr(os, "O_NOFOLLOW") and path.is_symlink():
        raise RunError(f"refusing to write through the symlink {path}")
    try:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        return os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise RunError(f"refusing to write through the symlink {path}") from None
        raise


def append_lines(path: Path, lines: list[str]) -> None:
    """Append text lines, first ending a torn last line (a killed or disk-full writer) so the first
    new line is not glued onto it and lost."""
    fd = _open_append(path)
    try:
        size = os.fstat(fd).st_size
        torn = size and os.lseek(fd, size - 1, os.SEEK_SET) >= 0 and os.read(fd, 1) != b"\n"
        lead = b"\n" if torn else b""  # (O_APPEND: the write still lands at the end)
        os.write(fd, lead + "".join(line.rstrip("\n") + "\n" for line in lines).encode("utf-8"))
    finally:
        os.close(fd)


_HELD: set[Path] = set()  # run folders whose lock this process holds (Run.owned)


HEARTBEAT_FILE = "heartbeat"  # touched by the training loop (at most every HEARTBEAT_S): its mtime says when
HEARTBEAT_S = 5.0  # a step last finished, so a live but hung trainer can be told from a slow one
STALL_ENV = "GENSTUDIO_STALL_SECONDS"  # no step for this long while running = stalled (default 600)


def stall_seconds() -> float:
    try:
        return float(os.environ.get(STALL_ENV, "600"))
    except ValueError:
        return 600.0


def _owner_alive(run_dir: Path, owner: Any) -> bool:
    """Whether the process an ``owner`` record names still trains the run. This process knows its
    own locks; a dead pid on this host is gone; otherwise (another host, or a live pid that may
    have been reused) the run's lock is probed: a free lock means nobody trains it."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return _lock_held(run_dir)
    here = owner.get("host") == socket.gethostname()
    if here and owner["pid"] == os.getpid():
        return run_dir in _HELD
    if here:
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, someone else's
            pass
    return _lock_held(run_dir)


def _lock_held(run_dir: Path) -> bool:
    """Probe the run's lock without waiting (taken and dropped at once if free)."""
    from filelock import FileLock, Timeout

    if not (run_dir / LOCK_FILE).exists():
        return False
    try:
        with FileLock(run_dir / LOCK_FILE, timeout=0):
            return False
    except Timeout:
        return True
    except OSError:  # read-only store, odd filesystem: cannot tell, keep what run.json says
        return True


ROW_AXES = ("step", "time")


def adds_to(row: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether metric row ``new`` completes ``row`` rather than superseding it: the same step and
    no measurement in common (a preview's mode coverage logged after that step's losses). A row
    at the same step that repeats a measurement is a resume's rewind and replaces it."""
    return (row.get("step") == new.get("step")
            and not (set(row) - set(ROW_AXES)) & (set(new) - set(ROW_AXES)))


def default_root() -> Path:
    """Data directory: $GENSTUDIO_DATA_DIR, else the platform's user data dir."""
    env = os.environ.get("GENSTUDIO_DATA_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("genstudio", appauthor=False)


def atomic_write_bytes(path: Path, data: bytes, attempts: int = 3) -> None:
    """Write ``path`` through a temp file renamed over it. A trainer starting on the run deletes the
    folder's orphan temp files (:meth:`Run.clean_orphans`); a window writing the control file just
    then loses its temp file, and writes it again (``attempts`` times in all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return
        except FileNotFoundError:
            Path(tmp).unlink(missing_ok=True)
            if attempt == attempts or not path.parent.is_dir():  # the folder itself is gone
                raise
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    import torch  # here, not at the top: the window's first paint reads runs without torch

    try:  # through a Python file: a full disk is OSError(ENOSPC), not torch's "iostream error"
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_torch_load(path: Path) -> Any:
    """Load a checkpoint without unpickling arbitrary objects. torch's own text is not shown: for a
    truncated file it advises ``weights_only=False``, which would run whatever the file holds."""
    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # corrupt / truncated / foreign file
        log.debug("loading the checkpoint %s failed: %s", path, e)
        raise RunError(f"checkpoint {path.name} is unreadable (truncated, corrupt or not a GenStudio "
                       f"checkpoint; {e.__class__.__name__})") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("step"), int) or "state" not in ck:
        raise RunError(f"checkpoint {path.name} is not a GenStudio checkpoint (no step/state)")
    return ck


_PRUNE_TOLD: set[Path] = set()  # runs whose log says old checkpoints are deleted (Run.save_checkpoint)


@dataclass
class Run:
    """A handle on one run folder. Cheap to create; reads files on demand."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    # -- run.json -------------------------------------------------------------------------
    def raw_info(self) -> dict[str, Any]:
        """run.json as written, checked to be a run record (RunError naming the run otherwise)."""
        where = f"run {self.id}: run.json"
        try:
            text = (self.path / RUN_FILE).read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise RunError(f"not a run folder (no run.json): {self.path}") from None
        except UnicodeDecodeError:
            raise RunError(f"{where} is not UTF-8 text") from None
        except OSError as e:
            raise RunError(f"{where} cannot be read: {e.strerror or e}") from None
        try:
            info = json.loads(text)
        except json.JSONDecodeError as e:
            raise RunError(f"{where} is corrupt: {e}") from None
        if not isinstance(info, dict):
            raise RunError(f"{where} is a JSON {type(info).__name__}, not an object")
        missing = [k for k in REQUIRED_KEYS if k not in info]
        if missing:
            raise RunError(f"{where} lacks {', '.join(missing)}")
        return info

    def info(self) -> dict[str, Any]:
        """run.json; a ``running`` run whose owner process is gone (kill -9, crash, reboot) reads
        as ``interrupted`` so it can be resumed."""
        info = self.raw_info()
        if info.get("status") == "running" and not _owner_alive(self.path, info.get("owner")):
            owner = info.get("owner") or {}
            info["status"] = "interrupted"
            info["message"] = (f"the process training it (pid {owner.get('pid', '?')}) is gone; "
                               "resume continues from the last checkpoint")
        elif info.get("status") == "running":
            quiet = self.seconds_since_step()
            if quiet is not None and quiet > stall_seconds():
                owner = info.get("owner") or {}
                info["stalled"] = round(quiet)
                info["message"] = (f"stalled: no training step for {quiet / 60:.0f} min (the plugin may hang); "
                                   f"Stop it or end pid {owner.get('pid', '?')}: the run becomes interrupted "
                                   "and resumes from its last checkpoint")
        return info

    def beat(self) -> None:
        """A training step finished (the mtime of the heartbeat file; never through a symlink)."""
        os.close(_open_append(self.path / HEARTBEAT_FILE))
        os.utime(self.path / HEARTBEAT_FILE)

    def seconds_since_step(self) -> float | None:
        """Seconds since the trainer last beat (None before the first beat)."""
        try:
            return max(0.0, time.time() - (self.path / HEARTBEAT_FILE).stat().st_mtime)
        except OSError:
            return None

    def problem(self) -> str | None:
        """Why this run cannot be used (an unreadable run.json), or None."""
        try:
            self.raw_info()
        except RunError as e:
            return str(e)
        return None

    def update(self, **fields: Any) -> dict[str, Any]:
        info = self.info()
        info.update(fields, updated=time.time())
        atomic_write_text(self.path / RUN_FILE, json.dumps(info, indent=2, sort_keys=True))
        wake_watcher()
        return info

    # -- ownership ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def owned(self) -> Iterator[Run]:
        """Hold the run's exclusive lock while training it: a second trainer (another process or
        job) gets RunBusy naming the owner. Records the owner in run.json and clears orphan
        temp files of killed atomic writes (safe: nobody else writes while we hold the lock)."""
        from filelock import FileLock, Timeout

        lock = FileLock(self.path / LOCK_FILE, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            owner = self._owner_of_record()
            raise RunBusy(f"run {self.id} is being trained by pid {owner.get('pid', '?')}"
                          + (f" on {owner['host']}" if owner.get("host") not in (None, socket.gethostname()) else "")
                          ) from None
        _HELD.add(self.path)
        try:
            self.clean_orphans()
            self.update(owner={"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
            yield self
        finally:
            _HELD.discard(self.path)
            lock.release()
            wake_watcher()  # a watching window sees the run free (its end) now

    def busy(self) -> bool:
        """Whether some job (here or in another process) holds the run's lock right now."""
        return self.path in _HELD or _lock_held(self.path)

    def _owner_of_record(self) -> dict[str, Any]:
        try:
            owner = self.raw_info().get("owner")
        except RunError:
            return {}
        return owner if isinstance(owner, dict) else {}

    def clean_orphans(self) -> list[Path]:
        """Delete ``.*.tmp`` leftovers of atomic writes in this run folder and its checkpoints/
        (never following symlinks). Call only while holding the lock."""
        gone = []
        for d in (self.path, self.path / "checkpoints"):
            if d.is_symlink() or not d.is_dir():
                continue
            for p in d.iterdir():
                if TMP_RE.match(p.name) and not p.is_symlink() and p.is_file():
                    p.unlink(missing_ok=True)
                    gone.append(p)
        return gone

    def _dir(self, name: str) -> Path:
        """A subfolder of the run, created if missing, refused if it is a symlink."""
        d = self.path / name
        if d.is_symlink():
            raise RunError(f"run {self.id}: refusing to use the symlinked folder {name}/ "
                           "(it could point outside the run)")
        d.mkdir(exist_ok=True)
        return d

    # -- metrics ----------------------------------------------------------------------------
    def append_metrics(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        append_lines(self.path / METRICS_FILE, [json.dumps(r) for r in rows])
        wake_watcher()

    def read_metrics(self) -> tuple[list[dict[str, Any]], int]:
        """(rows in file order, number of bad lines skipped). A bad line (torn by a kill or a full
        disk, not UTF-8, not a JSON object, a non-integer step) is skipped, never raised."""
        try:
            data = (self.path / METRICS_FILE).read_bytes()
        except FileNotFoundError:
            return [], 0
        rows: list[dict[str, Any]] = []
        bad = 0
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                row = None
            step = row.get("step") if isinstance(row, dict) else None
            if isinstance(step, int) and not isinstance(step, bool):
                rows.append(row)
            else:
                bad += 1
        return rows, bad

    def metrics(self) -> list[dict[str, Any]]:
        """All metric rows; bad lines are skipped (logged once per count), and rows logged after
        the checkpoint a resume restarted from are superseded by the resumed ones."""
        rows, bad = self.read_metrics()
        if bad and _SKIPPED.get(self.path) != bad:
            _SKIPPED[self.path] = bad
            log.warning("run %s: skipped %d unreadable line(s) of %s", self.id, bad, METRICS_FILE)
        out: list[dict[str, Any]] = []
        for r in rows:  # a resume rewinds: drop earlier rows at or after its step
            step = r["step"]
            if out and adds_to(out[-1], r):
                out[-1] = {**out[-1], **r}
                continue
            while out and out[-1]["step"] >= step:
                out.pop()
            out.append(r)
        return out

    # -- log --------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        append_lines(self.path / LOG_FILE, [time.strftime("%Y-%m-%d %H:%M:%S ") + message.rstrip()])

    def read_log(self) -> str:
        p = self.path / LOG_FILE
        return p.read_text("utf-8", errors="replace") if p.exists() else ""

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, file) of each checkpoint, oldest first; symlinked files or folders are not
        counted (rotation would delete what they point at, loading would read outside the run)."""
        d = self.path / "checkpoints"
        if d.is_symlink() or not d.is_dir():
            return []
        out = []
        for p in d.iterdir():
            m = CKPT_RE.match(p.name)
            if m and not p.is_symlink():
                out.append((int(m.group(1)), p))
        return sorted(out)

    def checkpoint_path(self, ref: int | str | Path) -> Path:
        """The checkpoint a user names: a step number (ValueError listing the steps there are), or a
        file, absolute or relative to the working folder or to this run's checkpoints/."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            for s, p in self.checkpoints():
                if s == int(ref):
                    return p
            raise ValueError(f"run {self.id} has no checkpoint at step {ref} "
                             f"(has {', '.join(str(s) for s, _ in self.checkpoints()) or 'none'})")
        p = Path(ref)
        return p if p.is_absolute() or p.exists() else self.path / "checkpoints" / p

    def save_checkpoint(self, step: int, state: dict[str, Any], keep: int = 3) -> Path:
        """Write checkpoint ``step`` atomically and delete all but the newest ``keep`` (< 1 = keep every one)."""
        path = self._dir("checkpoints") / f"step_{step:08d}.pt"
        atomic_torch_save({"step": step, "state": state}, path)
        pruned = self.checkpoints()[:-keep] if keep > 0 else []
        for _, old in pruned:
            old.unlink(missing_ok=True)
        if pruned and self.path not in _PRUNE_TOLD:  # said once per run and process, not per save
            _PRUNE_TOLD.add(self.path)
            self.log(f"[checkpoints] keeping the newest {keep}; older ones are deleted "
                     f"(deleted {', '.join(p.name for _, p in pruned)})")
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
            except RunError as e:
                errors.append(str(e))
                continue
            if errors:  # falling back is fine, silently is not
                self._warn(f"{'; '.join(errors)}; using the older {p.name}")
            return int(ck["step"]), ck["state"]
        raise RunError(f"run {self.id} has no readable checkpoint" + (f" ({'; '.join(errors)})" if errors else ""))

    def _warn(self, message: str) -> None:
        """A warning in log.txt and the Python log; a failing log write (disk full) is only logged."""
        log.warning("run %s: %s", self.id, message)
        try:
            self.log(f"[warning] {message}")
        except (OSError, RunError) as e:
            log.warning("run %s: cannot write %s: %s", self.id, LOG_FILE, e)

    # -- files ------------------------------------------------------------------------------
    def sample_dir(self) -> Path:
        return self._dir("samples")

    def note_preview(self, step: int, seconds: float, sample_steps: int | None) -> None:
        """Record what the training preview of ``step`` cost (before its PNG is written, so whoever
        sees the PNG -- a window watching this run -- finds its cost)."""
        append_lines(self.sample_dir() / PREVIEWS_FILE,
                     [json.dumps({"step": int(step), "seconds": round(float(seconds), 4),
                                  "sample_steps": sample_steps})])

    def preview_costs(self) -> dict[int, tuple[float, int | None]]:
        """step -> (seconds, sampling steps) of the training previews noted so far."""
        out: dict[int, tuple[float, int | None]] = {}
        try:
            lines = (self.path / "samples" / PREVIEWS_FILE).read_text("utf-8").splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                row = json.loads(line)
                out[int(row["step"])] = (float(row["seconds"]), row.get("sample_steps"))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line: the next read has it whole
        return out

    def eval_dir(self) -> Path:
        return self._dir("evals")


_SKIPPED: dict[Path, int] = {}  # bad metric lines already logged, per run folder


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
        """Every run folder, broken ones included (``Run.problem()`` says why one is unusable)."""
        return sorted((Run(p) for p in self.runs_dir.iterdir() if (p / RUN_FILE).exists()), key=lambda r: r.id)

    def broken(self) -> list[tuple[Run, str]]:
        """(run, reason) for each run folder whose run.json is unreadable."""
        return [(r, why) for r in self.list() if (why := r.problem())]

    def __iter__(self) -> Iterator[Run]:
        return iter(self.list())

    def delete(self, run: Run) -> None:
        if run.path.parent != self.runs_dir:
            raise RunError("refusing to delete a folder outside the run store")
        shutil.rmtree(run.path)
