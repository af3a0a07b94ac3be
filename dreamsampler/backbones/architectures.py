"""Exact architectures of SD1.5, SDXL and SD3 (configs, no weights): random-weight presets for benchmarks, and the
built-in component configs that single-file checkpoints load with (offline, no download).

Each ``*_configs()`` returns the diffusers/transformers constructor arguments of one published model:
``stable-diffusion-v1-5``, ``stable-diffusion-xl-base-1.0``, ``stable-diffusion-3-medium-diffusers``.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel,
                       UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from .tokenizer import clip_bpe_tokenizer, preset_tokenizer

_SD_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
               layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4)
_CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
               max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
_CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
               num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)


def sd15_scheduler(prediction_type: str = "epsilon", set_alpha_to_one: bool = False) -> DDIMScheduler:
    """SD1.5's DDIM scheduler: scaled_linear betas 0.00085 → 0.012, 1000 steps, epsilon prediction (SD 2.x's
    768 models and SDXL use the same schedule; SD 2.x 768 with ``prediction_type="v_prediction"``)."""
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=set_alpha_to_one, steps_offset=1,
                         prediction_type=prediction_type)


def sd15_configs() -> dict:
    """Configs of the SD1.5 architecture (UNet 860 M, VAE 84 M, CLIP ViT-L/14 text encoder 123 M)."""
    return dict(unet=dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8),
                vae=dict(_SD_VAE, sample_size=512, scaling_factor=0.18215), text_encoder=dict(_CLIP_L))


def sdxl_configs() -> dict:
    """Configs of SDXL base 1.0 (UNet 2.6 B, VAE 84 M, CLIP-L 123 M, CLIP-G 695 M)."""
    unet = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                transformer_layers_per_block=(1, 2, 10), use_linear_projection=True, addition_embed_type="text_time",
                addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
    return dict(unet=unet, vae=dict(_SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
                text_encoder=dict(_CLIP_L), text_encoder_2=dict(_CLIP_G))


def sd3_configs() -> dict:
    """Configs of SD3 medium (MMDiT 2.0 B, 16-channel VAE 84 M, CLIP-L, CLIP-G, T5-XXL 4.8 B)."""
    transformer = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
                       num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
                       pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192)
    vae = dict(_SD_VAE, latent_channels=16, sample_size=1024, scaling_factor=1.5305, shift_factor=0.0609,
               use_quant_conv=False, use_post_quant_conv=False)
    t5 = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu", decoder_start_token_id=0)
    return dict(transformer=transformer, vae=vae, text_encoder=dict(_CLIP_L), text_encoder_2=dict(_CLIP_G),
                text_encoder_3=t5)


def _clip(cls, cfg: dict, tokenizer) -> torch.nn.Module:
    return cls(CLIPTextConfig(**cfg, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id))


@contextmanager
def _seeded(seed: int, device: str | torch.device | None) -> Iterator[None]:
    """Construct under a fixed seed, on ``device`` (random init of billions of weights is fast on a GPU)."""
    device = torch.device(device or "cpu")
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []), device:
        torch.manual_seed(seed)
        yield


def sd15_random_components(seed: int = 0, device: str | torch.device | None = None) -> dict:
    """The exact SD1.5 architecture with random weights (for benchmarks; produces noise images)."""
    cfg, tok = sd15_configs(), preset_tokenizer(77)
    with _seeded(seed, device):
        return dict(unet=UNet2DConditionModel(**cfg["unet"]), vae=AutoencoderKL(**cfg["vae"]),
                    text_encoder=_clip(CLIPTextModel, cfg["text_encoder"], tok), tokenizer=tok,
                    scheduler=sd15_scheduler())


def sdxl_random_components(seed: int = 0, device: str | torch.device | None = None) -> dict:
    """The exact SDXL base architecture with random weights (for benchmarks)."""
    cfg, tok = sdxl_configs(), preset_tokenizer(77)
    with _seeded(seed, device):
        return dict(unet=UNet2DConditionModel(**cfg["unet"]), vae=AutoencoderKL(**cfg["vae"]),
                    text_encoder=_clip(CLIPTextModel, cfg["text_encoder"], tok),
                    text_encoder_2=_clip(CLIPTextModelWithProjection, cfg["text_encoder_2"], tok),
                    tokenizer=tok, tokenizer_2=tok, scheduler=sd15_scheduler())


def sd3_random_components(seed: int = 0, device: str | torch.device | None = None, t5: bool = False) -> dict:
    """The exact SD3-medium architecture with random weights (for benchmarks). T5-XXL (4.8 B parameters, used only
    to encode prompts once) is left out unless ``t5``: the transformer then reads zeros in its place."""
    cfg, tok = sd3_configs(), preset_tokenizer(77)
    with _seeded(seed, device):
        parts = dict(transformer=SD3Transformer2DModel(**cfg["transformer"]), vae=AutoencoderKL(**cfg["vae"]),
                     text_encoder=_clip(CLIPTextModelWithProjection, cfg["text_encoder"], tok),
                     text_encoder_2=_clip(CLIPTextModelWithProjection, cfg["text_encoder_2"], tok),
                     text_encoder_3=T5EncoderModel(T5Config(**cfg["text_encoder_3"])) if t5 else None,
                     tokenizer=tok, tokenizer_2=tok, tokenizer_3=tok if t5 else None,
                     scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0))
    return parts


def write_config_folder(folder: str | Path, family: str) -> Path:
    """A diffusers folder holding only the configs and the tokenizers of ``family`` (``sd``, ``sdxl``, ``sd3``): the
    built-in ``config`` a single-file checkpoint of that family loads with, without a download. The tokenizers are
    CLIP's own (vendored vocabulary; OpenCLIP bigG pads with ``!``). SD3's T5 is left out (its tokenizer is not
    vendored): such a model runs without T5, or give ``config=`` a folder or hub id that has it."""
    folder = Path(folder)
    cfgs = {"sd": sd15_configs, "sdxl": sdxl_configs, "sd3": sd3_configs}[family]()
    index = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
             "sd3": "StableDiffusion3Pipeline"}[family]
    model_index: dict = {"_class_name": index, "_diffusers_version": "0.42.1"}
    denoiser, cls = ("transformer", SD3Transformer2DModel) if family == "sd3" else ("unet", UNet2DConditionModel)
    with torch.device("meta"):
        cls(**cfgs[denoiser]).save_config(folder / denoiser)
        AutoencoderKL(**cfgs["vae"]).save_config(folder / "vae")
    model_index[denoiser] = ["diffusers", cls.__name__]
    model_index["vae"] = ["diffusers", "AutoencoderKL"]
    for key in ("text_encoder", "text_encoder_2"):
        if key not in cfgs:
            continue
        suffix = key.removeprefix("text_encoder")
        CLIPTextConfig(**cfgs[key]).save_pretrained(folder / key)
        with_projection = family == "sd3" or key == "text_encoder_2"
        model_index[key] = ["transformers", "CLIPTextModelWithProjection" if with_projection else "CLIPTextModel"]
        clip_bpe_tokenizer(folder / f"tokenizer{suffix}", pad_token="!" if suffix == "_2" else "<|endoftext|>")
        model_index[f"tokenizer{suffix}"] = ["transformers", "CLIPTokenizer"]
    if family == "sd3":
        FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0).save_config(folder / "scheduler")
        model_index.update(scheduler=["diffusers", "FlowMatchEulerDiscreteScheduler"], text_encoder_3=[None, None],
                           tokenizer_3=[None, None])
    else:
        sd15_scheduler().save_config(folder / "scheduler")
        model_index["scheduler"] = ["diffusers", "DDIMScheduler"]
    if family == "sd":
        model_index.update(feature_extractor=[None, None], safety_checker=[None, None], image_encoder=[None, None],
                           requires_safety_checker=False)
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=1))
    return folder
