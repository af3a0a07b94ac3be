"""The frozen backbone: text encoders, one denoiser call per batch, the VAE and the model's own schedule.

A plain object, never an ``nn.Module`` attribute of a task, so its weights never reach ``parameters()``,
optimizers or checkpoints. One subclass per model family, chosen from the loaded components:

==============  ==============================================  ==========  ======================================
family          networks                                        predicts    schedule
==============  ==============================================  ==========  ======================================
SD 1.x / 2.x    UNet, CLIP                                      eps or v    DDIM timesteps
SDXL            UNet, CLIP-L + CLIP-G (pooled, ``time_ids``)    eps or v    DDIM timesteps
SD 3 / 3.5      MMDiT, CLIP-L + CLIP-G (+ T5)                   flow        flow-matching sigmas, the model's shift
Flux            MMDiT on packed latents, CLIP + T5, guidance    flow        sigmas with resolution-dependent shift
==============  ==============================================  ==========  ======================================

Whatever the family, :meth:`Backbone.encode_text` returns a :class:`~dreamsampler.backbones.cond.Cond` (rows
indexable per prompt) and :meth:`Backbone.denoise` returns a :class:`~dreamsampler.core.Denoised` (eps and z0 at
the given noise level), so every formula of :mod:`dreamsampler.core` and every task applies unchanged.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from ..core import Denoised, Level, denoised
from ..errors import InputError
from ..schedule import Pairing, Schedule, Spacing
from .cond import Cond

DType = Literal["fp32", "fp16", "bf16"]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: The prior trained by ``tools/train_tiny_prior.py`` and shipped inside the package.
SHAPES_PRIOR_DIR = Path(__file__).resolve().parent.parent / "assets" / "shapes_prior"
WORLD_PRIOR_DIR = Path(__file__).resolve().parent.parent / "assets" / "world_prior"
#: the priors shipped in the package, by backbone name (the name of the procedural world each was trained on)
SHIPPED_PRIORS = {"shapes": SHAPES_PRIOR_DIR, "scenes-faces": WORLD_PRIOR_DIR}


class BackboneError(InputError):
    """A backbone source that cannot be loaded (message names the source and what was expected)."""


@dataclass
class BackboneOptions:
    """How the frozen networks run (read by LightningCLI as ``backbone_options``).

    Args:
        vae_dtype: dtype of the VAE; default: the backbone dtype, except fp32 for SDXL (its VAE overflows to NaN in
            fp16).
        compile: ``torch.compile`` the denoiser call (shapes are fixed within a run; an edit has two, the
            inversion's and the sampling's batch): ``true`` (inductor) or one of its modes, e.g. ``reduce-overhead``
            (inductor + CUDA graphs) or ``max-autotune-no-cudagraphs``; or ``cudagraphs`` (CUDA graphs of the eager
            kernels, no code generation: quick to build).
        channels_last: channels-last memory format for the convolutional networks (UNet, VAE).
        guidance: Flux's distilled guidance embedding (FLUX.1-dev: 3.5); ignored by models without one.
        text_encoder_3: SD3: load the T5 encoder (False: zeros in its place, as diffusers allows; saves ~10 GB).
        max_sequence_length: T5 tokens (default: SD3 256, Flux 512).
        zero_empty_prompt: SDXL: an empty prompt is zero embeddings (SDXL's own unconditional input, what diffusers
            uses without a negative prompt) or the encoded "" (as the official DreamSampler SDXL code); default: the
            model's ``force_zeros_for_empty_prompt``.
    """

    vae_dtype: DType | None = None
    compile: bool | str = False
    channels_last: bool = False
    guidance: float = 3.5
    text_encoder_3: bool = True
    max_sequence_length: int | None = None
    zero_empty_prompt: bool | None = None


def cast_frozen(net: nn.Module, dtype: torch.dtype) -> None:
    """Cast a frozen network's weights to ``dtype``, keeping the modules its class lists in
    ``_keep_in_fp32_modules`` (e.g. T5's ``wo``, which overflows in fp16) in fp32, as loading with a dtype does."""
    keep = getattr(net, "_keep_in_fp32_modules", None) or []
    for name, module in net.named_modules():
        kept = dtype != torch.float32 and any(k in name.split(".") for k in keep)
        target = torch.float32 if kept else dtype
        for p in module.parameters(recurse=False):
            if p.is_floating_point() and p.dtype != target:
                p.data = p.data.to(target)
        for key, buffer in module.named_buffers(recurse=False):
            if buffer.is_floating_point() and buffer.dtype != target:
                setattr(module, key, buffer.to(target))


def tokenize(tokenizer: Any, prompts: list[str], max_length: int | None = None) -> Tensor:
    """Padded token ids (N, L) of ``prompts``; warns once per prompt that is truncated."""
    max_length = int(max_length or tokenizer.model_max_length)
    for p in prompts:
        n = len(tokenizer(p).input_ids)
        if n > max_length:
            warnings.warn(f"prompt {p!r} has {n} tokens; truncated to the text encoder's {max_length}", stacklevel=3)
    return tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True,
                     return_tensors="pt").input_ids


