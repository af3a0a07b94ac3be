"""Vector graphics on the DreamSampler step: text-to-SVG and SVG reconstruction from degraded images (eq. 21).

g(psi) is an :class:`~dreamsampler.generators.SVGGenerator` (control points and RGBA fills rasterized on white);
the proximal term lives in the latent space, ``||E(g(psi)) - z0_hat(c_y)||^2``, so gradients go through the
rasterizer and the VAE encoder only — never a UNet backward (eq. 11).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from ..core import Denoised, Term, cfg, squared_error
from ..data.checks import exactly_one, file_exists, prompt_ok, unknown_keys
from ..errors import InputError
from ..generators import SVGGenerator
from ..io.images import load_image, resize_image
from ..operators import Downsample, LinearOperator, measure
from ..seeding import randn
from .base import DreamSamplerTask, Targets

#: The paper's prompt suffix for c_y (Sec. 4.1, footnote 5).
PAPER_SUFFIX = ", minimal flat 2d vector icon. lineal color. on a white background. trending on artstation."


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


@dataclass
class SVGBatch:
    names: list[str]
    prompts: list[str]                  #: with the suffix
    init_svgs: list[str | None]
    truth: Tensor | None = None         #: (B, 3, H, W) in [0, 1], when every sample has a clean image
    y: Tensor | None = None             #: (B, 3, h, w) measurements


def _sample(item: SVGSample | dict) -> SVGSample:
    if isinstance(item, SVGSample):
        return item
    return SVGSample(**{k: v for k, v in item.items() if k in SVGSample.__dataclass_fields__})


class TextToSVGTask(DreamSamplerTask):
    """Text-to-SVG with DreamSampler (Alg. 2 from noise, g = rasterizer): per step the CFG Tweedie target
    ``z0_hat(z_t, eps^omega(c_y))`` and ``inner_steps`` Adam steps on ``lambda_sds ||E(g(psi)) - z0_hat||^2``.

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
        (other arguments: see ``DreamSamplerTask``; the default optimizer is Adam with betas (0.9, 0.9))
    """

    item_keys = ("prompt", "init_svg")  #: a dataset sample's keys (besides ``name``)

    stop_on_nonfinite = True        # Adam on raster gradients can diverge: stop with the step named

    fit_needs = "`prompt` (or `samples`)"

    def __init__(self, prompt: str | None = None, samples: list[SVGSample] | None = None,
                 prompt_suffix: str = PAPER_SUFFIX, null_prompt: str = "", omega: float = 7.5, size: int = 512,
                 paths: int = 128, segments: int = 4, raster_samples: int = 2, lr_points: float = 1.0,
                 lr_colors: float = 0.01, lambda_sds: float = 1.0, reinit_every: int = 50, reinit_until: int = 800,
                 min_opacity: float = 0.05, radius: float | None = None, optimizer: OptimizerCallable = paper_adam,
                 **kwargs) -> None:
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
        return SVGBatch(names, [s.prompt + self.prompt_suffix for s in samples], [s.init_svg for s in samples])

    def build_generator(self, batch: SVGBatch) -> SVGGenerator:
        self.svg_batch = batch
        return SVGGenerator(len(batch.names), self.paths, self.segments, self.size, self.size,
                            self.raster_samples, self.lr_points, self.lr_colors)

    def start(self, batch: SVGBatch) -> Tensor:
        """psi: the paper's circles (seeded per sample) or the given SVG files; eps_tilde ~ N(0, I) (Alg. 2)."""
        gen, files = self.generator, self.svg_batch.init_svgs
        gen.init_circles(self.seed, self.sample_names, self.radius)
        if any(files):
            if not all(files):
                raise InputError("init_svg must be given for every sample of a batch or for none")
            gen.init_from_svg(files)
        return self.noise_start()

    # ------------------------------------------------------------------ the step
    def targets(self, z_t: Tensor, step: dict) -> Targets:
        """One denoiser call on [null × B, c_y × B]; CFG Tweedie target, renoising with the guided eps (Alg. 2)."""
        uc, c = self.denoise_prompts(z_t, step, self.null_prompt, self.svg_batch.prompts)
        guided = Denoised.combine(cfg, uc, c, self.omega)
        return Targets(z0=guided.z0, eps_renoise=guided.eps)

    def sds_weight(self, step: dict) -> float:
        return self.lambda_sds

    def terms(self, g_out: Tensor, latent: Tensor, targets: Targets, step: dict) -> dict[str, Term]:
        return {"prox": Term(squared_error(latent, targets.z0), weight=self.sds_weight(step))}

    def after_step(self, step: dict) -> None:
        """Re-initialize dead paths on schedule (seeded by the step: a resumed run repeats it exactly)."""
        i = int(step["step"])
        if self.reinit_every and 0 < i <= self.reinit_until and i % self.reinit_every == 0:
            self.generator.reinitialize_dead(self.seed, i, self.sample_names, self.min_opacity)

    # ------------------------------------------------------------------ results
    def result_images(self) -> dict[str, Tensor]:
        with torch.no_grad():
            return {"final": self.generator().cpu()}

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


