"""Backbone loading: presets, a local diffusers folder (same code path as SD1.5), dtypes, clear errors."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline

from dreamsampler.backbones import Backbone, BackboneError


def test_folder_roundtrip_matches_in_memory(tiny_backbone, tmp_path):
    bb = tiny_backbone
    pipe = StableDiffusionPipeline(vae=bb.vae, text_encoder=bb.text_encoder, tokenizer=bb.tokenizer, unet=bb.unet,
                                   scheduler=bb.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(tmp_path / "sd")
    assert list((tmp_path / "sd" / "unet").glob("*.safetensors"))
    loaded = Backbone.load(str(tmp_path / "sd"))
    z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    emb = loaded.encode_text(["a red circle", "", "a blue square"])
    torch.testing.assert_close(emb.tensors, bb.encode_text(["a red circle", "", "a blue square"]).tensors)
    torch.testing.assert_close(loaded.eps(z, 500, emb), bb.eps(z, 500, emb))
    torch.testing.assert_close(loaded.alphas_cumprod, bb.alphas_cumprod)


def test_eps_batches_prompts_in_one_call(tiny_backbone):
    bb = tiny_backbone
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    emb = bb.encode_text(["", "a blue circle", "a green square"])
    calls = []
    hook = bb.unet.register_forward_hook(lambda m, a, k: calls.append(1))
    try:
        batched = bb.eps(z.expand(3, -1, -1, -1), 700, emb)
    finally:
        hook.remove()
    assert len(calls) == 1
    single = torch.cat([bb.eps(z, 700, emb[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_bf16_backbone_returns_input_dtype():
    bb = Backbone.load("tiny", dtype="bf16")
    z = torch.randn(1, 4, 8, 8)
    out = bb.eps(z, 10, bb.encode_text([""]))
    assert out.dtype == torch.float32 and bb.unet.dtype == torch.bfloat16
    assert torch.isfinite(out).all()


def test_frozen_and_out_of_parameters(tiny_backbone):
    assert not any(p.requires_grad for net in (tiny_backbone.unet, tiny_backbone.vae, tiny_backbone.text_encoder)
                   for p in net.parameters())
    assert not isinstance(tiny_backbone, torch.nn.Module)


@pytest.mark.parametrize("source, message", [
    ("./nowhere/sd15", "backbone path './nowhere/sd15' does not exist"),
    ("/tmp/none.safetensors", "does not exist"),
])
def test_missing_sources(source, message):
    with pytest.raises(BackboneError, match=message):
        Backbone.load(source)


def test_pickled_checkpoint_refused(tmp_path):
    f = tmp_path / "model.ckpt"
    f.write_bytes(b"not loaded")
    with pytest.raises(BackboneError, match="only .safetensors single files"):
        Backbone.load(str(f))


def test_folder_without_model_index(tmp_path):
    with pytest.raises(BackboneError, match="has no model_index.json"):
        Backbone.load(str(tmp_path))


def test_bad_dtype():
    with pytest.raises(BackboneError, match="dtype must be one of"):
        Backbone.load("tiny", dtype="fp8")


def test_unusable_single_file_is_named(tmp_path):
    from safetensors.torch import save_file

    f = tmp_path / "junk.safetensors"
    save_file({"x": torch.zeros(3)}, str(f))
    with pytest.raises(BackboneError, match="could not load single-file backbone .*junk.safetensors"):
        Backbone.load(str(f))
