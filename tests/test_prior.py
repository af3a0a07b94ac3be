"""The shipped shapes-world prior (dreamsampler/assets/shapes_prior): layout, size and quality figures of issue 4.

Thresholds are the issue's; seeds are fixed so the figures are reproducible, but nothing here pins outputs.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamsampler import shapes

PRIOR = Path(shapes.__file__).parent / "assets" / "shapes_prior"
GUIDANCE = 3.0  # CFG of the text-to-image figures (2 to 7.5 measured equally good, see the model card)
SEEDS = (0, 1, 2, 3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    p = StableDiffusionPipeline.from_pretrained(str(PRIOR), safety_checker=None, requires_safety_checker=False)
    p.set_progress_bar_config(disable=True)
    return p


def test_folder_layout_and_size():
    index = json.loads((PRIOR / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for sub in ("vae", "unet", "text_encoder"):
        assert list((PRIOR / sub).glob("*.safetensors")), sub
    assert not list(PRIOR.rglob("*.bin")) and not list(PRIOR.rglob("*.pt"))
    total = sum(f.stat().st_size for f in PRIOR.rglob("*") if f.is_file())
    assert total <= 20 * 2**20, f"{total / 2**20:.1f} MiB"
    assert (PRIOR / "README.md").exists()


def test_components_follow_sd15_conventions(pipe):
    s = pipe.scheduler.config
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert (s.beta_schedule, s.beta_start, s.beta_end) == ("scaled_linear", 0.00085, 0.012)
    assert s.num_train_timesteps == 1000 and s.prediction_type == "epsilon"
    assert pipe.vae.config.latent_channels == 4 == pipe.unet.config.in_channels
    assert 0.05 < pipe.vae.config.scaling_factor < 20 and pipe.vae.config.scaling_factor != 0.18215
    assert pipe.tokenizer.model_max_length == pipe.text_encoder.config.max_position_embeddings
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    # no caption of either family is truncated by the short (16-position) text encoder
    longest = max(
        (shapes.caption(c, s, b) for c in shapes.COLORS for s in shapes.SHAPES for b in shapes.BACKGROUNDS if b != c),
        key=lambda cap: len(pipe.tokenizer(cap).input_ids),
    )
    assert len(pipe.tokenizer(longest).input_ids) <= pipe.tokenizer.model_max_length, longest
    # the empty prompt (caption dropout = CFG's unconditional branch) is BOS + EOS
    assert len(pipe.tokenizer("").input_ids) == 2


@torch.no_grad()
def test_text_to_image_color_and_shape_accuracy(pipe):
    prompts = shapes.all_prompts()
    batch = [p for _ in SEEDS for p in prompts]
    gens = [torch.Generator().manual_seed(1000 * s + i) for s in SEEDS for i in range(len(prompts))]
    images = pipe(batch, num_inference_steps=50, guidance_scale=GUIDANCE, generator=gens, output_type="np").images
    got = [shapes.describe(img) for img in images]
    color_acc = np.mean([c == p.split()[1] for (c, _), p in zip(got, batch)])
    shape_acc = np.mean([s == p.split()[2] for (_, s), p in zip(got, batch)])
    print(f"text-to-image ({len(batch)} samples, DDIM 50, CFG {GUIDANCE}): color {color_acc:.3f} shape {shape_acc:.3f}")
    assert color_acc >= 0.95
    assert shape_acc >= 0.90


@torch.no_grad()
def test_vae_reconstruction_psnr_on_heldout_images(pipe):
    data = shapes.sample_dataset(128, seed=424242, background_prob=0.5)  # not a training stream
    x = torch.from_numpy(data.images).permute(0, 3, 1, 2) * 2 - 1
    rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample
    psnrs = [shapes.psnr((r.clamp(-1, 1) + 1) / 2, (o + 1) / 2) for r, o in zip(rec, x)]
    print(f"VAE held-out PSNR {np.mean(psnrs):.2f} dB (min {np.min(psnrs):.2f})")
    assert np.mean(psnrs) >= 30.0


@torch.no_grad()
def test_ddim_inversion_round_trip_psnr():
    """encode -> DDIM-50 inversion (ours, unconditional) -> DDIM-50 sampling (diffusers' scheduler) -> decode."""
    from diffusers import DDIMScheduler

    from dreamsampler.backbones import Backbone
    from dreamsampler.core.inversion import ddim_invert

    bb = Backbone.load("shapes", dtype="fp32", device="cpu")
    data = shapes.sample_dataset(16, seed=777, background_prob=0.5)
    x = torch.from_numpy(data.images).permute(0, 3, 1, 2) * 2 - 1
    null = bb.encode_text([""]).repeat(len(x))
    eps_fn = lambda z, t: bb.eps(z, t, null)  # noqa: E731

    schedule = bb.schedule(50, x.shape[-1])
    z = ddim_invert(lambda z, t, level: bb.denoise(z, t, null, level), bb.encode(x), schedule.steps,
                    schedule.inversion_start)
    sched = DDIMScheduler.from_config(bb.scheduler.config)
    sched.set_timesteps(50)
    assert torch.equal(sched.timesteps.long(), schedule.timesteps)
    for t in sched.timesteps:
        z = sched.step(eps_fn(z, int(t)), t, z, eta=0.0).prev_sample
    rec = (bb.decode(z).clamp(-1, 1) + 1) / 2
    psnrs = [shapes.psnr(r, (o + 1) / 2) for r, o in zip(rec, x)]
    print(f"DDIM-50 inversion round trip PSNR {np.mean(psnrs):.2f} dB (min {np.min(psnrs):.2f})")
    assert np.mean(psnrs) >= 25.0
