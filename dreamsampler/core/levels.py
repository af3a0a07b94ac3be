"""Noise levels in general form, ``z_t = a_t z0 + s_t eps``: one vocabulary for variance-preserving diffusion
(``a = sqrt(alpha_bar)``, ``s = sqrt(1 - alpha_bar)``, SD 1.x/2.x/XL) and rectified flow (``a = 1 - sigma``,
``s = sigma``, SD3, Flux).

Where the paper weights by ``alpha_bar_t`` (gamma = alpha_bar_t in eq. 21, gamma * alpha_bar_t in the edit, the
blends of the inpainting step), the code uses the *signal fraction* ``a^2 / (a^2 + s^2)``: it is alpha_bar_t for
variance-preserving models and the analogous weight for any other path — one definition, :attr:`Level.alpha_bar`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor

Scalar = float | Tensor


class Level(NamedTuple):
    """One noise level ``(a, s)`` of ``z = a z0 + s eps``: host floats for a schedule step, or (B, 1, 1, 1) tensors
    when every sample has its own level."""

    a: Scalar   #: signal scale
    s: Scalar   #: noise scale

    @classmethod
    def vp(cls, alpha_bar: float) -> "Level":
        """Variance-preserving diffusion (eq. 1): ``a = sqrt(alpha_bar)``, ``s = sqrt(1 - alpha_bar)``."""
        alpha_bar = float(alpha_bar)
        return cls(math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar))

    @classmethod
    def flow(cls, sigma: float) -> "Level":
        """Rectified flow: ``z_sigma = (1 - sigma) z0 + sigma eps``."""
        sigma = float(sigma)
        return cls(1.0 - sigma, sigma)

    @property
    def alpha_bar(self) -> Scalar:
        """The signal fraction ``a^2 / (a^2 + s^2)``: alpha_bar_t of the paper for variance-preserving models."""
        return self.a ** 2 / (self.a ** 2 + self.s ** 2)


#: The clean end of every path (t = 0 of a variance-preserving model with alpha_bar = 1, sigma = 0 of a flow).
CLEAN = Level(1.0, 0.0)
