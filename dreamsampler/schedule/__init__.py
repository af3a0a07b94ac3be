"""Reverse schedules: timesteps and noise levels from the model's own scheduler (pure), the resumable loader."""

from .loader import ReverseSchedule
from .timesteps import (Pairing, Schedule, Spacing, ddim_timesteps, flow_schedule, flow_timesteps,
                        reverse_steps, vp_schedule)

__all__ = ["Pairing", "ReverseSchedule", "Schedule", "Spacing", "ddim_timesteps", "flow_schedule",
           "flow_timesteps", "reverse_steps", "vp_schedule"]
