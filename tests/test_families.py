"""Every backbone family behind one interface: GenerateTask equals diffusers' own pipeline (SDXL, SD3, Flux) on the
tiny presets with the same initial latents, prompts and guidance; folders round-trip; families are recognised;
single-file checkpoints are routed by their tensor names; bad sizes and options get one clear error."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline, StableDiffusionXLPipeline
from safetensors.torch import save_file

from dreamsampler.backbones import Backbone, BackboneError, FluxBackbone, SD3Backbone, SDBackbone, SDXLBackbone
from dreamsampler.backbones.architectures import sd3_configs, sdxl_configs, write_config_folder
from dreamsampler.backbones.presets import (sd15_scheduler, tiny_flux_components, tiny_sd3_components,
                                            tiny_xl_components)
from dreamsampler.errors import InputError
from dreamsampler.seeding import randn_batch
from dreamsampler.tasks import EditTask, GenerateTask

PROMPTS = ["a red circle", "a blue square"]
NFE, OMEGA, SIZE, SEED = 6, 4.0, 16, 3


def fit_generate(bb, preset: str):
    task = GenerateTask(samples=[{"prompt": p, "name": f"s{i}"} for i, p in enumerate(PROMPTS)], omega=OMEGA,
                        size=SIZE, backbone=preset, nfe=NFE, seed=SEED)
    task.backbone = bb
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(task)
    return task


def start_latents(task) -> torch.Tensor:
    """The task's z_T: psi = 0 and eps_tilde from the keyed start noise, so z_T = s_T eps_tilde."""
    noise = randn_batch(tuple(task.eps_tilde.shape[1:]), SEED, "start", -1, task.sample_names)
    return task.schedule.steps[0]["level_t"].s * noise


def components_of(parts: dict, *keys: str) -> dict:
    return {k: parts[k] for k in keys}


