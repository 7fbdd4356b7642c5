"""A sampling trajectory written to disk as it is produced, then packed into an ordinary NPZ.

Keeping every state of a 1000-step sampler in memory to save it at the end cost 20-30 % of the
sampling time and grows with n x steps (issue #18). Here each recorded state's arrays are appended
to raw scratch files as they come; at the end every array becomes one ``.npy`` member of a
compressed ``.npz`` (header first, then the raw bytes copied in chunks), so ``np.load`` reads the
file as if ``np.savez_compressed`` had written it and the trajectory never sits in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHUNK = 1 << 22  # bytes copied at a time from a scratch file into the archive


class TrajectoryStream:
    """Appends ``traj_x`` / ``traj_x0`` / ``traj_t`` of each added state to scratch files in
    ``folder`` (a hidden temporary folder, removed by :meth:`close`)."""

    def __init__(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=".trajectory-", dir=folder))
        self.count = 0
        self.t: list[float] = []
        self._meta: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self._files: dict[str, Any] = {}
        self._dropped: set[str] = set()  # traj_x0 once a state has no x0: like the in-memory writer

    def add(self, x: torch.Tensor, x0: torch.Tensor | None, t: float) -> None:
        for name, a in (("traj_x", x), ("traj_x0", x0)):
            if name in self._dropped:
                continue
            if a is None:
                self._drop(name)
                continue
            arr = a.detach().cpu().numpy()
            if name not in self._meta:
                self._meta[name] = (arr.shape, arr.dtype)
                self._files[name] = open(self.dir / f"{name}.raw", "wb")  # noqa: SIM115 - closed in close()
            shape, dtype = self._meta[name]
            if arr.shape != shape:
                raise ValueError(f"{name}: state {self.count} has shape {arr.shape}, the first had {shape}")
            self._files[name].write(np.ascontiguousarray(arr, dtype=dtype).tobytes())
        self.t.append(float(t))
        self.count += 1

    def _drop(self, name: str) -> None:
        self._dropped.add(name)
        f = self._files.pop(name, None)
        if f is not None:
            f.close()
        self._meta.pop(name, None)

    def write_npz(self, path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
        """Write ``arrays`` plus the streamed trajectory as one compressed NPZ at ``path``
        (atomically: a scratch name, then a rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.part")
        for f in self._files.values():
            f.flush()
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for name, a in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, np.asanyarray(a), allow_pickle=False)
            for name, (shape, dtype) in self._meta.items():
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                          "shape": (self.count, *shape)}
                with zf.open(f"{name}.npy", "w", force_zip64=True) as out, open(self.dir / f"{name}.raw", "rb") as src:
                    np.lib.format.write_array_header_2_0(out, header)
                    shutil.copyfileobj(src, out, CHUNK)
            if self.count:
                with zf.open("traj_t.npy", "w") as out:
                    np.lib.format.write_array(out, np.asarray(self.t, dtype=np.float64))
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        """Remove the scratch files (also after a cancelled or failed sampling run)."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
