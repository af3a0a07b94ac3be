"""Score distillation on SVGs: VectorFusion's SDS stage (text-to-SVG), PDS SVG editing, and the refinement stage of
the Fig. 5 pipeline (an SVG vectorized from a raster, then refined by SDS or PDS): the ``SDS`` / ``PDS`` methods of
``distill.py`` on the text-to-SVG task's generator, rasterizer and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from ..errors import InputError
from ..generators import SVGGenerator
from ..generators.vectorize import fit_paths, mse_to, seed_circles
from ..io.images import load_image
from .distill import PDS, SDS, check_t_range
from .svg import SVGBatch, TextToSVGTask, paper_adam

#: PDS's iconography prompt modifier (svg_editing/pds_svg.py).
PDS_SUFFIX = ". minimal flat 2d vector image. lineal color. trending on artstation"


def pds_svg_adam(params: Any) -> torch.optim.Optimizer:
    """PDS SVG editing's optimizer: Adam with the default betas and eps (lrs from the generator's groups)."""
    return torch.optim.Adam(params, lr=1e-2)


class DistillSVGTask(TextToSVGTask):
    """An SVG optimized by score distillation. psi starts as in ``TextToSVGTask`` (``init_svg`` files: the SVG to
    edit; ``init: sample``: a raster sample of the prompt vectorized by MSE, VectorFusion's recipe, its DDIM run with
    ``raster_nfe`` steps) or, with ``raster_dir``, from ``<raster_dir>/<name>.png`` vectorized by MSE (the Fig. 5
    pipeline: a raster solved from the measurement by another method, e.g. ``LatentDPSTask``). The source branch of
    PDS is the start picture, ``z_source = E(g(psi_0))``, with the sample's ``source_prompt`` (default: its prompt).

    Args:
        guidance_scale: CFG scale of the distillation's eps.
        raster_nfe: DDIM steps of the raster sample (``init: sample``).
        raster_dir: folder of rasters ``<name>.png`` to vectorize as the start (overrides ``init``).
        (other arguments: see ``TextToSVGTask``; ``nfe`` is the number of iterations, ``t_range`` their t range)
    """

    item_keys = ("prompt", "init_svg", "source_prompt", "image")   #: ``image``: a ground truth to score against

    def __init__(self, guidance_scale: float = 100.0, raster_nfe: int = 50, raster_dir: str | None = None,
                 **kwargs: Any) -> None:
        self.guidance_scale, self.raster_nfe, self.raster_dir = guidance_scale, raster_nfe, raster_dir
        super().__init__(**kwargs)
        check_t_range(self.t_range)
        if raster_dir is not None and not Path(raster_dir).is_dir():
            raise InputError(f"raster_dir {raster_dir!r} is not a folder (it holds <name>.png rasters to vectorize)")

    def raster_steps(self) -> list[dict]:
        return self.backbone.schedule(self.raster_nfe, self.size, self.spacing, None, self.pairing).steps

    def target_prompts(self) -> list[str]:
        return self.svg_batch.prompts

    def build_generator(self, batch: SVGBatch) -> SVGGenerator:
        generator = super().build_generator(batch)
        self.src_prompts = list(batch.source_prompts)
        # persistent: a resumed run keeps the source the start picture gave
        self.register_buffer("z_source", torch.zeros(len(batch.names), *self.backbone.latent_shape(self.size)))
        return generator

    def start(self, batch: SVGBatch) -> Tensor:
        """psi's start (see the class), then ``z_source = E(g(psi_0))``; eps_tilde is not used."""
        if self.raster_dir is not None and not any(batch.init_svgs):
            files = [Path(self.raster_dir) / f"{n}.png" for n in self.sample_names]
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise InputError(f"raster_dir: no raster for {missing} (run the raster method first)")
            self.raster_sample = torch.cat([load_image(f, self.size) for f in files]).to(self.device)
            seed_circles(self.generator, self.raster_sample, self.seed, self.sample_names, self.radius)
            fit_paths(self.generator, mse_to(self.raster_sample), self.vectorize_iterations)
        else:
            super().start(batch)
        with torch.no_grad():
            self.z_source.copy_(self.encode_generated(self.generator()))
        return torch.zeros_like(self.z_source)


class SDSTextToSVGTask(SDS, DistillSVGTask):
    """VectorFusion's SDS stage (ximinng/VectorFusion-pytorch settings): from a vectorized raster sample, t uniform
    on [50, 950] (both ends), omega 100 (standard CFG), ``w = 1 - alpha_bar_t``, the exact gradient (``grad_scale``
    1, its ``SpecifyGradient``), Adam(0.9, 0.9, eps 1e-6) with points lr 1.0 (px at 512²) and colors 0.01, dead
    paths re-initialized every 50 iterations up to 800 (its LIVE stage and augmentations are not reproduced; its
    lr decay to 0.4x is ``lr_scheduler: LinearLR``, see configs/paper/compare_fig5_svg.yaml)."""

    def __init__(self, guidance_scale: float = 100.0, t_range: tuple[float, float] = (50, 950), nfe: int = 1000,
                 grad_scale: float = 1.0, optimizer: OptimizerCallable = paper_adam, **kwargs: Any) -> None:
        self.grad_scale = grad_scale
        super().__init__(guidance_scale=guidance_scale, t_range=t_range, nfe=nfe, optimizer=optimizer, **kwargs)


class PDSSVGTask(PDS, DistillSVGTask):
    """PDS SVG editing (svg_editing/pds_svg.py defaults): t in {101, 103, ..., 979}, omega 100, Adam points lr 0.8
    (px at 512²) and colors 0.01, 1000 iterations, the iconography suffix, no path re-initialization; the loss
    ``0.5 mse_mean`` (``grad_scale`` 1/16384 at SD's latents). Give the SVG to edit as ``init_svg`` and its text as
    ``source_prompt``; without them it refines its own start picture (the Fig. 5 pipeline's PDS refinement)."""

    def __init__(self, guidance_scale: float = 100.0, t_range: tuple[float, float] = (101, 979), nfe: int = 1000,
                 grad_scale: float = 1 / 16384, optimizer: OptimizerCallable = pds_svg_adam, lr_points: float = 0.8,
                 prompt_suffix: str = PDS_SUFFIX, reinit_every: int = 0, **kwargs: Any) -> None:
        self.grad_scale = grad_scale
        super().__init__(guidance_scale=guidance_scale, t_range=t_range, nfe=nfe, optimizer=optimizer,
                         lr_points=lr_points, prompt_suffix=prompt_suffix, reinit_every=reinit_every, **kwargs)
