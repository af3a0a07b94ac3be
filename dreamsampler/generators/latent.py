"""The latent generator: psi = z and g(psi) = psi (Alg. 3, the paper's Sec. 3.3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LatentGenerator(nn.Module):
    """psi is a batch of latents (B, C, h, w), one per independent sample; ``forward()`` returns it (identity)."""

    #: g(psi) already lives in the latent space: no VAE encoder between g and the proximal term.
    outputs_latent = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.psi = nn.Parameter(torch.zeros(shape))

    def forward(self) -> Tensor:
        return self.psi

    def param_groups(self) -> list[dict]:
        """Optimizer parameter groups (one: the latent); a generator with several kinds of parameters (SVG points
        and colors) returns one group each, with its own ``lr`` where it needs one."""
        return [{"params": [self.psi], "name": "psi"}]

    @torch.no_grad()
    def set_latent(self, z: Tensor) -> None:
        """Start psi at the latent ``z`` (B, C, h, w) (e.g. the last DDIM-inversion step's z0')."""
        self.psi.copy_(z)
