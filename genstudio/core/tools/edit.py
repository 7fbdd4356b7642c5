"""Image -> noise -> image with a diffusion model: DDIM inversion, reconstruction, and
interpolation between two noises, without a GUI (the Sampler panel and ``genstudio interp`` call
these).

Deterministic DDIM (eta = 0) is a discretised probability-flow ODE, so running it backwards maps a
data point to the noise it would have come from, and decoding that noise gives the point back up to
the discretisation error (small with enough steps). Two such noises can then be interpolated:
``slerp`` keeps the norm a Gaussian noise has (about sqrt(d)), while the straight line sags to
about sqrt(d / 2) halfway between two (near-orthogonal) noises, i.e. off the shell DDIM was trained
on, which is why the lerp strip washes out in the middle.

A start item is written as ``data:INDEX`` (an example of the run's dataset), ``seed:N`` (the first
``randn`` of ``model.generator(N)``, as sampling draws it) or a path to an image file (resized and
converted to the dataset's shape). Works with any model that has the Denoiser face (DDPM, score
SDEs, NCSN, flow matching); latent diffusion goes through its ``to_latent`` / ``to_image``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from genstudio.core.faces import Conditional, Denoiser, has_face
from genstudio.core.imaging import image_grid, scatter_image
from genstudio.core.latent import DDIMInversion, lerp, slerp

NEEDS_DDIM = "needs a DDIM-capable diffusion run (a model with the Denoiser face: DDPM, score SDE, NCSN, LDM, ...)"
DATA_REF = 1000  # procedural (2-D) datasets: data:i indexes this many points of the fixed reference set
CELL = 64  # image cells are upscaled to about this many pixels in the pictures


class EditUnsupported(ValueError):
    """The run's model cannot be inverted (not a DDIM-capable diffusion model)."""


# -- the encode/decode face ---------------------------------------------------------------------
class InversionFace:
    """DDIM inversion of ``model`` with ``steps`` steps; models that diffuse in a latent space
    (``to_latent`` / ``to_image``) are wrapped so encode takes and decode returns data.
    Class-conditional runs invert along class ``cond_in``'s ODE and decode with ``cond_out``
    (None = unconditional); a different ``cond_out`` is class editing."""

    def __init__(self, model: Any, steps: int = 50, cond_in: int | None = None,
                 cond_out: int | None = None) -> None:
        if not DDIMInversion.supports(model):
            raise EditUnsupported(f"{type(model).__name__}: {NEEDS_DDIM}")
        if (cond_in is not None or cond_out is not None) and not has_face(model, Conditional):
            raise EditUnsupported("a class needs a class-conditional run (trained with class labels)")
        self.model = model
        self.inv = DDIMInversion(model, steps)
        self.steps = self.inv.steps
        self.cond_in, self.cond_out = cond_in, cond_out
        self.latent = callable(getattr(model, "to_latent", None)) and callable(getattr(model, "to_image", None))

    @property
    def data_spec(self) -> Any:
        """The spec of what encode takes (the images for latent diffusion)."""
        return getattr(self.model, "image_spec", None) if self.latent else getattr(self.model, "data", None)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return tuple(self.model.data.shape)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        if self.latent:
            x = self.model.to_latent(x.to(self.model.device))
        return self.inv.encode(x, self.cond_in).detach().cpu()

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        x = self.inv.decode(z, self.cond_out)
        if self.latent:
            x = self.model.to_image(x)
        return x.detach().cpu()


def face_for(model: Any, steps: int = 50, cond_in: int | None = None, cond_out: int | None = None
             ) -> InversionFace:
    """The inversion face of ``model``; :class:`EditUnsupported` with a clear message otherwise."""
    if isinstance(model, InversionFace):
        return model
    return InversionFace(model, steps, cond_in, cond_out)


def supports(model: Any) -> bool:
    """Whether ``model`` (an instance, set up) can be inverted."""
    return DDIMInversion.supports(model)


