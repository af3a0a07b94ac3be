"""Linear measurement operators (A x, A^T y) and a batched conjugate-gradient solver for inverse problems."""

from .cg import conjugate_gradient, normal_equations, solve_data_consistency
from .linear import (Compose, Downsample, GaussianBlur, Identity, LinearOperator, PixelMask,
                     gaussian_kernel_1d, measure)

__all__ = ["Compose", "Downsample", "GaussianBlur", "Identity", "LinearOperator", "PixelMask",
           "conjugate_gradient", "gaussian_kernel_1d", "measure", "normal_equations", "solve_data_consistency"]
