"""Pure functions of the paper's equations: Tweedie, CFG, renoising, inversion."""

from .diffusion import cfg, eta_noise, localized_eps, renoise, z0_hat
from .inversion import ddim_invert

__all__ = ["cfg", "ddim_invert", "eta_noise", "localized_eps", "renoise", "z0_hat"]
