"""3D Gaussian splatting (Kerbl et al. 2023) with the torch rasteriser in genstudio.core.scene.

Each training step renders one whole training view (chosen from the step number, so resumed runs
see the same sequence) and ignores the ray batch the generic job passes in: the plugin takes the
posed views from ``get_dataset(data.name).scene`` in ``setup()``. Keep ``batch_size`` at 1.

Schedule as in the paper, scaled to short CPU runs: Gaussians start uniform in the scene box;
every ``densify_every`` steps between ``densify_from`` and ``densify_until`` those with a large
mean view-space gradient are cloned (small) or split (large) and transparent ones pruned; the
SH degree grows by one every ``sh_increase_every`` steps up to ``sh_degree``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genstudio.core.config import ModelConfig, param
from genstudio.core.data import DataSpec
from genstudio.core.plugin import BasePlugin, PluginInfo, cosine_lr_factor
from genstudio.core.scene.cameras import Camera
from genstudio.core.scene.gaussians import (
    DensifyStats,
    Gaussians,
    densify_and_prune,
    rasterize,
    remap_adam,
    reset_opacity,
)
from genstudio.core.scene.render import psnr, ssim
from genstudio.core.scene.training import HeldOutViews, scene_of, view_for_step

# per-parameter learning rates of the reference implementation (means are scaled by the extent)
BASE_LR = {"means": 1.6e-4, "log_scales": 5e-3, "quats": 1e-3, "opacity_logits": 5e-2, "sh_dc": 2.5e-3,
           "sh_rest": 2.5e-3 / 20}


@dataclass
class SplatConfig(ModelConfig):
    batch_size: int = param(1, "Ignored: each step renders one whole training view (keep 1)", range=(1, 4096))
    lr: float = param(1.0, "Multiplier on the per-parameter 3DGS learning rates", range=(0.01, 100.0), log=True)
    means_lr_scale: float = param(10.0, "Extra factor on the position learning rate (short runs move further)",
                                  range=(0.1, 100.0), log=True)
    init_points: int = param(2000, "Gaussians at the start (uniform in the scene box)", range=(1, 1_000_000))
    sh_degree: int = param(1, "Spherical-harmonics degree of the colour", choices=(0, 1, 2, 3))
    sh_increase_every: int = param(300, "Steps between SH degree increases", range=(1, 10**6))
    densify_from: int = param(100, "First step that densifies", range=(0, 10**7))
    densify_until: int = param(2500, "Last step that densifies", range=(0, 10**7))
    densify_every: int = param(100, "Steps between densify / prune", range=(1, 10**6))
    grad_threshold: float = param(2e-4, "Mean view-space gradient (NDC) that triggers clone / split",
                                  range=(1e-7, 1.0), log=True)
    percent_dense: float = param(0.01, "Size (fraction of the scene extent) separating clone from split",
                                 range=(1e-4, 1.0), log=True)
    min_opacity: float = param(0.005, "Prune Gaussians below this opacity", range=(0.0, 0.5))
    opacity_reset_every: int = param(0, "Reset opacities every N steps (0 = never; the paper uses 3000)",
                                     range=(0, 10**7))
    max_gaussians: int = param(20000, "Upper bound on the number of Gaussians", range=(1, 10_000_000))
    ssim_weight: float = param(0.0, "Weight of the D-SSIM term (the paper: 0.2; L1 alone did better in short CPU runs)",
                               range=(0.0, 1.0))
    eval_every: int = param(100, "Held-out PSNR every N steps (0 = never)", range=(0, 10**6))

    @classmethod
    def tiny(cls) -> SplatConfig:
        """Seconds-fast settings for contract tests (still exercises densify and the SH schedule)."""
        return cls(init_points=200, sh_degree=1, sh_increase_every=2, densify_from=2, densify_every=2,
                   densify_until=6, max_gaussians=400, eval_every=3)


class SplatPlugin(HeldOutViews, BasePlugin[SplatConfig]):
    info = PluginInfo(
        "splat", "3D Gaussian splatting", "3d",
        SplatConfig, data_kinds=("scene",),
        description="Anisotropic 3-D Gaussians with SH colour, differentiable torch rasteriser, "
                    "densify / prune; exports INRIA .ply and .splat",
    )

    scene_items = (Gaussians,)  # Scene face: export_scene() gives Gaussians

    def setup(self, data: DataSpec) -> None:
        self.data = data
        self.scene = scene_of(data)
        c = self.config
        self.images = self.scene.images.to(self.device)
        self.background = self.scene.background.to(self.device)
        self.extent = self.scene.extent
        g = Gaussians.random_in_box(c.init_points, *self.scene.bbox, sh_degree=c.sh_degree,
                                    generator=torch.Generator().manual_seed(0), device=self.device)
        self._build(g)
        self.active_degree = 0

    def _build(self, g: Gaussians, opt_state: dict | None = None) -> None:
        params = {k: torch.nn.Parameter(v.detach().clone()) for k, v in g.tensors().items()}
        self.opt = torch.optim.Adam([{"params": [p], "name": k, "lr": self._lr(k, 0)} for k, p in params.items()],
                                    eps=1e-15)
        if opt_state is not None:
            self.opt.load_state_dict(opt_state)
        self._sync()
        self.stats = DensifyStats(self.g.num, self.device)

    def _sync(self) -> None:
        """Point ``self.g`` at the optimiser's current parameter tensors."""
        self.g = Gaussians(**{grp["name"]: grp["params"][0] for grp in self.opt.param_groups})

    def _lr(self, name: str, step: int) -> float:
        lr = BASE_LR[name] * self.config.lr
        if name == "means":  # exponential decay to 1% over the densification window, as in 3DGS
            t = min(1.0, step / max(1, self.config.densify_until))
            lr *= self.extent * self.config.means_lr_scale * math.exp(t * math.log(0.01))
        # train_step sets every group's lr itself, so the app-wide lr_decay_steps applies here
        return lr * cosine_lr_factor(max(step, 1), int(self.config.lr_decay_steps or 0))

    # -- rendering -------------------------------------------------------------------------------
    def render_all(self, camera: Camera, *, width: int | None = None, height: int | None = None) -> dict[str, Tensor]:
        """rgb (H, W, 3) in [0, 1], depth (H, W) and opacity (H, W), on the CPU."""
        cam = camera.resized(width or camera.width, height or camera.height)
        with torch.no_grad():
            out = rasterize(self.g, cam, background=self.background, sh_degree=self.active_degree)
        return {"rgb": out["rgb"].cpu(), "depth": out["depth"].cpu(), "opacity": out["alpha"].cpu()}

    def render(self, camera: Camera, *, width: int | None = None, height: int | None = None) -> Tensor:
        return self.render_all(camera, width=width, height=height)["rgb"]

    # -- training --------------------------------------------------------------------------------
    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        c = self.config
        for grp in self.opt.param_groups:
            grp["lr"] = self._lr(grp["name"], step)
        self.active_degree = min(c.sh_degree, step // c.sh_increase_every)
        i = view_for_step(step, len(self.scene.cameras))
        cam, gt = self.scene.cameras[i], self.images[i]
        densifying = c.densify_from <= step <= c.densify_until
        out = rasterize(self.g, cam, background=self.background, sh_degree=self.active_degree,
                        retain_means2d=densifying)
        pred = out["rgb"]
        loss = F.l1_loss(pred, gt)
        if c.ssim_weight > 0:
            loss = (1 - c.ssim_weight) * loss + c.ssim_weight * (
                1 - ssim(pred.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None]))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if densifying:
            self.stats.update(out, cam)
        self.opt.step()
        with torch.no_grad():  # keep quaternions away from zero length
            self.g.quats.data = F.normalize(self.g.quats.data, dim=1)
        if densifying and step >= c.densify_from and step % c.densify_every == 0:
            self._densify()
        if c.opacity_reset_every and step % c.opacity_reset_every == 0 and step < c.densify_until:
            self._reset_opacity()
        m = {"loss": loss.item(), "psnr": psnr(pred, gt), "gaussians": float(self.g.num)}
        if c.eval_every and step % c.eval_every == 0:
            m["test_psnr"] = self.test_psnr()
        return m

    def _densify(self) -> None:
        c = self.config
        new, src, fresh = densify_and_prune(
            self.g, self.stats, grad_threshold=c.grad_threshold, extent=self.extent, percent_dense=c.percent_dense,
            min_opacity=c.min_opacity, max_world_scale=0.1 * self.extent, max_count=c.max_gaussians)
        remap_adam(self.opt, new.tensors(), src, fresh)
        self._sync()
        self.stats = DensifyStats(self.g.num, self.device)

    def _reset_opacity(self) -> None:
        new = reset_opacity(self.g, 0.01)
        n = self.g.num
        remap_adam(self.opt, {"opacity_logits": new}, torch.arange(n, device=self.device),
                   torch.ones(n, dtype=torch.bool, device=self.device))
        self._sync()

    def export_scene(self) -> Gaussians:
        """Detached CPU copy of the Gaussians (write it with genstudio.core.scene.io.save_ply)."""
        return self.g.detach().to("cpu")

    # -- checkpoints: the number of Gaussians changes, so rebuild the optimiser on load ----------
    def state_dict(self) -> dict[str, Any]:
        return {"gaussians": self.g.state(), "opt": self.opt.state_dict(), "active_degree": self.active_degree,
                "stats": {"grad_accum": self.stats.grad_accum.cpu(), "count": self.stats.count.cpu(),
                          "max_radius": self.stats.max_radius.cpu()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "gaussians" not in state or "opt" not in state:
            raise KeyError("checkpoint lacks gaussians/opt (was it written by another plugin?)")
        g = Gaussians.from_state(state["gaussians"]).to(self.device)
        self._build(g, state["opt"])
        self.active_degree = int(state.get("active_degree", 0))
        st = state.get("stats")
        if st is not None and len(st["count"]) == self.g.num:
            for k, v in st.items():
                setattr(self.stats, k, v.to(self.device))


PLUGIN = SplatPlugin
