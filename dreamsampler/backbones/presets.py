"""Backbones built in code with the real diffusers/transformers classes and random weights (no download).

Tiny ones (tests and plumbing, thousands to a few hundred thousand parameters, VAE factor 2):
``tiny`` (SD layout, epsilon), ``tiny-v`` (its scheduler says v-prediction, as SD 2.x), ``tiny-xl`` (SDXL: two
text encoders, pooled embedding, time ids), ``tiny-sd3`` (MMDiT, CLIP-L + CLIP-G + T5, 16-channel VAE with a
shift), ``tiny-flux`` (packed latents, CLIP + T5, guidance embedding). Exact architectures for benchmarks:
``sd15-random``, ``sdxl-random``, ``sd3-random`` (see :mod:`.architectures`). Tokenizers are written offline by
:mod:`.tokenizer`; the T5 slots of the tiny presets use the same offline word tokenizer.
"""

from __future__ import annotations

from typing import Callable

from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel, SD3Transformer2DModel,
                       UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from .architectures import (_seeded, sd3_random_components, sd15_random_components, sd15_scheduler,
                            sdxl_random_components, write_config_folder)
from .tokenizer import PRESET_WORDS, preset_tokenizer

__all__ = ["PRESETS", "PRESET_WORDS", "sd15_scheduler", "tiny_components", "write_config_folder"]


def _tiny_vae(latent_channels: int = 4, scaling_factor: float = 0.5, shift_factor: float | None = None,
              **extra) -> AutoencoderKL:
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(16, 32),
                         layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8, sample_size=16,
                         scaling_factor=scaling_factor, shift_factor=shift_factor, **extra)


def _tiny_clip(cls, tokenizer, hidden: int = 32) -> CLIPTextModel:
    return cls(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                              num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16,
                              projection_dim=hidden, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))


def _tiny_t5(tokenizer, d_model: int = 64) -> T5EncoderModel:
    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=d_model, d_ff=2 * d_model, d_kv=16,
                                   num_layers=2, num_heads=4, decoder_start_token_id=0,
                                   pad_token_id=tokenizer.pad_token_id))


def tiny_components(seed: int = 0) -> dict:
    """Tiny SD-layout components: 2-block UNet, 2-block VAE (2× down), 2-layer CLIP text encoder."""
    tokenizer = preset_tokenizer(16)
    with _seeded(seed, None):
        unet = UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
        )
        vae = _tiny_vae()
        text_encoder = _tiny_clip(CLIPTextModel, tokenizer)
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=sd15_scheduler())


def tiny_v_components(seed: int = 0) -> dict:
    """``tiny`` whose scheduler says the UNet predicts v (the weights are random either way)."""
    return {**tiny_components(seed), "scheduler": sd15_scheduler("v_prediction")}


def tiny_xl_components(seed: int = 0) -> dict:
    """Tiny SDXL layout: a text-time UNet conditioned on two CLIP encoders (32 + 32 wide) and CLIP-G's pooled
    projection with six time ids."""
    tokenizer = preset_tokenizer(16)
    with _seeded(seed, None):
        unet = UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=4, use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64,
            norm_num_groups=8,
        )
        vae = _tiny_vae(scaling_factor=0.13025)
        te1, te2 = _tiny_clip(CLIPTextModel, tokenizer), _tiny_clip(CLIPTextModelWithProjection, tokenizer)
    return dict(unet=unet, vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer, tokenizer_2=tokenizer,
                scheduler=sd15_scheduler(), force_zeros_for_empty_prompt=True)


def tiny_sd3_components(seed: int = 0) -> dict:
    """Tiny SD3 layout: a 2-layer MMDiT (patch 2) on a 16-channel VAE with SD3's scale and shift, CLIP-L and CLIP-G
    with projections (32 + 32 wide, padded to T5's 64) and a 2-layer T5 encoder; flow matching with shift 3."""
    tokenizer = preset_tokenizer(16)
    with _seeded(seed, None):
        transformer = SD3Transformer2DModel(
            sample_size=8, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=8, num_attention_heads=4,
            caption_projection_dim=32, joint_attention_dim=64, pooled_projection_dim=64, out_channels=16,
        )
        vae = _tiny_vae(16, 1.5305, 0.0609, use_quant_conv=False, use_post_quant_conv=False)
        te1, te2 = (_tiny_clip(CLIPTextModelWithProjection, tokenizer) for _ in range(2))
        te3 = _tiny_t5(tokenizer)
    return dict(transformer=transformer, vae=vae, text_encoder=te1, text_encoder_2=te2, text_encoder_3=te3,
                tokenizer=tokenizer, tokenizer_2=tokenizer, tokenizer_3=tokenizer,
                scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0))


def tiny_flux_components(seed: int = 0) -> dict:
    """Tiny Flux layout: one double and one single stream block on packed 2×2 patches of a 16-channel VAE with
    Flux's scale and shift, CLIP's pooled output, a 2-layer T5 and the guidance embedding; flow matching with the
    resolution-dependent shift."""
    tokenizer = preset_tokenizer(16)
    with _seeded(seed, None):
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=64, pooled_projection_dim=32, guidance_embeds=True,
            axes_dims_rope=(4, 4, 8),
        )
        vae = _tiny_vae(16, 0.3611, 0.1159, use_quant_conv=False, use_post_quant_conv=False)
        te1, te2 = _tiny_clip(CLIPTextModel, tokenizer), _tiny_t5(tokenizer)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    return dict(transformer=transformer, vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer,
                tokenizer_2=tokenizer, scheduler=scheduler)


#: name -> builder of the components (a diffusers pipeline's ``components``; the family is read from them)
PRESETS: dict[str, Callable[..., dict]] = {
    "tiny": tiny_components, "tiny-v": tiny_v_components, "tiny-xl": tiny_xl_components,
    "tiny-sd3": tiny_sd3_components, "tiny-flux": tiny_flux_components,
    "sd15-random": sd15_random_components, "sdxl-random": sdxl_random_components, "sd3-random": sd3_random_components,
}
#: presets worth building directly on the target device (billions of random weights)
LARGE_PRESETS = ("sd15-random", "sdxl-random", "sd3-random")