class Backbone:
    """Frozen denoiser + VAE + text encoders of one family, on one device, in one dtype (VAE: ``vae_dtype``).

    Subclasses implement the family: ``prediction_type``, ``_encode_rows`` (prompts → per-row tensors),
    ``_forward`` (one raw denoiser call), ``level`` and ``schedule``. Any component is reachable as an attribute
    (``bb.unet``, ``bb.text_encoder_2``, ...).
    """

    family: ClassVar[str] = "?"
    denoiser_key: ClassVar[str] = "unet"
    #: components that are frozen networks besides the denoiser and the VAE (absent ones are skipped)
    text_encoder_keys: ClassVar[tuple[str, ...]] = ("text_encoder",)
    default_vae_dtype: ClassVar[DType | None] = None
    #: the latent side must be a multiple of this (patches, packing)
    latent_multiple: ClassVar[int] = 1
    prediction_type: str = "epsilon"

    def __init__(self, components: dict[str, Any], dtype: DType = "fp32", device: str | torch.device = "cpu",
                 name: str = "custom", options: BackboneOptions | None = None, text_cache_size: int = 256) -> None:
        if dtype not in DTYPES:
            raise BackboneError(f"backbone dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.options = options = options or BackboneOptions()
        vae_dtype = options.vae_dtype or self.default_vae_dtype or dtype
        if vae_dtype not in DTYPES:
            raise BackboneError(f"vae_dtype must be one of {sorted(DTYPES)}, got {vae_dtype!r}")
        self.components = dict(components)
        self.name, self.dtype, self.vae_dtype = name, DTYPES[dtype], DTYPES[vae_dtype]
        self.device = torch.device(device)
        self.denoiser: nn.Module = self.components[self.denoiser_key]
        self.vae: nn.Module = self.components["vae"]
        self.scheduler = self.components["scheduler"]
        for net in self.nets():
            net.requires_grad_(False).eval()
            cast_frozen(net, self.vae_dtype if net is self.vae else self.dtype)
            net.to(self.device)
            if options.channels_last and any(isinstance(m, nn.Conv2d) for m in net.modules()):
                net.to(memory_format=torch.channels_last)
        cfg = self.vae.config
        self.scaling_factor = float(cfg.scaling_factor)
        self.shift_factor = float(getattr(cfg, "shift_factor", None) or 0.0)
        self.latent_channels = int(cfg.latent_channels)
        self.vae_scale_factor = 2 ** (len(cfg.block_out_channels) - 1)
        self.num_train_timesteps = int(self.scheduler.config.num_train_timesteps)
        self._net = self.denoiser
        if options.compile == "cudagraphs":         # CUDA graphs alone: no code generation, quick to build
            self._net = torch.compile(self.denoiser, backend="cudagraphs", dynamic=False)
        elif options.compile:
            mode = None if options.compile is True else str(options.compile)
            self._net = torch.compile(self.denoiser, mode=mode, dynamic=False)
        self._text_cache: OrderedDict[str, dict[str, Tensor]] = OrderedDict()   # least recently used first
        self._last_cond: tuple[tuple[str, ...], Cond] | None = None
        self.text_cache_size = int(text_cache_size)

    def __getattr__(self, key: str) -> Any:
        components = self.__dict__.get("components", {})
        if key in components:
            return components[key]
        raise AttributeError(f"{type(self).__name__} has no attribute or component {key!r}")

    def nets(self) -> list[nn.Module]:
        """The frozen networks present: denoiser, VAE, text encoders."""
        keys = (self.denoiser_key, "vae", *self.text_encoder_keys)
        return [self.components[k] for k in keys if isinstance(self.components.get(k), nn.Module)]

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_components(cls, components: dict[str, Any], **kwargs: Any) -> "Backbone":
        """The family's backbone for diffusers components (a pipeline's ``components`` dict)."""
        from .loading import backbone_class

        return backbone_class(components, kwargs.get("name", "custom"))(components, **kwargs)

    @classmethod
    def load(cls, source: str = "shapes", dtype: DType = "fp32", device: str | torch.device = "cpu",
             config: str | None = None, options: BackboneOptions | None = None) -> "Backbone":
        """Load a preset name, ``"shapes"`` (the shipped prior), a hub id, a local diffusers folder or a single
        ``.safetensors`` file (component configs from ``config``, default: built in): see :mod:`.loading`."""
        from .loading import load_backbone

        return load_backbone(source, dtype, device, config, options)

    @staticmethod
    def check_source(source: str, dtype: str = "fp32") -> None:
        """Cheap validation of a source before any loading: raise ``BackboneError`` naming what is wrong."""
        from .loading import check_source

        check_source(source, dtype)

    # ---------------------------------------------------------------- what a family implements
    def _encode_rows(self, prompts: list[str]) -> dict[str, Tensor]:
        """Per-prompt conditioning tensors (N, ...) on the device, in the backbone dtype."""
        raise NotImplementedError

    def _forward(self, z: Tensor, t: Any, cond: Cond) -> Tensor:
        """One raw denoiser call on latents (B, C, h, w) in the backbone dtype; returns its output in that layout."""
        raise NotImplementedError

    def level(self, t: Any) -> Level:
        """The noise level the model associates with its timestep ``t``."""
        raise NotImplementedError

    def timestep_rows(self, t: Any, n: int, dtype: torch.dtype, scale: float = 1.0) -> Tensor:
        """(n,) denoiser timesteps ``t * scale`` on the device: a host scalar for every row, or a (n,) tensor, one
        per row (score distillation draws one t per sample)."""
        if isinstance(t, Tensor) and t.dim() > 0:
            if t.numel() != n:
                raise ValueError(f"denoise: {t.numel()} timesteps for {n} rows")
            return (t.to(self.device, torch.float64) * scale).to(dtype)
        return torch.full((n,), int(t) if dtype == torch.long else float(t) * scale, device=self.device, dtype=dtype)

    def schedule(self, nfe: int, size: int, spacing: Spacing | None = None,
                 t_range: tuple[float, float] | None = None, pairing: Pairing = "diffusers") -> Schedule:
        """The reverse schedule of ``nfe`` steps for ``size × size`` images, from the model's own scheduler."""
        raise NotImplementedError

    # ---------------------------------------------------------------- the calls tasks make
    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> Cond:
        """The conditioning rows for ``prompts``; each prompt is encoded once, on its own (so its row does not depend
        on which prompts it was encoded with: a resumed run gets the same bits), and kept in a cache of the
        ``text_cache_size`` most recently used prompts (bounded on long dataset runs)."""
        key = tuple(prompts)
        if self._last_cond is not None and self._last_cond[0] == key:   # every step of a run asks the same rows
            return self._last_cond[1]
        for p in dict.fromkeys(prompts):
            if p not in self._text_cache:
                self._text_cache[p] = {k: v[0] for k, v in self._encode_rows([p]).items()}
        out = Cond.stack([self._text_cache[p] for p in prompts])
        self._last_cond = (key, out)
        for p in dict.fromkeys(prompts):
            self._text_cache.move_to_end(p)
        while len(self._text_cache) > max(self.text_cache_size, len(set(prompts))):
            self._text_cache.popitem(last=False)
        return out

    def denoise(self, z_t: Tensor, t: Any, cond: Cond, level: Level | None = None, grad: bool = False) -> Denoised:
        """The model's (eps, z0) for a batch (B, C, h, w) at timestep ``t`` with B conditioning rows, in ONE
        denoiser call; the output is read at ``level`` (default: the model's own level for ``t``). Inputs are cast
        to the backbone dtype, results are in ``z_t``'s dtype. ``grad=True`` keeps the graph to ``z_t`` (DPS
        steps); the networks' own weights never get gradients."""
        if len(cond) != z_t.shape[0]:
            raise ValueError(f"denoise: {z_t.shape[0]} latents but {len(cond)} conditioning rows")
        level = self.level(t) if level is None else level
        with torch.set_grad_enabled(grad), torch.autocast(self.device.type, enabled=False):
            z_in = z_t.to(self.device, self.dtype)
            z_in = z_in.contiguous(memory_format=torch.channels_last if self.options.channels_last
                                   else torch.contiguous_format)   # expanded inputs hit a slow conv path
            out = self._forward(z_in, t, cond)
            # a compiled call may hand out a CUDA-graph buffer that its next replay overwrites: own the result
            out = out.to(z_t.dtype, copy=self._net is not self.denoiser)
            return denoised(out, z_t, level, self.prediction_type)

    def eps(self, z_t: Tensor, t: Any, cond: Cond, grad: bool = False) -> Tensor:
        """The noise estimate at the model's own level for ``t`` (a shortcut of :meth:`denoise`)."""
        return self.denoise(z_t, t, cond, grad=grad).eps

    def encode(self, x: Tensor, grad: bool = False) -> Tensor:
        """Latents ``(E(x) - shift_factor) * scaling_factor`` (posterior mean) of images (B, 3, H, W) in [-1, 1]."""
        with torch.set_grad_enabled(grad), torch.autocast(self.device.type, enabled=False):
            z = self.vae.encode(x.to(self.device, self.vae_dtype)).latent_dist.mean
        return ((z - self.shift_factor) * self.scaling_factor).to(x.dtype)

    def decode(self, z: Tensor, grad: bool = False) -> Tensor:
        """Images in [-1, 1] (B, 3, H, W) from latents ``z``."""
        with torch.set_grad_enabled(grad), torch.autocast(self.device.type, enabled=False):
            z_in = z.to(self.device, self.vae_dtype) / self.scaling_factor + self.shift_factor
            x = self.vae.decode(z_in, return_dict=False)[0]
        return x.to(z.dtype)

    def latent_shape(self, size: int) -> tuple[int, int, int]:
        """(C, h, w) of the latent of a ``size × size`` image; a clear error when the size does not fit."""
        step = self.vae_scale_factor * self.latent_multiple
        if not isinstance(size, int) or size <= 0 or size % step:
            raise InputError(f"size {size} must be a positive multiple of {step} for the {self.family} backbone "
                             f"{self.name!r} (VAE factor {self.vae_scale_factor}"
                             + (f" × {self.latent_multiple} latent cells per patch)" if self.latent_multiple > 1
                                else ")"))
        return self.latent_channels, size // self.vae_scale_factor, size // self.vae_scale_factor

    def to(self, device: str | torch.device) -> "Backbone":
        """Move the frozen networks (and the text cache, kept in least-recently-used order) to ``device``."""
        self.device = torch.device(device)
        for net in self.nets():
            net.to(self.device)
        for p, rows in self._text_cache.items():
            self._text_cache[p] = {k: v.to(self.device) for k, v in rows.items()}
        self._last_cond = None
        return self
