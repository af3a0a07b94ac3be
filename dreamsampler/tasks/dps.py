"""The raster stage of the Fig. 5 pipeline: a latent DPS solve of the SVG-reconstruction inverse problem."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from ..core import Term
from ..generators import LatentGenerator
from .base import DreamSamplerTask, Targets, proximal_sgd
from .generate import ddim_targets
from .svg import SVGBatch
from .svg_reconstruct import SVGReconstructTask


class LatentDPSTask(SVGReconstructTask):
    """Latent DPS (Chung et al. 2023, in a latent diffusion model as in PSLD without its gluing term) for the
    measurements of ``SVGReconstructTask``: from z_T = noise, each step takes the CFG Tweedie estimate ẑ₀(c_y) and
    its correction ``- zeta d||y - A D(ẑ₀)||_2 / dz_t`` (through the denoiser and the decoder) as the proximal
    target of a latent psi, renoised with the guided eps (DDIM, eta 0); the last step is a plain Tweedie step. The
    result is a raster (``<name>.png``): the Fig. 5 pipeline vectorizes it (``raster_dir`` of ``SDSTextToSVGTask`` /
    ``PDSSVGTask``). Samples as ``SVGReconstructTask`` (``prompt``, ``image`` | ``measurement``); its SVG arguments
    (paths, learning rates, ...) are not used.

    Args:
        zeta: DPS step size on the residual norm (DPS's 1.0 for super-resolution).
        optimizer: SGD lr 0.5 (the exact proximal step of a latent psi; not ``TextToSVGTask``'s Adam).
        (other arguments: see ``SVGReconstructTask``; ``omega`` is the CFG scale of ẑ₀(c_y))
    """

    def __init__(self, zeta: float = 1.0, optimizer: OptimizerCallable = proximal_sgd, **kwargs: Any) -> None:
        self.zeta = zeta
        super().__init__(init="circles", proximal="latent", optimizer=optimizer, **kwargs)

    def build_generator(self, batch: SVGBatch) -> LatentGenerator:
        self.register_buffer("y", batch.y, persistent=False)
        self.svg_batch = batch
        return self.latent_generator(len(batch.names), self.size)

    def start(self, batch: SVGBatch) -> Tensor:
        """psi = 0, eps_tilde ~ N(0, I): z_T = s_T eps (Alg. 2)."""
        return self.noise_start()

    def needs_backbone_grad(self, step: dict) -> bool:
        return not self.is_last_step(step)

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        grad = self.needs_backbone_grad(step)
        out = ddim_targets(*self.denoise_prompts(z_t, step, self.null_prompt, self.svg_batch.prompts, grad=grad),
                           self.omega)
        if not grad:
            return out
        x0 = (self.backbone.decode(out.z0, grad=True) + 1) / 2
        residual = (self.y - self.operator(x0)).flatten(1).norm(dim=1).sum()
        (g,) = torch.autograd.grad(residual, z_t)
        return Targets(z0=out.z0 - self.zeta * g, eps_renoise=out.eps_renoise)

    def terms(self, g_out: Tensor, latent: Tensor, targets: Targets, step: dict) -> dict[str, Term]:
        return DreamSamplerTask.terms(self, g_out, latent, targets, step)

    def after_step(self, step: dict) -> None:
        """No paths to re-initialize."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """No SVG to write."""

    def result_images(self) -> dict[str, Tensor]:
        """``final`` (the raster), ``measurement`` and ``comparison`` (measurement | raster | truth)."""
        with torch.no_grad():
            final = self.decode_latent(self.generator.psi.detach()).cpu()
        meas = self.upsampled_measurement()
        panels = [meas, final] + ([self.svg_batch.truth] if self.svg_batch.truth is not None else [])
        return {"final": final, "measurement": meas, "comparison": torch.cat(panels, dim=3)}

    def result_texts(self) -> dict[str, list[str]]:
        return {}
