"""Neural fields: a coordinate network (SIREN, Fourier-feature MLP or plain ReLU MLP) fitted to a
``field`` dataset: a picture ((x, y) -> colour, PSNR live) or a signed distance function
(xyz -> distance, shown by sphere tracing and exported as a marching-cubes mesh).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec
from genstudio.core.plugin import BasePlugin, PluginInfo, SampleState
from genstudio.core.scene.cameras import Camera, sphere_cameras_at
from genstudio.core.scene.exports import ImageScene, MeshScene
from genstudio.core.scene.fields import FourierMLP, Siren, make_mlp, marching_cubes, shade_sdf
from genstudio.core.scene.render import psnr
from genstudio.core.scene.training import dataset_of, render_states


@dataclass
class FieldsConfig(ModelConfig):
    batch_size: int = param(4096, "Coordinates per training step", range=(16, 1 << 20))
    lr: float = param(5e-4, "Adam learning rate (SIREN: ~5e-4; Fourier MLPs: ~1e-3)", range=(1e-6, 1.0), log=True)
    network: str = param("siren", "Coordinate network", choices=("siren", "fourier", "relu"))
    hidden: int = param(128, "Hidden width", range=(8, 1024))
    depth: int = param(3, "Hidden layers", range=(1, 12))
    w0: float = param(30.0, "SIREN frequency factor omega_0", range=(1.0, 200.0))
    fourier_features: int = param(128, "Number of random Fourier features", range=(1, 4096))
    fourier_scale: float = param(10.0, "Std of the Fourier feature frequencies", range=(0.01, 1000.0), log=True)
    mesh_resolution: int = param(64, "Marching-cubes grid for SDF meshes", range=(8, 512))
    preview_size: int = param(64, "Size of SDF preview renders", range=(16, 1024))
    eval_every: int = param(50, "Full-image PSNR (images) or surface error (SDFs) every N steps", range=(0, 10**6))

    @classmethod
    def tiny(cls) -> FieldsConfig:
        return cls(batch_size=256, hidden=16, depth=1, fourier_features=8, mesh_resolution=16, preview_size=16,
                   eval_every=3)


def build_network(c: FieldsConfig, in_dim: int, out_dim: int) -> nn.Module:
    if c.network == "siren":
        return Siren(in_dim, c.hidden, c.depth, out_dim, c.w0)
    if c.network == "fourier":
        return FourierMLP(in_dim, c.hidden, c.depth, out_dim, c.fourier_features, c.fourier_scale)
    return make_mlp(in_dim, c.hidden, c.depth, out_dim)


class FieldsPlugin(BasePlugin[FieldsConfig]):
    info = PluginInfo(
        "fields", "Neural fields (SIREN / Fourier features)", "3d",
        FieldsConfig, data_kinds=("field",),
        description="Coordinate MLPs fitting an image (live reconstruction, PSNR) or a signed distance "
                    "function (sphere-traced preview, marching-cubes mesh)",
    )

    scene_items = (MeshScene, ImageScene)  # Scene face: an SDF mesh, or a 2-D image field

    def setup(self, data: DataSpec) -> None:
        self.data = data
        self.target = dataset_of(data)
        self.in_dim, self.out_dim = int(self.target.in_dim), int(self.target.out_dim)
        if data.shape[0] != self.in_dim + self.out_dim:
            raise ValueError(f"dataset {data.name!r} rows have {data.shape[0]} values, expected "
                             f"{self.in_dim} + {self.out_dim}")
        self.is_sdf = self.in_dim == 3
        self.net = build_network(self.config, self.in_dim, self.out_dim).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)

    def field(self, x: Tensor) -> Tensor:
        """Network output at coordinates (N, in_dim): colours (N, C) or distances (N,)."""
        y = self.net(x)
        return y[..., 0] if self.is_sdf else y

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        x, y = batch[:, :self.in_dim], batch[:, self.in_dim:]
        pred = self.net(x)
        loss = F.l1_loss(pred, y) if self.is_sdf else F.mse_loss(pred, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        m = {"loss": loss.item()}
        if not self.is_sdf:
            m["psnr"] = 10 * math.log10(1.0 / max(loss.item(), 1e-12))
        if self.config.eval_every and step % self.config.eval_every == 0:
            m.update(self.evaluate())
        return m

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Images: PSNR of the whole reconstruction. SDFs: mean |f| on points of the true surface."""
        if not self.is_sdf:
            return {"image_psnr": psnr(self.reconstruction(), self.target.image)}
        from genstudio.core.scene.fields import sdf_normals

        p = torch.rand(4096, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
        surf = p - self.target.fn(p)[:, None] * sdf_normals(self.target.fn, p)
        return {"surface_err": float(self.field(surf.to(self.device)).abs().mean())}

    @torch.no_grad()
    def reconstruction(self, width: int | None = None, height: int | None = None,
                       window: tuple[float, float, float, float] = (-1.0, -1.0, 1.0, 1.0)) -> Tensor:
        """The fitted picture (H, W, C) in [0, 1] on the CPU, at any resolution (it is a function),
        over ``window`` = (x0, y0, x1, y1) in the [-1, 1] image coordinates (y down)."""
        h0, w0, _ = self.target.image.shape
        h, w = height or h0, width or w0
        x0, y0, x1, y1 = window
        ys = y0 + (torch.arange(h, device=self.device) + 0.5) / h * (y1 - y0)
        xs = x0 + (torch.arange(w, device=self.device) + 0.5) / w * (x1 - x0)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        xy = torch.stack([gx, gy], -1).reshape(-1, 2)
        out = torch.cat([self.net(xy[i:i + 65536]) for i in range(0, len(xy), 65536)])
        return out.reshape(h, w, -1).clamp(0, 1).cpu()

    @torch.no_grad()
    def render(self, camera: Camera | None = None, *, width: int | None = None, height: int | None = None) -> Tensor:
        """(H, W, 3) in [0, 1]: the fitted picture (the camera is ignored), or the SDF's zero level
        set sphere-traced and shaded from ``camera``."""
        if not self.is_sdf:
            return self._rgb(self.reconstruction(width, height))
        if camera is None:
            camera = self.preview_cameras(1)[0]
        cam = camera.resized(width or camera.width, height or camera.height)
        o, d = cam.rays(self.device)
        img = shade_sdf(self.field, o.reshape(-1, 3), d.reshape(-1, 3), near=1.0, far=5.0)
        return img.reshape(cam.height, cam.width, 3).cpu()

    def preview_cameras(self, n: int, azimuth: float = 0.0) -> list[Camera]:
        """A turntable around the SDF's box (``azimuth`` in degrees turns it)."""
        n = max(1, n)
        return sphere_cameras_at([(azimuth + 360.0 * k / n, 30.0) for k in range(n)], 3.0,
                                 width=self.config.preview_size, fov_deg=40.0, prefix="turntable")

    def _rgb(self, img: Tensor) -> Tensor:
        return img.expand(*img.shape[:-1], 3) if img.shape[-1] == 1 else img

    def sample(self, n: int, *, seed: int, steps: int | None = None, sampler: str | None = None,
               cond: Tensor | None = None, every: int = 1) -> Iterator[SampleState]:
        """Images: the whole reconstruction, then ``n - 1`` windows zoomed 2-4x (placed by ``seed``)
        showing that the fit is a continuous function. SDFs: ``n`` turntable views (at most 8
        distinct; ``seed`` turns the table) of the sphere-traced surface."""
        if self.is_sdf:
            cams = self.preview_cameras(min(max(1, n), 8), azimuth=(37.0 * seed) % 360.0)
            yield from render_states(self.render, cams, n, size=(cams[0].height, cams[0].width))
            return
        h, w, _ = self.target.image.shape
        g = torch.Generator().manual_seed(int(seed))
        windows = [(-1.0, -1.0, 1.0, 1.0)]
        for _ in range(max(0, n - 1)):
            half = float(1.0 / (2 + 2 * torch.rand(1, generator=g)))
            cx, cy = (torch.rand(2, generator=g) * 2 - 1) * (1 - half)
            windows.append((float(cx) - half, float(cy) - half, float(cx) + half, float(cy) + half))
        yield from render_states(lambda win: self._rgb(self.reconstruction(w, h, win)), windows, n, size=(h, w))

    @torch.no_grad()
    def export_scene(self) -> MeshScene | ImageScene:
        """SDFs: the marching-cubes mesh of the zero level set. Images: the reconstruction."""
        if not self.is_sdf:
            return ImageScene(self.render().numpy(), meta={"dataset": self.data.name})
        verts, faces, normals = marching_cubes(self.field, self.config.mesh_resolution, 1.0, device=self.device)
        return MeshScene(verts, faces, normals, meta={"dataset": self.data.name})


PLUGIN = FieldsPlugin
