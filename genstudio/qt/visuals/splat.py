"""A vispy Visual that draws 3-D Gaussians as depth-sorted, alpha-blended screen-space ellipses.

The vertex shader computes each splat's EWA 2-D covariance J Sigma J^T from its 3-D covariance
and the current world -> clip matrix (J = Jacobian of the pixel position, see ``geometry``), takes
its closed-form eigen-decomposition and spans a quad over the 3-sigma ellipse; the fragment shader
applies the Gaussian falloff. Splats are sorted back to front on the CPU whenever the view changes.
Imported lazily (needs vispy, and a GL context to draw).
"""

from __future__ import annotations

import numpy as np
from vispy import gloo
from vispy.scene.visuals import create_visual_node
from vispy.visuals import Visual

from genstudio.qt.visuals import geometry as geo

MODES = ("rgb", "depth", "opacity", "centres")

VERT = """
uniform mat4 u_clip;
uniform vec2 u_half;
uniform float u_mode;
uniform vec2 u_depth;
uniform float u_dilation;
attribute vec3 a_pos;
attribute vec3 a_cov_a;
attribute vec3 a_cov_b;
attribute vec4 a_color;
attribute vec2 a_corner;
varying vec4 v_color;
varying vec2 v_uv;
void main() {
    vec4 c = u_clip * vec4(a_pos, 1.0);
    if (c.w <= 1e-6) {  // behind the camera
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        v_color = vec4(0.0);
        v_uv = vec2(9.0);
        return;
    }
    vec2 ndc = c.xy / c.w;
    vec3 m0 = vec3(u_clip[0][0], u_clip[1][0], u_clip[2][0]);
    vec3 m1 = vec3(u_clip[0][1], u_clip[1][1], u_clip[2][1]);
    vec3 m3 = vec3(u_clip[0][3], u_clip[1][3], u_clip[2][3]);
    vec3 jx = (m0 - ndc.x * m3) / c.w * u_half.x;  // d pixel_x / d world
    vec3 jy = (m1 - ndc.y * m3) / c.w * u_half.y;
    mat3 S = mat3(a_cov_a.x, a_cov_a.y, a_cov_a.z,
                  a_cov_a.y, a_cov_b.x, a_cov_b.y,
                  a_cov_a.z, a_cov_b.y, a_cov_b.z);
    vec3 sx = S * jx;
    vec3 sy = S * jy;
    float a = dot(jx, sx) + u_dilation;
    float b = dot(jx, sy);
    float d = dot(jy, sy) + u_dilation;
    float mid = 0.5 * (a + d);
    float rad = sqrt(max(0.25 * (a - d) * (a - d) + b * b, 0.0));
    float l1 = mid + rad;
    float l2 = max(mid - rad, 1e-6);
    vec2 e1 = abs(b) > 1e-9 ? normalize(vec2(b, l1 - a)) : (a >= d ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
    vec2 e2 = vec2(-e1.y, e1.x);
    vec2 off;
    if (u_mode > 2.5) {  // centres: small solid squares
        off = a_corner * 1.5;
        v_uv = vec2(0.0);
    } else {
        off = a_corner.x * min(3.0 * sqrt(l1), 2048.0) * e1 + a_corner.y * min(3.0 * sqrt(l2), 2048.0) * e2;
        v_uv = a_corner * 3.0;
    }
    gl_Position = vec4(c.xy + off / u_half * c.w, c.z, c.w);
    if (u_mode < 0.5) {
        v_color = a_color;
    } else if (u_mode < 1.5) {
        float t = clamp((c.w - u_depth.x) / max(u_depth.y - u_depth.x, 1e-6), 0.0, 1.0);
        v_color = vec4(mix(vec3(0.99, 0.91, 0.15), vec3(0.13, 0.15, 0.55), t), a_color.a);
    } else if (u_mode < 2.5) {
        v_color = vec4(1.0, 1.0, 1.0, a_color.a);
    } else {
        v_color = vec4(a_color.rgb, 1.0);
    }
}
"""

FRAG = """
varying vec4 v_color;
varying vec2 v_uv;
void main() {
    float r2 = dot(v_uv, v_uv);
    if (r2 > 9.0) discard;
    float alpha = v_color.a * exp(-0.5 * r2);
    if (alpha < 1.0 / 255.0) discard;
    gl_FragColor = vec4(v_color.rgb, alpha);
}
"""

CORNERS = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32)
QUAD = np.array([0, 1, 2, 0, 2, 3], np.uint32)


def splat_arrays(g) -> dict[str, np.ndarray]:
    """CPU arrays of a :class:`~genstudio.core.scene.gaussians.Gaussians` the visual draws."""
    means = g.means.detach().cpu().double().numpy()
    cov = g.covariances().detach().cpu().double().numpy()
    rgba = np.c_[g.base_colors().detach().cpu().numpy(), g.opacities.detach().cpu().numpy()]
    return {"means": means.astype(np.float32), "cov": geo.pack_covariances(cov).astype(np.float32),
            "rgba": rgba.astype(np.float32)}


