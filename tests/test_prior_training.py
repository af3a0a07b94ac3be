"""tools/train_tiny_prior.py end to end at toy step counts: a loadable SD folder, deterministic in the seed."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "train_tiny_prior.py"
TOY = ["--vae-steps", "3", "--vae-batch", "4", "--unet-steps", "3", "--unet-batch", "4", "--pool", "64",
       "--eval-seeds", "0", "--ckpt-every", "2"]


@pytest.fixture(scope="module")
def train():
    spec = importlib.util.spec_from_file_location("train_tiny_prior", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()

    def run(out: Path, work: Path, *extra: str):
        try:
            mod.main(["--out", str(out), "--work", str(work), *TOY, *extra])
        finally:
            torch.set_num_threads(threads)

    return run


def test_toy_run_writes_a_loadable_deterministic_folder(train, tmp_path):
    from diffusers import StableDiffusionPipeline

    train(tmp_path / "a", tmp_path / "wa")
    train(tmp_path / "b", tmp_path / "wb")
    for sub in ("vae/diffusion_pytorch_model", "unet/diffusion_pytorch_model", "text_encoder/model"):
        a = (tmp_path / "a" / f"{sub}.safetensors").read_bytes()
        assert a == (tmp_path / "b" / f"{sub}.safetensors").read_bytes(), sub
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        assert (tmp_path / "a" / "tokenizer" / f).exists(), f
    assert list((tmp_path / "wa" / "tb").rglob("events.out.tfevents.*"))  # TensorBoard logs

    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "a"), safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    img = pipe("a red circle", num_inference_steps=2, guidance_scale=3.0, output_type="np",
               generator=torch.Generator().manual_seed(0)).images[0]
    assert img.shape == (64, 64, 3)


def test_resume_reuses_the_vae_and_continues_the_unet(train, tmp_path):
    train(tmp_path / "a", tmp_path / "w")
    ckpt = torch.load(tmp_path / "w" / "unet_ckpt.pt", weights_only=False)
    assert ckpt["step"] == 3
    train(tmp_path / "b", tmp_path / "w", "--resume", "--unet-steps", "4")  # VAE reused, one more UNet step
    vae_a = (tmp_path / "a" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert vae_a == (tmp_path / "b" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert torch.load(tmp_path / "w" / "unet_ckpt.pt", weights_only=False)["step"] == 4


def test_scenes_faces_world_trains_and_checks_its_prompts(train, tmp_path):
    import json

    from diffusers import StableDiffusionPipeline

    train(tmp_path / "a", tmp_path / "w", "--world", "scenes-faces", "--eval-seeds", "1")
    info = json.loads((tmp_path / "w" / "train_info.json").read_text())
    assert {"glasses_acc", "smile_acc", "color_acc", "count_acc", "objects_acc"} <= set(info["quick_eval"]), info
    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "a"), safety_checker=None,
                                                   requires_safety_checker=False)
    assert pipe.tokenizer.model_max_length == 24
    assert pipe.text_encoder.config.max_position_embeddings == 24
    ids = pipe.tokenizer("a yellow face wearing glasses with a smile").input_ids
    assert len(ids) == 10                                      # one token per word
