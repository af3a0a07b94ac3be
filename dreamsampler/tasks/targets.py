"""What a task's ``targets`` returns for one step, and the default proximal optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class Targets:
    """What the frozen model gives for one reverse step, per sample (B, C, h, w)."""

    z0: Tensor               #: the proximal target ẑ₀ (Tweedie's from the model, or built directly)
    eps_renoise: Tensor | None  #: the noise carried to the next step before eq. (5)'s mixing (Alg. 3: eps_uc);
    #: None when every step draws its own noise (score distillation: ``resolve_step``)
    x0: Tensor | None = None  #: D(ẑ₀) in [0, 1], for tasks whose proximal term lives in pixel space

    def detach(self) -> "Targets":
        return Targets(*(None if v is None else v.detach() for v in (self.z0, self.eps_renoise, self.x0)))


def proximal_sgd(params: Any) -> torch.optim.Optimizer:
    """SGD with lr 0.5: one step on the summed ``||psi - ẑ₀||^2`` lands exactly on ẑ₀ (latent generator,
    eq. 7)."""
    return torch.optim.SGD(params, lr=0.5)
