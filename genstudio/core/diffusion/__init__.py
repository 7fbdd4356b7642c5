"""Diffusion maths as plain functions: noise schedules and epsilon samplers (DDPM, DDIM).

k-diffusion samplers on a denoiser D(x, sigma) live in :mod:`genstudio.core.diffusion.ksamplers`.
Models hold no sampling logic; any eps-prediction network, or an exact score through
:func:`eps_from_score` / :func:`vp_eps_from_data_score`, drives any sampler here.
"""

from genstudio.core.diffusion.samplers import (
    ddim_step,
    ddim_steps,
    ddim_timesteps,
    ddpm_step,
    ddpm_steps,
    eps_from_score,
    invert_ddim,
    predict_eps,
    predict_x0,
    q_sample,
    sample_ddim,
    sample_ddpm,
    score_from_eps,
    vp_eps_from_data_score,
)
from genstudio.core.diffusion.schedules import (
    SCHEDULES,
    NoiseSchedule,
    cosine_schedule,
    gather,
    linear_schedule,
    make_schedule,
    respace,
    spaced_timesteps,
)

__all__ = [
    "SCHEDULES", "NoiseSchedule", "cosine_schedule", "ddim_step", "ddim_steps", "ddim_timesteps", "ddpm_step",
    "ddpm_steps", "eps_from_score", "gather", "invert_ddim", "linear_schedule", "make_schedule", "predict_eps",
    "predict_x0", "q_sample", "respace", "sample_ddim", "sample_ddpm", "score_from_eps", "spaced_timesteps",
    "vp_eps_from_data_score",
]
