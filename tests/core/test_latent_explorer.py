"""Latent explorer maths: slerp/lerp against closed forms, PCA round trips, traversal layout,
factor assignment on a synthetic perfect code, and explore() end to end on a small VAE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genstudio.core import latent as L
from genstudio.core.data import get_dataset


def test_slerp_endpoints_norms_and_angles():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, generator=g) * 2, torch.randn(16, generator=g)
    path = L.slerp(a, b, 7)
    assert path.shape == (7, 16)
    torch.testing.assert_close(path[0], a, atol=1e-5, rtol=0)
    torch.testing.assert_close(path[-1], b, atol=1e-5, rtol=0)
    # norms interpolate linearly; directions move at constant angular speed on the great circle
    t = torch.linspace(0, 1, 7)
    torch.testing.assert_close(path.norm(dim=1), (1 - t) * a.norm() + t * b.norm(), atol=1e-4, rtol=0)
    u = path / path.norm(dim=1, keepdim=True)
    steps = torch.arccos((u[1:] * u[:-1]).sum(1).clamp(-1, 1))
    omega = torch.arccos((a / a.norm()) @ (b / b.norm()))
    torch.testing.assert_close(steps, torch.full((6,), float(omega) / 6), atol=1e-4, rtol=0)
    # and all directions stay in the plane of a and b
    basis, _ = torch.linalg.qr(torch.stack([a, b], 1))
    torch.testing.assert_close(path - path @ basis @ basis.T, torch.zeros_like(path), atol=1e-4, rtol=0)


def test_slerp_parallel_and_lerp_shapes():
    a = torch.tensor([1.0, 0.0, 0.0])
    path = L.slerp(a, 3 * a, 5)
    torch.testing.assert_close(path, L.lerp(a, 3 * a, 5))
    img = torch.randn(1, 4, 4)
    assert L.lerp(img, -img, 3).shape == (3, 1, 4, 4)
    torch.testing.assert_close(L.lerp(img, -img, 3)[1], torch.zeros_like(img))
    assert L.slerp(img, torch.randn(1, 4, 4), 4).shape == (4, 1, 4, 4)


def test_pca_reconstructs_a_rank2_code_exactly():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 10))
    codes = rng.normal(size=(200, 2)) @ basis + rng.normal(size=10)
    pca = L.fit_pca(codes, 2)
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(codes)), codes, atol=1e-9)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(pca.explained.sum(), 1.0, atol=1e-9)
    # the std along each component is the std of the projected codes
    np.testing.assert_allclose(pca.std, pca.transform(codes).std(0, ddof=1), rtol=1e-9)
    # a PCA-direction code one std along component 0 is the mean plus that vector
    np.testing.assert_allclose(L.pca_direction_code(pca, [1.0]), pca.mean + pca.std[0] * pca.components[0])


def test_traversal_grid_layout():
    z = torch.arange(5, dtype=torch.float64)
    vals = np.array([-1.0, 0.0, 1.0])
    scale = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    grid = L.traversal_grid(z, [1, 3], vals, scale)
    assert grid.shape == (6, 5)
    rows = grid.reshape(2, 3, 5)
    torch.testing.assert_close(rows[0, :, 1], torch.tensor([-2.0, 0.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(rows[1, :, 3], torch.tensor([-4.0, 0.0, 4.0], dtype=torch.float64))
    keep = [0, 2, 4]
    assert (rows[:, :, keep] == z[keep]).all()  # other dimensions untouched


def test_factor_assignment_recovers_a_permuted_perfect_code():
    rng = np.random.default_rng(0)
    n = 3000
    factors = np.stack([rng.integers(0, k, n) for k in (3, 6, 10, 8)], 1)
    perm = [2, 0, 3, 1]  # code dim i = factor perm[i]
    codes = factors[:, perm] + 0.01 * rng.normal(size=(n, 4))
    codes = np.concatenate([codes, 1e-4 * rng.normal(size=(n, 1))], 1)  # one collapsed dimension
    a = L.assign_factors(codes, factors, ("a", "b", "c", "d"))
    assert a.factor.tolist() == [*perm, -1]
    assert (a.score[:4] > 0.95).all()
    assert a.label(0).startswith("c (")
    assert a.label(4) == "inactive"
    # a random code tracks nothing much
    r = L.assign_factors(rng.normal(size=(n, 4)), factors)
    assert r.score.max() < 0.1


def test_embed_and_kmeans_and_point_to_code():
    rng = np.random.default_rng(1)
    centres = np.array([[5.0, 0, 0], [-5.0, 0, 0], [0, 5.0, 0]])
    codes = np.concatenate([c + 0.3 * rng.normal(size=(50, 3)) for c in centres])
    labels, found = L.kmeans(codes, 3)
    truth = np.repeat(np.arange(3), 50)
    # each true blob maps to one cluster
    assert all(len(set(labels[truth == i])) == 1 for i in range(3))
    ex = L.cluster_exemplars(codes, labels, found, per=5)
    assert [len(e) for e in ex] == [5, 5, 5]
    emb = L.embed_2d(codes, "pca")
    assert emb.shape == (150, 2)
    assert "pca" in L.available_methods()
    with pytest.raises(ValueError):
        L.embed_2d(codes, "nope")


def test_explore_on_a_tiny_vae_end_to_end():
    from genstudio_plugins.vae import VAEConfig, VAEPlugin

    torch.manual_seed(0)
    ds = get_dataset("digits")
    model = VAEPlugin(VAEConfig(batch_size=32, latent_dim=3, hidden=32, depth=1), "cpu")
    model.setup(ds.spec)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 31):  # untrained, the zero-initialised head maps everything to one code
        model.train_step(ds.batch(32, g)[0], None, step)
    gen = L.explore(model, ds, n=120, method="pca", clusters=4)
    stages = []
    try:
        while True:
            stages.append(next(gen))
    except StopIteration as stop:
        ex = stop.value
    assert stages == ["encoding", "mapping", "clustering"]
    assert ex.codes.shape == (120, 3) and ex.embedding.shape == (120, 2)
    assert ex.colour_keys() == ["label", "cluster"]
    # PCA map coordinates of a 3-D code -> the code's projection onto the top-2 plane
    z = ex.point_to_code(ex.embedding[0])
    np.testing.assert_allclose(ex.pca.transform(z)[:2], ex.embedding[0], atol=1e-8)
    out = ex.decode(ex.codes[:4])
    assert out.shape == (4, 1, 8, 8)
    torch.testing.assert_close(out, model.decode(torch.as_tensor(ex.codes[:4], dtype=torch.float32)))
    dims, values, grid = ex.traversal(n=5)
    assert len(dims) == 3 and grid.shape == (15, 1, 8, 8)


def test_ddim_inversion_face_for_diffusion_models():
    """A DDPM has no encode/decode: the explorer inverts DDIM. decode(z) is exactly the plugin's own
    DDIM sampler (eta = 0, same timesteps) from noise z, and decode(encode(x)) comes back near x."""
    from genstudio_plugins.ddpm import DDPMConfig, DDPMPlugin

    from genstudio.core.plugin import final_state

    torch.manual_seed(0)
    ds = get_dataset("8gaussians")
    model = DDPMPlugin(DDPMConfig.tiny(), "cpu")
    model.setup(ds.spec)
    face = L.latent_face(model)
    assert isinstance(face, L.DDIMInversion)
    z = torch.randn((16, 2), generator=model.generator(3))
    want = final_state(model.sample(16, seed=3, sampler="ddim", steps=20, eta=0.0)).x
    torch.testing.assert_close(face.decode(z), want)
    x, _ = ds.fixed(64)
    err = (face.decode(face.encode(x)) - x).norm(dim=1)
    assert err.median() < 0.2 * x.norm(dim=1).median()
    assert L.latent_face(object()) is None


def test_density_grid_of_a_known_gaussian():
    """A standard 2-D Gaussian's log-density on [-6, 6]^2: the grid holds mass 1 and the peak."""

    def log_prob(x):
        return -0.5 * (x**2).sum(1) - np.log(2 * np.pi)

    d = L.density_grid(log_prob, lim=6.0, n=121)
    assert d.p.shape == (121, 121)
    assert abs(d.mass - 1) < 1e-3
    assert abs(d.p.max() - 1 / (2 * np.pi)) < 1e-6
    # rows are y, columns x: an x-shifted density peaks in a column, not a row
    shifted = L.density_grid(lambda x: log_prob(x - torch.tensor([2.0, 0.0])), lim=6.0, n=121)
    i, j = np.unravel_index(shifted.p.argmax(), shifted.p.shape)
    assert (shifted.ys[i], shifted.xs[j]) == (0.0, 2.0)


