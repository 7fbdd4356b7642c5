"""Latent-space exploration without a GUI: encode a dataset's fixed reference set with a run's
model, lay the codes out in 2-D (PCA; t-SNE / UMAP when asked), cluster them, and build the
codes the latent explorer decodes (lerp / slerp paths, per-dimension traversals, PCA directions).

Codes are handled flattened, (N, d); ``LatentExplorer.decode`` reshapes them back, so a flow's
base-space code (same shape as an image) and a VAE's vector go through the same functions.
The explorer owns a *separate* model instance (loaded from the newest checkpoint), so decoding
never touches the one that trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from genstudio.core.imaging import _font, image_grid, readable_scale, scatter_image

LATENT_READY = "latent_ready"  # event kind: data {"explorer": LatentExplorer, "token": int}
METHODS = ("pca", "tsne", "umap")
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
THUMB = 72  # px: hover thumbnails


# -- linear algebra -----------------------------------------------------------------------------
@dataclass
class PCA:
    """Principal axes of a set of codes (numpy SVD; deterministic sign: largest loading positive)."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d) orthonormal rows
    std: np.ndarray  # (k,) standard deviation of the codes along each component
    explained: np.ndarray  # (k,) fraction of total variance

    def transform(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, np.float64) - self.mean) @ self.components.T

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, np.float64) @ self.components + self.mean


def fit_pca(codes: np.ndarray, k: int | None = None) -> PCA:
    """PCA with ``k`` components (default all that the data supports)."""
    z = np.asarray(codes, np.float64)
    n, d = z.shape
    k = min(k or d, d, max(n - 1, 1))
    mean = z.mean(0)
    _, s, vt = np.linalg.svd(z - mean, full_matrices=False)
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
    comps = comps * np.where(signs == 0, 1, signs)[:, None]
    var = s**2 / max(n - 1, 1)
    total = var.sum()
    return PCA(mean, comps, np.sqrt(var[:k]), var[:k] / total if total > 0 else np.zeros(k))


def available_methods() -> list[str]:
    """2-D layouts usable here: PCA always, t-SNE with scikit-learn, UMAP when ``umap`` is installed.
    Looked up, not imported: the latent panel asks at start-up and sklearn.manifold costs ~1 s."""
    from importlib.util import find_spec

    return ["pca"] + [m for m, pkg in (("tsne", "sklearn"), ("umap", "umap")) if find_spec(pkg) is not None]


def embed_2d(codes: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, d) codes -> (N, 2) map coordinates."""
    z = np.asarray(codes, np.float64)
    if method == "pca" or z.shape[1] <= 1:
        y = fit_pca(z, 2).transform(z)
        return y if y.shape[1] == 2 else np.concatenate([y, np.zeros((len(y), 1))], 1)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perp = float(min(30.0, max(2.0, (len(z) - 1) / 3)))
        return TSNE(2, perplexity=perp, init="pca", random_state=seed).fit_transform(z)
    if method == "umap":
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(z)
    raise ValueError(f"unknown map method {method!r}; choose from {', '.join(METHODS)}")


def kmeans(codes: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means of the codes: (labels (N,), centres (k, d))."""
    from sklearn.cluster import KMeans

    z = np.asarray(codes, np.float64)
    k = max(1, min(k, len(z)))
    km = KMeans(k, n_init=4, random_state=seed).fit(z)
    return km.labels_.astype(np.int64), km.cluster_centers_


def cluster_exemplars(codes: np.ndarray, labels: np.ndarray, centres: np.ndarray, per: int = 8) -> list[np.ndarray]:
    """For each cluster, the indices of its ``per`` members nearest the centre (its thumbnails)."""
    z = np.asarray(codes, np.float64)
    out = []
    for c, centre in enumerate(centres):
        idx = np.flatnonzero(labels == c)
        order = np.argsort(((z[idx] - centre) ** 2).sum(1))
        out.append(idx[order[:per]])
    return out


