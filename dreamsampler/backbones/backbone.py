"""The frozen latent-diffusion backbone: text encoding, one-call epsilon prediction, VAE, alpha_bar.

A plain object, never an ``nn.Module`` attribute of a task, so its weights never reach ``parameters()``,
optimizers or checkpoints. Loads a preset name, a hub id, a local diffusers folder or a single
``.safetensors`` file through the same component loaders. Whatever the scheduler's ``prediction_type``
(``epsilon`` or ``v_prediction``), :meth:`Backbone.eps` returns epsilon, so every formula of the paper applies.
"""

from __future__ import annotations

import importlib.util
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from torch import Tensor
from transformers import CLIPTextModel, CLIPTokenizer

from ..core import eps_from_v
from ..errors import InputError
from .presets import PRESETS, write_sd15_config_folder

DType = Literal["fp32", "fp16", "bf16"]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: What the UNet may predict; ``Backbone.eps`` converts each to epsilon.
PREDICTION_TYPES = ("epsilon", "v_prediction")
#: diffusers warns (twice) that it would like ``accelerate`` for low-memory loading; ask for it only when present.
_LOW_CPU_MEM = importlib.util.find_spec("accelerate") is not None
#: The prior trained by ``tools/train_tiny_prior.py`` and shipped inside the package.
SHAPES_PRIOR_DIR = Path(__file__).resolve().parent.parent / "assets" / "shapes_prior"


class BackboneError(InputError):
    """A backbone source that cannot be loaded (message names the source and what was expected)."""


def _looks_local(source: str) -> bool:
    return (source.startswith(("/", ".", "~")) or source.count("/") > 1 or source.endswith((".safetensors", ".ckpt"))
            or Path(source).exists())


