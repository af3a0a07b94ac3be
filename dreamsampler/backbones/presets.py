"""Backbones built in code with the real diffusers/transformers classes and random weights (no download).

``tiny``: a few hundred thousand parameters, for tests and plumbing. ``sd15-random``: the exact Stable
Diffusion 1.5 architecture (UNet 860 M, VAE 84 M, CLIP ViT-L/14 text encoder 123 M) for benchmarks and GPU
checks. Tokenizer files are written offline by :mod:`dreamsampler.backbones.tokenizer`.
``tiny-v``: ``tiny`` with a v-prediction scheduler (as SD 2.x), for the prediction-type tests.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .tokenizer import write_clip_tokenizer

#: Words that tokenize as one token in the offline presets (any other text is spelt out in characters).
PRESET_WORDS = (
    "a an the of on in with and photo painting picture image drawing icon "
    "red green blue yellow purple orange black white pink brown gray grey "
    "circle square triangle star heart shape background dog cat zebra horse tiger lion bird car house tree"
).split()


def sd15_scheduler(prediction_type: str = "epsilon") -> DDIMScheduler:
    """SD1.5's DDIM scheduler: scaled_linear betas 0.00085 → 0.012, 1000 steps, epsilon prediction (SD 2.x's
    768 models use the same schedule with ``prediction_type="v_prediction"``)."""
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type)


def _tokenizer(max_length: int) -> CLIPTokenizer:
    with tempfile.TemporaryDirectory() as tmp:
        return write_clip_tokenizer(Path(tmp), PRESET_WORDS, max_length=max_length)


def tiny_components(seed: int = 0) -> dict:
    """Tiny SD-layout components: 2-block UNet, 2-block VAE (2× down), 2-layer CLIP text encoder."""
    tokenizer = _tokenizer(16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
        )
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8,
            sample_size=16, scaling_factor=0.5,
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=16, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        ))
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=sd15_scheduler())


def sd15_configs() -> dict:
    """Configs of the SD1.5 architecture (no weights)."""
    unet = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    vae = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
               layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512, scaling_factor=0.18215)
    text = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
    return dict(unet=unet, vae=vae, text_encoder=text)


def sd15_random_components(seed: int = 0) -> dict:
    """The exact SD1.5 architecture with random weights (for benchmarks; produces noise images)."""
    cfg = sd15_configs()
    tokenizer = _tokenizer(77)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**cfg["unet"])
        vae = AutoencoderKL(**cfg["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"], bos_token_id=tokenizer.bos_token_id,
                                                    eos_token_id=tokenizer.eos_token_id,
                                                    pad_token_id=tokenizer.pad_token_id))
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=sd15_scheduler())


def write_sd15_config_folder(folder: str | Path) -> Path:
    """A diffusers folder holding only SD1.5 configs + tokenizer: the offline ``config`` for single-file loading."""
    folder = Path(folder)
    cfg = sd15_configs()
    with torch.device("meta"):
        UNet2DConditionModel(**cfg["unet"]).save_config(folder / "unet")
        AutoencoderKL(**cfg["vae"]).save_config(folder / "vae")
    CLIPTextConfig(**cfg["text_encoder"]).save_pretrained(folder / "text_encoder")
    _tokenizer(77).save_pretrained(str(folder / "tokenizer"))
    sd15_scheduler().save_config(folder / "scheduler")
    (folder / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",'
        ' "feature_extractor": [null, null], "safety_checker": [null, null], "image_encoder": [null, null],'
        ' "requires_safety_checker": false,'
        ' "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],'
        ' "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],'
        ' "vae": ["diffusers", "AutoencoderKL"]}'
    )
    return folder


def tiny_v_components(seed: int = 0) -> dict:
    """``tiny`` whose scheduler says the UNet predicts v (the weights are random either way)."""
    return {**tiny_components(seed), "scheduler": sd15_scheduler("v_prediction")}


PRESETS = {"tiny": tiny_components, "tiny-v": tiny_v_components, "sd15-random": sd15_random_components}