def supports_class(cls: type) -> bool:
    """The same question about a plugin class, before building one (its methods, not its run)."""
    return issubclass(cls, Denoiser) if isinstance(cls, type) else False


# -- inversion and interpolation ----------------------------------------------------------------
class Reconstruction(NamedTuple):
    noise: Tensor  # (B, ...) the inverted noise
    recon: Tensor  # (B, ...) decode(noise)
    error: Tensor  # (B,) root-mean-square of recon - x0 per sample


def rms(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample root-mean-square difference (over all non-batch dims)."""
    d = (a.double() - b.double()).flatten(1)
    return d.pow(2).mean(1).sqrt()


def invert_reconstruct(model: Any, x0: Tensor, steps: int = 50) -> Reconstruction:
    """DDIM-invert ``x0`` (B, ...) and decode the noise again over the same timesteps."""
    face = face_for(model, steps)
    noise = face.encode(x0)
    recon = face.decode(noise)
    return Reconstruction(noise, recon, rms(recon, x0.cpu()))


def noise_path(z_a: Tensor, z_b: Tensor, frames: int, mode: str = "slerp") -> Tensor:
    """``frames`` noises from z_a to z_b (both one sample, any shape), ends included:
    (frames, *z_a.shape)."""
    if mode not in ("slerp", "lerp"):
        raise ValueError(f"unknown interpolation {mode!r} (slerp | lerp)")
    fn = slerp if mode == "slerp" else lerp
    return fn(z_a.reshape(z_a.shape), z_b.reshape(z_a.shape), max(2, int(frames)))


def interpolate_noises(model: Any, z_a: Tensor, z_b: Tensor, frames: int = 8, steps: int = 50,
                       mode: str = "slerp") -> Tensor:
    """Decode the ``frames`` noises of :func:`noise_path` (z_a, z_b: one noise each, with or
    without a leading batch dim of 1): (frames, *sample shape)."""
    face = face_for(model, steps)
    shape = face.noise_shape
    path = noise_path(z_a.reshape(shape), z_b.reshape(shape), frames, mode)
    return face.decode(path)


# -- start items --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemSpec:
    kind: str  # "data" | "seed" | "file"
    value: int | str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}" if self.kind != "file" else Path(str(self.value)).name


def parse_item(spec: str) -> ItemSpec:
    """``data:12`` | ``seed:3`` | ``path/to.png`` (or ``file:path``) -> :class:`ItemSpec`."""
    s = str(spec).strip()
    kind, sep, rest = s.partition(":")
    if sep and kind in ("data", "seed"):
        try:
            v = int(rest)
        except ValueError:
            raise ValueError(f"bad item {spec!r}: {kind}: needs a whole number, e.g. {kind}:3") from None
        if v < 0:
            raise ValueError(f"bad item {spec!r}: the number must be >= 0")
        return ItemSpec(kind, v)
    if sep and kind == "file":
        s = rest
    if not s:
        raise ValueError("empty item: use data:INDEX, seed:N or an image file")
    if not Path(s).is_file():
        raise ValueError(f"bad item {spec!r}: not data:INDEX, seed:N or an existing image file")
    return ItemSpec("file", s)


def seed_noise(model: Any, seed: int, n: int = 1) -> Tensor:
    """The first ``randn`` of ``model.generator(seed)``: the x_T the plugin's sampler starts from."""
    g = model.generator(seed)
    return torch.randn((n, *model.data.shape), generator=g, device=model.device).cpu()


def dataset_size(dataset: Any) -> int:
    """How many examples ``data:i`` can index."""
    x = getattr(dataset, "x", None)
    return len(x) if isinstance(x, Tensor) else DATA_REF


def dataset_item(dataset: Any, index: int) -> Tensor:
    """Example ``index`` (1, ...): stored datasets by position, procedural ones from their fixed
    reference set (the same points every call)."""
    n = dataset_size(dataset)
    if not 0 <= index < n:
        raise ValueError(f"data:{index} is out of range: the dataset has {n} examples (0..{n - 1})")
    x = getattr(dataset, "x", None)
    if isinstance(x, Tensor):
        return x[index:index + 1].clone()
    return dataset.fixed(DATA_REF, seed=0)[0][index:index + 1].clone()


def load_image(path: str | Path, shape: tuple[int, ...]) -> Tensor:
    """An image file as one sample of an image dataset of ``shape`` (C, H, W) in [-1, 1]:
    converted to grey or RGB and resized (pillow)."""
    from PIL import Image, UnidentifiedImageError

    from genstudio.core.data.images import read_image

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ValueError(f"image files need an image dataset (1 or 3 channels), not shape {tuple(shape)}")
    c, h, w = shape
    try:  # read_image: the pixel limit and 16-bit greyscale (ImageFileError is a ValueError already)
        im = read_image(path, "L" if c == 1 else "RGB").resize((w, h), Image.Resampling.LANCZOS)
        a = np.asarray(im, np.float32) / 127.5 - 1.0
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    a = a[None] if c == 1 else a.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a))[None]


