"""Plain DDIM / Euler sampling (Alg. 1 with the proximal step solved exactly): the raster a vectorizer starts from."""

from __future__ import annotations

from typing import Callable, Sequence

from torch import Tensor

from .diffusion import Denoised, renoise

#: ``denoise(z_t, step) -> Denoised``: the (already guided) model output at one reverse step.
StepDenoiseFn = Callable[[Tensor, dict], Denoised]


def ddim_sample(denoise: StepDenoiseFn, z_T: Tensor, steps: Sequence[dict]) -> Tensor:
    """Eq. (5) with eta = 0 down the reverse schedule: ``z_{t-1} = renoise(ẑ₀, ε̂, level_prev)``; returns ẑ₀ of the
    last step (for an epsilon model this is DDIM, for a flow model Euler's method)."""
    z = z_T
    for step in steps:
        out = denoise(z, step)
        z = renoise(out.z0, out.eps, step["level_prev"])
    return z
