"""Gaussian-splat files: INRIA 3DGS ``.ply`` and antimatter15 ``.splat``, in numpy only (no
plyfile dependency: the one layout we need is a single binary little-endian vertex element, which a
structured dtype reads and writes in one call).

.ply (what the INRIA trainer writes and every viewer reads): per vertex, float32
``x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3``, where opacity is a
logit, scales are logs, the quaternion is (w, x, y, z) and f_rest is channel-major (all of red's
higher coefficients, then green's, then blue's). A plain point cloud (x y z and optionally
uchar red green blue, e.g. COLMAP's points3D.ply) loads as small isotropic Gaussians.

.splat (antimatter15's web viewer): 32 bytes per splat, no header: position 3 x float32, linear
scale 3 x float32, RGBA 4 x uint8 (colour from the SH DC term, alpha = sigmoid(opacity)),
quaternion 4 x uint8 as round(q * 128 + 128), w first. View-dependent colour is dropped.

Every reader raises :class:`SceneFileError` with a readable message on a truncated or corrupt file,
and on values no renderer can draw (:func:`_check_values`): non-finite numbers, log scales beyond
+-:data:`MAX_ABS_LOG_SCALE`, zero quaternions.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from genstudio.core.scene.gaussians import SH_C0, Gaussians, rgb_to_sh_dc, sh_coeffs, sh_degree_of


class SceneFileError(ValueError):
    """A scene file that cannot be read: truncated, corrupt or of an unsupported layout."""


_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "<i2", "int16": "<i2",
              "ushort": "<u2", "uint16": "<u2", "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
              "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8"}
_MAX_HEADER = 1 << 16
# |log scale| limit: exp(30) ~ 1e13 and its square (a covariance entry) stay finite and nonzero in
# float32, while exp(1e30) is inf; real 3DGS scenes keep log scales within about [-15, 5].
MAX_ABS_LOG_SCALE = 30.0


def _check_values(name: str, count: int, columns: dict[str, torch.Tensor]) -> None:
    """Refuse what no renderer can draw, naming the field and how many rows: ``columns`` maps a
    field label (e.g. ``"x, y, z"``, ``"scale_0..2"``) to its (N, k) values; a label that starts
    with ``scale`` holds log scales (what .ply stores; .splat's linear scales go in as their log)
    and one with ``rot`` quaternions."""
    for label, t in columns.items():
        if not t.numel():
            continue
        bad = int((~torch.isfinite(t)).any(1).sum())
        if bad:
            raise SceneFileError(f"{name}: {bad} of {count} rows have NaN or infinite {label}")
        if label.startswith("scale"):
            bad = int((t.abs() > MAX_ABS_LOG_SCALE).any(1).sum())
            if bad:
                raise SceneFileError(f"{name}: {bad} of {count} rows have {label} beyond exp(+-{MAX_ABS_LOG_SCALE:g}) "
                                     f"(log scale beyond +-{MAX_ABS_LOG_SCALE:g}): such sizes overflow")
        if label.startswith("rot"):
            bad = int((t == 0).all(1).sum())
            if bad:
                raise SceneFileError(f"{name}: {bad} of {count} rows have an all-zero quaternion {label} "
                                     f"(no rotation; a valid one has a nonzero length)")


def _ply_fields(sh_degree: int) -> list[str]:
    n_rest = 3 * (sh_coeffs(sh_degree) - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(n_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def save_ply(path: str | os.PathLike, g: Gaussians) -> Path:
    """Write ``g`` as an INRIA 3DGS .ply (binary little-endian float32)."""
    g = g.detach().to("cpu", torch.float32)
    names = _ply_fields(g.sh_degree)
    rec = np.zeros(g.num, dtype=[(n, "<f4") for n in names])
    cols = {
        ("x", "y", "z"): g.means, ("f_dc_0", "f_dc_1", "f_dc_2"): g.sh_dc,
        ("opacity",): g.opacity_logits[:, None], ("scale_0", "scale_1", "scale_2"): g.log_scales,
        ("rot_0", "rot_1", "rot_2", "rot_3"): g.quats,
    }
    rest = g.sh_rest.transpose(1, 2).reshape(g.num, -1)  # (N, 3, K-1) flattened: channel-major
    cols[tuple(f"f_rest_{i}" for i in range(rest.shape[1]))] = rest
    for keys, t in cols.items():
        a = t.reshape(g.num, -1).numpy()
        for i, k in enumerate(keys):
            rec[k] = a[:, i]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {g.num}"]
    header += [f"property float {n}" for n in names] + ["end_header"]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(rec.tobytes())
    return p


def _parse_ply_header(data: bytes, name: str) -> tuple[int, np.dtype, int]:
    """(vertex count, vertex record dtype, offset of the vertex data)."""
    if not data.startswith(b"ply"):
        raise SceneFileError(f"{name} is not a PLY file (it does not start with 'ply')")
    end = data.find(b"end_header", 0, _MAX_HEADER)
    if end < 0:
        raise SceneFileError(f"{name}: PLY header has no end_header (truncated or corrupt)")
    nl = data.find(b"\n", end)
    if nl < 0:
        raise SceneFileError(f"{name}: PLY file ends inside its header")
    try:
        lines = data[:end].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise SceneFileError(f"{name}: PLY header is not ASCII text") from None
    fmt, count, props, element, first = None, None, [], None, True
    for line in lines[1:]:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            fmt = tok[1] if len(tok) > 1 else ""
        elif tok[0] == "element":
            if len(tok) != 3:
                raise SceneFileError(f"{name}: bad PLY line {line!r}")
            if element == "vertex":
                break  # elements after the vertices are not needed
            element = tok[1]
            if element != "vertex":
                if first:
                    raise SceneFileError(f"{name}: the first PLY element is {element!r}, not 'vertex'")
                continue
            first = False
            try:
                count = int(tok[2])
            except ValueError:
                raise SceneFileError(f"{name}: bad vertex count {tok[2]!r}") from None
        elif tok[0] == "property" and element == "vertex":
            if len(tok) < 3 or tok[1] == "list":
                raise SceneFileError(f"{name}: unsupported vertex property {line!r}")
            if tok[1] not in _PLY_TYPES:
                raise SceneFileError(f"{name}: unknown PLY type {tok[1]!r}")
            props.append((tok[2], _PLY_TYPES[tok[1]]))
    if fmt != "binary_little_endian":
        raise SceneFileError(f"{name}: PLY format {fmt!r} is not supported (only binary_little_endian)")
    if count is None or count < 0 or not props:
        raise SceneFileError(f"{name}: PLY file has no vertex element")
    try:
        dtype = np.dtype(props)
    except (TypeError, ValueError) as exc:
        raise SceneFileError(f"{name}: bad vertex properties ({exc})") from None
    return count, dtype, nl + 1


def load_ply(path: str | os.PathLike) -> Gaussians:
    """Read an INRIA 3DGS .ply (or a plain coloured point cloud) as Gaussians (float32, CPU)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise SceneFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    count, dtype, off = _parse_ply_header(data, p.name)
    need = count * dtype.itemsize
    if len(data) - off < need:
        raise SceneFileError(f"{p.name} is truncated: the header promises {count} vertices "
                             f"({need} bytes) but only {len(data) - off} bytes follow")
    rec = np.frombuffer(data, dtype=dtype, count=count, offset=off)
    names = set(dtype.names)

    def cols(keys: list[str]) -> torch.Tensor:
        missing = [k for k in keys if k not in names]
        if missing:
            raise SceneFileError(f"{p.name}: missing vertex properties {', '.join(missing)}")
        if not keys:
            return torch.zeros(count, 0)
        return torch.from_numpy(np.stack([rec[k].astype(np.float32) for k in keys], 1))

    means = cols(["x", "y", "z"])
    if not {"f_dc_0", "opacity", "scale_0", "rot_0"} <= names:  # a plain point cloud
        colors, checked = None, {"x, y, z": means}
        if {"red", "green", "blue"} <= names:
            colors = cols(["red", "green", "blue"])
            colors = checked["red, green, blue"] = colors / (255.0 if rec["red"].dtype.kind in "ui" else 1.0)
        if count == 0:
            raise SceneFileError(f"{p.name} holds no points")
        _check_values(p.name, count, checked)
        return Gaussians.create(means, colors, opacity=0.5)
    n_rest = sum(1 for k in names if k.startswith("f_rest_"))
    if n_rest % 3:
        raise SceneFileError(f"{p.name}: {n_rest} f_rest properties is not a multiple of 3")
    try:
        degree = sh_degree_of(n_rest // 3 + 1)
    except ValueError as exc:
        raise SceneFileError(f"{p.name}: {exc}") from None
    k = sh_coeffs(degree)
    rest = cols([f"f_rest_{i}" for i in range(n_rest)])
    scales, quats = cols(["scale_0", "scale_1", "scale_2"]), cols(["rot_0", "rot_1", "rot_2", "rot_3"])
    opacity, dc = cols(["opacity"]), cols(["f_dc_0", "f_dc_1", "f_dc_2"])
    _check_values(p.name, count, {"x, y, z": means, "scale_0..2": scales, "rot_0..3": quats, "opacity": opacity,
                                  "f_dc_0..2": dc, "f_rest_*": rest})
    return Gaussians(means, scales, quats, opacity[:, 0].contiguous(), dc,
                     rest.reshape(count, 3, k - 1).transpose(1, 2).contiguous())


SPLAT_DTYPE = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert SPLAT_DTYPE.itemsize == 32


def save_splat(path: str | os.PathLike, g: Gaussians, *, sort: bool = False) -> Path:
    """Write ``g`` as an antimatter15 .splat. ``sort`` orders splats by importance (size times
    opacity, largest first) as that project's converter does, so streaming viewers show the big
    ones first."""
    g = g.detach().to("cpu", torch.float32)
    if sort:
        imp = g.log_scales.sum(1).exp() * g.opacities
        g = g.subset(torch.argsort(imp, descending=True))
    rec = np.zeros(g.num, dtype=SPLAT_DTYPE)
    rec["pos"] = g.means.numpy()
    rec["scale"] = g.scales.numpy()
    rgba = torch.cat([SH_C0 * g.sh_dc + 0.5, g.opacities[:, None]], 1)
    rec["rgba"] = (rgba * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    q = torch.nn.functional.normalize(g.quats, dim=1)
    rec["rot"] = (q * 128 + 128).round().clamp(0, 255).to(torch.uint8).numpy()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(rec.tobytes())
    return p


def load_splat(path: str | os.PathLike) -> Gaussians:
    """Read an antimatter15 .splat as degree-0 Gaussians (float32, CPU)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise SceneFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    if not data:
        raise SceneFileError(f"{p.name} is empty")
    if len(data) % SPLAT_DTYPE.itemsize:
        raise SceneFileError(f"{p.name} is truncated or not a .splat file: {len(data)} bytes is not a "
                             f"multiple of {SPLAT_DTYPE.itemsize}")
    rec = np.frombuffer(data, dtype=SPLAT_DTYPE)
    pos = torch.from_numpy(rec["pos"].copy())
    scale = torch.from_numpy(rec["scale"].copy())
    bad = int((scale <= 0).any(1).sum())
    if bad:
        raise SceneFileError(f"{p.name}: {bad} of {len(rec)} rows have a zero or negative scale")
    q = (torch.from_numpy(rec["rot"].astype(np.float32)) - 128.0) / 128.0
    log_scale = torch.log(scale)
    _check_values(p.name, len(rec), {"position": pos, "scale": log_scale, "rotation": q})
    rgba = torch.from_numpy(rec["rgba"].astype(np.float32)) / 255.0
    a = rgba[:, 3].clamp(1e-6, 1 - 1e-6)
    return Gaussians(pos, log_scale, q / q.norm(dim=1, keepdim=True), torch.log(a / (1 - a)),
                     rgb_to_sh_dc(rgba[:, :3]), torch.zeros(len(rec), 0, 3))


def load_scene(path: str | os.PathLike) -> Gaussians:
    """Read a .ply or .splat by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        return load_ply(path)
    if suffix == ".splat":
        return load_splat(path)
    raise SceneFileError(f"unknown scene file type {suffix!r} (expected .ply or .splat)")


def save_scene(path: str | os.PathLike, g: Gaussians) -> Path:
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        return save_ply(path, g)
    if suffix == ".splat":
        return save_splat(path, g)
    raise SceneFileError(f"unknown scene file type {suffix!r} (expected .ply or .splat)")
