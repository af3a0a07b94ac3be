"""Text-to-image from noise (Alg. 2 with the latent generator g = identity): DDIM sampling with CFG, as a task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from safetensors.torch import load_file
from torch import Tensor

from ..core import Denoised, cfg
from ..errors import InputError
from ..generators import LatentGenerator
from .base import DreamSamplerTask, Targets


def ddim_targets(uncond: Denoised, cond: Denoised, omega: float) -> Targets:
    """Plain DDIM sampling with CFG as a DreamSampler step: the guided z0 (eq. 6) as the target and the guided eps
    as the renoising noise (eq. 5 with eta = 0)."""
    guided = Denoised.combine(cfg, uncond, cond, omega)
    return Targets(z0=guided.z0, eps_renoise=guided.eps)


@dataclass
class GenerateSample:
    """One image to generate: its prompt, and a ``name`` that names its output and keys its noise."""

    prompt: str
    name: str | None = None


@dataclass
class GenerateBatch:
    names: list[str]
    prompts: list[str]


class GenerateTask(DreamSamplerTask):
    """Alg. 2 from pure noise: ``eps_tilde ~ N(0, I)`` keyed ``(seed, "start", -1, name)``, target the guided
    Tweedie estimate (``eps_uc + omega (eps_c - eps_uc)``, eq. 6) and renoising with the same guided eps — i.e.
    DDIM sampling with classifier-free guidance (Euler sampling for flow models), written as DreamSampler steps
    (eq. 7).

    Args:
        prompt: the text prompt (or ``samples``: several ``{prompt, name?}`` generated together).
        omega: CFG scale of eq. (6).
        null_prompt: the null text c_∅.
        size: image side in pixels.
        init_latent: optional ``.safetensors`` file with a tensor ``psi`` (B, C, h, w) to start psi from (a given
            psi; the default start is psi = 0, so z_T = s_T eps).
        (other arguments: see ``DreamSamplerTask``)
    """

    fit_needs = "`prompt` (or `samples`)"

    def __init__(self, prompt: str | None = None, samples: list[GenerateSample] | None = None, omega: float = 7.5,
                 null_prompt: str = "", size: int = 512, init_latent: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.omega, self.null_prompt, self.size, self.init_latent = omega, null_prompt, size, init_latent
        self.save_hyperparameters(ignore=["samples", "optimizer", "lr_scheduler"])
        self.hparams["samples"] = [s if isinstance(s, dict) else vars(s).copy() for s in (samples or [])]
        if not isinstance(size, int) or size <= 0:
            raise InputError(f"size must be a positive integer, got {size!r}")
        if prompt is not None and samples:
            raise InputError("give either `prompt` or `samples`, not both")
        items = samples or ([GenerateSample(prompt)] if prompt is not None else [])
        self.fit_batch = self.load_batch(items) if items else None

    def load_batch(self, items: Sequence[GenerateSample | dict]) -> GenerateBatch:
        samples = [it if isinstance(it, GenerateSample) else GenerateSample(it.get("prompt"), it.get("name"))
                   for it in items]
        for s in samples:
            if not isinstance(s.prompt, str) or not s.prompt.strip():
                raise InputError(f"prompt must be a non-empty string, got {s.prompt!r}")
        names = [s.name or f"sample{i}" for i, s in enumerate(samples)]
        if len(set(names)) != len(names):
            raise InputError(f"the samples' names must be unique (they name the outputs), got {names}")
        return GenerateBatch(names, [s.prompt for s in samples])

    def build_generator(self, batch: GenerateBatch) -> LatentGenerator:
        self.prompts = batch.prompts
        return self.latent_generator(len(batch.names), self.size)

    def start(self, batch: GenerateBatch) -> Tensor:
        """Alg. 2 line 1: eps_tilde from noise; psi = 0 or the given ``init_latent``."""
        if self.init_latent is not None:
            psi = self.generator.psi
            try:
                given = load_file(self.init_latent)["psi"]
            except Exception as err:     # safetensors raises several kinds for missing/garbage files
                raise InputError(f"init_latent {self.init_latent!r}: expected a .safetensors file with a tensor "
                                 f"'psi' ({err})") from err
            if given.shape != psi.shape:
                raise InputError(f"init_latent {self.init_latent!r}: psi has shape {tuple(given.shape)}, expected "
                                 f"{tuple(psi.shape)} (B, C, size/f, size/f)")
            self.generator.set_latent(given.to(psi))
        return self.noise_start()

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        """One denoiser call on [null × B, prompt × B]; CFG target, renoising with the guided eps (DDIM)."""
        return ddim_targets(*self.denoise_prompts(z_t, step, self.null_prompt, self.prompts), self.omega)

    def result_images(self) -> dict[str, Tensor]:
        return {"image": self.decode_latent(self.generator.psi.detach()).cpu()}