@dataclass
class Item:
    """A resolved start: its data-space sample, and the exact noise for a seed."""

    label: str
    x0: Tensor  # (1, ...) data (a seed's: its noise decoded)
    noise: Tensor | None = None  # (1, ...) a seed's exact noise


def resolve_item(model: Any, dataset: Any, spec: str | ItemSpec, steps: int = 50) -> Item:
    """Turn an item spec into data-space input for the run's model."""
    face = face_for(model, steps)
    it = spec if isinstance(spec, ItemSpec) else parse_item(spec)
    if it.kind == "seed":
        z = seed_noise(face.model, int(it.value))
        return Item(str(it), face.decode(z), z)
    if it.kind == "data":
        return Item(str(it), dataset_item(dataset, int(it.value)).float())
    return Item(str(it), load_image(str(it.value), tuple(face.data_spec.shape)))


# -- the whole A/B edit ---------------------------------------------------------------------------
@dataclass
class EditResult:
    """What the panel shows and the CLI writes: A and B inverted and reconstructed, then the slerp
    and lerp strips between their noises (a seed's own noise, a data item's inverted one)."""

    labels: tuple[str, str]
    x0: Tensor  # (2, ...) A, B in data space
    noise: Tensor  # (2, ...) their inverted noises
    recon: Tensor  # (2, ...)
    error: Tensor  # (2,) RMS reconstruction error
    z: Tensor  # (2, ...) the interpolation ends
    slerp: Tensor  # (frames, ...) decoded
    lerp: Tensor  # (frames, ...) decoded
    slerp_norm: np.ndarray  # (frames,) noise norms along each path
    lerp_norm: np.ndarray
    steps: int = 50
    kind: str = "image"  # "image" | "points2d" | other: how to draw it
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return len(self.slerp)

    def summary(self) -> str:
        cin, cout = self.meta.get("cond_in"), self.meta.get("cond_out")
        classes = "" if cin is None and cout is None else (
            f", inverted as {'unconditional' if cin is None else f'class {cin}'}, decoded as "
            f"{'unconditional' if cout is None else f'class {cout}'}")
        what = "reconstruction" if cin == cout else "edit (decoded with another class)"
        return (f"{what} RMS error  A ({self.labels[0]}) {float(self.error[0]):.4g}  "
                f"B ({self.labels[1]}) {float(self.error[1]):.4g}  ({self.steps} DDIM steps{classes})")


