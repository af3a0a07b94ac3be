"""Vector graphics on the DreamSampler step: text-to-SVG (eq. 21 with lambda_dc = 0; reconstruction from degraded
images, the full eq. 21, is in ``svg_reconstruct.py``).

g(psi) is an :class:`~dreamsampler.generators.SVGGenerator` (control points and RGBA fills rasterized on white);
the proximal term lives in the latent space, ``||E(g(psi)) - z0_hat(c_y)||^2`` (eq. 21), so gradients go through the
rasterizer and the VAE encoder only — never a UNet backward (eq. 11); or, with ``proximal: pixel``, in pixel space
against the decoded target, ``||g(psi) - D(z0_hat)||^2`` (no encoder backward at all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from ..core import Denoised, Term, cfg, ddim_sample, squared_error
from ..data.checks import file_exists, prompt_ok, unknown_keys
from ..errors import InputError
from ..generators import SVGGenerator
from ..generators.vectorize import fit_paths, mse_to, seed_circles
from ..io.images import load_image
from ..seeding import randn_batch
from .base import DreamSamplerTask, Targets

#: The paper's prompt suffix for c_y (Sec. 4.1, footnote 5).
PAPER_SUFFIX = ", minimal flat 2d vector icon. lineal color. on a white background. trending on artstation."


#: The timesteps over which the DreamSampler steps refine a vectorized raster sample (``init: sample``): lower
#: than this the picture keeps its shapes (on the shapes prior, t_max 500 re-decides 2-3 of 18 shapes, 250 none).
SAMPLE_REFINE_T_RANGE = (0.0, 250.0)


def paper_adam(params: Any) -> torch.optim.Optimizer:
    """Adam with betas (0.9, 0.9) (paper, Sec. 4.1) and eps 1e-6 (VectorFusion); lrs come from the generator's
    parameter groups (points, colors)."""
    return torch.optim.Adam(params, lr=1e-2, betas=(0.9, 0.9), eps=1e-6)


@dataclass
class SVGSample:
    """One SVG to make: the text ``prompt`` c_y (the object; the task appends its suffix), optionally a clean
    ``image`` to degrade with the operator (ground truth known) or a ``measurement`` file y, and an ``init_svg``
    to start psi from; ``name`` names its outputs and keys its noise."""

    prompt: str
    image: str | None = None
    measurement: str | None = None
    init_svg: str | None = None
    name: str | None = None
    source_prompt: str | None = None    #: the start picture's text (PDS's source branch; default: ``prompt``)


@dataclass
class SVGBatch:
    names: list[str]
    prompts: list[str]                  #: with the suffix
    init_svgs: list[str | None]
    truth: Tensor | None = None         #: (B, 3, H, W) in [0, 1], when every sample has a clean image
    y: Tensor | None = None             #: (B, 3, h, w) measurements
    source_prompts: list[str] = field(default_factory=list)   #: with the suffix (default: the prompt)


def _sample(item: SVGSample | dict) -> SVGSample:
    if isinstance(item, SVGSample):
        return item
    return SVGSample(**{k: v for k, v in item.items() if k in SVGSample.__dataclass_fields__})


class TextToSVGTask(DreamSamplerTask):
    """Text-to-SVG with DreamSampler (Alg. 2, g = rasterizer): per step the CFG Tweedie target
    ``z0_hat(z_t, eps^omega(c_y))`` and ``inner_steps`` Adam steps on ``lambda_sds ||E(g(psi)) - z0_hat||^2``.

    By default (``init: sample``) psi starts from a raster sample of the prompt vectorized by MSE (VectorFusion's
    recipe) and the DreamSampler steps refine it over ``t_range`` (default [0, 250]), continuing the sample's own
    noise. Started from the paper's random circles over the whole schedule, a 64² SVG cannot follow the early
    targets and the trajectory loses the prompt (docs/benchmarks.md: 4/18 read back vs 18/18).

    Args:
        prompt: c_y, the object (or ``samples``: several ``{prompt, init_svg?, name?}`` made together).
        prompt_suffix: appended to every prompt (default: the paper's; "" for the shapes prior).
        null_prompt: c_∅.
        omega: CFG scale of the target.
        size: canvas side in pixels (the VAE sees the raster at this size).
        paths, segments: paths per SVG and cubic segments per path.
        raster_samples: supersamples per pixel side of the rasterizer.
        lr_points, lr_colors: learning rates of the points (px at 512², scaled with the canvas) and colors.
        lambda_sds: weight of the proximal (score-distillation) term.
        reinit_every, reinit_until: re-initialize dead paths (opacity < ``min_opacity`` or tiny area) every
            this many reverse steps up to step ``reinit_until`` (0: never); seeded, so resumable.
        min_opacity: opacity below which a path is dead.
        radius: radius of the initial circles in pixels (default: the paper's 20 px at 512², scaled).
        proximal: ``latent`` (eq. 21, ``||E(g(psi)) - ẑ₀||²``) or ``pixel`` (``||g(psi) - D(ẑ₀)||²``: no encoder
            backward, D(ẑ₀) decoded once per step).
        time_weight: weight the proximal term by ``1 - alpha_bar_t`` (eq. 21 with lambda_dc = 0) instead of 1.
        init: ``sample`` (a raster sample of the prompt, vectorized; then ``t_range`` defaults to [0, 250]) or
            ``circles`` (the paper's random circles, over the whole schedule unless ``t_range`` is given).
        vectorize_iterations: Adam steps of the MSE fit of the paths to the raster sample.
        (other arguments: see ``DreamSamplerTask``; the default optimizer is Adam with betas (0.9, 0.9))
    """

    item_keys = ("prompt", "init_svg")  #: a dataset sample's keys (besides ``name``)

    stop_on_nonfinite = True        # Adam on raster gradients can diverge: stop with the step named

    fit_needs = "`prompt` (or `samples`)"

    def __init__(self, prompt: str | None = None, samples: list[SVGSample] | None = None,
                 prompt_suffix: str = PAPER_SUFFIX, null_prompt: str = "", omega: float = 7.5, size: int = 512,
                 paths: int = 128, segments: int = 4, raster_samples: int = 2, lr_points: float = 1.0,
                 lr_colors: float = 0.01, lambda_sds: float = 1.0, reinit_every: int = 50, reinit_until: int = 800,
                 min_opacity: float = 0.05, radius: float | None = None, proximal: str = "latent",
                 time_weight: bool = False, init: str = "sample", vectorize_iterations: int = 100,
                 optimizer: OptimizerCallable = paper_adam, **kwargs) -> None:
        if init == "sample" and kwargs.get("t_range") is None:
            kwargs["t_range"] = SAMPLE_REFINE_T_RANGE
            self.t_range_note = (f" (the refine range init 'sample' uses by default; raise nfe, or set t_range, e.g. "
                                 f"[0, 1000] for the whole schedule)")
        super().__init__(optimizer=optimizer, **kwargs)
        if not isinstance(size, int) or size <= 0:
            raise InputError(f"size must be a positive integer, got {size!r}")
        if not isinstance(paths, int) or paths <= 0:
            raise InputError(f"paths must be a positive integer (an SVG of zero paths is an empty picture), "
                             f"got {paths!r}")
        self.prompt_suffix, self.null_prompt, self.omega, self.size = prompt_suffix, null_prompt, omega, size
        self.paths, self.segments, self.raster_samples = paths, segments, raster_samples
        self.lr_points, self.lr_colors, self.lambda_sds = lr_points, lr_colors, lambda_sds
        self.reinit_every, self.reinit_until, self.min_opacity = reinit_every, reinit_until, min_opacity
        self.radius = radius
        if proximal not in ("latent", "pixel"):
            raise InputError(f"proximal must be 'latent' (eq. 21) or 'pixel', got {proximal!r}")
        if init not in ("circles", "sample"):
            raise InputError(f"init must be 'circles' (the paper's) or 'sample' (vectorize a raster sample), "
                             f"got {init!r}")
        self.proximal, self.time_weight, self.init = proximal, time_weight, init
        self.vectorize_iterations = vectorize_iterations
        self.save_hyperparameters(ignore=["samples", "optimizer", "lr_scheduler", "operator"])
        self.hparams["samples"] = [s if isinstance(s, dict) else vars(s).copy() for s in (samples or [])]
        if prompt is not None and samples:
            raise InputError("give either `prompt` or `samples`, not both")
        self._fit_items = samples or ([SVGSample(prompt)] if prompt is not None else [])
        self.fit_batch = self.load_batch(self._fit_items) if self._fit_items else None

    # ------------------------------------------------------------------ samples
    def check_item(self, item: dict) -> list[str]:
        """Structure of one dataset sample ``{prompt, init_svg?}`` (file contents not read)."""
        problems = unknown_keys(item, self.item_keys, f"a {type(self).__name__} sample") + prompt_ok(item.get("prompt"))
        return problems + (file_exists(item["init_svg"], "init_svg") if item.get("init_svg") is not None else [])

    def load_batch(self, items: Sequence[SVGSample | dict]) -> SVGBatch:
        samples = [_sample(it) for it in items]
        for s in samples:
            if not isinstance(s.prompt, str) or not s.prompt.strip():
                raise InputError(f"prompt must be a non-empty string, got {s.prompt!r}")
            if s.init_svg is not None and not Path(s.init_svg).is_file():
                raise InputError(f"init_svg file {s.init_svg!r} does not exist")
        names = [s.name or (Path(s.image).stem if s.image else f"sample{i}") for i, s in enumerate(samples)]
        if len(set(names)) != len(names):
            raise InputError(f"the samples' names must be unique (they name the outputs), got {names}")
        return SVGBatch(names, [s.prompt + self.prompt_suffix for s in samples], [s.init_svg for s in samples],
                        source_prompts=[(s.source_prompt or s.prompt) + self.prompt_suffix for s in samples])

    def build_generator(self, batch: SVGBatch) -> SVGGenerator:
        self.svg_batch = batch
        return SVGGenerator(len(batch.names), self.paths, self.segments, self.size, self.size,
                            self.raster_samples, self.lr_points, self.lr_colors)

    def start(self, batch: SVGBatch) -> Tensor:
        """psi: the paper's circles (seeded per sample), the given SVG files, or (``init: sample``) a raster sample
        of the prompt vectorized by MSE; eps_tilde ~ N(0, I) (Alg. 2)."""
        gen, files = self.generator, self.svg_batch.init_svgs
        if any(files):
            if not all(files):
                raise InputError("init_svg must be given for every sample of a batch or for none")
            gen.init_from_svg(files)
        elif self.init == "sample":
            self.raster_sample, eps = self.sample_raster()
            seed_circles(gen, self.raster_sample, self.seed, self.sample_names, self.radius)
            fit_paths(gen, mse_to(self.raster_sample), self.vectorize_iterations)
            return eps
        else:
            gen.init_circles(self.seed, self.sample_names, self.radius)
        return self.noise_start()

    def raster_steps(self) -> list[dict]:
        """The DDIM schedule of the raster sample (``init: sample``): the task's, over all timesteps."""
        return self.backbone.schedule(self.nfe, self.size, self.spacing, None, self.pairing).steps

    def sample_raster(self) -> tuple[Tensor, Tensor]:
        """A raster of every prompt, ``(B, 3, H, W)`` in [0, 1]: DDIM over the whole schedule from z_T keyed
        ``(seed, "svg-sample", -1, sample)``, with the task's CFG. Also returns the sampler's guided noise at the
        first step of the task's own schedule: eps_tilde continues the sample's trajectory from there."""
        steps = self.raster_steps()
        z_T = randn_batch(tuple(self.eps_tilde.shape[1:]), self.seed, "svg-sample", -1, self.sample_names,
                          device=self.device)
        first_t, kept = self.schedule.steps[0].get("t"), {}

        def guided(z: Tensor, step: dict) -> Denoised:
            uc, c = self.denoise_prompts(z, step, self.null_prompt, self.svg_batch.prompts)
            out = Denoised.combine(cfg, uc, c, self.omega)
            if step["t"] == first_t:
                kept["eps"] = out.eps
            return out
        z0 = ddim_sample(guided, z_T, steps)
        return self.decode_latent(z0), kept.get("eps", z_T)

    def eval_inputs(self, item: dict) -> dict:
        """The prompt, and the clean ``image`` when the sample has one (reconstruction and the baselines scored
        against a ground truth)."""
        truth = load_image(item["image"], self.size) if item.get("image") else None
        return {"prompt": item.get("prompt"), **({"truth": truth} if truth is not None else {})}

    # ------------------------------------------------------------------ the step
    @property
    def latent_terms(self) -> bool:
        return self.proximal == "latent"

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        """One denoiser call on [null × B, c_y × B]; CFG Tweedie target, renoising with the guided eps (Alg. 2).
        With the pixel-space proximal term the target is also decoded once, D(ẑ₀)."""
        uc, c = self.denoise_prompts(z_t, step, self.null_prompt, self.svg_batch.prompts)
        guided = Denoised.combine(cfg, uc, c, self.omega)
        x0 = None if self.latent_terms else self.backbone.decode(guided.z0).clamp(-1, 1) * 0.5 + 0.5
        return Targets(z0=guided.z0, eps_renoise=guided.eps, x0=x0)

    def sds_weight(self, step: dict) -> float:
        """``lambda_sds``, or eq. (21)'s ``(1 - alpha_bar_t) lambda_sds`` with ``time_weight`` (lambda_dc = 0)."""
        return (1 - float(step["alpha_bar_t"])) * self.lambda_sds if self.time_weight else self.lambda_sds

    def terms(self, g_out: Tensor, latent: Tensor | None, targets: Targets, step: dict) -> dict[str, Term]:
        """The proximal term: ``||E(g(psi)) - ẑ₀||²`` (eq. 21) or, in pixel space, ``||g(psi) - D(ẑ₀)||²``."""
        prox = squared_error(latent, targets.z0) if self.latent_terms else squared_error(g_out, targets.x0)
        return {"prox": Term(prox, weight=self.sds_weight(step))}

    def after_step(self, step: dict) -> None:
        """Re-initialize dead paths on schedule (seeded by the step: a resumed run repeats it exactly)."""
        i = int(step["step"])
        if self.reinit_every and 0 < i <= self.reinit_until and i % self.reinit_every == 0:
            self.generator.reinitialize_dead(self.seed, i, self.sample_names, self.min_opacity)

    # ------------------------------------------------------------------ results
    def result_images(self) -> dict[str, Tensor]:
        """``final`` and, when this process drew it (``init: sample``, not after a resume), the raster ``sample``."""
        with torch.no_grad():
            sample = getattr(self, "raster_sample", None)
            return {"final": self.generator().cpu(), **({"sample": sample.cpu()} if sample is not None else {})}

    def result_texts(self) -> dict[str, list[str]]:
        """``final.svg`` of every sample."""
        return {"final.svg": [self.generator.to_svg(b) for b in range(len(self.sample_names))]}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Write ``checkpoints/last.svg`` (or ``last_<name>.svg`` per sample) with every checkpoint, atomically:
        a stopped run always leaves a usable SVG."""
        cb = self.trainer.checkpoint_callback if self.attached() else None
        if cb is None or not cb.dirpath or not self.trainer.is_global_zero:
            return
        for b, name in enumerate(self.sample_names):
            file = "last.svg" if len(self.sample_names) == 1 else f"last_{name}.svg"
            self.generator.save_svg(b, Path(cb.dirpath) / file)
