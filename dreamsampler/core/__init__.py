"""Pure functions of the paper's equations: Tweedie, CFG, renoising, inversion, the step objective."""

from .diffusion import cfg, eps_from_v, eta_noise, localized_eps, renoise, z0_hat
from .inversion import ddim_invert
from .objective import Term, squared_error, total_loss

__all__ = ["Term", "cfg", "ddim_invert", "eps_from_v", "eta_noise", "localized_eps", "renoise", "squared_error",
           "total_loss", "z0_hat"]
