"""Generators g(psi): modules whose parameters are the optimized psi."""

from .latent import LatentGenerator
from .svg import SVGGenerator

__all__ = ["LatentGenerator", "SVGGenerator"]
