"""Loading a backbone from any source: a preset, the shipped prior, a hub id, a diffusers folder, or a single
``.safetensors`` checkpoint (SD 1.x, SDXL, SD3) with built-in component configs; the family is read from the
loaded components."""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel, UNet2DConditionModel
from safetensors import safe_open

from .architectures import write_config_folder
from .backbone import DTYPES, SHIPPED_PRIORS, Backbone, BackboneError, BackboneOptions, DType
from .flow import FluxBackbone, SD3Backbone
from .presets import LARGE_PRESETS, PRESETS
from .unet import SDBackbone, SDXLBackbone

#: diffusers warns that it would like ``accelerate`` for low-memory loading; ask for it only when present.
_LOW_CPU_MEM = importlib.util.find_spec("accelerate") is not None
#: diffusers 0.36+ names the loading dtype ``dtype`` and deprecates ``torch_dtype``; older releases know only the latter
_DTYPE_KW = "dtype" if importlib.util.find_spec("diffusers.utils.deprecation_utils") and hasattr(
    importlib.import_module("diffusers.utils.deprecation_utils"), "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"
#: components a pipeline may have that a backbone never uses (skipped when loading)
_UNUSED = ("safety_checker", "feature_extractor", "image_encoder")


def _looks_local(source: str) -> bool:
    return (source.startswith(("/", ".", "~")) or source.count("/") > 1 or source.endswith((".safetensors", ".ckpt"))
            or Path(source).exists())


def check_source(source: str, dtype: str = "fp32") -> None:
    """Cheap validation of a source before any loading: raise ``BackboneError`` naming what is wrong."""
    if dtype not in DTYPES:
        raise BackboneError(f"backbone dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    source = str(source)
    if source in PRESETS or source in SHIPPED_PRIORS or not _looks_local(source):
        return
    if not Path(source).expanduser().exists():
        raise BackboneError(f"backbone path {source!r} does not exist (expected a diffusers folder with "
                            "model_index.json, a .safetensors file, a preset or a hub id)")


def backbone_class(components: dict[str, Any], name: str = "custom") -> type[Backbone]:
    """The family of a set of diffusers components, read from the denoiser's class and config."""
    transformer, unet = components.get("transformer"), components.get("unet")
    if isinstance(transformer, SD3Transformer2DModel):
        return SD3Backbone
    if isinstance(transformer, FluxTransformer2DModel):
        return FluxBackbone
    if isinstance(unet, UNet2DConditionModel):
        return SDXLBackbone if unet.config.get("addition_embed_type") == "text_time" else SDBackbone
    found = type(transformer if transformer is not None else unet).__name__
    raise BackboneError(f"backbone {name!r}: its denoiser {found} is not a supported family (SD 1.x/2.x, SDXL: "
                        "UNet2DConditionModel; SD 3/3.5: SD3Transformer2DModel; Flux: FluxTransformer2DModel)")


def load_backbone(source: str = "shapes", dtype: DType = "fp32", device: str | torch.device = "cpu",
                  config: str | None = None, options: BackboneOptions | None = None) -> Backbone:
    """Load ``source``: a preset (``tiny``, ``tiny-v``, ``tiny-xl``, ``tiny-sd3``, ``tiny-flux``, ``sd15-random``,
    ``sdxl-random``, ``sd3-random``), ``"shapes"`` / ``"scenes-faces"`` (the shipped priors), a hub id such as
    ``"stabilityai/stable-diffusion-xl-base-1.0"``, a local diffusers folder, or a single ``.safetensors`` file
    (component configs from ``config``, default: the built-in configs of its family, no download)."""
    source, options = str(source), options or BackboneOptions()
    check_source(source, dtype)
    kw = dict(dtype=dtype, device=device, options=options)
    if source in PRESETS:
        build = PRESETS[source]
        parts = build(device=device) if source in LARGE_PRESETS else build()
        return Backbone.from_components(parts, name=source, **kw)
    if source in SHIPPED_PRIORS:
        folder = SHIPPED_PRIORS[source]
        if not (folder / "model_index.json").is_file():
            raise BackboneError(f"the shipped {source} prior is missing at {folder}: regenerate it with "
                                f"`python tools/train_tiny_prior.py --world {source} --out {folder}`")
        source = str(folder)
    if _looks_local(source):
        path = Path(source).expanduser()
        if path.is_file():
            return Backbone.from_components(_single_file(path, DTYPES[dtype], config, options), name=str(path), **kw)
        if not (path / "model_index.json").is_file():
            raise BackboneError(f"backbone folder {source!r} has no model_index.json: expected a diffusers folder "
                                "(model_index.json, unet/ or transformer/, vae/, text_encoder*/, tokenizer*/, scheduler/)")
    return Backbone.from_components(_from_pretrained(source, DTYPES[dtype], options), name=source, **kw)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Loading a pipeline makes transformers import image processors the backbone never uses, each warning that
    torchvision is missing: keep transformers at error level meanwhile."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _from_pretrained(source: str, torch_dtype: torch.dtype, options: BackboneOptions) -> dict[str, Any]:
    """The components of a diffusers folder or hub repository (the pipeline class named in model_index.json)."""
    from diffusers import DiffusionPipeline   # imported here: it pulls in every pipeline module

    try:
        index = DiffusionPipeline.load_config(source)
        skip = {k: None for k in _UNUSED if k in index}
        if "requires_safety_checker" in index:
            skip["requires_safety_checker"] = False
        if not options.text_encoder_3 and "text_encoder_3" in index:
            skip.update(text_encoder_3=None, tokenizer_3=None)
        with _quiet_transformers():
            pipe = DiffusionPipeline.from_pretrained(source, low_cpu_mem_usage=_LOW_CPU_MEM,
                                                     **{_DTYPE_KW: torch_dtype}, **skip)
    except (OSError, ValueError, EnvironmentError) as err:
        raise BackboneError(f"could not load backbone {source!r}: {err}") from err
    return _components(pipe)


def _components(pipe: Any) -> dict[str, Any]:
    parts = dict(pipe.components)
    if "force_zeros_for_empty_prompt" in pipe.config:
        parts["force_zeros_for_empty_prompt"] = bool(pipe.config.force_zeros_for_empty_prompt)
    return parts


def single_file_family(path: Path) -> str:
    """``sd``, ``sdxl`` or ``sd3`` from a checkpoint's tensor names (read from its header only)."""
    try:
        with safe_open(str(path), "pt") as f:
            keys = list(f.keys())
    except Exception as err:  # noqa: BLE001 - safetensors raises several kinds for garbage files
        raise BackboneError(f"could not load single-file backbone {str(path)!r}: not a readable .safetensors file "
                            f"({err})") from err
    if any("double_blocks." in k for k in keys):
        raise BackboneError(f"could not load single-file backbone {str(path)!r}: Flux checkpoints load from a "
                            "diffusers folder or hub id (e.g. black-forest-labs/FLUX.1-dev), not from one file")
    if any("joint_blocks." in k for k in keys):
        return "sd3"
    if any(k.startswith("model.diffusion_model.label_emb") for k in keys):
        return "sdxl"
    if any(k.startswith("model.diffusion_model.input_blocks") for k in keys):
        return "sd"
    raise BackboneError(f"could not load single-file backbone {str(path)!r}: its tensors match no supported family "
                        "(SD 1.x/2.x, SDXL or SD3 checkpoints have model.diffusion_model.* weights)")


def _single_file(path: Path, torch_dtype: torch.dtype, config: str | None, options: BackboneOptions) -> dict:
    if path.suffix != ".safetensors":
        raise BackboneError(f"backbone file {str(path)!r}: only .safetensors single files are loaded "
                            f"(pickled {path.suffix or 'files'} can run code), got suffix {path.suffix!r}")
    family = single_file_family(path)
    from diffusers import StableDiffusion3Pipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    pipeline = {"sd": StableDiffusionPipeline, "sdxl": StableDiffusionXLPipeline,
                "sd3": StableDiffusion3Pipeline}[family]
    extra: dict[str, Any] = {"safety_checker": None, "requires_safety_checker": False} if family == "sd" else {}
    if family == "sd3" and (config is None or not options.text_encoder_3):   # the built-in config has no T5
        extra.update(text_encoder_3=None, tokenizer_3=None)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config or str(write_config_folder(Path(tmp) / family, family))
        try:
            with _quiet_transformers():
                pipe = pipeline.from_single_file(str(path), config=cfg, local_files_only=True,
                                                 **{_DTYPE_KW: torch_dtype}, **extra)
        except Exception as err:  # diffusers raises many kinds here; name the file and what to try
            hint = (" (a checkpoint without its text encoders needs config= a diffusers folder or hub id that has "
                    "them)" if family == "sd3" else "")
            raise BackboneError(f"could not load single-file backbone {str(path)!r} as {family}: {err}{hint}") from err
    return _components(pipe)