class SVGReconstructTask(TextToSVGTask):
    """SVG reconstruction from a degraded image, eq. (21):
    ``(1 - gamma) lambda_sds ||E(g(psi)) - z0_hat(c_y)||^2 + gamma lambda_dc ||y - A g(psi)||^2``, gamma = alpha_bar_t.

    Args:
        image / measurement: a clean image (y = A x + sigma_y n is computed, the ground truth is known) or a
            measurement file y (its size must be the operator's output size for the canvas). For several:
            ``samples`` of ``{prompt, image | measurement, init_svg?, name?}``.
        operator: the measurement operator A (default ×8 bicubic down-sampling), on images in [0, 1].
        sigma_y: measurement noise added to A x (keyed ``(seed, "measurement", -1, sample)``).
        lambda_dc: weight of the data-consistency term.
        gamma: the trade-off of eq. (21); None (default) is alpha_bar_t (the step's signal fraction a²/(a²+s²)), as
            the paper found works well.
        (other arguments: see ``TextToSVGTask``)
    """

    fit_needs = "`prompt` with `image` or `measurement` (or `samples`)"
    item_keys = ("prompt", "image", "measurement", "init_svg")

    def __init__(self, prompt: str | None = None, image: str | None = None, measurement: str | None = None,
                 samples: list[SVGSample] | None = None, operator: LinearOperator | None = None,
                 sigma_y: float = 0.0, lambda_dc: float = 1.0, gamma: float | None = None, **kwargs) -> None:
        self.operator = operator if operator is not None else Downsample(8)
        self.sigma_y, self.lambda_dc, self.gamma = sigma_y, lambda_dc, gamma
        if sigma_y < 0:
            raise InputError(f"sigma_y must be >= 0, got {sigma_y}")
        if samples and (prompt is not None or image is not None or measurement is not None):
            raise InputError("give either `samples` or `prompt` with `image`/`measurement`, not both")
        single = not samples and prompt is not None
        if single:
            samples = [SVGSample(prompt, image=image, measurement=measurement)]
        super().__init__(samples=samples, **kwargs)
        if single:
            self.hparams["samples"] = []        # the config said prompt/image/measurement; keep it that way

    def check_item(self, item: dict) -> list[str]:
        """Structure of one dataset sample ``{prompt, image | measurement, init_svg?}`` (file contents not read)."""
        problems = super().check_item(item) + exactly_one(item, ("image", "measurement"), "SVG reconstruction")
        return problems + [p for key in ("image", "measurement") if item.get(key) is not None
                           for p in file_exists(item[key], key)]

    def eval_inputs(self, item: dict) -> dict:
        """The clean image when the sample has one (reconstruction metrics), and the prompt."""
        truth = load_image(item["image"], self.size) if item.get("image") else None
        return {"prompt": item.get("prompt"), **({"truth": truth} if truth is not None else {})}

    def load_batch(self, items: Sequence[SVGSample | dict]) -> SVGBatch:
        batch = super().load_batch(items)
        samples = [_sample(it) for it in items]
        hw = (self.size, self.size)
        try:
            out_hw = tuple(self.operator.output_shape(hw))
        except InputError as err:
            raise InputError(f"operator {type(self.operator).__name__} does not fit the {self.size}x{self.size} "
                             f"canvas: {err}") from err
        truths, ys = [], []
        for name, s in zip(batch.names, samples):
            if (s.image is None) == (s.measurement is None):
                raise InputError(f"sample {name!r}: give exactly one of `image` (clean, degraded by the operator) "
                                 "or `measurement` (the degraded image y)")
            if s.image is not None:
                x = load_image(s.image, self.size)
                truths.append(x)
                noise = (randn((1, 3, *out_hw), self.seed, "measurement", -1, name) if self.sigma_y > 0 else None)
                ys.append(measure(self.operator, x, self.sigma_y, noise))
            else:
                y = load_image(s.measurement)
                if tuple(y.shape[-2:]) != out_hw:
                    raise InputError(f"measurement file {s.measurement!r} is {y.shape[-1]}x{y.shape[-2]} (WxH), but "
                                     f"{type(self.operator).__name__} of the {self.size}x{self.size} canvas gives "
                                     f"{out_hw[1]}x{out_hw[0]}")
                ys.append(y)
        batch.y = torch.cat(ys)
        batch.truth = torch.cat(truths) if len(truths) == len(samples) else None
        return batch

    def build_generator(self, batch: SVGBatch) -> SVGGenerator:
        self.register_buffer("y", batch.y, persistent=False)
        return super().build_generator(batch)

    def gamma_t(self, step: dict) -> float:
        """gamma of eq. (21): alpha_bar_t unless a constant is configured."""
        return float(step["alpha_bar_t"]) if self.gamma is None else self.gamma

    def sds_weight(self, step: dict) -> float:
        return (1 - self.gamma_t(step)) * self.lambda_sds

    def terms(self, g_out: Tensor, latent: Tensor, targets: Targets, step: dict) -> dict[str, Term]:
        """Eq. (21): the weighted proximal term and the data-consistency term ``||y - A g(psi)||^2``."""
        return {**super().terms(g_out, latent, targets, step),
                "dc": Term(squared_error(self.y, self.operator(g_out)), weight=self.gamma_t(step) * self.lambda_dc)}

    def upsampled_measurement(self) -> Tensor:
        """y brought to the canvas for viewing (nearest for down-sampling operators, else as is)."""
        return F.interpolate(self.y, size=(self.size, self.size), mode="nearest").clamp(0, 1).cpu()

    def result_images(self) -> dict[str, Tensor]:
        """``final``, ``measurement`` (y at canvas size) and ``comparison`` (measurement | result | truth)."""
        final = super().result_images()["final"]
        meas = self.upsampled_measurement()
        panels = [meas, final] + ([self.svg_batch.truth] if self.svg_batch.truth is not None else [])
        return {"final": final, "measurement": meas, "comparison": torch.cat(panels, dim=3)}

    def bicubic_baseline(self) -> Tensor:
        """Bicubic up-sampling of y to the canvas: the baseline a reconstruction must beat."""
        return resize_image(self.y.cpu(), self.size)
