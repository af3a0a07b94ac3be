"""Reverse schedules: timesteps and alpha_bar (pure), and the resumable schedule loader."""

from .loader import ReverseSchedule
from .timesteps import alpha_bar, ddim_timesteps

__all__ = ["ReverseSchedule", "alpha_bar", "ddim_timesteps"]