@torch.no_grad()
def test_generate_equals_sdxl_pipeline():
    # set_alpha_to_one: the pipeline's last DDIM step lands on its z0 estimate, which is the task's psi
    parts = {**tiny_xl_components(), "scheduler": sd15_scheduler(set_alpha_to_one=True)}
    bb = Backbone.from_components(parts, name="tiny-xl")
    assert isinstance(bb, SDXLBackbone)
    with torch.enable_grad():
        task = fit_generate(bb, "tiny-xl")
    pipe = StableDiffusionXLPipeline(**components_of(parts, "vae", "text_encoder", "text_encoder_2", "tokenizer",
                                                     "tokenizer_2", "unet", "scheduler"))
    ref = pipe(PROMPTS, height=SIZE, width=SIZE, num_inference_steps=NFE, guidance_scale=OMEGA,
               latents=start_latents(task), output_type="latent").images
    torch.testing.assert_close(task.generator.psi.detach(), ref, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_generate_equals_sd3_pipeline():
    parts = tiny_sd3_components()
    bb = Backbone.from_components(parts, name="tiny-sd3")
    assert isinstance(bb, SD3Backbone) and bb.prediction_type == "flow"
    with torch.enable_grad():
        task = fit_generate(bb, "tiny-sd3")
    pipe = StableDiffusion3Pipeline(**components_of(parts, "transformer", "scheduler", "vae", "text_encoder",
                                                    "tokenizer", "text_encoder_2", "tokenizer_2", "text_encoder_3",
                                                    "tokenizer_3"))
    ref = pipe(PROMPTS, height=SIZE, width=SIZE, num_inference_steps=NFE, guidance_scale=OMEGA,
               latents=start_latents(task), output_type="latent", max_sequence_length=256).images
    torch.testing.assert_close(task.generator.psi.detach(), ref, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_generate_equals_flux_pipeline_with_true_cfg():
    """Flux's classifier-free guidance over null and target rows is the pipeline's true CFG (two passes), with the
    distilled guidance embedding at its default 3.5."""
    parts = tiny_flux_components()
    bb = Backbone.from_components(parts, name="tiny-flux")
    assert isinstance(bb, FluxBackbone)
    with torch.enable_grad():
        task = fit_generate(bb, "tiny-flux")
    pipe = FluxPipeline(**components_of(parts, "scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2",
                                        "tokenizer_2", "transformer"))
    z_T = start_latents(task)
    packed = FluxPipeline._pack_latents(z_T, *z_T.shape)
    out = pipe(PROMPTS, negative_prompt=[""] * 2, true_cfg_scale=OMEGA, guidance_scale=3.5, height=SIZE, width=SIZE,
               num_inference_steps=NFE, latents=packed, output_type="latent", max_sequence_length=512).images
    ref = FluxPipeline._unpack_latents(out, SIZE, SIZE, pipe.vae_scale_factor)
    torch.testing.assert_close(task.generator.psi.detach(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("build, pipeline", [
    (tiny_xl_components, StableDiffusionXLPipeline),
    (tiny_sd3_components, StableDiffusion3Pipeline),
    (tiny_flux_components, FluxPipeline),
])
def test_folder_round_trip_of_every_family(build, pipeline, tmp_path):
    parts = build()
    keys = [k for k in pipeline._get_signature_keys(pipeline)[0] if k in parts]
    pipeline(**{k: parts[k] for k in keys}).save_pretrained(tmp_path / "model")
    loaded, ref = Backbone.load(str(tmp_path / "model")), Backbone.from_components(parts)
    assert type(loaded) is type(ref)
    cond = loaded.encode_text(["", "a red circle"])
    torch.testing.assert_close(cond.tensors, ref.encode_text(["", "a red circle"]).tensors)
    z = torch.randn(2, *loaded.latent_shape(SIZE), generator=torch.Generator().manual_seed(0))
    step = loaded.schedule(4, SIZE).steps[1]
    torch.testing.assert_close(loaded.denoise(z, step["t"], cond).z0, ref.denoise(z, step["t"], cond).z0)
    torch.testing.assert_close(loaded.decode(z), ref.decode(z))


def test_sdxl_empty_prompt_is_zero_and_vae_defaults_to_fp32():
    bb = Backbone.load("tiny-xl", dtype="bf16")
    cond = bb.encode_text(["", "a red circle"])
    assert cond.tensors["hidden"][0].abs().max() == 0 and cond.tensors["pooled"][0].abs().max() == 0
    assert cond.tensors["hidden"][1].abs().max() > 0
    assert bb.vae.dtype == torch.float32 and bb.unet.dtype == torch.bfloat16
    assert Backbone.load("tiny-sd3", dtype="bf16").vae.dtype == torch.bfloat16


def test_families_and_their_shapes():
    expected = {"tiny": (SDBackbone, (4, 8, 8)), "tiny-xl": (SDXLBackbone, (4, 8, 8)),
                "tiny-sd3": (SD3Backbone, (16, 8, 8)), "tiny-flux": (FluxBackbone, (16, 8, 8))}
    for name, (cls, shape) in expected.items():
        bb = Backbone.load(name)
        assert type(bb) is cls and bb.latent_shape(SIZE) == shape, name
    with pytest.raises(InputError, match=r"size 18 must be a positive multiple of 4 for the flux backbone"):
        Backbone.load("tiny-flux").latent_shape(18)


def test_flow_models_refuse_vp_only_options():
    bb = Backbone.load("tiny-sd3")
    with pytest.raises(InputError, match="spacing='leading' sets DDIM timesteps"):
        bb.schedule(4, SIZE, spacing="leading")
    with pytest.raises(InputError, match="pairing='official' reproduces the official SD1.5 code"):
        bb.schedule(4, SIZE, pairing="official")


def test_edit_refuses_official_pairing_on_a_flow_model_with_one_line(red_circle, tmp_path):
    task = EditTask(image=str(red_circle), prompt="a blue circle", size=SIZE, backbone="tiny-flux", nfe=3,
                    pairing="official")
    with pytest.raises(InputError, match="no meaning for the rectified-flow flux backbone"):
        L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  default_root_dir=tmp_path).fit(task)


@pytest.mark.parametrize("key, family", [
    ("model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", "sd3"),
    ("model.diffusion_model.label_emb.0.0.weight", "sdxl"),
    ("model.diffusion_model.input_blocks.0.0.weight", "sd"),
])
def test_single_file_family_from_tensor_names(key, family, tmp_path):
    from dreamsampler.backbones.loading import single_file_family

    save_file({key: torch.zeros(1)}, str(tmp_path / "m.safetensors"))
    assert single_file_family(tmp_path / "m.safetensors") == family


def test_single_file_flux_and_unknown_are_refused_by_name(tmp_path):
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(1)}, str(tmp_path / "flux.safetensors"))
    with pytest.raises(BackboneError, match="Flux checkpoints load from a diffusers folder or hub id"):
        Backbone.load(str(tmp_path / "flux.safetensors"))


@pytest.mark.parametrize("family, denoiser, millions", [("sdxl", "unet", 2567), ("sd3", "transformer", 2028)])
def test_builtin_single_file_configs_are_the_exact_architectures(family, denoiser, millions, tmp_path):
    """The offline component configs single files load with build the published architectures (parameter counts
    of SDXL base's UNet and SD3 medium's MMDiT), and name the pipeline diffusers expects."""
    from diffusers import SD3Transformer2DModel, UNet2DConditionModel

    folder = write_config_folder(tmp_path / family, family)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == {"sdxl": "StableDiffusionXLPipeline", "sd3": "StableDiffusion3Pipeline"}[family]
    cls = UNet2DConditionModel if denoiser == "unet" else SD3Transformer2DModel
    with torch.device("meta"):
        net = cls.from_config(cls.load_config(folder / denoiser))
    assert round(sum(p.numel() for p in net.parameters()) / 1e6) == millions
    written = {k: net.config[k] for k in (sdxl_configs() if family == "sdxl" else sd3_configs())[denoiser]}
    assert written["sample_size"] == 128
    # CLIP's own tokenizers (vendored vocabulary), not the presets' word list: the ids every CLIP user knows
    from transformers import CLIPTokenizer

    assert CLIPTokenizer.from_pretrained(folder / "tokenizer")("a photo of a cat").input_ids == [
        49406, 320, 1125, 539, 320, 2368, 49407]
    tok2 = CLIPTokenizer.from_pretrained(folder / "tokenizer_2")
    assert len(tok2) == 49408 and tok2.pad_token == "!"         # OpenCLIP bigG pads with "!"


def test_backbone_to_keeps_the_text_cache_usable():
    """Regression (review of Core v2): ``Backbone.to`` turned the LRU cache into a plain dict and the next
    ``encode_text`` failed with AttributeError 'move_to_end'."""
    bb = Backbone.load("tiny")
    first = bb.encode_text(["a red circle", ""]).tensors["hidden"].clone()
    bb.to("cpu")
    again = bb.encode_text(["a blue square", "a red circle"])      # one cached, one new prompt
    torch.testing.assert_close(again.tensors["hidden"][1], first[0])
    assert list(bb._text_cache)[-2:] == ["a blue square", "a red circle"]   # still least recently used first


def test_channels_last_and_compiled_denoiser_give_the_eager_result():
    """The speed hooks change how the denoiser runs, not what it computes (same weights, same inputs)."""
    from dreamsampler.backbones import BackboneOptions
    from dreamsampler.backbones.presets import tiny_components

    parts = tiny_components()
    eager = Backbone.from_components(parts)
    z = torch.randn(3, *eager.latent_shape(SIZE), generator=torch.Generator().manual_seed(1))
    cond = eager.encode_text(["", "a red circle", "a blue square"])
    step = eager.schedule(4, SIZE).steps[1]
    ref = eager.denoise(z, step["t"], cond)       # before the shared modules are converted to channels-last
    fast = Backbone.from_components(parts, options=BackboneOptions(compile=True, channels_last=True))
    out = fast.denoise(z, step["t"], cond)
    torch.testing.assert_close(out.eps, ref.eps, rtol=1e-4, atol=1e-5)
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert isinstance(fast._net, torch._dynamo.eval_frame.OptimizedModule)


def test_bad_pairing_and_vae_dtype_are_one_clear_error(red_circle):
    from dreamsampler.backbones import BackboneOptions

    with pytest.raises(InputError, match="pairing must be 'diffusers' or 'official', got 'ddim'"):
        EditTask(image=str(red_circle), prompt="a blue circle", size=SIZE, backbone="tiny", pairing="ddim")
    with pytest.raises(BackboneError, match=r"vae_dtype must be one of \['bf16', 'fp16', 'fp32'\], got 'fp8'"):
        Backbone.load("tiny", options=BackboneOptions(vae_dtype="fp8"))
