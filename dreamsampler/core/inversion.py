"""DDIM inversion (unconditional, omega = 0), as used to initialise Alg. 3."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .diffusion import renoise, z0_hat

EpsFn = Callable[[Tensor, int], Tensor]


def ddim_invert(eps_fn: EpsFn, z0: Tensor, timesteps: Tensor, alphas_cumprod: Tensor,
                return_pair: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Deterministic DDIM inversion of ``z0`` along ``timesteps`` (given descending, walked ascending).

    At each t (ascending) with its lower neighbour t⁻ (alpha_bar = 1 below the first step, i.e. z0 itself):
    ``eps = eps_fn(z, t)``, ``z0' = z0_hat(z, eps, alpha_bar_{t⁻})``, ``z = renoise(z0', eps, alpha_bar_t)``.
    ``eps_fn(z, t)`` is the *unconditional* prediction only (the conditional branch is never computed).
    With ``return_pair`` returns ``(z0', eps)`` of the last step, whose ``renoise`` is z_T: the
    DreamSampler state (psi, eps_tilde) that reproduces z_T exactly.
    """
    ascending = timesteps.flip(0).tolist()
    z = z0
    ab_prev = torch.tensor(1.0, dtype=torch.float64)
    z0_prime, eps = z0, torch.zeros_like(z0)
    for t in ascending:
        ab_t = alphas_cumprod[t].double()
        eps = eps_fn(z, t)
        z0_prime = z0_hat(z, eps, ab_prev)
        z = renoise(z0_prime, eps, ab_t)
        ab_prev = ab_t
    return (z0_prime, eps) if return_pair else z
