"""Pure tensor functions of the diffusion maths, one per equation of the paper, for any noise level ``(a, s)``.

Every function takes the level of ``z_t = a z0 + s eps`` (:class:`~dreamsampler.core.levels.Level`), so one set
covers variance-preserving diffusion and rectified flow (no state, no logging).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .levels import Level

#: What a denoiser may predict: noise (SD 1.x, SDXL), v (SD 2.x 768) or the flow velocity ``eps - z0`` (SD3, Flux).
PREDICTION_TYPES = ("epsilon", "v_prediction", "flow")


def z0_hat(z_t: Tensor, eps: Tensor, level: Level) -> Tensor:
    """Tweedie's posterior mean, eq. (4)/(14): ``(z_t - s eps) / a`` (``a = sqrt(alpha_bar_t)`` for VP models)."""
    return (z_t - level.s * eps) / level.a


def renoise(z0: Tensor, eps: Tensor, level: Level) -> Tensor:
    """Forward diffusion with a given noise, eq. (1)/(3)/(12): ``a z0 + s eps``."""
    return level.a * z0 + level.s * eps


def cfg(uncond: Tensor, cond: Tensor, omega: Tensor | float) -> Tensor:
    """Classifier-free guidance, eq. (6)/(18): ``uncond + omega (cond - uncond)`` (on eps, or on z0 alike)."""
    return uncond + omega * (cond - uncond)


def localized_eps(eps_uc: Tensor, eps_guided: Tensor, masks: Tensor | None = None,
                  owner: Tensor | None = None) -> Tensor:
    """Spatially localized guidance, eq. (19): ``sum_i M_i * eps_i + (1 - sum_i M_i) * eps_uc``, per sample.

    ``eps_uc`` is (B, C, h, w), one unconditional estimate per sample; ``eps_guided`` is (K, C, h, w), one
    guided estimate per prompt, and prompt k belongs to sample ``owner[k]`` (default: all to sample 0);
    ``masks`` is (K, 1, h, w) with ``sum_i M_i <= 1`` per sample, or None: every prompt covers its whole image.
    """
    if masks is None:
        masks = torch.ones_like(eps_guided[:, :1])
    if owner is None:
        owner = torch.zeros(eps_guided.shape[0], dtype=torch.long, device=eps_guided.device)
    covered = torch.zeros_like(eps_uc[:, :1]).index_add_(0, owner, masks.to(eps_uc.dtype))
    guided = torch.zeros_like(eps_uc).index_add_(0, owner, masks * eps_guided)
    return guided + (1 - covered) * eps_uc


def eps_from_v(v: Tensor, z_t: Tensor, level: Level) -> Tensor:
    """Epsilon from a v-prediction (Salimans & Ho, variance-preserving): ``eps = a v + s z_t``."""
    return level.a * v + level.s * z_t


@dataclass(frozen=True)
class Denoised:
    """The frozen model's estimate at ``z_t`` in both forms of ``z_t = a z0 + s eps``: the noise ``eps`` and
    Tweedie's ``z0`` (eq. 4/14). Both are affine in the network output with coefficients fixed by ``z_t`` and its
    level, so an affine combination with weights summing to one (CFG, eq. 6/18; localized guidance, eq. 19) may be
    applied to each field alike: :meth:`combine`. Keeping ``z0`` avoids dividing by ``a = 0`` at the pure-noise end
    of a flow (sigma = 1), where eps alone does not determine z0."""

    eps: Tensor
    z0: Tensor

    def __getitem__(self, rows) -> "Denoised":
        return Denoised(self.eps[rows], self.z0[rows])

    def chunk(self, n: int) -> list["Denoised"]:
        return [Denoised(e, z) for e, z in zip(self.eps.chunk(n), self.z0.chunk(n))]

    @staticmethod
    def combine(fn: Callable[..., Tensor], *args, **kwargs) -> "Denoised":
        """``fn`` (an affine combination with weights summing to one, e.g. :func:`cfg`) applied to the eps
        fields and to the z0 fields of its ``Denoised`` arguments (other arguments are passed as they are)."""
        pick = lambda field: [getattr(a, field) if isinstance(a, Denoised) else a for a in args]  # noqa: E731
        return Denoised(fn(*pick("eps"), **kwargs), fn(*pick("z0"), **kwargs))


def denoised(output: Tensor, z_t: Tensor, level: Level, prediction_type: str) -> Denoised:
    """The network ``output`` at ``z_t`` read as (eps, z0) at noise level ``level``.

    ``epsilon``: eps = output. ``v_prediction``: eps = a v + s z_t. ``flow`` (velocity ``v = eps - z0``):
    ``z0 = z_t - s v``, ``eps = z_t + a v`` (for a = 1 - sigma, s = sigma: x0 = x_t - sigma v, eps = x_t + (1 - sigma) v).
    """
    if prediction_type == "flow":
        return Denoised(eps=z_t + level.a * output, z0=z_t - level.s * output)
    if prediction_type == "v_prediction":
        eps = eps_from_v(output, z_t, level)
    elif prediction_type == "epsilon":
        eps = output
    else:
        raise ValueError(f"prediction type {prediction_type!r} is not one of {PREDICTION_TYPES}")
    return Denoised(eps=eps, z0=z0_hat(z_t, eps, level))


def eta_noise(eps_hat: Tensor, noise: Tensor | None, level_t: Level, level_prev: Level, eta: float) -> Tensor:
    """Renoising noise eps_tilde of eq. (5): ``sqrt(1 - sigma^2 / s'^2) eps_hat + (sigma / s') noise``.

    ``sigma^2 = eta^2 (s'/s)^2 (s^2 - (a/a')^2 s'^2)`` is the variance of the Gaussian posterior q(z_{t'} | z_t, z0)
    scaled by eta^2: DDIM's ``eta^2 (1-ab')/(1-ab) (1 - ab/ab')`` for variance-preserving models, and the same
    posterior of the Gaussian path ``a z0 + s eps`` for rectified flow (its documented analog). Returns ``eps_hat``
    itself when ``eta == 0`` (deterministic, Alg. 3) or when the next level is clean (``s' = 0``: the noise is
    multiplied by zero there, and the ratio would be 0/0).
    """
    if eta == 0:
        return eps_hat
    f64 = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    a, s, a_p, s_p = f64(level_t.a), f64(level_t.s), f64(level_prev.a), f64(level_prev.s)
    if not bool((s_p > 0).all()):
        if bool((s_p == 0).all()):
            return eps_hat
        raise ValueError("eta_noise: per-sample levels with some clean next levels are not supported")
    sigma2 = eta ** 2 * (s_p / s) ** 2 * (s ** 2 - (a / a_p) ** 2 * s_p ** 2)
    sigma2 = torch.minimum(sigma2.clamp(min=0.0), s_p ** 2)
    w_det = ((s_p ** 2 - sigma2) / s_p ** 2).sqrt().to(eps_hat.dtype)
    w_rand = (sigma2.sqrt() / s_p).to(eps_hat.dtype)
    return w_det * eps_hat + w_rand * noise