def edit_pair(model: Any, dataset: Any, a: str | ItemSpec, b: str | ItemSpec, frames: int = 8,
              steps: int = 50, interpolate: bool = True, check: Callable[[], None] | None = None,
              cond_in: int | None = None, cond_out: int | None = None,
              progress: Callable[[str, int, int], None] | None = None) -> EditResult:
    """Invert A and B (one batch), reconstruct them and (``interpolate``) decode the slerp and lerp
    strips between their noises. ``check`` is called between the stages (a job's
    ``Control.check``, so Stop takes effect without waiting for the end). Class-conditional runs:
    invert as class ``cond_in`` and decode (reconstructions, seeds, strips) as ``cond_out``.
    ``progress(stage, done, total)`` is called as each stage starts (a progress line)."""
    check = check or (lambda: None)
    stages = ["loading A and B", "inverting A and B", "reconstructing A and B",
              *(("decoding the slerp strip", "decoding the lerp strip") if interpolate else ())]

    def stage(i: int) -> None:
        if progress is not None:
            progress(stages[i], i, len(stages))

    face = face_for(model, steps, cond_in, cond_out)
    stage(0)
    ia, ib = resolve_item(face, dataset, a, steps), resolve_item(face, dataset, b, steps)
    check()
    x0 = torch.cat([ia.x0, ib.x0])
    stage(1)
    noise = face.encode(x0)  # as invert_reconstruct, in two stages
    stage(2)
    recon = face.decode(noise)
    err = rms(recon, x0.cpu())
    z = torch.stack([it.noise[0] if it.noise is not None else noise[i] for i, it in enumerate((ia, ib))])
    frames = max(2, int(frames))
    paths = {m: noise_path(z[0], z[1], frames, m) for m in ("slerp", "lerp")}
    decoded = {}
    for j, (m, p) in enumerate(paths.items()):
        check()
        if interpolate:
            stage(3 + j)
        decoded[m] = face.decode(p) if interpolate else torch.empty(0)
    if progress is not None:
        progress("done", len(stages), len(stages))
    norms = {m: p.flatten(1).double().norm(dim=1).numpy() for m, p in paths.items()}
    spec = face.data_spec
    return EditResult((ia.label, ib.label), x0, noise, recon, err, z, decoded["slerp"], decoded["lerp"],
                      norms["slerp"], norms["lerp"], face.steps, getattr(spec, "kind", "image"),
                      {"cond_in": face.cond_in, "cond_out": face.cond_out})