# -- the map <-> codes, pictures and exports --------------------------------------------------------
class _Identity:
    """A 'model' whose code is the sample: decode(z) = z, so a pick's code is what is decoded."""

    def decode(self, z):
        return z


def _explorer(codes: np.ndarray, method: str = "pca", x: torch.Tensor | None = None) -> L.LatentExplorer:
    emb = L.embed_2d(codes, "pca") if method == "pca" else codes[:, :2] * 3.0  # any layout for t-SNE
    x = torch.as_tensor(codes, dtype=torch.float32) if x is None else x
    return L.LatentExplorer(_Identity(), x, codes, (codes.shape[1],), emb, method, L.fit_pca(codes))


def test_a_click_on_empty_pca_map_decodes_the_clicked_point():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(300, 6)) * np.array([3, 2, 1, 0.5, 0.5, 0.2])
    ex = _explorer(codes)
    np.testing.assert_allclose(ex.project(codes), ex.embedding, atol=1e-9)  # one projection
    xy = np.array([0.37, -1.1])
    p = ex.pick(xy, hit=0.01)
    assert not p.hit and "moved along PC1/PC2" in p.what
    np.testing.assert_allclose(ex.project(p.code)[0], xy, atol=1e-9)  # it sits where the click was
    i, _ = ex.nearest(xy)
    assert p.index == i
    rest = slice(2, None)  # the nearest item's other PCA coordinates are kept
    np.testing.assert_allclose(ex.pca.transform(p.code)[rest], ex.pca.transform(codes[i])[rest], atol=1e-9)
    # within the hit radius of a dot: exactly that item's code
    h = ex.pick(ex.embedding[17] + 1e-4, hit=0.01)
    assert h.hit and h.index == 17 and np.array_equal(h.code, codes[17])
    # distances in screen pixels: a wide pixel in x makes a far-looking dot near
    two = _explorer(codes[:2])
    j, d = two.nearest(two.embedding[1] + [0.5, 0.0], scale=(10.0, 1.0))
    assert j == 1 and d == pytest.approx(0.05)