def clip_and_half(view) -> tuple[np.ndarray, np.ndarray]:
    """World -> clip matrix (column-vector convention) of a visual's view and the half viewport
    size in framebuffer pixels. vispy's 3-D camera chains are projective, so mapping the basis
    vectors recovers the matrix exactly."""
    tr = view.transforms.get_transform("visual", "render")
    clip = np.asarray(tr.map(np.eye(4)), np.float64).T
    fb = view.transforms.get_transform("render", "framebuffer")
    p = np.asarray(fb.map(np.array([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])), np.float64)
    half = np.abs(p[0, :2] / p[0, 3] - p[1, :2] / p[1, 3])
    return clip, half


class SplatVisual(Visual):
    """Gaussians as EWA ellipses. ``set_data(arrays)``, ``budget`` (level of detail), ``mode``."""

    def __init__(self, arrays: dict[str, np.ndarray] | None = None, *, budget: int = 200_000,
                 mode: str = "rgb", seed: int = 0) -> None:
        Visual.__init__(self, vcode=VERT, fcode=FRAG)
        self._draw_mode = "triangles"
        self.set_gl_state("translucent", depth_test=False, cull_face=False)
        self._index = gloo.IndexBuffer(np.zeros(6, np.uint32))
        self._index_buffer = self._index
        self._budget, self._seed, self._mode = int(budget), seed, mode
        self._arrays: dict[str, np.ndarray] = {}
        self._subset = np.zeros(0, np.int64)
        self._last_clip: np.ndarray | None = None
        self.sorts = 0  # how many times the splats were re-sorted (tests, bench)
        self.shared_program["u_dilation"] = geo.DILATION
        self.shared_program["u_mode"] = 0.0
        self.shared_program["u_depth"] = (0.0, 1.0)
        self.set_data(arrays or {"means": np.zeros((0, 3), np.float32), "cov": np.zeros((0, 6), np.float32),
                                 "rgba": np.zeros((0, 4), np.float32)})

    # -- data -------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self._arrays["means"])

    @property
    def drawn(self) -> int:
        return len(self._subset)

    def set_data(self, arrays: dict[str, np.ndarray]) -> None:
        self._arrays = arrays
        self._upload()

    @property
    def budget(self) -> int:
        return self._budget

    @budget.setter
    def budget(self, value: int) -> None:
        self._budget = int(value)
        self._upload()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self._mode = value
        self.shared_program["u_mode"] = float(MODES.index(value))
        self.update()

    def _upload(self) -> None:
        def rep(x: np.ndarray) -> np.ndarray:  # one copy per quad corner
            return np.repeat(x, 4, axis=0).astype(np.float32)

        n = self.count
        self._subset = geo.lod_indices(n, self._budget, self._seed)
        a = {k: v[self._subset] for k, v in self._arrays.items()}
        k = len(self._subset)
        prog = self.shared_program
        prog["a_pos"] = gloo.VertexBuffer(rep(a["means"]) if k else np.zeros((4, 3), np.float32))
        prog["a_cov_a"] = gloo.VertexBuffer(rep(a["cov"][:, :3]) if k else np.zeros((4, 3), np.float32))
        prog["a_cov_b"] = gloo.VertexBuffer(rep(a["cov"][:, 3:]) if k else np.zeros((4, 3), np.float32))
        prog["a_color"] = gloo.VertexBuffer(rep(a["rgba"]) if k else np.zeros((4, 4), np.float32))
        prog["a_corner"] = gloo.VertexBuffer(np.tile(CORNERS, (max(k, 1), 1)))
        self._means = a["means"].astype(np.float64)
        self._last_clip = None
        self.update()

    # -- drawing ----------------------------------------------------------------------------------
    def _prepare_transforms(self, view) -> None:
        pass  # the shader reads the full matrix as a uniform (set in _prepare_draw)

    def _prepare_draw(self, view) -> bool:
        if not len(self._subset):
            return False
        clip, half = clip_and_half(view)
        prog = view.view_program
        prog["u_clip"] = clip.T.astype(np.float32)  # GL reads column-major
        prog["u_half"] = half.astype(np.float32)
        if self._last_clip is None or not np.allclose(clip, self._last_clip, rtol=1e-6, atol=1e-9):
            self._last_clip = clip
            self._sort(clip)
        return True

    def _sort(self, clip: np.ndarray) -> None:
        order = geo.back_to_front(clip, self._means)
        self._index.set_data((order[:, None].astype(np.uint32) * 4 + QUAD).ravel())
        w = self._means @ clip[3, :3] + clip[3, 3]
        w = w[w > 0]
        lo, hi = np.percentile(w, [2, 98]) if len(w) else (0.0, 1.0)  # robust to stray far splats
        self.shared_program["u_depth"] = (float(lo), float(hi))
        self.sorts += 1

    def _compute_bounds(self, axis: int, view) -> tuple[float, float] | None:
        if not self.count:
            return None
        m = self._arrays["means"][:, axis]
        return float(m.min()), float(m.max())


Splats = create_visual_node(SplatVisual)
