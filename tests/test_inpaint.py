"""Text-guided inpainting (eq. 20): the task equals a plain loop of the official algorithm (both step kinds)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from diffusers import DDIMScheduler

from dreamsampler.errors import InputError
from dreamsampler.io.images import load_image
from dreamsampler.seeding import randn
from dreamsampler.tasks import InpaintTask

NULL = "out of focus, depth of field"


def plain_official(bb, image, holes, prompts, nfe, size, seed, sigma_y, lam, ds_every, ds_until, name):
    """The official loop, plain, on the raw networks, written from ``solver/latent_diffusion.py``
    (``DreamSamplerInpaint.sample``, called by ``run_inpaint.py``); CG's solution of the diagonal system
    (A^T A + lam I) x = A^T y + lam x0 of a binary mask in closed form. Its output is ``decode(z0t)`` of the last
    step: after a DPS step that is the uncorrected Tweedie estimate (the correction only moves zt)."""
    sched = DDIMScheduler.from_config(bb.scheduler.config)
    sched.set_timesteps(nfe)
    ts = [int(t) for t in sched.timesteps]
    ab = lambda t: sched.alphas_cumprod[t] if t >= 0 else sched.final_alpha_cumprod
    sf, f = bb.vae.config.scaling_factor, bb.vae_scale_factor
    enc = lambda x: bb.vae.encode(x).latent_dist.mean * sf
    dec = lambda z: bb.vae.decode(z / sf).sample
    tok = lambda ps: bb.tokenizer(ps, padding="max_length", max_length=bb.tokenizer.model_max_length,
                                  truncation=True, return_tensors="pt").input_ids
    unet = lambda z, t, c: bb.unet(z, torch.tensor([t] * z.shape[0]), encoder_hidden_states=c).sample
    with torch.no_grad():
        c_null, c_tgt = bb.text_encoder(tok([NULL]))[0], bb.text_encoder(tok(prompts))[0]
    x = load_image(image, size) * 2 - 1
    hole = holes.sum(0, keepdim=True)                       # (1, 1, S, S)
    known = 1 - hole
    y = known * (x + sigma_y * randn(tuple(x.shape[1:]), seed, "measurement", -1, name)[None])
    m_lat = holes[:, :, ::f, ::f]                            # latent holes, one per prompt
    with torch.no_grad():
        z = enc(known * y)
        a_prev = torch.tensor(1.0)
        for t in reversed(ts):                               # unconditional inversion
            e = unet(z, t, c_null)
            z = ab(t).sqrt() * (z - (1 - a_prev).sqrt() * e) / a_prev.sqrt() + (1 - ab(t)).sqrt() * e
            a_prev = ab(t)
    for i, (t, tp) in enumerate(zip(ts, ts[1:] + [-1])):
        a, a_p = ab(t), ab(tp)
        if i % ds_every == 0 and i < ds_until * nfe:         # DS step
            with torch.no_grad():
                e_uc = unet(z, t, c_null)
                e_c = unet(z.repeat(len(prompts), 1, 1, 1), t, c_tgt)
                z0_uc = (z - (1 - a).sqrt() * e_uc) / a.sqrt()
                z0_c = (z - (1 - a).sqrt() * e_c) / a.sqrt()
                x0 = dec(z0_uc)
                xs = (known * y + lam * x0) / (known + lam)
                z0 = a * enc(xs) + (1 - a) * z0_uc
                M = torch.prod(1 - m_lat, dim=0, keepdim=True)
                z0 = M * z0 + (1 - M) * (1 - a) * z0 + (m_lat * a * z0_c).sum(0, keepdim=True)
                eps = (1 - a).sqrt() * e_uc + a.sqrt() * randn(tuple(z.shape[1:]), seed, "renoise", i, name)[None]
                z = a_p.sqrt() * z0 + (1 - a_p).sqrt() * eps
        else:                                                # DPS step
            z = z.detach().requires_grad_()
            e_uc = unet(z, t, c_null)
            z0 = (z - (1 - a).sqrt() * e_uc) / a.sqrt()
            r = (known * (y - dec(z0))).norm()
            (g,) = torch.autograd.grad(r, z)
            z = (a_p.sqrt() * z0 + (1 - a_p).sqrt() * e_uc - a_p.sqrt() * g).detach()
            z0 = z0.detach()                                 # the official output is decode(z0t): uncorrected
    with torch.no_grad():
        return ((dec(z0) + 1) / 2).clamp(0, 1)


@pytest.mark.parametrize("n_holes", [1, 2])
def test_inpaint_equals_plain_official_loop(tiny_backbone, red_circle, tmp_path, n_holes):
    boxes = [[2, 2, 8, 14], [10, 4, 16, 12]][:n_holes]
    prompts = ["a blue circle", "a green square"][:n_holes]
    nfe, size, seed = 9, 16, 3
    task = InpaintTask(image=str(red_circle), holes=[{"prompt": p, "box": b} for p, b in zip(prompts, boxes)],
                       size=size, backbone="tiny", nfe=nfe, seed=seed, cg_iters=10, cg_lambda=1e-2)
    task.backbone = tiny_backbone
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path).fit(task)
    assert [task.is_ds_step({"step": i}) for i in range(nfe)] == [i % 3 == 0 and i < 0.85 * nfe for i in range(nfe)]
    holes = torch.zeros(n_holes, 1, size, size)
    for k, (t0, l0, b0, r0) in enumerate(boxes):
        holes[k, :, t0:b0, l0:r0] = 1
    ref = plain_official(tiny_backbone, red_circle, holes, prompts, nfe, size, seed, 0.01, 1e-2, 3, 0.85,
                         "red_circle")
    with torch.no_grad():
        ours = task.result_images()["inpainted"]
    assert (ours - ref).abs().max() < 1e-4, (ours - ref).abs().max()


def test_inpaint_bad_inputs(red_circle, tmp_path):
    from PIL import Image

    kw = dict(image=str(red_circle), size=16, backbone="tiny", nfe=2)
    with pytest.raises(InputError, match="holes overlap"):
        InpaintTask(holes=[{"prompt": "a", "box": [0, 0, 8, 8]}, {"prompt": "b", "box": [4, 4, 12, 12]}], **kw)
    with pytest.raises(InputError, match="cover the whole image"):
        InpaintTask(holes=[{"prompt": "a", "box": [0, 0, 16, 16]}], **kw)
    with pytest.raises(InputError, match="at least one hole"):
        InpaintTask(holes=[], **kw)
    Image.new("L", (40, 40), 128).save(tmp_path / "gray.png")
    with pytest.raises(InputError, match="is not binary"):
        InpaintTask(holes=[{"prompt": "a", "mask": str(tmp_path / "gray.png")}], **kw)
    Image.new("L", (20, 20), 255).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="mask file .* is 20x20"):
        InpaintTask(holes=[{"prompt": "a", "mask": str(tmp_path / "small.png")}], **kw)
    with pytest.raises(InputError, match="unknown preset 'nose'"):
        InpaintTask(holes=[{"prompt": "a", "preset": "nose"}], **kw)
