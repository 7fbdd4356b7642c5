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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

LATENT_READY = "latent_ready"  # event kind: data {"explorer": LatentExplorer, "token": int}
METHODS = ("pca", "tsne", "umap")


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
    """2-D layouts usable here: PCA always, t-SNE with scikit-learn, UMAP when ``umap`` imports."""
    out = ["pca"]
    try:
        import sklearn.manifold  # noqa: F401

        out.append("tsne")
    except ImportError:
        pass
    try:
        import umap  # noqa: F401

        out.append("umap")
    except ImportError:
        pass
    return out


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