# -- paths and grids of codes -------------------------------------------------------------------
def lerp(z0: torch.Tensor, z1: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` codes on the straight line from z0 to z1 (both ends included)."""
    t = torch.linspace(0, 1, n, dtype=z0.dtype).reshape(n, *([1] * z0.dim()))
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, n: int, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation: along the great circle, with the norm interpolated linearly.
    Under a Gaussian prior, typical codes live near a shell; lerp's midpoints fall inside it."""
    a, b = z0.reshape(-1).double(), z1.reshape(-1).double()
    na, nb = a.norm(), b.norm()
    t = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
    if na < eps or nb < eps:
        return lerp(z0, z1, n)
    ua, ub = a / na, b / nb
    omega = torch.arccos((ua @ ub).clamp(-1, 1))
    if omega < 1e-4:  # (anti)parallel: lerp of the directions is exact enough
        dirs = (1 - t) * ua + t * ub
        dirs = dirs / dirs.norm(dim=1, keepdim=True).clamp_min(eps)
    else:
        so = torch.sin(omega)
        dirs = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    norms = (1 - t) * na + t * nb
    return (dirs * norms).to(z0.dtype).reshape(n, *z0.shape)


def traversal_grid(z: torch.Tensor, dims: list[int] | np.ndarray, values: torch.Tensor | np.ndarray,
                   scale: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """Row i varies dimension ``dims[i]`` of the base code ``z`` (d,) through ``values`` (times
    ``scale[dim]``, e.g. the code's std); returns (len(dims) * len(values), d), row-major."""
    vals = torch.as_tensor(np.asarray(values), dtype=z.dtype)
    s = torch.ones_like(z) if scale is None else torch.as_tensor(np.asarray(scale), dtype=z.dtype)
    out = z.reshape(1, 1, -1).repeat(len(dims), len(vals), 1)
    for r, d in enumerate(dims):
        out[r, :, d] = vals * s[d]
    return out.reshape(-1, z.numel())


def pca_direction_code(pca: PCA, coeffs: np.ndarray | list[float], base: np.ndarray | None = None) -> np.ndarray:
    """base (default: the mean code) + sum_i coeffs[i] * std_i * component_i: sliders in units of
    standard deviations along the principal directions."""
    c = np.zeros(len(pca.components))
    c[: len(coeffs)] = np.asarray(coeffs, np.float64)[: len(c)]
    b = pca.mean if base is None else np.asarray(base, np.float64)
    return b + (c * pca.std) @ pca.components


# -- which factor does each dimension track? ----------------------------------------------------
@dataclass
class FactorAssignment:
    factor: np.ndarray  # (d,) index of the factor each dimension tracks best (-1: inactive)
    score: np.ndarray  # (d,) normalised mutual information with it, in [0, 1]
    mi: np.ndarray  # (d, K) normalised MI: MI(z_i; f_j) / H(f_j)
    names: tuple[str, ...]

    def label(self, dim: int) -> str:
        j = int(self.factor[dim])
        return "inactive" if j < 0 else f"{self.names[j]} ({self.score[dim]:.2f})"


def assign_factors(codes: np.ndarray, factors: np.ndarray, names: tuple[str, ...] | list[str] = (),
                   bins: int = 20, min_std: float = 0.05) -> FactorAssignment:
    """Per code dimension, the factor with the largest mutual information normalised by the
    factor's entropy (as in MIG). Dimensions whose spread is under ``min_std`` times the widest
    are collapsed (a β-VAE switches unused ones off) and get -1."""
    from sklearn.metrics import mutual_info_score

    from genstudio.core.metrics.disentangle import mutual_info_matrix

    z = np.asarray(codes, np.float64)
    f = np.asarray(factors).astype(np.int64)
    ent = np.array([mutual_info_score(f[:, j], f[:, j]) for j in range(f.shape[1])])
    mi = mutual_info_matrix(z, f, bins) / np.maximum(ent, 1e-12)[None, :]
    mi[:, ent <= 0] = 0.0
    std = z.std(0)
    active = std > min_std * max(std.max(), 1e-12)
    best = mi.argmax(1)
    score = mi[np.arange(len(mi)), best]
    best = np.where(active, best, -1)
    score = np.where(active, score, 0.0)
    names = tuple(names) or tuple(f"factor {j}" for j in range(f.shape[1]))
    return FactorAssignment(best, score, mi, names)


# -- the explorer: a model, an encoded reference set and its map ---------------------------------
@dataclass
class LatentExplorer:
    """Everything the panel needs; ``decode`` runs the explorer's own model instance."""

    model: Any
    x: torch.Tensor  # (N, ...) the encoded examples
    codes: np.ndarray  # (N, d)
    code_shape: tuple[int, ...]  # one code's shape as encode() returns it
    embedding: np.ndarray  # (N, 2)
    method: str
    pca: PCA
    labels: np.ndarray | None = None
    factors: np.ndarray | None = None
    factor_names: tuple[str, ...] = ()
    clusters: np.ndarray | None = None
    centres: np.ndarray | None = None
    assignment: FactorAssignment | None = None
    density: DensityGrid | None = None  # 2-D models with log_prob: the learned density
    data_kind: str = "image"
    step: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    _tiles: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # size -> faint data picture

    @property
    def dim(self) -> int:
        return self.codes.shape[1]

    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(M, d) or (d,) flattened codes -> decoded samples on the CPU."""
        t = torch.as_tensor(np.asarray(z), dtype=torch.float32).reshape(-1, *self.code_shape)
        return self.model.decode(t).detach().float().cpu()

    def colour_keys(self) -> list[str]:
        """What the map can be coloured by."""
        keys = []
        if self.labels is not None:
            keys.append("label")
        keys += list(self.factor_names)
        if self.clusters is not None:
            keys.append("cluster")
        return keys

    def colour_values(self, key: str) -> np.ndarray | None:
        if key == "label":
            return self.labels
        if key == "cluster":
            return self.clusters
        if key in self.factor_names and self.factors is not None:
            return self.factors[:, self.factor_names.index(key)]
        return None

    def point_to_code(self, xy: tuple[float, float] | np.ndarray, k: int = 6) -> np.ndarray:
        """A code for any position in the map: exact on the PCA plane through the mean code;
        for t-SNE / UMAP (no inverse map) the inverse-distance blend of the k nearest codes."""
        p = np.asarray(xy, np.float64).reshape(2)
        if self.method == "pca":
            y = np.zeros(len(self.pca.components))
            y[: min(2, len(y))] = p[: min(2, len(y))]
            return self.pca.inverse_transform(y)
        d2 = ((self.embedding - p) ** 2).sum(1)
        idx = np.argsort(d2)[:k]
        w = 1.0 / (np.sqrt(d2[idx]) + 1e-6)
        return (w[:, None] * self.codes[idx]).sum(0) / w.sum()

    # -- the map <-> codes ----------------------------------------------------------------------
    @property
    def invertible(self) -> bool:
        """Whether a map position has a code of its own (PCA: a linear map; t-SNE/UMAP: none)."""
        return self.method == "pca"

    def nearest(self, xy: tuple[float, float] | np.ndarray, scale: tuple[float, float] | np.ndarray = (1.0, 1.0)
                ) -> tuple[int, float]:
        """(index, distance) of the map point nearest ``xy``; distances in units of ``scale`` per
        axis (the panel passes the size of a screen pixel, so the distance is in pixels)."""
        d = (self.embedding - np.asarray(xy, np.float64).reshape(2)) / np.asarray(scale, np.float64)
        d2 = (d**2).sum(1)
        i = int(np.argmin(d2))
        return i, float(np.sqrt(d2[i]))

    def project(self, z: np.ndarray, k: int = 6) -> np.ndarray:
        """(M, d) codes -> (M, 2) map positions: exact for PCA; for t-SNE/UMAP (no out-of-sample
        map) the inverse-distance blend of the map positions of the k nearest codes."""
        z = np.asarray(z, np.float64).reshape(-1, self.dim)
        if self.invertible:
            y = self.pca.transform(z)[:, :2]
            return y if y.shape[1] == 2 else np.concatenate([y, np.zeros((len(y), 1))], 1)
        d2 = np.maximum((z**2).sum(1)[:, None] + (self.codes**2).sum(1)[None] - 2 * z @ self.codes.T, 0.0)  # (M, N), no (M, N, d)
        idx = np.argsort(d2, 1)[:, :k]
        w = 1.0 / (np.sqrt(np.take_along_axis(d2, idx, 1)) + 1e-9)
        return (w[..., None] * self.embedding[idx]).sum(1) / w.sum(1, keepdims=True)

    def item_pick(self, i: int) -> MapPick:
        """Item ``i`` picked: its own code, at its dot."""
        return MapPick(self.codes[i].copy(), self.embedding[i].copy(), int(i), True, f"item #{i}: its own code")

    def pick(self, xy: tuple[float, float] | np.ndarray, hit: float = 0.0,
             scale: tuple[float, float] | np.ndarray = (1.0, 1.0)) -> MapPick:
        """What a click at ``xy`` decodes. Within ``hit`` (units of ``scale``) of a point: that
        item's code. Elsewhere on a PCA map: the nearest item's code moved along PC1/PC2 until it
        projects onto the click (its other PCA coordinates kept: the mean code of a VAE decodes a
        blur, a real item's remaining coordinates decode like data); a code of <= 2 dimensions is
        the clicked point exactly. t-SNE/UMAP have no inverse: the nearest item's code."""
        p = np.asarray(xy, np.float64).reshape(2)
        i, dist = self.nearest(p, scale)
        name = METHOD_NAMES.get(self.method, self.method)
        if dist <= hit:
            return self.item_pick(i)
        if not self.invertible:
            return MapPick(self.codes[i].copy(), self.embedding[i].copy(), i, False,
                           f"the nearest code, item #{i} ({name} has no inverse map)")
        k = min(2, len(self.pca.components))
        offset = (p - self.project(self.codes[i])[0])[:k]
        code = self.codes[i] + offset @ self.pca.components[:k]
        if self.dim <= k:
            what = f"the clicked point's own code (a {self.dim}-D code: the map is exact)"
        else:
            what = (f"the clicked point: item #{i}'s code moved along PC1/PC2 to it "
                    f"(its other {self.dim - k} PCA coordinates kept)")
        return MapPick(code, p.copy(), i, False, what)

    # -- pictures of items and decodes ------------------------------------------------------------
    def thumbnail(self, i: int, size: int = THUMB) -> np.ndarray:
        """Item ``i`` as a small (H, W, 3) uint8 picture: the image (whole-number upscaled to about
        ``size`` px), or for 2-D points a mini map of the data with the item marked."""
        if self.x.dim() == 4:
            return image_grid(self.x[i:i + 1], pad=0, scale=readable_scale(*self.x.shape[-2:], cell=size))
        if self.x.dim() == 2 and self.x.shape[1] == 2:
            return self.points_tile(self.x[i:i + 1].numpy(), size=size)
        raise ValueError(f"don't know how to draw items of shape {tuple(self.x.shape[1:])}")

    @property
    def lim(self) -> float:
        """Half-width of the square the 2-D data is drawn in."""
        return float(np.nanpercentile(np.abs(self.x.numpy()), 99.5)) * 1.1 if len(self.x) else 3.0

    def points_tile(self, marks: np.ndarray, path: np.ndarray | None = None, size: int = 128) -> np.ndarray:
        """The data (faint, drawn once per size and cached) with ``path`` (M, 2) as a line and
        ``marks`` (K, 2) as dots on top: one tile of a 2-D strip or a hover thumbnail."""
        base = self._tiles.get(size)
        if base is None:
            base = self._tiles[size] = scatter_image(self.x.numpy(), size=size, lim=self.lim,
                                                     color=(95, 98, 110), radius=max(0.8, size / 160))
        return _draw_points(base, self.lim, marks, path)

    def traversal(self, base: np.ndarray | None = None, dims: list[int] | None = None, n: int = 9,
                  span: float = 2.5, max_dims: int = 10) -> tuple[list[int], np.ndarray, torch.Tensor]:
        """Per-dimension traversal around ``base`` (default the mean code): ``n`` values from -span
        to +span std of each dimension. Default dims: the ``max_dims`` with the widest spread.
        Returns (dims, values, decoded (len(dims) * n, ...))."""
        std = self.codes.std(0)
        dims = list(dims) if dims is not None else [int(i) for i in np.argsort(-std)[:max_dims]]
        base = self.codes.mean(0) if base is None else np.asarray(base, np.float64)
        mean = self.codes.mean(0)
        values = np.linspace(-span, span, n)
        grid = traversal_grid(torch.as_tensor(base), dims, values, std).numpy()
        for r, d in enumerate(dims):  # centre each row on the dimension's mean, not on zero
            grid[r * n:(r + 1) * n, d] += mean[d]
        return dims, values, self.decode(grid)

    def row_label(self, dim: int) -> str:
        """A traversal row's label: the dimension, its spread and (sprites) the factor it tracks."""
        text = f"z{dim}  std {self.codes[:, dim].std():.2f}"
        return text + (f"\n-> {self.assignment.label(dim)}" if self.assignment is not None else "")

    def traversal_strip(self, n: int = 9, span: float = 2.5, max_dims: int = 10) -> tuple[list[int], Strip]:
        """:meth:`traversal` as a labelled :class:`Strip` (rows: dimensions, columns: values)."""
        dims, values, grid = self.traversal(n=n, span=span, max_dims=max_dims)
        return dims, Strip(grid, n, [self.row_label(d) for d in dims], [f"{v:+.1f}" for v in values],
                           f"traversal around the mean code (columns: standard deviations), step {self.step:,}", self)

    def interpolation_codes(self, a: np.ndarray, b: np.ndarray, n: int) -> dict[str, np.ndarray]:
        """``n`` codes from ``a`` to ``b`` (flattened) along the great circle and the straight line."""
        ta, tb = torch.as_tensor(np.asarray(a, np.float64)), torch.as_tensor(np.asarray(b, np.float64))
        return {"slerp": slerp(ta, tb, n).numpy(), "lerp": lerp(ta, tb, n).numpy()}


@dataclass
class MapPick:
    """What a click on the map decodes: ``code`` (d,) placed at ``xy`` on the map; ``index`` the
    item the click ``hit`` (its own code) or landed nearest to; ``what`` says which, in words."""

    code: np.ndarray
    xy: np.ndarray
    index: int
    hit: bool
    what: str


# -- labelled strips, grids and their animations ------------------------------------------------
LABEL_BG = (20, 22, 28)
TILE = 128  # px: one 2-D tile of a strip


def _draw_points(base: np.ndarray, lim: float, marks: np.ndarray, path: np.ndarray | None = None) -> np.ndarray:
    """A copy of the square picture ``base`` (covering [-lim, lim]^2) with a polyline ``path``
    (grey) and dots ``marks`` (orange, the last one with a white ring) drawn on it."""
    im = Image.fromarray(base)
    d = ImageDraw.Draw(im)
    size = base.shape[0]

    def px(p: np.ndarray) -> tuple[float, float]:
        return (float(p[0]) + lim) / (2 * lim) * (size - 1), (lim - float(p[1])) / (2 * lim) * (size - 1)

    if path is not None and len(path) > 1:
        d.line([px(p) for p in np.asarray(path, np.float64) if np.isfinite(p).all()], fill=(170, 170, 185), width=1)
    r = max(3.0, size / 24)
    for j, p in enumerate(np.asarray(marks, np.float64).reshape(-1, 2)):
        if np.isfinite(p).all():
            x, y = px(p)
            last = j == len(marks) - 1
            d.ellipse((x - r, y - r, x + r, y + r), fill=(255, 140, 66),
                      outline=(255, 255, 255) if last else None, width=1)
    return np.asarray(im)


def _text_size(text: str, size: int) -> tuple[int, int]:
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).multiline_textbbox((0, 0), text, font=_font(size))
    return box[2] - box[0], box[3] - box[1]


def _margins(row_labels: Any, col_labels: Any, title: str) -> tuple[int, int, int, int]:
    """(left, header, top, column label width) in px that :func:`labelled_grid` adds around the tiles."""
    left = max([_text_size(r, 13)[0] for r in row_labels if r] or [-8]) + 8 + (4 if row_labels else 0)
    head = max([_text_size(c, 12)[1] for c in col_labels if c] or [-6]) + 6 + (2 if col_labels else 0)
    col_w = max([_text_size(c, 12)[0] + 6 for c in col_labels] or [0])
    return left, head, 22 if title else 0, col_w


def labelled_grid(tiles: np.ndarray, ncol: int, row_labels: list[str] | tuple[str, ...] = (),
                  col_labels: list[str] | tuple[str, ...] = (), title: str = "", pad: int = 2,
                  min_col: int = 0) -> np.ndarray:
    """(N, H, W, 3) uint8 tiles as a grid of ``ncol`` columns (``image_grid``, each at least
    ``min_col`` px wide), each row's label on its left, column labels above, a title on top."""
    font, small = _font(13), _font(12)
    size = _text_size
    left, head, top, col_w = _margins(row_labels, col_labels, title)
    h, w = tiles.shape[1:3]
    wide = max(col_w, w, min_col)  # a column fits its label
    if wide > w:  # centre each tile in its wider column (the grid's gap colour around it)
        extra = wide - w
        tiles = np.pad(tiles, ((0, 0), (0, 0), (extra // 2, extra - extra // 2), (0, 0)), constant_values=40)
        w = wide
    t = torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2).float() / 127.5 - 1
    body = image_grid(t, ncol=ncol, pad=pad)
    width = max(left + body.shape[1], size(title, 13)[0] + 8 if title else 0)
    out = np.full((top + head + body.shape[0], width, 3), LABEL_BG, np.uint8)
    out[top + head:, left:left + body.shape[1]] = body
    im = Image.fromarray(out)
    d = ImageDraw.Draw(im)
    if title:
        d.text((4, 3), title, fill=(255, 255, 255), font=font)
    for r, text in enumerate(row_labels):
        th = size(text, 13)[1]
        y = top + head + pad + r * (h + pad) + (h - th) // 2
        d.multiline_text((4, y), text, fill=(225, 225, 235), font=font)
    for c, text in enumerate(col_labels):
        tw = size(text, 12)[0]
        x = left + pad + c * (w + pad) + (w - tw) // 2
        d.text((max(left, x), top + 2), text, fill=(190, 190, 200), font=small)
    return np.asarray(im)


@dataclass
class Strip:
    """Decodes as rows x columns with labels: an interpolation (rows slerp / lerp, columns A … B)
    or a traversal (a row per dimension, a column per value). :meth:`image` is the labelled
    picture the panel shows and exports; :meth:`frames` animates over the columns (GIF/MP4)."""

    decoded: torch.Tensor  # (rows * cols, ...) row-major: images (C, H, W) or 2-D points
    cols: int
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    title: str = ""
    explorer: LatentExplorer | None = None  # 2-D points: drawn over its data
    cell: int | None = None  # px per tile (images: the whole-number scale under it); None: readable (>= 64 px)

    @property
    def rows(self) -> int:
        return len(self.decoded) // self.cols

    def fit(self, width: int, height: int, pad: int = 2) -> Strip:
        """This strip with the largest ``cell`` whose labelled image fits ``width`` x ``height`` px
        (a panel shows it about 1:1, so its labels stay readable however many rows there are)."""
        left, head, top, col_w = _margins(self.row_labels, self.col_labels, self.title)
        cell = min((width - left - pad * (self.cols + 1)) // self.cols,
                   (height - top - head - pad * (self.rows + 1)) // max(self.rows, 1))
        return replace(self, cell=max(8, int(cell)))

    def _scale(self, h: int, w: int) -> int:
        return readable_scale(h, w) if self.cell is None else max(1, self.cell // max(h, w))

    def tiles(self) -> np.ndarray:
        """(rows * cols, H, W, 3) uint8: each image upscaled to a readable cell; each 2-D decode as
        the data with its row's path and the decode marked."""
        x = self.decoded.detach().float().cpu()
        if x.dim() == 4:
            s = self._scale(*x.shape[-2:])
            return np.stack([image_grid(x[i:i + 1], pad=0, scale=s) for i in range(len(x))])
        if x.dim() == 2 and x.shape[1] == 2:
            pts = x.numpy().reshape(self.rows, self.cols, 2)
            if self.explorer is not None:
                tile = self.explorer.points_tile
            else:  # no data to draw behind (the CLI): a plain plane around the points
                lim = max(2.5, 1.1 * float(np.nanmax(np.abs(pts)))) if np.isfinite(pts).any() else 3.0
                plain = scatter_image(np.zeros((0, 2)), size=TILE, lim=lim)

                def tile(marks: np.ndarray, path: np.ndarray | None = None, size: int = TILE) -> np.ndarray:
                    return _draw_points(plain, lim, marks, path)  # one size: the CLI never fits

            size = TILE if self.cell is None else max(48, self.cell)
            return np.stack([tile(pts[r, c:c + 1], pts[r], size=size) for r in range(self.rows)
                             for c in range(self.cols)])
        raise ValueError(f"don't know how to draw decodes of shape {tuple(x.shape[1:])}")

    def image(self) -> np.ndarray:
        return labelled_grid(self.tiles(), self.cols, self.row_labels, self.col_labels, self.title)

    def frames(self) -> list[np.ndarray]:
        """One frame per column: that column's decodes stacked, the row labels beside them, the
        column's label (and the title) on top; all frames the same size."""
        tiles = self.tiles()
        tiles = tiles.reshape(self.rows, self.cols, *tiles.shape[1:])
        names = self.col_labels or [""] * self.cols
        labels = [f"{names[c]}  ({c + 1}/{self.cols})" for c in range(self.cols)]
        wide = _margins((), labels, "")[3]  # every frame as wide as the widest label needs
        return [labelled_grid(tiles[:, c], 1, self.row_labels, [labels[c]], self.title, min_col=wide)
                for c in range(self.cols)]


def interpolation_labels(n: int) -> list[str]:
    """Column labels of an A -> B strip: A, t=…, B."""
    return ["A" if i == 0 else "B" if i == n - 1 else f"t={i / (n - 1):.2f}" for i in range(n)]


@dataclass
class DensityGrid:
    """exp(log p) of a 2-D model on a regular grid: ``p[i, j]`` at (xs[j], ys[i])."""

    xs: np.ndarray
    ys: np.ndarray
    p: np.ndarray

    @property
    def mass(self) -> float:
        """Riemann sum of the density over the grid (about 1 when the grid covers the mass)."""
        return float(self.p.sum() * (self.xs[1] - self.xs[0]) * (self.ys[1] - self.ys[0]))


@torch.no_grad()
def density_grid(log_prob: Any, lim: float, n: int = 160, batch: int = 8192) -> DensityGrid:
    """Evaluate a 2-D model's ``log_prob`` on an n x n grid over [-lim, lim]^2."""
    xs = np.linspace(-lim, lim, n)
    xx, yy = np.meshgrid(xs, xs)
    pts = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)
    lp = torch.cat([log_prob(c).detach().float().cpu() for c in pts.split(batch)])
    return DensityGrid(xs, xs.copy(), lp.exp().reshape(n, n).numpy().astype(np.float64))


class DDIMInversion:
    """The encode/decode face of a diffusion model that has none: encode = deterministic DDIM
    inversion (data -> noise), decode = DDIM with eta = 0 over the same times, so the explorer maps
    inverted noises. Works for every model with the Denoiser face (core.faces)."""

    def __init__(self, model: Any, steps: int = 20) -> None:
        self.model = model
        self.steps = len(model.denoise_times(int(steps))) - 1

    @staticmethod
    def supports(model: Any) -> bool:
        from genstudio.core.faces import Denoiser, has_face

        return has_face(model, Denoiser)

    def _check(self, cond: int | None) -> int | None:
        from genstudio.core.faces import Conditional, has_face

        if cond is not None and not has_face(self.model, Conditional):
            raise ValueError("this run is not class-conditional (it was trained without class labels)")
        return cond

    @torch.no_grad()
    def encode(self, x: torch.Tensor, cond: int | None = None) -> torch.Tensor:
        """Data -> noise; with ``cond`` along the ODE of that class (class-conditional runs)."""
        from genstudio.core.diffusion.denoiser import ddim_invert

        return ddim_invert(self.model, x.to(self.model.device), self.steps, self._check(cond))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, cond: int | None = None) -> torch.Tensor:
        """Noise -> data; decoding an inverted noise with another class than it was inverted with
        is class editing (the noise keeps the pose/style, the class changes)."""
        from genstudio.core.diffusion.denoiser import ddim_sample

        return ddim_sample(self.model, z.to(self.model.device), self.steps, self._check(cond))


def latent_face(model: Any) -> Any:
    """What the explorer encodes/decodes with: the model itself (VAEs, flows: base-space codes),
    DDIM inversion for the diffusion family, else None."""
    if callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None)):
        return model
    if DDIMInversion.supports(model):
        return DDIMInversion(model)
    return None


def _encode_all(model: Any, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.encode(x[i:i + batch]).detach().float().cpu() for i in range(0, len(x), batch)])


def explore(model: Any, dataset: Any, n: int = 1000, method: str = "pca", clusters: int = 8, seed: int = 0,
            step: int = 0) -> Iterator[str]:
    """Build a :class:`LatentExplorer` stage by stage; yields a stage name between the slow parts
    (so a job can be cancelled) and returns the explorer."""
    face = latent_face(model)
    if face is None:
        raise TypeError(f"{type(model).__name__} has no encode/decode (not a latent model)")
    model = face
    factors = names = None
    if hasattr(dataset, "fixed_with_factors"):
        from genstudio.core.data.sprites import FACTOR_NAMES

        x, y, f = dataset.fixed_with_factors(n, seed)
        factors, names = f.numpy(), tuple(FACTOR_NAMES)
    else:
        x, y = dataset.fixed(n, seed)
    yield "encoding"
    z = _encode_all(model, x)
    code_shape = tuple(z.shape[1:])
    codes = z.reshape(len(z), -1).double().numpy()
    yield "mapping"
    emb = embed_2d(codes, method, seed)
    pca = fit_pca(codes)
    labels_c = centres = None
    if clusters > 0:
        yield "clustering"
        labels_c, centres = kmeans(codes, clusters, seed)
    assignment = None
    if factors is not None:
        yield "factors"
        assignment = assign_factors(codes, factors, names)
    density = None
    if dataset.spec.modality.scatter2d and callable(getattr(model, "log_prob", None)):
        yield "density"
        lim = float(np.nanpercentile(np.abs(x.numpy()), 99.5)) * 1.3 if len(x) else 3.0
        density = density_grid(model.log_prob, lim)
    return LatentExplorer(model, x, codes, code_shape, emb, method, pca,
                          labels=y.numpy() if y is not None else None, factors=factors,
                          factor_names=names or (), clusters=labels_c, centres=centres, assignment=assignment, density=density,
                          data_kind=dataset.spec.kind, step=step)


def explore_run(run: Any, n: int = 1000, method: str = "pca", clusters: int = 8, seed: int = 0,
                device: str = "cpu") -> Iterator[str]:
    """:func:`explore` on a fresh instance of ``run``'s model from its newest checkpoint."""
    from genstudio.core.jobs import load_model

    yield "loading"
    model, ds, step = load_model(run, device)
    return (yield from explore(model, ds, n, method, clusters, seed, step))

