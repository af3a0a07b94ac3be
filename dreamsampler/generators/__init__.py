"""Generators g(psi): modules whose parameters are the optimized psi."""

from .latent import LatentGenerator

__all__ = ["LatentGenerator"]
