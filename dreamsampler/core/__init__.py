"""Pure functions of the paper's equations for any noise level: Tweedie, CFG, renoising, inversion, the objective."""

from .diffusion import (PREDICTION_TYPES, Denoised, cfg, denoised, eps_from_v, eta_noise, localized_eps, renoise,
                        z0_hat)
from .inversion import ddim_invert
from .sampling import ddim_sample
from .levels import CLEAN, Level
from .objective import Term, squared_error, total_loss

__all__ = ["CLEAN", "Denoised", "Level", "PREDICTION_TYPES", "Term", "cfg", "ddim_invert", "ddim_sample", "denoised", "eps_from_v",
           "eta_noise", "localized_eps", "renoise", "squared_error", "total_loss", "z0_hat"]
