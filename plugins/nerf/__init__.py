"""NeRF (Mildenhall et al. 2020): positional encoding, an MLP for density and view-dependent
colour, stratified coarse samples plus importance-sampled fine samples, volume rendering.

Trains on ``scene`` datasets: each step gets a batch of random rays (n, 9) from the generic
training job. Held-out PSNR is logged every ``eval_every`` steps as ``test_psnr``; ``sample()``
renders the held-out views.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec
from genstudio.core.plugin import BasePlugin, PluginInfo
from genstudio.core.scene.cameras import Camera
from genstudio.core.scene.exports import VolumeScene
from genstudio.core.scene.fields import grid_points, make_mlp
from genstudio.core.scene.render import (
    encoding_dim,
    importance_edges,
    midpoints,
    positional_encoding,
    psnr,
    ray_aabb,
    stratified_edges,
    volume_render,
)
from genstudio.core.scene.training import HeldOutViews, scene_of


@dataclass
class NerfConfig(ModelConfig):
    batch_size: int = param(512, "Rays per training step", range=(16, 65536))
    lr: float = param(5e-3, "Adam learning rate", range=(1e-6, 1.0), log=True)
    freqs_xyz: int = param(8, "Positional-encoding frequencies for positions", range=(0, 16))
    freqs_dir: int = param(4, "Positional-encoding frequencies for view directions", range=(0, 8))
    hidden: int = param(64, "Width of the density MLP", range=(8, 512))
    depth: int = param(3, "Hidden layers of the density MLP", range=(1, 12))
    coarse_samples: int = param(24, "Stratified samples per ray (coarse pass)", range=(2, 256))
    fine_samples: int = param(24, "Importance samples per ray (fine pass; 0 = coarse only)", range=(0, 256))
    coarse_hidden: int = param(32, "Width of the coarse network's density MLP", range=(8, 512))
    eval_every: int = param(500, "Held-out PSNR every N steps (0 = never)", range=(0, 10**6))
    chunk: int = param(4096, "Rays per chunk when rendering whole views", range=(64, 1 << 20))

    @classmethod
    def tiny(cls) -> NerfConfig:
        """Seconds-fast settings for contract tests."""
        return cls(batch_size=64, freqs_xyz=3, freqs_dir=1, hidden=16, depth=1, coarse_samples=8,
                   fine_samples=8, coarse_hidden=8, eval_every=3, chunk=4096)


class NerfField(nn.Module):
    """(points, unit directions) -> (density >= 0, rgb in [0, 1]); positions are normalised to
    [-1, 1] over the scene box before encoding."""

    def __init__(self, freqs_xyz: int, freqs_dir: int, hidden: int, depth: int, lo: Tensor, hi: Tensor) -> None:
        super().__init__()
        self.fx, self.fd = freqs_xyz, freqs_dir
        self.register_buffer("centre", (lo + hi) / 2)
        self.register_buffer("halfsize", (hi - lo) / 2)
        self.trunk = make_mlp(encoding_dim(3, freqs_xyz), hidden, depth, hidden + 1)
        self.color = make_mlp(hidden + encoding_dim(3, freqs_dir), max(8, hidden // 2), 1, 3)

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(positional_encoding((x - self.centre) / self.halfsize, self.fx))
        sigma = F.softplus(h[..., 0] - 1.0) * 10.0  # softplus(-1) * 10 ~ 3: a hazy start that clears quickly
        feat = F.relu(h[..., 1:])
        rgb = torch.sigmoid(self.color(torch.cat([feat, positional_encoding(d, self.fd)], -1)))
        return sigma, rgb


class NerfPlugin(HeldOutViews, BasePlugin[NerfConfig]):
    info = PluginInfo(
        "nerf", "NeRF", "3d", NerfConfig,
        data_kinds=("scene",),
        description="Neural radiance field: positional encoding, coarse + fine (importance) sampling, "
                    "volume rendering; held-out PSNR live",
    )

    scene_items = (VolumeScene,)  # Scene face: export_scene() gives a density volume

    def setup(self, data: DataSpec) -> None:
        self.data = data
        self.scene = scene_of(data)
        c = self.config
        lo, hi = self.scene.bbox
        pad = 0.02 * (hi - lo)
        self.lo, self.hi = (lo - pad).to(self.device), (hi + pad).to(self.device)
        self.background = self.scene.background.to(self.device)
        self.coarse = NerfField(c.freqs_xyz, c.freqs_dir, c.coarse_hidden, max(1, c.depth // 2),
                                self.lo, self.hi).to(self.device)
        self.fine = (NerfField(c.freqs_xyz, c.freqs_dir, c.hidden, c.depth, self.lo, self.hi).to(self.device)
                     if c.fine_samples > 0 else None)
        params = list(self.coarse.parameters()) + (list(self.fine.parameters()) if self.fine else [])
        self.opt = torch.optim.Adam(params, lr=c.lr)

    # -- rendering -------------------------------------------------------------------------------
    def render_rays(self, o: Tensor, d: Tensor, *, perturb: bool, generator: torch.Generator | None = None
                    ) -> dict[str, Tensor]:
        """Volume-render rays (R, 3); returns the fine pass (or the coarse one) with ``coarse_rgb``."""
        near, far, _ = ray_aabb(o, d, self.lo, self.hi)
        edges = stratified_edges(near, far, self.config.coarse_samples, perturb=perturb, generator=generator)
        out = self._composite(self.coarse, o, d, edges)
        if self.fine is None:
            out["coarse_rgb"] = out["rgb"]
            return out
        fine_edges = importance_edges(edges, out["weights"], self.config.fine_samples,
                                      deterministic=not perturb, generator=generator)
        fine = self._composite(self.fine, o, d, fine_edges)
        fine["coarse_rgb"] = out["rgb"]
        return fine

    def _composite(self, net: NerfField, o: Tensor, d: Tensor, edges: Tensor) -> dict[str, Tensor]:
        pts = o[:, None] + d[:, None] * midpoints(edges)[..., None]
        sigma, rgb = net(pts, d[:, None].expand_as(pts))
        return volume_render(sigma, rgb, edges, self.background)

    @torch.no_grad()
    def render_all(self, camera: Camera, *, width: int | None = None, height: int | None = None) -> dict[str, Tensor]:
        """rgb (H, W, 3) in [0, 1], depth (H, W) and opacity (H, W), on the CPU."""
        cam = camera.resized(width or camera.width, height or camera.height)
        o, d = cam.rays(self.device)
        o, d = o.reshape(-1, 3), d.reshape(-1, 3)
        parts = [self.render_rays(o[i:i + self.config.chunk], d[i:i + self.config.chunk], perturb=False)
                 for i in range(0, len(o), self.config.chunk)]
        out = {k: torch.cat([p[k] for p in parts]).cpu() for k in ("rgb", "depth", "opacity")}
        return {"rgb": out["rgb"].reshape(cam.height, cam.width, 3),
                "depth": out["depth"].reshape(cam.height, cam.width),
                "opacity": out["opacity"].reshape(cam.height, cam.width)}

    def render(self, camera: Camera, *, width: int | None = None, height: int | None = None) -> Tensor:
        """(H, W, 3) in [0, 1] on the CPU."""
        return self.render_all(camera, width=width, height=height)["rgb"]

    # -- training --------------------------------------------------------------------------------
    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        o, d, target = batch[:, :3], batch[:, 3:6], batch[:, 6:9]
        out = self.render_rays(o, d, perturb=True)
        loss_f = F.mse_loss(out["rgb"], target)
        loss = loss_f + (F.mse_loss(out["coarse_rgb"], target) if self.fine is not None else 0.0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        m = {"loss": loss.item(), "psnr": psnr(out["rgb"], target)}
        if self.config.eval_every and step % self.config.eval_every == 0:
            m["test_psnr"] = self.test_psnr()
        return m

    @torch.no_grad()
    def export_scene(self, resolution: int = 48) -> VolumeScene:
        """Density (and colour seen from above) on a grid over the scene box."""
        net = self.fine or self.coarse
        lo, hi = self.lo.cpu(), self.hi.cpu()
        unit = grid_points(resolution, 1.0).to(self.device)
        pts = self.lo + (unit + 1) / 2 * (self.hi - self.lo)
        down = torch.tensor([0.0, 0.0, -1.0], device=self.device).expand_as(pts)
        sig, rgb = [], []
        step = 1 << 15
        for i in range(0, len(pts), step):
            s, c = net(pts[i:i + step], down[i:i + step])
            sig.append(s.cpu())
            rgb.append(c.cpu())
        r = resolution
        voxel = float(((hi - lo) / (r - 1)).min())
        return VolumeScene(torch.cat(sig).reshape(r, r, r).numpy(), lo.numpy(), hi.numpy(),
                           torch.cat(rgb).reshape(r, r, r, 3).numpy(), suggested_level=1.0 / voxel)


PLUGIN = NerfPlugin
