"""The latent generator: psi = z and g(psi) = psi (Alg. 3, the paper's Sec. 3.3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LatentGenerator(nn.Module):
    """psi is a latent of shape (1, C, h, w); ``forward()`` returns it (identity generator)."""

    #: g(psi) already lives in the latent space: no VAE encoder between g and the proximal term.
    outputs_latent = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.psi = nn.Parameter(torch.zeros(shape))

    def forward(self) -> Tensor:
        return self.psi
