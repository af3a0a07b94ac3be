"""Pure tensor functions of the diffusion maths, one per equation of the paper (no state, no logging)."""

from __future__ import annotations

import torch
from torch import Tensor


def _sqrt(x: Tensor | float, like: Tensor) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64).sqrt().to(like.dtype)


def z0_hat(z_t: Tensor, eps: Tensor, alpha_bar_t: Tensor | float) -> Tensor:
    """Tweedie's posterior mean, eq. (4)/(14): ``(z_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``."""
    ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    return (z_t - _sqrt(1 - ab, z_t) * eps) / _sqrt(ab, z_t)


def renoise(z0: Tensor, eps: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """Forward diffusion with a given noise, eq. (1)/(3)/(12): ``sqrt(alpha_bar) z0 + sqrt(1 - alpha_bar) eps``."""
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    return _sqrt(ab, z0) * z0 + _sqrt(1 - ab, z0) * eps


def cfg(eps_uc: Tensor, eps_c: Tensor, omega: Tensor | float) -> Tensor:
    """Classifier-free guidance, eq. (6)/(18): ``eps_uc + omega (eps_c - eps_uc)``."""
    return eps_uc + omega * (eps_c - eps_uc)


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


def eps_from_v(v: Tensor, z_t: Tensor, alpha_bar_t: Tensor | float) -> Tensor:
    """Epsilon from a v-prediction (Salimans & Ho): ``eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) z_t``."""
    ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    return _sqrt(ab, v) * v + _sqrt(1 - ab, v) * z_t


def eta_noise(eps_hat: Tensor, noise: Tensor | None, alpha_bar_t: Tensor | float, alpha_bar_prev: Tensor | float,
              eta: float) -> Tensor:
    """Renoising noise eps_tilde of eq. (5) for DDIM's sigma_t = eta * sqrt((1-ab')/(1-ab) (1 - ab/ab')).

    Returns ``eps_hat`` itself when ``eta == 0`` (deterministic sampling, Alg. 3).
    """
    if eta == 0:
        return eps_hat
    ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    abp = torch.as_tensor(alpha_bar_prev, dtype=torch.float64)
    sigma2 = eta**2 * (1 - abp) / (1 - ab) * (1 - ab / abp)
    sigma2 = sigma2.clamp(max=float(1 - abp))
    w_det = ((1 - abp - sigma2) / (1 - abp)).sqrt().to(eps_hat.dtype)
    w_rand = (sigma2 / (1 - abp)).sqrt().to(eps_hat.dtype)
    return w_det * eps_hat + w_rand * noise
