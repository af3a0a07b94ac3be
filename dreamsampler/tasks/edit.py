"""Real-image editing, Alg. 3 (+ localized multi-mask, multi-prompt editing, eq. 19), for batches of samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio as psnr
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from ..core import cfg, localized_eps
from ..data.checks import check_parts, exactly_one, file_exists, prompt_ok, unknown_keys
from ..errors import InputError
from ..generators import LatentGenerator
from ..io.images import box_mask, check_image_size, load_image, load_mask, resize_image, to_latent_mask
from .base import Targets
from .validated import ValidatedTask


@dataclass
class Region:
    """One localized edit (eq. 19): a target prompt and where it applies — a mask image file (same size as the
    source image; white = edit, transparent = not) or a ``box: [top, left, bottom, right]`` in pixels of the
    resized image."""

    prompt: str
    mask: str | None = None
    box: list[int] | None = None


@dataclass
class EditSample:
    """One edit of a batch: a source image and a global ``prompt`` or localized ``regions``; ``name`` (default:
    the image's stem) names its outputs and keys its noise."""

    image: str
    prompt: str | None = None
    regions: list[Region] | None = None
    name: str | None = None
    source_prompt: str | None = None    #: the source image's text (used by baselines: DDS, PDS, word swap)


@dataclass
class EditBatch:
    """B loaded edits: K prompts in all, prompt k belonging to sample ``owner[k]`` with pixel mask ``masks[k]``."""

    names: list[str]
    paths: list[str]
    native_hw: list[tuple[int, int]]
    source: Tensor                      #: (B, 3, S, S) in [0, 1]
    prompts: list[str] = field(default_factory=list)
    owner: Tensor | None = None         #: (K,) long
    masks: Tensor | None = None         #: (K, 1, S, S), ones for a global prompt
    source_prompts: list[str | None] = field(default_factory=list)   #: per sample (None: not given)


def edit_guidance(uncond: Tensor, cond: Tensor, gamma: float, masks: Tensor | None, owner: Tensor) -> Tensor:
    """Eqs. (18)-(19) per sample: ``sum_i M_i (eps_uc + gamma (eps_c^i - eps_uc)) + (1 - sum_i M_i) eps_uc``; the
    same affine combination of the z0 estimates is the target's z0 (``Denoised``). ``masks=None``: every sample has
    one global prompt (``owner`` is 0..B-1), eq. (18) alone."""
    if masks is None:
        return cfg(uncond, cond, gamma)
    return localized_eps(uncond, cfg(uncond[owner], cond, gamma), masks, owner)


def _region_mask(r: Region, size: int, native_hw: tuple[int, int]) -> Tensor:
    """(1, S, S) soft mask of a region: its mask file resized (antialiased), or its box."""
    if (r.mask is None) == (r.box is None):
        raise InputError(f"region {r.prompt!r}: give exactly one of `mask` (file) or `box`")
    if r.mask is not None:
        return F.interpolate(load_mask(r.mask, native_hw)[None], size=(size, size), mode="bilinear",
                             antialias=True)[0]
    return box_mask(r.box, (size, size))


def _sample(item: EditSample | dict) -> EditSample:
    if isinstance(item, EditSample):
        return item
    item = {k: v for k, v in item.items() if k in ("image", "prompt", "regions", "name", "source_prompt")}
    if not item.get("image"):
        raise InputError(f"an edit needs `image` (the source image file), got {item!r}")
    return EditSample(**item)


class EditTask(ValidatedTask):
    """DreamSampler image editing (Alg. 3): invert each source with the null prompt, then reverse-sample with the
    guided Tweedie target (eq. 18) as the proximal step and the *unconditional* noise for renoising. B samples
    (each with its own prompts) advance together, every UNet call holding all B null + K prompt rows.

    Args:
        image: source image file (any PIL format; grayscale/RGBA/16-bit are converted).
        prompt: target prompt for a global edit; or use ``regions`` for localized edits (eq. 19).
        regions: list of ``{prompt, mask | box}`` for localized multi-prompt editing.
        samples: several edits ``{image, prompt | regions, name?}`` optimized together in one run (instead of
            ``image``/``prompt``); each gets the result it would get alone.
        null_prompt: the null text c_∅.
        gamma: guidance weight γ of eq. (18) (official code: 0.2; paper Table 1: 0.15).
        scale_gamma_by_alpha_bar: use γ·alpha_bar_t as the official code does (True), or constant γ (Alg. 3);
            alpha_bar_t is the signal fraction a²/(a²+s²) of the step (see ``dreamsampler.core.levels``).
        size: the source is resized to ``size × size`` (512 for SD1.5).
        (other arguments: see ``DreamSamplerTask``)

    For ``dreamsampler predict`` over a dataset (``EditManifest``), leave ``image``/``prompt`` unset: the task is
    then a template whose settings every sample of the manifest uses.
    """

    fit_needs = "`image` and `prompt` (or `regions`, or `samples`)"

    def __init__(self, image: str | None = None, prompt: str | None = None, regions: list[Region] | None = None,
                 samples: list[EditSample] | None = None, null_prompt: str = "", gamma: float = 0.2,
                 scale_gamma_by_alpha_bar: bool = True, size: int = 512, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gamma, self.scale_gamma_by_alpha_bar, self.size, self.null_prompt = (
            gamma, scale_gamma_by_alpha_bar, size, null_prompt)
        self.save_hyperparameters(ignore=["regions", "samples", "optimizer", "lr_scheduler"])
        as_dict = lambda r: r if isinstance(r, dict) else vars(r).copy()
        self.hparams["regions"] = [as_dict(r) for r in (regions or [])]
        self.hparams["samples"] = [{**as_dict(s), "regions": [as_dict(r) for r in (as_dict(s).get("regions") or [])]}
                                   for s in (samples or [])]
        if not isinstance(size, int) or size <= 0:
            raise InputError(f"size must be a positive integer, got {size!r}")
        if samples:
            if image is not None or prompt is not None or regions:
                raise InputError("give either `samples` or `image` with `prompt`/`regions`, not both")
            self.fit_batch = self.load_batch(samples)
        elif image is not None or prompt is not None or regions:
            if image is None:
                raise InputError("`image` (the source image file) is required")
            self.fit_batch = self.load_batch([EditSample(image, prompt, regions)])
        # else: a template for `predict`

    # ------------------------------------------------------------------ samples
    def check_item(self, item: dict) -> list[str]:
        """Structure of one dataset edit ``{image, prompt | regions, source_prompt?}`` (file contents not read)."""
        problems = unknown_keys(item, ("image", "prompt", "regions", "source_prompt"), "an edit")
        problems += file_exists(item.get("image"), "image") + exactly_one(item, ("prompt", "regions"), "edit")
        if item.get("prompt") is not None:
            problems += prompt_ok(item["prompt"])
        if item.get("regions") is not None:
            problems += check_parts(item, "regions", ("mask", "box"))
        if "source_prompt" in item:
            problems += prompt_ok(item["source_prompt"], "source_prompt")
        return problems

    def eval_inputs(self, item: dict) -> dict:
        """The source image (structure metrics, FID's reference set), the target and the source prompts, and for
        a localized edit its regions as ``(mask (S, S) bool, prompt)``."""
        native = load_image(item["image"])
        regions = [r if isinstance(r, Region) else Region(**r) for r in item.get("regions") or []]
        prompts = [item["prompt"]] if item.get("prompt") else [r.prompt for r in regions]
        masks = [_region_mask(r, self.size, tuple(native.shape[-2:]))[0] > 0.5 for r in regions]
        return {"source": resize_image(native, self.size), "prompt": " and ".join(prompts),
                "source_prompt": item.get("source_prompt"),
                "regions": [(m, r.prompt) for m, r in zip(masks, regions)] or None}

    def load_batch(self, items: Sequence[EditSample | dict]) -> EditBatch:
        """Read and validate each edit's image, prompts and masks (one clear error for each bad input)."""
        size = self.size
        names, paths, hws, sources, prompts, owner, masks, source_prompts = [], [], [], [], [], [], [], []
        for b, sample in enumerate(_sample(it) for it in items):
            if (sample.prompt is None) == (not sample.regions):
                raise InputError(f"edit {sample.image!r}: give exactly one of `prompt` (global edit) or `regions` "
                                 "(localized edits)")
            regions = [r if isinstance(r, Region) else Region(**r) for r in (sample.regions or [])]
            for p in [sample.prompt] if sample.prompt is not None else [r.prompt for r in regions]:
                if not isinstance(p, str) or not p.strip():
                    raise InputError(f"target prompt must be a non-empty string, got {p!r}")
            native = load_image(sample.image)                               # validates the file; read once
            native_hw = tuple(native.shape[-2:])
            sample_masks = [_region_mask(r, size, native_hw) for r in regions]
            if sample_masks and float(torch.stack(sample_masks).sum(0).max()) > 1 + 1e-6:
                raise InputError(f"edit {sample.image!r}: region masks overlap: their sum exceeds 1 somewhere "
                                 "(eq. 19 needs sum_i M_i <= 1)")
            if sample.prompt is not None:
                prompts.append(sample.prompt)
                sample_masks = [torch.ones(1, size, size)]
            else:
                prompts += [r.prompt for r in regions]
            masks += sample_masks
            owner += [b] * len(sample_masks)
            names.append(sample.name or Path(sample.image).stem)
            paths.append(str(sample.image))
            hws.append(native_hw)
            sources.append(resize_image(native, size))
            source_prompts.append(sample.source_prompt)
        if len(set(names)) != len(names):
            raise InputError(f"the samples' names must be unique (they name the outputs), got {names}")
        return EditBatch(names, paths, hws, torch.cat(sources), prompts, torch.tensor(owner), torch.stack(masks),
                         source_prompts)

    def require_global_prompts(self, batch: EditBatch) -> None:
        """Refuse localized regions (eq. 19) for a method that edits with one global prompt per sample."""
        local = [n for b, n in enumerate(batch.names) if int((batch.owner == b).sum()) != 1
                 or not bool((batch.masks[batch.owner == b] == 1).all())]
        if local:
            raise InputError(f"{type(self).__name__} edits with one global `prompt` per sample; {local} have "
                             "`regions` (localized editing, eq. 19, is DreamSampler's EditTask)")

    def build_generator(self, batch: EditBatch) -> LatentGenerator:
        generator = self.latent_generator(len(batch.names), self.size)
        f = self.backbone.vae_scale_factor
        for path, hw in zip(batch.paths, batch.native_hw):
            check_image_size(hw, self.size, f, path)
        self.edit_batch = batch
        self.register_buffer("source", batch.source, persistent=False)             # all move with the module
        self.register_buffer("prompt_owner", batch.owner, persistent=False)
        is_global = len(batch.prompts) == len(batch.names) and bool((batch.masks == 1).all())
        self.register_buffer("latent_masks", None if is_global else torch.stack(
            [to_latent_mask(m, f) for m in batch.masks]), persistent=False)
        return generator

    # ------------------------------------------------------------------ the step
    def start(self, batch: EditBatch) -> Tensor:
        """z0 = E(x); start from its unconditional inversion (Alg. 3)."""
        return self.inversion_start(self.backbone.encode(self.source * 2 - 1), self.null_prompt)

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        """One denoiser call on [null × B, prompt_1..K]; eq. (18)/(19) target, unconditional renoising noise."""
        owner = self.prompt_owner
        uc, c = self.denoise_prompts(z_t, step, self.null_prompt, self.edit_batch.prompts, owner)
        gamma = self.gamma * (float(step["alpha_bar_t"]) if self.scale_gamma_by_alpha_bar else 1.0)
        z0 = edit_guidance(uc.z0, c.z0, gamma, self.latent_masks, owner)   # the guided eps is never needed
        return Targets(z0=z0, eps_renoise=uc.eps)

    # ------------------------------------------------------------------ results
    def result_images(self) -> dict[str, Tensor]:
        """``edited`` and ``comparison`` (source | edited), (B, 3, S, S·k); decoded once per value of psi
        (validation and export both ask at the end of fit)."""
        psi = self.generator.psi
        cached = getattr(self, "_result_cache", None)
        if cached is not None and cached[0] == (id(psi), psi._version):
            return cached[1]
        edited = self.decode_latent(psi.detach()).cpu()
        source = self.source.cpu()
        self._result_cache = ((id(psi), psi._version), {"edited": edited,
                                                        "comparison": torch.cat([source, edited], dim=3)})
        return self._result_cache[1]

    # ------------------------------------------------------------------ metrics of the result (validate)
    def val_metrics(self) -> dict[str, Tensor]:
        """Faithfulness of the edits to their sources (what the edit kept): PSNR and SSIM, logged as ``val/*``."""
        edited = self.result_images()["edited"].to(self.device)
        return {"val/psnr_to_source": psnr(edited, self.source, data_range=1.0),
                "val/ssim_to_source": ssim(edited, self.source, data_range=1.0)}
