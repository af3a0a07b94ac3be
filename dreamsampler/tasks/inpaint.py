"""Text-guided inpainting (eq. 20) with the official code's two step kinds, on the step contract.

y = A x + sigma_y n with A a pixel mask (1 = known). The start is the unconditional DDIM inversion of E(A^T y).
At reverse step i (see ``../shared/design/algorithms.md``, inpainting):
- a **DS step** (``i % ds_every == 0`` and ``i < ds_until * nfe``): TReg's two-step data consistency on the
  unconditional z0 (decode, CG on ``(A^T A + lam I) x = A^T y + lam x0``, encode, blend with alpha_bar_t), then
  each hole takes its own prompt's z0 (localized, eq. 19/20), renoised with fresh noise (purpose ``renoise``);
- a **DPS step**: z0_hat - d||y - A D(z0_hat)||/dz_t through the UNet and the VAE decoder (``needs_backbone_grad``);
  the last step keeps z0_hat: the official output is D(z0_hat) of the last step, its DPS correction is discarded.
Both are ``targets`` returning a z0 built directly; psi is the latent (one SGD step of lr 0.5 lands on it).
alpha_bar_t is the step's signal fraction a²/(a²+s²), so the same blends serve rectified-flow backbones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from ..data.checks import check_parts, file_exists, unknown_keys
from ..errors import InputError
from ..io.images import box_mask, load_image, load_mask
from ..operators import PixelMask, measure, solve_data_consistency
from ..seeding import randn_batch
from .base import Targets
from .validated import ValidatedTask

#: The paper's protocol holes in a 512² face (rows × cols, half-open), as ``[top, left, bottom, right]``.
PRESETS = {"eyes": [180, 100, 290, 400], "mouth": [330, 170, 430, 340]}


@dataclass
class Hole:
    """One hole and its prompt: a mask file (white = hole, the image's size), a ``box: [top, left, bottom,
    right]`` in pixels of the working size, or a ``preset`` (``eyes``, ``mouth``: the paper's rectangles at 512²,
    scaled to the working size)."""

    prompt: str
    mask: str | None = None
    box: list[int] | None = None
    preset: str | None = None


@dataclass
class InpaintSample:
    image: str
    holes: list[Hole] = field(default_factory=list)
    name: str | None = None
    treg_omega: float | None = None    #: this sample's TReg omega (None: the task's ``treg_omega``)


@dataclass
class InpaintBatch:
    names: list[str]
    x: Tensor                 #: (B, 3, S, S) in [-1, 1], the clean images (ground truth)
    prompts: list[str]        #: K prompts in all
    owner: Tensor             #: (K,) sample of each prompt
    holes: Tensor             #: (K, 1, S, S), 1 inside hole k
    omega: Tensor | None = None   #: (B, 1, 1, 1) TReg omega per sample (0: DreamSampler), None if no sample has one


def _hole_mask(hole: Hole, size: int, native_hw: tuple[int, int]) -> Tensor:
    given = [v is not None for v in (hole.mask, hole.box, hole.preset)]
    if sum(given) != 1:
        raise InputError(f"hole {hole.prompt!r}: give exactly one of `mask` (file), `box` or `preset`")
    if hole.preset is not None:
        if hole.preset not in PRESETS:
            raise InputError(f"hole {hole.prompt!r}: unknown preset {hole.preset!r} (expected one of "
                             f"{sorted(PRESETS)})")
        return box_mask([round(v * size / 512) for v in PRESETS[hole.preset]], (size, size))
    if hole.box is not None:
        return box_mask(hole.box, (size, size))
    m = load_mask(hole.mask, native_hw)
    if not bool(((m == 0) | (m == 1)).all()):
        raise InputError(f"mask file {hole.mask!r} is not binary: an inpainting hole is black (known) or white "
                         "(hole), got gray levels")
    return torch.nn.functional.interpolate(m[None], size=(size, size), mode="nearest")[0]


def _holes_of(item: dict) -> list | None:
    """A dataset item's holes: its ``holes``, or the one hole written flat (``prompt`` + ``mask | box | preset``)."""
    if item.get("holes") is not None or item.get("prompt") is None:
        return item.get("holes")
    return [{k: item[k] for k in ("prompt", "mask", "box", "preset") if item.get(k) is not None}]


