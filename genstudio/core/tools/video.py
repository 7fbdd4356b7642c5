"""The video scrub: one sampling run of a video model with every step's x_t and x0_hat kept, so a
view can show any (denoising step, clip frame) pair without sampling again. GUI-free."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genstudio.core.jobs import Control


@dataclass
class Scrub:
    """``x`` and ``x0`` (S, N, C, T, H, W): the noisy clips and the predicted clean clips after each
    of S sampler steps (step 0 is the first step taken); ``t`` (S,) the model time of each."""

    x: torch.Tensor
    x0: torch.Tensor
    t: list[float]

    @property
    def steps(self) -> int:
        return int(self.x.shape[0])

    @property
    def frames(self) -> int:
        return int(self.x.shape[3])

    def frame(self, step: int, frame: int, x0: bool = False) -> torch.Tensor:
        """(N, C, H, W) of every clip at one step and one frame."""
        return (self.x0 if x0 else self.x)[step, :, :, frame]

    def export(self, path: str | Path, fps: float = 8.0) -> Path:
        """The final clips as a GIF or MP4 (by suffix): T frames, the clips side by side."""
        from genstudio.core.metrics.video import save_clip

        return save_clip(self.x[-1].clamp(-1, 1), path, fps=fps)


def scrub_job(run: Any, n: int, steps: int, seed: int = 0, control: Control | None = None,
              **sample_kw: Any) -> Iterator[dict[str, Any]]:
    """Sample ``n`` clips with DDIM (``steps``), yielding progress; returns the :class:`Scrub`."""
    from genstudio.core import jobs

    gen = jobs.sample(run, n=n, steps=steps, sampler="ddim", seed=seed, every=1, keep_states=True, hold_states=True,
                      control=control, **sample_kw)
    try:
        while True:
            st = next(gen)
            yield {"done": st.step, "total": st.total}
    except StopIteration as stop:
        result = stop.value
    states = [s for s in result.states if s.x0 is not None]
    return Scrub(torch.stack([s.x for s in states]).float(), torch.stack([s.x0 for s in states]).float(),
                 [float(s.t) for s in states])


def scrub_image(scrub: Scrub, step: int, frame: int, scale: int = 0) -> np.ndarray:
    """x_t | x0_hat of every clip at (step, frame), one picture (clips in columns)."""
    from genstudio.core.imaging import image_grid, readable_scale

    scale = scale or readable_scale(*scrub.x.shape[-2:], cell=96)
    both = torch.cat([scrub.frame(step, frame).clamp(-1, 1), scrub.frame(step, frame, x0=True).clamp(-1, 1)])
    return image_grid(both, ncol=scrub.x.shape[1], scale=scale)


def x0_strip(scrub: Scrub, step: int, clip: int = 0, scale: int = 0) -> np.ndarray:
    """The per-frame x0_hat of one clip at ``step``: a row of T frames."""
    from genstudio.core.imaging import image_grid, readable_scale

    scale = scale or readable_scale(*scrub.x.shape[-2:], cell=48)
    return image_grid(scrub.x0[step, clip].permute(1, 0, 2, 3).clamp(-1, 1), ncol=scrub.frames, scale=scale)
