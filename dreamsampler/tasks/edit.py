"""Real-image editing, Alg. 3 (+ localized multi-mask, multi-prompt editing, eq. 19)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio as psnr
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from ..core import cfg, ddim_invert, localized_eps
from ..errors import InputError
from ..generators import LatentGenerator
from ..io.images import box_mask, load_image, load_mask, resize_image, to_latent_mask
from .base import DreamSamplerTask, Prediction


@dataclass
class Region:
    """One localized edit (eq. 19): a target prompt and where it applies — a mask image file (same size as the
    source image; white = edit) or a ``box: [top, left, bottom, right]`` in pixels of the resized image."""

    prompt: str
    mask: str | None = None
    box: list[int] | None = None


def edit_eps(eps_uc: Tensor, eps_c: Tensor, gamma: float, masks: Tensor | None) -> Tensor:
    """Eqs. (18)-(19): ``sum_i M_i (eps_uc + gamma (eps_c^i - eps_uc)) + (1 - sum_i M_i) eps_uc``."""
    return localized_eps(eps_uc, cfg(eps_uc, eps_c, gamma), masks)


class EditTask(DreamSamplerTask):
    """DreamSampler image editing (Alg. 3): invert the source with the null prompt, then reverse-sample with
    the guided Tweedie target (eq. 18) as the proximal step and the *unconditional* noise for renoising.

    Args:
        image: source image file (any PIL format; grayscale/RGBA/16-bit are converted).
        prompt: target prompt for a global edit; or use ``regions`` for localized edits (eq. 19).
        regions: list of ``{prompt, mask | box}`` for localized multi-prompt editing.
        null_prompt: the null text c_∅.
        gamma: guidance weight γ of eq. (18) (official code: 0.2; paper Table 1: 0.15).
        scale_gamma_by_alpha_bar: use γ·alpha_bar_t as the official code does (True), or constant γ (Alg. 3).
        size: the source is resized to ``size × size`` (512 for SD1.5).
        (other arguments: see ``DreamSamplerTask``)

    For ``dreamsampler predict`` over a dataset (``EditManifest``), leave ``image``/``prompt`` unset: the task is
    then a template whose settings every sample of the manifest uses.
    """

    def __init__(self, image: str | None = None, prompt: str | None = None, regions: list[Region] | None = None,
                 null_prompt: str = "", gamma: float = 0.2, scale_gamma_by_alpha_bar: bool = True, size: int = 512,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._settings = dict(null_prompt=null_prompt, gamma=gamma, scale_gamma_by_alpha_bar=scale_gamma_by_alpha_bar,
                              size=size, **kwargs)
        self.gamma, self.scale_gamma_by_alpha_bar, self.size = gamma, scale_gamma_by_alpha_bar, size
        self.image_path, self.null_prompt, self.prompts, self.source = image, null_prompt, [], None
        self.save_hyperparameters(ignore=["regions"])
        self.hparams["regions"] = [r if isinstance(r, dict) else vars(r).copy() for r in (regions or [])]
        if image is None and prompt is None and not regions:
            return                                                  # a template for `predict`
        if image is None:
            raise InputError("`image` (the source image file) is required")
        if (prompt is None) == (not regions):
            raise InputError("give exactly one of `prompt` (global edit) or `regions` (localized edits)")
        regions = [r if isinstance(r, Region) else Region(**r) for r in (regions or [])]
        prompts = [prompt] if prompt is not None else [r.prompt for r in regions]
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise InputError(f"target prompt must be a non-empty string, got {p!r}")
        if not isinstance(size, int) or size <= 0:
            raise InputError(f"size must be a positive integer, got {size!r}")
        native = load_image(image)                                 # validates the file; read once
        native_hw = tuple(native.shape[-2:])
        self.source = resize_image(native, size)                   # (1, 3, S, S) in [0, 1]
        pixel_masks = []
        for r in regions:
            if (r.mask is None) == (r.box is None):
                raise InputError(f"region {r.prompt!r}: give exactly one of `mask` (file) or `box`")
            if r.mask is not None:
                m = load_mask(r.mask, native_hw)
                m = torch.nn.functional.interpolate(m[None], size=(size, size), mode="bilinear", antialias=True)[0]
            else:
                m = box_mask(r.box, (size, size))
            pixel_masks.append(m)
        self.pixel_masks = torch.stack(pixel_masks) if pixel_masks else None   # (K, 1, S, S)
        if self.pixel_masks is not None and float(self.pixel_masks.sum(0).max()) > 1 + 1e-6:
            raise InputError("region masks overlap: their sum exceeds 1 somewhere (eq. 19 needs sum_i M_i <= 1)")
        self.prompts = prompts

    def build_generator(self) -> LatentGenerator:
        if self.source is None:
            raise InputError("EditTask needs `image` and `prompt` (or `regions`) to fit; without them it is only a "
                             "template for `dreamsampler predict` with an EditManifest")
        f = self.guidance.vae_scale_factor
        if self.size % f:
            raise InputError(f"size {self.size} must be a multiple of the VAE's downsampling factor {f}")
        masks = None if self.pixel_masks is None else torch.stack([to_latent_mask(m, f) for m in self.pixel_masks])
        self.register_buffer("latent_masks", masks, persistent=False)     # moves with the module
        return LatentGenerator((1, self.guidance.latent_channels, self.size // f, self.size // f))

    def init_state(self) -> Tensor:
        """z0 = E(x); psi, eps_tilde = (z0', eps) of the last DDIM-inversion step (unconditional only), whose
        renoising is exactly z_T."""
        bb = self.guidance
        z0 = bb.encode(self.source.to(self.device) * 2 - 1)
        null = bb.encode_text([self.null_prompt])
        psi0, eps0 = ddim_invert(lambda z, t: bb.eps(z, t, null), z0, self.timesteps, bb.alphas_cumprod,
                                 return_pair=True)
        self.generator.psi.copy_(psi0)
        return eps0

    def predict(self, z_t: Tensor, batch: dict) -> Prediction:
        """One UNet call on [null, prompt_1..K]; eq. (18)/(19) target, unconditional renoising noise."""
        bb = self.guidance
        emb = bb.encode_text([self.null_prompt, *self.prompts])
        eps = bb.eps(z_t.expand(emb.shape[0], -1, -1, -1), batch["t"], emb)
        eps_uc, eps_c = eps[:1], eps[1:]
        gamma = self.gamma * (batch["alpha_bar_t"].item() if self.scale_gamma_by_alpha_bar else 1.0)
        return Prediction(eps_hat=edit_eps(eps_uc, eps_c, gamma, self.latent_masks), eps_renoise=eps_uc)

    def result_images(self) -> dict[str, Tensor]:
        """``edited`` and ``comparison`` (source | edited); decoded once per value of psi (validation and export
        both ask at the end of fit)."""
        psi = self.generator.psi
        cached = getattr(self, "_result_cache", None)
        if cached is not None and cached[0] == psi._version:
            return cached[1]
        edited = self.decode_latent(psi.detach())[0].cpu()
        source = self.source[0]
        self._result_cache = (psi._version, {"edited": edited, "comparison": torch.cat([source, edited], dim=2)})
        return self._result_cache[1]

    # ------------------------------------------------------------------ metrics of the result (validate)
    def val_dataloader(self) -> list[int]:
        return [0]                       # one "batch": the current result

    def validation_step(self, batch: int, batch_idx: int) -> None:
        """Faithfulness of the edit to the source (what the edit kept): PSNR and SSIM, logged as ``val/*``."""
        if not bool(self.initialized):
            raise InputError("nothing to validate: the run has no result yet (pass --ckpt_path with a checkpoint "
                             "of this run, e.g. --ckpt_path last)")
        edited = self.result_images()["edited"][None].to(self.device)
        source = self.source.to(self.device)
        self.log_dict({"val/psnr_to_source": psnr(edited, source, data_range=1.0),
                       "val/ssim_to_source": ssim(edited, source, data_range=1.0)}, batch_size=1)

    # ------------------------------------------------------------------ dataset-scale editing (predict)
    def predict_step(self, batch: list[dict], batch_idx: int) -> list[dict]:
        """Edit every sample of the batch with a whole DreamSampler run (this task's settings, the shared
        backbone); returns ``{"name", "edited", "comparison"}`` per sample for the prediction writer."""
        out = []
        for item in batch:
            sample = EditTask(image=item["image"], prompt=item.get("prompt"), regions=item.get("regions"),
                              **self._settings)
            sample.guidance = self.load_guidance(self.device)
            sample.to(self.device)
            sample.run_standalone()
            with torch.no_grad():
                out.append({"name": item["name"], **sample.result_images()})
        return out
