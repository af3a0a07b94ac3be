"""Table 1's first baselines: DDIM inversion + word swap, and SDEdit + word swap, as edit tasks (plain DDIM with
CFG on the target prompt, from an inverted or a noised source)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..errors import InputError
from ..schedule import Schedule
from .edit import EditBatch, EditTask
from .generate import ddim_targets
from .base import Targets


class WordSwapEditTask(EditTask):
    """DDIM inversion + word swap: invert E(source) conditioned on the source prompt (omega 1; the null prompt when
    a sample has none), then DDIM-sample the target prompt with CFG ``omega`` over the same schedule.

    Args:
        omega: CFG scale of the sampling (7.5: the usual setting of this baseline).
        source_prompt: the source text for samples without their own ``source_prompt``.
        (other arguments: see ``EditTask``; ``gamma`` is not used)
    """

    def __init__(self, omega: float = 7.5, source_prompt: str | None = None, **kwargs: Any) -> None:
        self.omega, self.default_source_prompt = omega, source_prompt
        super().__init__(**kwargs)

    def build_generator(self, batch: EditBatch):
        generator = super().build_generator(batch)
        self.require_global_prompts(batch)
        return generator

    def source_prompts(self, batch: EditBatch) -> list[str]:
        return [p or self.default_source_prompt or self.null_prompt for p in batch.source_prompts]

    def start(self, batch: EditBatch) -> Tensor:
        """Conditional DDIM inversion of E(source) with the source prompts."""
        return self.inversion_start(self.backbone.encode(self.source * 2 - 1), self.source_prompts(batch))

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        return ddim_targets(*self.denoise_prompts(z_t, step, self.null_prompt, self.edit_batch.prompts), self.omega)


class SDEditTask(WordSwapEditTask):
    """SDEdit + word swap (Meng et al. 2022): noise E(source) to the ``strength`` point of the schedule (as diffusers'
    img2img: the last ``int(nfe * strength)`` steps; noise keyed ``(seed, "start", -1, sample)``), then DDIM-sample
    the target prompt with CFG ``omega``.

    Args:
        strength: fraction of the schedule that is run (0.8: diffusers' default).
        (other arguments: see ``WordSwapEditTask``)
    """

    def __init__(self, strength: float = 0.8, **kwargs: Any) -> None:
        if not 0 < strength <= 1:
            raise InputError(f"strength must be in (0, 1], got {strength}")
        self.strength = strength
        super().__init__(**kwargs)

    def make_schedule(self, size: int) -> Schedule:
        full = super().make_schedule(size)
        keep = int(len(full.steps) * self.strength)
        if keep < 1:
            raise InputError(f"strength {self.strength} keeps no step of the {len(full.steps)}-step schedule")
        return Schedule(full.steps[len(full.steps) - keep:], full.inversion_start)

    def start(self, batch: EditBatch) -> Tensor:
        """psi = E(source), eps_tilde = fresh noise: z at the first kept step is E(source) noised to its level."""
        self.generator.set_latent(self.backbone.encode(self.source * 2 - 1))
        return self.noise_start()
