"""Reverse timestep schedules and alpha_bar lookup (pure functions; spacing from diffusers' DDIMScheduler)."""

from __future__ import annotations

from typing import Literal

import torch
from diffusers import DDIMScheduler
from torch import Tensor

Spacing = Literal["leading", "trailing", "linspace"]


def ddim_timesteps(nfe: int, num_train_timesteps: int = 1000, spacing: Spacing = "leading", steps_offset: int = 1,
                   t_range: tuple[int, int] | None = None) -> Tensor:
    """Descending DDIM timesteps for ``nfe`` model evaluations, as diffusers' ``DDIMScheduler.set_timesteps``.

    ``t_range=(t_min, t_max)`` keeps the timesteps inside that closed range (used by score-distillation tasks).
    """
    if not isinstance(nfe, int) or nfe <= 0:
        raise ValueError(f"nfe must be a positive integer, got {nfe!r}")
    if nfe > num_train_timesteps:
        raise ValueError(f"nfe={nfe} exceeds the model's {num_train_timesteps} training timesteps")
    sched = DDIMScheduler(num_train_timesteps=num_train_timesteps, timestep_spacing=spacing, steps_offset=steps_offset)
    sched.set_timesteps(nfe)
    ts = sched.timesteps.long()
    if t_range is not None:
        lo, hi = t_range
        if not 0 <= lo <= hi < num_train_timesteps:
            raise ValueError(f"t_range must satisfy 0 <= t_min <= t_max < {num_train_timesteps}, got {t_range}")
        ts = ts[(ts >= lo) & (ts <= hi)]
        if len(ts) == 0:
            raise ValueError(f"t_range {t_range} keeps none of the {nfe} timesteps")
    return ts


def alpha_bar(alphas_cumprod: Tensor, t: int, final_alpha_cumprod: float) -> float:
    """``alpha_bar_t`` of the scheduler, and ``final_alpha_cumprod`` for t < 0 (the step after the last)."""
    return float(final_alpha_cumprod) if t < 0 else float(alphas_cumprod[t])