def test_two_d_codes_are_exact_and_tsne_maps_decode_the_nearest_code():
    rng = np.random.default_rng(1)
    codes2 = rng.normal(size=(100, 2))
    ex = _explorer(codes2)
    p = ex.pick((0.3, 2.5))
    assert "exact" in p.what
    np.testing.assert_allclose(ex.project(p.code)[0], (0.3, 2.5), atol=1e-9)
    tsne = _explorer(rng.normal(size=(100, 4)), method="tsne")
    assert not tsne.invertible
    q = tsne.pick((0.1, 0.2))
    assert not q.hit and np.array_equal(q.code, tsne.codes[q.index]) and "no inverse" in q.what
    # codes of a path land between the map positions of their nearest codes
    xy = tsne.project(tsne.codes[:3])
    np.testing.assert_allclose(xy, tsne.embedding[:3], atol=1e-6)


def test_labelled_grid_puts_row_labels_left_of_their_rows():
    tiles = np.full((6, 20, 20, 3), 200, np.uint8)
    plain = L.labelled_grid(tiles, 3)
    assert plain.shape == (2 * 22 + 2, 3 * 22 + 2, 3)  # image_grid's layout, 2-px gaps
    img = L.labelled_grid(tiles, 3, ["first row", "second"], ["A", "t=0.50", "B"], "title")
    left = img.shape[1] - plain.shape[1]
    assert left > 40  # a label column on the left ...
    assert img.shape[0] > plain.shape[0] + 20  # ... and a header and title on top, nothing under
    text = img[-plain.shape[0]:, :left].astype(int)
    assert (text.max(2) > 150).any()  # text pixels beside the rows
    bottom_rows = img[-plain.shape[0] // 2:, :left]
    assert (bottom_rows.max(2) > 150).any()  # the second row's label sits beside the second row


def test_strip_image_and_frames_for_images_and_points():
    x = torch.rand(2 * 5, 1, 8, 8) * 2 - 1
    s = L.Strip(x, 5, ["slerp", "lerp"], L.interpolation_labels(5), "A -> B")
    assert s.rows == 2 and L.interpolation_labels(3) == ["A", "t=0.50", "B"]
    assert s.tiles().shape == (10, 64, 64, 3)  # 8-px digits upscaled to 64 px
    frames = s.frames()
    assert len(frames) == 5 and len({f.shape for f in frames}) == 1
    assert frames[0].shape[0] > 2 * 64 and frames[0].shape[1] < s.image().shape[1]
    fitted = s.fit(300, 200)
    small = fitted.image()
    assert small.shape[0] <= 200 and small.shape[1] <= 300 and fitted.cell < 64
    pts = torch.randn(3 * 4, 2)
    ex = _explorer(np.random.default_rng(2).normal(size=(50, 2)))
    ps = L.Strip(pts, 4, ["a", "b", "c"], explorer=ex)
    assert ps.tiles().shape == (12, L.TILE, L.TILE, 3)
    assert ex.thumbnail(3).shape == (L.THUMB, L.THUMB, 3)
    assert L.Strip(pts, 4).tiles().shape == (12, L.TILE, L.TILE, 3)  # without data behind (the CLI)


def test_cli_interp_writes_gif_and_mp4(tmp_path, capsys):
    import imageio.v2 as iio

    from genstudio.cli import main
    from genstudio.core import jobs
    from genstudio.core.runs import RunStore

    run = jobs.create_run(RunStore(tmp_path / "data"), jobs.TrainSpec(
        "ddpm", "8gaussians", steps=3, checkpoint_every=3, sample_every=0,
        overrides=["timesteps=20", "hidden=16", "depth=1"]))
    for _ in jobs.train(run):
        pass
    for suffix in (".gif", ".mp4"):
        out = tmp_path / f"walk{suffix}"
        assert main(["interp", str(run.path), "--a", "data:0", "--b", "seed:1", "--frames", "4", "--steps", "4",
                     "--out", str(out)]) == 0
        assert len(iio.mimread(out)) == 4  # one frame per interpolation step
    capsys.readouterr()
