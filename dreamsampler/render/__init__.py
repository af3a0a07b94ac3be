"""Differentiable rasterizer for filled closed cubic Bézier paths (pure PyTorch; optional DiffVG backend).

Public API: :func:`rasterize` and :class:`RasterizeError`. See ``docs/rasterizer.md``.
"""
from .rasterize import rasterize
from .validate import RasterizeError

__all__ = ["rasterize", "RasterizeError"]
