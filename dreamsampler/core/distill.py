"""Score-distillation update rules (the baselines of Sec. 4 / Fig. 7), one pure function each.

Each returns the method's gradient ``grad`` on the latent x. DreamSampler's Theorem 1 reads every one of them as a
proximal step: with the target ``z0 = x - grad`` (:func:`distill_target`), ``d/dx (1/2)||x - z0||^2 = grad``, so a
baseline is a task whose ``targets`` builds z0 directly (no Tweedie) and whose term weight sets the official scale.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .diffusion import renoise, z0_hat
from .levels import Level


def distill_target(x: Tensor, grad: Tensor) -> Tensor:
    """Theorem 1: the proximal target ``x - grad`` whose term ``(1/2)||x - z0||^2`` has gradient ``grad`` at x."""
    return x - grad


def sds_grad(eps_guided: Tensor, noise: Tensor, weight: Tensor | float) -> Tensor:
    """SDS (DreamFusion, Poole et al. 2023, eq. 3): ``w(t) (eps_hat_omega(z_t, c) - eps)``, NaN/inf made finite
    as threestudio's guidance does."""
    return torch.nan_to_num(weight * (eps_guided - noise))


def dds_grad(eps_target: Tensor, eps_source: Tensor) -> Tensor:
    """DDS (Hertz et al. 2023, Delta Denoising Score): ``eps_hat_omega(z_t^tgt, c_tgt) - eps_hat_omega(z_t^src,
    c_src)`` with t and eps shared by the two branches (weight 1, as the official notebook)."""
    return eps_target - eps_source


def pds_noise(x0: Tensor, x_t: Tensor, eps_hat: Tensor, noise_prev: Tensor, level_t: Level, level_prev: Level,
              beta_t: Tensor | float) -> Tensor:
    """PDS (Koo et al. 2024, Posterior Distillation Sampling): the stochastic latent ``(x_prev - mu(x_t, eps_hat)) /
    sigma_t`` of one branch, with ``x_prev = renoise(x0, noise_prev, level_prev)`` and the DDPM posterior mean ``mu
    = c0 z0_hat + c1 x_t``, written as the official ``pds.py``: coefficients from the *single-step* ``beta_t`` even
    though t_prev = t - 2 (which leaves an implicit pull toward the source; kept to match the official results)."""
    ab_t, ab_prev = level_t.alpha_bar, level_prev.alpha_bar
    sigma_t = ((1 - ab_prev) / (1 - ab_t) * beta_t) ** 0.5
    c0 = ab_prev ** 0.5 * beta_t / (1 - ab_t)
    c1 = (1 - beta_t) ** 0.5 * (1 - ab_prev) / (1 - ab_t)
    mu = c0 * z0_hat(x_t, eps_hat, level_t) + c1 * x_t
    return (renoise(x0, noise_prev, level_prev) - mu) / sigma_t


def pds_grad(z_target: Tensor, z_source: Tensor) -> Tensor:
    """PDS (Koo et al. 2024): the gradient ``z_tgt - z_src``, the difference of the two branches' :func:`pds_noise`."""
    return torch.nan_to_num(z_target - z_source)
