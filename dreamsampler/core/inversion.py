"""DDIM inversion (unconditional, omega = 0) in general form, as used to initialise Alg. 3."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import Tensor

from .diffusion import Denoised, renoise
from .levels import Level

#: ``denoise(z, t, level) -> Denoised``: the model evaluated at timestep ``t``, its output read at ``level``.
DenoiseFn = Callable[[Tensor, Any, Level], Denoised]


def ddim_invert(denoise: DenoiseFn, z0: Tensor, steps: Sequence[dict], start: Level,
                return_pair: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Deterministic inversion of ``z0`` up the reverse schedule ``steps`` (descending, walked ascending).

    From the level ``lo`` the state has (``start`` below the lowest step) to the step's level ``level_t``: the
    model is evaluated at the step's timestep ``t`` on the state, its output is read at the state's own level
    (as diffusers' ``DDIMInverseScheduler`` does for epsilon and v), and ``z <- renoise(z0', eps, level_t)``.
    For an epsilon model this is DDIM inversion; for a flow model it is Euler inversion with the velocity taken at
    the upper end of each interval: ``z <- z + (sigma_t - sigma_lo) v(z, t)``.
    ``denoise`` is the *unconditional* prediction only (the conditional branch is never computed).
    With ``return_pair`` returns ``(z0', eps)`` of the last step, whose ``renoise`` is z_T: the
    DreamSampler state (psi, eps_tilde) that reproduces z_T exactly.
    """
    z, lo = z0, start
    pair = None
    for step in reversed(list(steps)):
        pair = denoise(z, step["t"], lo)
        z = renoise(pair.z0, pair.eps, step["level_t"])
        lo = step["level_t"]
    if pair is None:
        raise ValueError("ddim_invert needs at least one step")
    return (pair.z0, pair.eps) if return_pair else z