class Backbone:
    """Frozen UNet + VAE + CLIP text encoder + DDIM scheduler constants, on one device and dtype."""

    def __init__(self, unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel,
                 tokenizer: CLIPTokenizer, scheduler: DDIMScheduler, dtype: DType = "fp32",
                 device: str | torch.device = "cpu", name: str = "custom", text_cache_size: int = 256) -> None:
        if dtype not in DTYPES:
            raise BackboneError(f"backbone dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.prediction_type = str(scheduler.config.get("prediction_type", "epsilon"))
        if self.prediction_type not in PREDICTION_TYPES:
            raise BackboneError(f"backbone {name!r}: scheduler prediction_type {self.prediction_type!r} is not "
                                f"supported (expected one of {list(PREDICTION_TYPES)})")
        self.name, self.dtype, self.device = name, DTYPES[dtype], torch.device(device)
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        for net in (unet, vae, text_encoder):
            net.requires_grad_(False).eval()
            if net.dtype != self.dtype:
                net.to(dtype=self.dtype)
            net.to(self.device)
        self.tokenizer, self.scheduler = tokenizer, scheduler
        self.alphas_cumprod = scheduler.alphas_cumprod.float()
        self.final_alpha_cumprod = float(scheduler.final_alpha_cumprod)
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.latent_channels = int(vae.config.latent_channels)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self._text_cache: OrderedDict[str, Tensor] = OrderedDict()     # least recently used first
        self.text_cache_size = int(text_cache_size)

    # ---------------------------------------------------------------- loading
    @staticmethod
    def check_source(source: str, dtype: str = "fp32") -> None:
        """Cheap validation of a source before any loading: raise ``BackboneError`` naming what is wrong."""
        if dtype not in DTYPES:
            raise BackboneError(f"backbone dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        source = str(source)
        if source in PRESETS or source == "shapes" or not _looks_local(source):
            return
        if not Path(source).expanduser().exists():
            raise BackboneError(f"backbone path {source!r} does not exist (expected a diffusers folder with "
                                "model_index.json, a .safetensors file, a preset or a hub id)")

    @classmethod
    def load(cls, source: str = "shapes", dtype: DType = "fp32", device: str | torch.device = "cpu",
             config: str | None = None) -> "Backbone":
        """Load ``source``: ``"tiny"``, ``"sd15-random"``, ``"shapes"`` (shipped prior), a hub id such as
        ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``, a local diffusers folder, or a single ``.safetensors``
        file (its component configs from ``config``, default: the built-in SD1.5 configs, no download)."""
        source = str(source)
        if source in PRESETS:
            return cls(**PRESETS[source](), dtype=dtype, device=device, name=source)
        if source == "shapes":
            if not (SHAPES_PRIOR_DIR / "model_index.json").is_file():
                raise BackboneError(f"the shipped shapes prior is missing at {SHAPES_PRIOR_DIR}: "
                                    "regenerate it with `python tools/train_tiny_prior.py`")
            source = str(SHAPES_PRIOR_DIR)
        torch_dtype = DTYPES.get(dtype)
        if torch_dtype is None:
            raise BackboneError(f"backbone dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if _looks_local(source):
            path = Path(source).expanduser()
            if not path.exists():
                raise BackboneError(f"backbone path {source!r} does not exist (expected a diffusers folder with "
                                    "model_index.json, a .safetensors file, a preset or a hub id)")
            if path.is_file():
                return cls._load_single_file(path, dtype, device, config)
            if not (path / "model_index.json").is_file():
                raise BackboneError(f"backbone folder {source!r} has no model_index.json: expected a diffusers "
                                    "Stable Diffusion folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/)")
        try:
            parts = cls._components(str(source), torch_dtype)
        except (OSError, ValueError, EnvironmentError) as err:
            raise BackboneError(f"could not load backbone {source!r}: {err}") from err
        return cls(**parts, dtype=dtype, device=device, name=str(source))

    @staticmethod
    def _components(source: str, torch_dtype: torch.dtype) -> dict:
        """Each component from its subfolder of a diffusers folder or hub repository (the SD1.5 code path)."""
        kw = dict(torch_dtype=torch_dtype, low_cpu_mem_usage=_LOW_CPU_MEM)
        return dict(
            unet=UNet2DConditionModel.from_pretrained(source, subfolder="unet", **kw),
            vae=AutoencoderKL.from_pretrained(source, subfolder="vae", **kw),
            text_encoder=CLIPTextModel.from_pretrained(source, subfolder="text_encoder", dtype=torch_dtype),
            tokenizer=CLIPTokenizer.from_pretrained(source, subfolder="tokenizer"),
            scheduler=DDIMScheduler.from_pretrained(source, subfolder="scheduler"),
        )

    @classmethod
    def _load_single_file(cls, path: Path, dtype: DType, device, config: str | None) -> "Backbone":
        if path.suffix != ".safetensors":
            raise BackboneError(f"backbone file {str(path)!r}: only .safetensors single files are loaded "
                                f"(pickled {path.suffix or 'files'} can run code), got suffix {path.suffix!r}")
        from diffusers import StableDiffusionPipeline  # imported here: it pulls in image processors

        with tempfile.TemporaryDirectory() as tmp:
            cfg = config or str(write_sd15_config_folder(Path(tmp) / "sd15"))
            try:
                pipe = StableDiffusionPipeline.from_single_file(
                    str(path), config=cfg, torch_dtype=DTYPES[dtype], safety_checker=None,
                    requires_safety_checker=False, local_files_only=True)
            except Exception as err:  # diffusers raises many kinds here; name the file
                raise BackboneError(f"could not load single-file backbone {str(path)!r}: {err}") from err
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        return cls(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, scheduler, dtype, device, str(path))

    # ---------------------------------------------------------------- the three calls
    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> Tensor:
        """CLIP last hidden states (N, L, D) for ``prompts``; each prompt is encoded once and kept in a cache of
        the ``text_cache_size`` most recently used prompts (bounded on long dataset runs)."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            tok = self.tokenizer(missing, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt", return_overflowing_tokens=False)
            for p in missing:
                n = len(self.tokenizer(p).input_ids)
                if n > self.tokenizer.model_max_length:
                    warnings.warn(f"prompt {p!r} has {n} tokens; truncated to the text encoder's "
                                  f"{self.tokenizer.model_max_length}", stacklevel=2)
            hidden = self.text_encoder(tok.input_ids.to(self.device))[0]
            self._text_cache.update(zip(missing, hidden))
        out = torch.stack([self._text_cache[p] for p in prompts])
        for p in dict.fromkeys(prompts):
            self._text_cache.move_to_end(p)
        while len(self._text_cache) > max(self.text_cache_size, len(set(prompts))):
            self._text_cache.popitem(last=False)
        return out

    def eps(self, z_t: Tensor, t: int | Tensor, emb: Tensor, grad: bool = False) -> Tensor:
        """Epsilon prediction for a batch (B, C, h, w) at timestep ``t`` with text embeddings (B, L, D) in ONE
        UNet call; inputs are cast to the backbone dtype and the output back to ``z_t``'s dtype. A v-prediction
        UNet's output is converted (``eps = sqrt(ab) v + sqrt(1 - ab) z_t``, ab = alphas_cumprod[t]).
        ``grad=True`` keeps the graph to ``z_t`` (DPS steps); the networks' own weights never get gradients."""
        t_int = int(t)
        t = torch.full((z_t.shape[0],), t_int, device=self.device, dtype=torch.long)
        with torch.set_grad_enabled(grad), torch.autocast(self.device.type, enabled=False):
            out = self.unet(z_t.to(self.device, self.dtype).contiguous(), t,  # expanded inputs: slow conv path
                            encoder_hidden_states=emb.to(self.device, self.dtype),
                            return_dict=False)[0].to(z_t.dtype)
            if self.prediction_type == "v_prediction":
                out = eps_from_v(out, z_t, self.alphas_cumprod[t_int])
        return out

    def encode(self, x: Tensor, grad: bool = False) -> Tensor:
        """VAE latent (posterior mean × scaling_factor) of images ``x`` (B, 3, H, W) in [-1, 1]."""
        with torch.set_grad_enabled(grad), torch.autocast(self.device.type, enabled=False):
            z = self.vae.encode(x.to(self.device, self.dtype)).latent_dist.mean
        return (z * self.scaling_factor).to(x.dtype)

    def decode(self, z: Tensor, grad: bool = False) -> Tensor:
        """Images in [-1, 1] (B, 3, H, W) from scaled latents ``z``."""
        with torch.set_grad_enabled(grad), torch.autocast(self.device.type, enabled=False):
            x = self.vae.decode(z.to(self.device, self.dtype) / self.scaling_factor, return_dict=False)[0]
        return x.to(z.dtype)

    def to(self, device: str | torch.device) -> "Backbone":
        """Move the frozen networks (and the text cache) to ``device``."""
        self.device = torch.device(device)
        for net in (self.unet, self.vae, self.text_encoder):
            net.to(self.device)
        self._text_cache = {k: v.to(self.device) for k, v in self._text_cache.items()}
        return self