class InpaintTask(ValidatedTask):
    """Text-guided inpainting, eq. (20) with TReg's two-step data consistency and DPS steps (official defaults).

    Args:
        image, holes: the clean image (its holes are masked out to make y) and ``[{prompt, mask | box | preset}]``
            (or ``samples`` of ``{image, holes, name?}``).
        null_prompt: c_∅ (official: "out of focus, depth of field").
        sigma_y: measurement noise (official 0.01), keyed ``(seed, "measurement", -1, sample)``.
        cg_lambda, cg_iters: lambda and iterations of the CG data-consistency solve (official 1e-4, 10).
        ds_every, ds_until: a DS step when ``i % ds_every == 0 and i < ds_until * nfe`` (official 3, 170/200).
        treg_omega: None (DreamSampler: the data-consistency solve starts from z0(c_∅)) or TReg's CFG scale omega:
            start it from ``(1 - omega) z0(c_∅) + omega z0(c_tgt)`` instead (the baseline the paper contrasts). A
            dataset sample may set its own ``treg_omega`` (0: DreamSampler), so one run compares both.
        size: working size (512 for SD1.5).
        (other arguments: see ``DreamSamplerTask``)
    """

    fit_needs = "`image` and `holes` (or `samples`)"

    def __init__(self, image: str | None = None, holes: list[Hole] | None = None,
                 samples: list[InpaintSample] | None = None, null_prompt: str = "out of focus, depth of field",
                 sigma_y: float = 0.01, cg_lambda: float = 1e-4, cg_iters: int = 10, ds_every: int = 3,
                 ds_until: float = 0.85, treg_omega: float | None = None, size: int = 512, **kwargs) -> None:
        super().__init__(**kwargs)
        self.null_prompt, self.sigma_y, self.cg_lambda, self.cg_iters = null_prompt, sigma_y, cg_lambda, cg_iters
        self.ds_every, self.ds_until, self.treg_omega, self.size = ds_every, ds_until, treg_omega, size
        self.save_hyperparameters(ignore=["holes", "samples", "optimizer", "lr_scheduler"])
        as_dict = lambda h: h if isinstance(h, dict) else vars(h).copy()
        self.hparams["holes"] = [as_dict(h) for h in (holes or [])]
        self.hparams["samples"] = [{**as_dict(s), "holes": [as_dict(h) for h in as_dict(s).get("holes") or []]}
                                   for s in (samples or [])]
        if samples and (image is not None or holes):
            raise InputError("give either `samples` or `image` with `holes`, not both")
        items = samples or ([InpaintSample(image, holes or [])] if image is not None else [])
        self.fit_batch = self.load_batch(items) if items else None

    # ------------------------------------------------------------------ samples
    def check_item(self, item: dict) -> list[str]:
        """Structure of one dataset sample ``{image, holes: [{prompt, mask | box | preset}]}`` or, for one hole,
        ``{image, prompt, mask | box | preset}`` (file contents not read)."""
        flat = ("prompt", "mask", "box", "preset")
        problems = unknown_keys(item, ("image", "holes", "treg_omega", *flat), "an inpainting sample")
        problems += file_exists(item.get("image"), "image")
        omega = item.get("treg_omega")
        if omega is not None and (isinstance(omega, bool) or not isinstance(omega, (int, float)) or omega < 0):
            problems.append(f"`treg_omega` must be a number >= 0 (TReg's CFG scale; 0: DreamSampler), got "
                            f"{omega!r}")
        if item.get("holes") is not None and any(item.get(k) is not None for k in flat):
            return problems + ["give the holes either as `holes: [...]` or as one flat `prompt` with `mask` | `box` "
                               "| `preset`, not both"]
        return problems + check_parts({"holes": _holes_of(item)}, "holes", ("mask", "box", "preset"), tuple(PRESETS))

    def eval_inputs(self, item: dict) -> dict:
        """The clean image (the ground truth), the holes with their prompts, all prompts joined."""
        native = load_image(item["image"])
        holes = [h if isinstance(h, Hole) else Hole(**h) for h in _holes_of(item)]
        masks = [_hole_mask(h, self.size, tuple(native.shape[-2:]))[0] > 0.5 for h in holes]
        return {"truth": load_image(item["image"], self.size), "prompt": " and ".join(h.prompt for h in holes),
                "holes": [(m, h.prompt) for m, h in zip(masks, holes)]}

    def load_batch(self, items: Sequence[InpaintSample | dict]) -> InpaintBatch:
        names, xs, prompts, owner, holes, omegas = [], [], [], [], [], []
        for b, item in enumerate(items):
            s = item if isinstance(item, InpaintSample) else InpaintSample(
                item.get("image"), _holes_of(item) or [], item.get("name"), item.get("treg_omega"))
            omegas.append(self.treg_omega if s.treg_omega is None else s.treg_omega)
            if not s.image:
                raise InputError(f"an inpainting sample needs `image`, got {item!r}")
            sample_holes = [h if isinstance(h, Hole) else Hole(**h) for h in s.holes]
            if not sample_holes:
                raise InputError(f"inpainting {s.image!r}: give at least one hole with its prompt")
            native = load_image(s.image)
            masks = []
            for h in sample_holes:
                if not isinstance(h.prompt, str) or not h.prompt.strip():
                    raise InputError(f"hole prompt must be a non-empty string, got {h.prompt!r}")
                m = _hole_mask(h, self.size, tuple(native.shape[-2:]))
                if float(m.sum()) == 0:
                    raise InputError(f"hole {h.prompt!r} of {s.image!r} is empty: nothing to inpaint")
                masks.append(m)
            union = torch.stack(masks).sum(0)
            if float(union.max()) > 1:
                raise InputError(f"inpainting {s.image!r}: holes overlap (each pixel may belong to one prompt's hole)")
            if float(union.min()) == 1:
                raise InputError(f"inpainting {s.image!r}: the holes cover the whole image: nothing is known")
            names.append(s.name or Path(s.image).stem)
            xs.append(load_image(s.image, self.size) * 2 - 1)
            prompts += [h.prompt for h in sample_holes]
            owner += [b] * len(masks)
            holes += masks
        if len(set(names)) != len(names):
            raise InputError(f"the samples' names must be unique (they name the outputs), got {names}")
        omega = None if all(o is None for o in omegas) else torch.tensor(
            [float(o or 0.0) for o in omegas]).view(-1, 1, 1, 1)
        return InpaintBatch(names, torch.cat(xs), prompts, torch.tensor(owner), torch.stack(holes), omega)

    def build_generator(self, batch: InpaintBatch):
        generator = self.latent_generator(len(batch.names), self.size)
        f = self.backbone.vae_scale_factor
        self.inpaint_batch = batch
        hole = torch.zeros_like(batch.x[:, :1]).index_add_(0, batch.owner, batch.holes)   # (B, 1, S, S)
        known = 1 - hole
        noise = randn_batch(tuple(batch.x.shape[1:]), self.seed, "measurement", -1, batch.names)
        y = measure(PixelMask(known), batch.x, self.sigma_y, noise * known)   # noise only where measured
        self.register_buffer("known", known, persistent=False)
        self.register_buffer("y", y, persistent=False)
        self.register_buffer("prompt_owner", batch.owner, persistent=False)
        self.register_buffer("prompts_per_sample", torch.bincount(batch.owner, minlength=len(batch.names)).view(
            -1, 1, 1, 1).float(), persistent=False)          # counted here: on a GPU bincount waits for the device
        self.register_buffer("latent_holes", batch.holes[:, :, ::f, ::f].contiguous(), persistent=False)
        self.register_buffer("omega", batch.omega, persistent=False)
        return generator

    # ------------------------------------------------------------------ the steps
    def start(self, batch: InpaintBatch) -> Tensor:
        """Unconditional inversion of E(A^T y) (the official start)."""
        return self.inversion_start(self.backbone.encode(self.known * self.y), self.null_prompt)

    def is_ds_step(self, step: dict) -> bool:
        i = int(step["step"])
        return i % self.ds_every == 0 and i < self.ds_until * self.nfe

    def needs_backbone_grad(self, step: dict) -> bool:
        return not self.is_ds_step(step) and not self.is_last_step(step)

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        return self.ds_targets(z_t, step) if self.is_ds_step(step) else self.dps_targets(z_t, step)

    def ds_targets(self, z_t: Tensor, step: dict) -> Targets:
        """TReg's two-step data consistency on z0(c_∅), each hole composited with its own prompt's z0 (eq. 20)."""
        bb, owner, ab = self.backbone, self.prompt_owner, float(step["alpha_bar_t"])
        uc, c = self.denoise_prompts(z_t, step, self.null_prompt, self.inpaint_batch.prompts, owner)
        eps_uc, z0_uc, z0_c = uc.eps, uc.z0, c.z0
        start = z0_uc
        if self.omega is not None:       # TReg: text guidance mixed into the data-consistency start
            mean_c = torch.zeros_like(z0_uc).index_add_(0, owner, z0_c) / self.prompts_per_sample
            start = (1 - self.omega) * z0_uc + self.omega * mean_c
        x0 = bb.decode(start)
        x = solve_data_consistency(PixelMask(self.known), self.y, x0, self.cg_lambda, self.cg_iters)
        z0 = ab * bb.encode(x) + (1 - ab) * start
        hole = torch.zeros_like(z0[:, :1]).index_add_(0, owner, self.latent_holes)          # 1 - prod_k M_k
        guided = torch.zeros_like(z0).index_add_(0, owner, self.latent_holes * ab * z0_c)
        z0 = (1 - hole) * z0 + hole * (1 - ab) * z0 + guided
        noise = randn_batch(tuple(z_t.shape[1:]), self.seed, "renoise", int(step["step"]), self.sample_names,
                            device=z_t.device)
        return Targets(z0=z0, eps_renoise=(1 - ab) ** 0.5 * eps_uc + ab ** 0.5 * noise)

    def dps_targets(self, z_t: Tensor, step: dict) -> Targets:
        """DPS: z0_hat - d||y - A D(z0_hat)||_2 / dz_t (through the UNet and the decoder), renoised with eps_uc;
        at the last step z0_hat itself (the official output, see ``is_last_step``)."""
        bb = self.backbone
        null = bb.encode_text([self.null_prompt] * z_t.shape[0])
        if self.is_last_step(step):
            out = self.denoise(z_t, step, null)
            return Targets(z0=out.z0, eps_renoise=out.eps)
        out = self.denoise(z_t, step, null, grad=True)
        residual = (self.known * (self.y - bb.decode(out.z0, grad=True))).flatten(1).norm(dim=1).sum()
        (grad,) = torch.autograd.grad(residual, z_t)
        return Targets(z0=out.z0 - grad, eps_renoise=out.eps)

    # ------------------------------------------------------------------ results
    def result_images(self) -> dict[str, Tensor]:
        """``inpainted``, ``measurement`` (holes gray), ``mask_overlay`` (holes tinted) and ``comparison``
        (measurement | inpainted | ground truth), (B, 3, S, ·) in [0, 1]."""
        with torch.no_grad():
            out = self.decode_latent(self.generator.psi.detach()).cpu()
        known, y, x = self.known.cpu(), ((self.y.cpu() + 1) / 2).clamp(0, 1), ((self.inpaint_batch.x + 1) / 2)
        meas = known * y + (1 - known) * 0.5
        tint = torch.tensor([1.0, 0.2, 0.2]).view(1, 3, 1, 1)
        overlay = known * x + (1 - known) * (0.5 * x + 0.5 * tint)
        return {"inpainted": out, "measurement": meas, "mask_overlay": overlay,
                "comparison": torch.cat([meas, out, x], dim=3)}

    # ------------------------------------------------------------------ metrics of the result (validate)
    def val_metrics(self) -> dict[str, Tensor]:
        """Faithfulness to the measurement on the known pixels: PSNR and SSIM, logged as ``val/*``."""
        out = self.result_images()["inpainted"].to(self.device)
        y = ((self.y + 1) / 2).clamp(0, 1)
        mse = (self.known * (out - y)).pow(2).sum() / (3 * self.known.sum())
        return {"val/known_psnr": 10 * torch.log10(1 / mse),
                "val/known_ssim": ssim(self.known * out, self.known * y, data_range=1.0)}


class TRegInpaintTask(InpaintTask):
    """TReg (Kim et al. 2024), the inpainting baseline of Table 2, on the same step: the data-consistency solve
    starts from the text-guided estimate ``(1 - omega) z0(c_∅) + omega z0(c_tgt)`` instead of z0(c_∅)
    (``treg_omega``, default 3; see ``InpaintTask``), so both methods share everything else (schedule, CG, DS steps,
    metrics)."""

    def __init__(self, treg_omega: float = 3.0, **kwargs) -> None:
        super().__init__(treg_omega=treg_omega, **kwargs)