# -- pictures -------------------------------------------------------------------------------------
def _scale_for(h: int) -> int:
    return max(1, CELL // max(h, 1))


def _noise_for_display(z: Tensor) -> Tensor:
    """Unit noise shown as an image: +-2.5 sigma mapped to the [-1, 1] display range."""
    return (z / 2.5).clamp(-1, 1)


def _noise_cells(z: Tensor, like: Tensor) -> Tensor:
    """Noises drawn in cells of ``like``'s image shape; a latent vector (latent diffusion) as a
    square of its entries, nearest-neighbour enlarged, row-major."""
    if z.shape == like.shape:
        return _noise_for_display(z)
    flat = z.flatten(1)
    k = math.ceil(math.sqrt(flat.shape[1]))
    sq = torch.nn.functional.pad(flat, (0, k * k - flat.shape[1])).reshape(-1, 1, k, k)
    cells = torch.nn.functional.interpolate(sq.float(), size=like.shape[-2:], mode="nearest")
    return _noise_for_display(cells).expand(-1, like.shape[1], -1, -1)


def _is_images(t: Tensor) -> bool:
    return t.dim() == 4 and t.shape[1] in (1, 3)


def inversion_image(res: EditResult) -> np.ndarray:
    """Rows A and B: x0 | inverted noise | reconstruction (images), or, for 2-D points, one plane
    with each x0 (blue ring) joined to its inverted noise (grey dot) and its reconstruction
    (orange dot, inside the ring when the round trip is good)."""
    if _is_images(res.x0):
        cols = [res.x0, _noise_cells(res.noise, res.x0), res.recon]
        rows = torch.stack(cols, 1).flatten(0, 1)  # A x0, A noise, A recon, B ...
        return image_grid(rows, ncol=3, pad=2, scale=_scale_for(res.x0.shape[-2]))
    if res.x0.dim() == 2 and res.x0.shape[1] == 2:
        return _plane([(res.noise, (170, 170, 170), 3, False), (res.x0, (77, 166, 255), 7, True),
                       (res.recon, (255, 140, 66), 3, False)], _plane_lim(res),
                      lines=[(res.x0[i], res.noise[i]) for i in range(2)], labels=res.x0)
    raise ValueError(f"don't know how to draw samples of shape {tuple(res.x0.shape[1:])}")


def interpolation_image(res: EditResult) -> np.ndarray:
    """Top row the slerp strip, bottom row the lerp strip (images), or for 2-D points both decoded
    paths in the data plane (slerp blue, lerp orange, A and B as rings)."""
    if res.slerp.numel() == 0:
        raise ValueError("nothing interpolated yet")
    if _is_images(res.slerp):
        both = torch.cat([res.slerp, res.lerp])
        return image_grid(both, ncol=len(res.slerp), pad=2, scale=_scale_for(res.slerp.shape[-2]))
    if res.slerp.dim() == 2 and res.slerp.shape[1] == 2:
        return _plane([(res.x0, (240, 240, 240), 7, True), (res.lerp, (255, 140, 66), 3, False),
                       (res.slerp, (77, 166, 255), 3, False)], _plane_lim(res),
                      paths=[(res.lerp, (255, 140, 66)), (res.slerp, (77, 166, 255))], labels=res.x0)
    raise ValueError(f"don't know how to draw samples of shape {tuple(res.slerp.shape[1:])}")


def edit_image(res: EditResult) -> np.ndarray:
    """Inversion picture above the interpolation picture (what Export PNG and the CLI write)."""
    parts = [inversion_image(res)]
    if res.slerp.numel():
        parts.append(interpolation_image(res))
    w = max(p.shape[1] for p in parts)
    gap = np.full((6, w, 3), 40, np.uint8)
    rows = []
    for i, p in enumerate(parts):
        if p.shape[1] < w:
            p = np.concatenate([p, np.full((p.shape[0], w - p.shape[1], 3), 40, np.uint8)], 1)
        rows += [gap, p] if i else [p]
    return np.concatenate(rows, 0)


def _plane_lim(res: EditResult) -> float:
    """One half-width for both 2-D pictures (so A and B sit at the same place in each)."""
    pts = torch.cat([t.detach().double().reshape(-1, 2) for t in (res.x0, res.noise, res.recon, res.slerp, res.lerp)
                     if t.numel()]).numpy()
    pts = pts[np.isfinite(pts).all(1)]
    return max(2.5, 1.1 * float(np.abs(pts).max())) if len(pts) else 3.0


def _plane(groups: list[tuple[Tensor, tuple[int, int, int], int, bool]], lim: float,
           lines: list[tuple[Tensor, Tensor]] = (), paths: list[tuple[Tensor, tuple[int, int, int]]] = (),
           labels: Tensor | None = None, size: int = 320) -> np.ndarray:
    """2-D points in [-lim, lim]^2 on a dark square (axes through 0): groups of (points, colour,
    radius, ring?), grey segments ``lines``, coloured polylines ``paths``, and "A", "B" written next
    to the two points of ``labels``."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(scatter_image(np.zeros((0, 2)), size=size, lim=lim))
    d = ImageDraw.Draw(im)

    def px(p: Tensor) -> tuple[float, float]:
        x, y = (float(v) for v in p)
        return (x + lim) / (2 * lim) * (size - 1), (lim - y) / (2 * lim) * (size - 1)

    for p, q in lines:
        d.line([px(p), px(q)], fill=(120, 120, 130), width=1)
    for path, colour in paths:
        d.line([px(p) for p in path.detach().double().reshape(-1, 2)], fill=colour, width=1)
    for pts, colour, r, ring in groups:
        for q in pts.detach().double().reshape(-1, 2):
            x, y = px(q)
            box = (x - r, y - r, x + r, y + r)
            d.ellipse(box, outline=colour, width=2) if ring else d.ellipse(box, fill=colour)
    if labels is not None:
        for name, q in zip("AB", labels.detach().double().reshape(-1, 2)):
            x, y = px(q)
            d.text((x + 9, y - 16), name, fill=(240, 240, 240))
    return np.asarray(im)
