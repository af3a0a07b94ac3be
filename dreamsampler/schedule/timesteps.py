"""Reverse schedules as data (pure functions): the model's own timesteps and the noise level of each step.

Variance-preserving models get DDIM timesteps (diffusers' ``DDIMScheduler.set_timesteps`` on the model's scheduler
config); flow models get the flow-matching sigmas of their own ``FlowMatchEulerDiscreteScheduler`` with its shift
(and, for Flux, the resolution-dependent shift ``mu``). Each step is a dict of host scalars:
``{"step", "t", "t_prev", "level_t", "level_prev", "alpha_bar_t", "alpha_bar_prev"}`` where ``t`` is what the
denoiser is called with, ``level_*`` are :class:`~dreamsampler.core.Level` (a, s) and ``alpha_bar_*`` the signal
fraction a²/(a²+s²) (alpha_bar_t of a variance-preserving model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler
from torch import Tensor

from ..core.levels import CLEAN, Level

Spacing = Literal["leading", "trailing", "linspace"]
#: How a variance-preserving timestep t is paired with alpha_bar (see :func:`vp_schedule`).
Pairing = Literal["diffusers", "official"]


@dataclass
class Schedule:
    """The reverse steps (descending t) and the level an inversion starts from, below the lowest step."""

    steps: list[dict]
    inversion_start: Level = CLEAN

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def timesteps(self) -> Tensor:
        return torch.stack([s["t"] for s in self.steps])


def ddim_timesteps(nfe: int, num_train_timesteps: int = 1000, spacing: Spacing = "leading", steps_offset: int = 1,
                   t_range: tuple[float, float] | None = None) -> Tensor:
    """Descending DDIM timesteps for ``nfe`` model evaluations, as diffusers' ``DDIMScheduler.set_timesteps``.

    ``t_range=(t_min, t_max)`` keeps the timesteps inside that closed range (used by score-distillation tasks).
    """
    _check_nfe(nfe, num_train_timesteps)
    sched = DDIMScheduler(num_train_timesteps=num_train_timesteps, timestep_spacing=spacing, steps_offset=steps_offset)
    sched.set_timesteps(nfe)
    return _keep(sched.timesteps.long(), t_range, num_train_timesteps, nfe)


def flow_timesteps(nfe: int, scheduler_config: dict, sigmas: Sequence[float] | None = None,
                   mu: float | None = None) -> tuple[Tensor, Tensor]:
    """Descending timesteps (``sigma * num_train_timesteps``, float) and their sigmas (with the final 0) of the
    model's own flow-matching scheduler: its ``shift``, or its resolution-dependent shift when ``mu`` is given."""
    sched = FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)
    _check_nfe(nfe, int(sched.config.num_train_timesteps))
    kwargs = {} if mu is None else {"mu": mu}
    if sigmas is not None:
        sched.set_timesteps(sigmas=list(sigmas), **kwargs)
    else:
        sched.set_timesteps(nfe, **kwargs)
    return sched.timesteps.double(), sched.sigmas.double()


def vp_schedule(timesteps: Tensor, alphas_cumprod: Tensor, final_alpha_cumprod: float,
                pairing: Pairing = "diffusers") -> Schedule:
    """Steps of a variance-preserving model. ``pairing="diffusers"``: timestep t uses alpha_bar[t] (diffusers'
    schedulers), the final step lands on ``final_alpha_cumprod`` and the inversion starts from alpha_bar = 1.
    ``pairing="official"``: the official DreamSampler code prepends 1.0 to ``alphas_cumprod``, so the UNet's
    timestep t is paired with diffusers' alpha_bar[t - 1] (alpha_bar = 1 at t = 0), and its inversion starts from
    ``final_alpha_cumprod`` (alpha(t - skip) for t - skip < 0), which makes its first inversion step the identity
    for SD1.5. On trained weights the two agree to the eye; ``official`` reproduces that code exactly."""
    if pairing not in ("diffusers", "official"):
        raise ValueError(f"pairing must be 'diffusers' or 'official', got {pairing!r}")
    ac = alphas_cumprod.double()
    shift = 1 if pairing == "official" else 0

    def level(t: int) -> Level:
        i = int(t) - shift
        return Level.vp(1.0 if i < 0 else float(ac[i]))

    final = Level.vp(float(final_alpha_cumprod))
    steps = reverse_steps(timesteps.tolist(), [level(t) for t in timesteps.tolist()], final)
    return Schedule(steps, inversion_start=final if pairing == "official" else CLEAN)


def flow_schedule(timesteps: Tensor, sigmas: Tensor, t_range: tuple[float, float] | None = None,
                  num_train_timesteps: int = 1000) -> Schedule:
    """Steps of a rectified-flow model: level ``(1 - sigma, sigma)`` at each timestep, ending clean (sigma = 0)."""
    pairs = list(zip(timesteps.tolist(), sigmas.tolist()))
    if t_range is not None:
        kept = _keep(timesteps, t_range, num_train_timesteps, len(pairs)).tolist()
        pairs = [p for p in pairs if p[0] in kept]
    final = Level.flow(float(sigmas[-1]))
    return Schedule(reverse_steps([t for t, _ in pairs], [Level.flow(s) for _, s in pairs], final), final)


def reverse_steps(ts: Sequence[float], levels: Sequence[Level], final: Level) -> list[dict]:
    """One dict of host scalars per reverse step t -> t_prev (the last step goes to ``final``, ``t_prev = -1``)."""
    integral = all(float(t).is_integer() for t in ts)
    as_t = (lambda t: torch.tensor(int(t))) if integral else (lambda t: torch.tensor(float(t), dtype=torch.float64))
    nxt = list(zip(ts[1:], levels[1:])) + [(-1, final)]
    return [{"step": torch.tensor(i), "t": as_t(t), "t_prev": as_t(tp), "level_t": lv, "level_prev": lp,
             "alpha_bar_t": torch.tensor(float(lv.alpha_bar), dtype=torch.float64),
             "alpha_bar_prev": torch.tensor(float(lp.alpha_bar), dtype=torch.float64)}
            for i, (t, lv, (tp, lp)) in enumerate(zip(ts, levels, nxt))]


def _check_nfe(nfe: int, num_train_timesteps: int) -> None:
    if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe <= 0:
        raise ValueError(f"nfe must be a positive integer, got {nfe!r}")
    if nfe > num_train_timesteps:
        raise ValueError(f"nfe={nfe} exceeds the model's {num_train_timesteps} training timesteps")


def _keep(ts: Tensor, t_range: tuple[float, float] | None, num_train_timesteps: int, nfe: int) -> Tensor:
    if t_range is None:
        return ts
    lo, hi = t_range
    if not 0 <= lo <= hi <= num_train_timesteps:
        raise ValueError(f"t_range must satisfy 0 <= t_min <= t_max <= {num_train_timesteps}, got {t_range}")
    kept = ts[(ts >= lo) & (ts <= hi)]
    if len(kept) == 0:
        raise ValueError(f"t_range {t_range} keeps none of the {nfe} timesteps")
    return kept
