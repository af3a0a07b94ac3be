"""SVG reconstruction from a degraded image with DreamSampler (eq. 21): the text-to-SVG step plus data consistency."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Term, squared_error
from ..data.checks import exactly_one, file_exists
from ..errors import InputError
from ..generators import SVGGenerator
from ..generators.vectorize import fit_paths, seed_circles
from ..io.images import load_image, resize_image
from ..operators import Downsample, LinearOperator, measure
from ..seeding import randn
from .base import Targets
from .svg import SVGBatch, SVGSample, TextToSVGTask, _sample

#: The timesteps over which a reconstruction started from data consistency alone (``init: measurement``) is refined:
#: on the shapes prior the Tweedie targets above t = 250 are pinched, rounded shapes (posterior means) that pull the
#: paths where the x8 data term cannot see (t_max 500: 9/12 shapes kept, 250: 12/12; docs/benchmarks.md).
MEASUREMENT_REFINE_T_RANGE = (0.0, 250.0)


class SVGReconstructTask(TextToSVGTask):
    """SVG reconstruction from a degraded image, eq. (21):
    ``(1 - gamma) lambda_sds ||E(g(psi)) - z0_hat(c_y)||^2 + gamma lambda_dc ||y - A g(psi)||^2``.

    The paper's form is ``init: circles, proximal: latent, gamma: null`` (gamma = alpha_bar_t, from random circles,
    over the whole schedule). The default is what measured best on the shapes prior (docs/benchmarks.md): paths
    fitted to y by data consistency alone, then refined over t <= 250 with the proximal term in pixel space and a
    constant gamma = 0.9. Why: the Tweedie targets above t ~ 250 are posterior means (pinched, rounded shapes) that
    pull the paths where the data term cannot see (below the operator's resolution), and with gamma = alpha_bar_t
    the prior's weight vanishes exactly when its targets become sharp (t -> 0), so that damage is never undone.

    Args:
        image / measurement: a clean image (y = A x + sigma_y n is computed, the ground truth is known) or a
            measurement file y (its size must be the operator's output size for the canvas). For several:
            ``samples`` of ``{prompt, image | measurement, init_svg?, name?}``.
        operator: the measurement operator A (default ×8 bicubic down-sampling), on images in [0, 1].
        sigma_y: measurement noise added to A x (keyed ``(seed, "measurement", -1, sample)``).
        lambda_dc: weight of the data-consistency term.
        gamma: the trade-off of eq. (21): a constant (default 0.9), or None for alpha_bar_t (the step's signal
            fraction a²/(a²+s²)), the paper's choice.
        init: ``measurement`` (default: circles seeded on the up-sampled y, fitted to y by data consistency alone;
            then ``t_range`` defaults to [0, 250]) or ``circles`` (the paper's, whole schedule).
        proximal: ``pixel`` (default) or ``latent`` (the paper's), see ``TextToSVGTask``.
        (other arguments: see ``TextToSVGTask``)
    """

    fit_needs = "`prompt` with `image` or `measurement` (or `samples`)"
    item_keys = ("prompt", "image", "measurement", "init_svg")

    def __init__(self, prompt: str | None = None, image: str | None = None, measurement: str | None = None,
                 samples: list[SVGSample] | None = None, operator: LinearOperator | None = None,
                 sigma_y: float = 0.0, lambda_dc: float = 1.0, gamma: float | None = 0.9, init: str = "measurement",
                 proximal: str = "pixel", **kwargs) -> None:
        if init not in ("circles", "measurement"):
            raise InputError(f"init must be 'circles' (the paper's) or 'measurement' (paths fitted to y by data "
                             f"consistency), got {init!r}")
        if init == "measurement" and kwargs.get("t_range") is None:
            kwargs["t_range"] = MEASUREMENT_REFINE_T_RANGE
            self.t_range_note = (f" (the refine range init 'measurement' uses by default; raise nfe, or set t_range, e.g. "
                                 f"[0, 1000] for the whole schedule)")
        self.operator = operator if operator is not None else Downsample(8)
        self.sigma_y, self.lambda_dc, self.gamma = sigma_y, lambda_dc, gamma
        if sigma_y < 0:
            raise InputError(f"sigma_y must be >= 0, got {sigma_y}")
        if samples and (prompt is not None or image is not None or measurement is not None):
            raise InputError("give either `samples` or `prompt` with `image`/`measurement`, not both")
        single = not samples and prompt is not None
        if single:
            samples = [SVGSample(prompt, image=image, measurement=measurement)]
        super().__init__(samples=samples, init="circles", proximal=proximal, **kwargs)
        self.init = self.hparams["init"] = init
        if single:
            self.hparams["samples"] = []        # the config said prompt/image/measurement; keep it that way

    def check_item(self, item: dict) -> list[str]:
        """Structure of one dataset sample ``{prompt, image | measurement, init_svg?}`` (file contents not read)."""
        problems = super().check_item(item) + exactly_one(item, ("image", "measurement"), "SVG reconstruction")
        return problems + [p for key in ("image", "measurement") if item.get(key) is not None
                           for p in file_exists(item[key], key)]

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

    def start(self, batch: SVGBatch) -> Tensor:
        """The paper's circles (or the init SVGs), or with ``init: measurement`` circles seeded on the up-sampled y
        and fitted to y by data consistency alone; eps_tilde ~ N(0, I)."""
        if self.init != "measurement" or any(batch.init_svgs):
            return super().start(batch)
        seed_circles(self.generator, self.bicubic_baseline(), self.seed,
                     self.sample_names, self.radius)
        fit_paths(self.generator, lambda x: squared_error(self.y, self.operator(x)), self.vectorize_iterations)
        return self.noise_start()

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
