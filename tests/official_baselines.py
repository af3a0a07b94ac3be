"""Plain loops written from the baselines' official code (not from ours), on the raw diffusers nets of a backbone:

- SDS: threestudio ``models/guidance/stable_diffusion_guidance.py`` (28d9d80): ``compute_grad_sds`` + its loss
- DDS: google/prompt-to-prompt ``DDS_zeroshot.ipynb`` (9c472e4): ``DDSLoss.get_dds_loss`` + ``image_optimization``
- PDS: KAIST-Visual-AI-Group/PDS ``pds/pds.py`` (e4e0da3): ``PDS.__call__(method="pds")``
- SDEdit: diffusers' img2img recipe on ``DDIMScheduler.step`` (strength, ``add_noise``, the last int(N s) steps)
- DDIM + word swap: ``DDIMInverseScheduler`` with the source prompt, then ``DDIMScheduler`` with the target's CFG

Only the random draws (t and the noises) come from ``dreamsampler.seeding``, so both sides see the same t and noise.
Used by ``tests/test_baselines.py`` (equality) and ``tools/bench_baselines.py`` (overhead).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMInverseScheduler, DDIMScheduler

from dreamsampler import seeding
from dreamsampler.io.images import load_image


class Raw:
    """The raw diffusers nets of a backbone, called as the official codes call them."""

    def __init__(self, bb, size, seed):
        self.bb, self.sched = bb, DDIMScheduler.from_config(bb.scheduler.config)
        self.size, self.seed = size, seed
        self.sf = bb.vae.config.scaling_factor

    def text(self, prompt):
        ids = self.bb.tokenizer([prompt], padding="max_length", max_length=self.bb.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt").input_ids
        return self.bb.text_encoder(ids)[0]

    def latent(self, path):
        return self.bb.vae.encode(load_image(path, self.size) * 2 - 1).latent_dist.mean * self.sf

    def unet(self, z, t, c):
        return self.bb.unet(z, t, encoder_hidden_states=c).sample


def draws(raw, name, i, shape, choices, purposes=("distill",)):
    """The shared randomness: t and the noises of iteration i, from the keyed streams of ``dreamsampler.seeding``."""
    t = choices[seeding.randint_batch(len(choices), raw.seed, "t", i, [name])]
    return (t, *(seeding.randn(shape, raw.seed, p, i, name)[None] for p in purposes))


def plain_sds(raw, item, iters, s=100.0, lr=0.01):
    """threestudio: t in [20, 980], eps = eps_text + s (eps_text - eps_uncond), w = 1 - alphas_cumprod[t],
    grad = nan_to_num(w (eps - noise)), loss = 0.5 mse(latents, latents - grad, sum) / B, Adam."""
    with torch.no_grad():
        latents = raw.latent(item["image"])
        text, uncond = raw.text(item["prompt"]), raw.text("")
    latents.requires_grad_(True)
    opt = torch.optim.Adam([latents], lr=lr)
    alphas = raw.sched.alphas_cumprod
    for i in range(iters):
        t, noise = draws(raw, item["name"], i, tuple(latents.shape[1:]), torch.arange(20, 981))
        with torch.no_grad():
            latents_noisy = raw.sched.add_noise(latents, noise, t)
            noise_pred = raw.unet(torch.cat([latents_noisy] * 2), torch.cat([t] * 2), torch.cat([text, uncond]))
            noise_pred_text, noise_pred_uncond = noise_pred.chunk(2)
            noise_pred = noise_pred_text + s * (noise_pred_text - noise_pred_uncond)
        w = (1 - alphas[t]).view(-1, 1, 1, 1)
        grad = torch.nan_to_num(w * (noise_pred - noise))
        target = (latents - grad).detach()
        loss = 0.5 * F.mse_loss(latents, target, reduction="sum") / latents.shape[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return latents.detach()


def plain_dds(raw, item, iters, guidance_scale=7.5):
    """The DDS notebook: t = randint(50, 949), shared eps, one UNet call on [src, tgt] x [null, text], standard
    CFG, grad = eps_tgt - eps_src, loss = sum(z_target grad) / (H W), (2000 loss).backward(), SGD lr 0.1."""
    with torch.no_grad():
        z_source = raw.latent(item["image"])
        emb = [raw.text(""), raw.text(""), raw.text(item["source_prompt"]), raw.text(item["prompt"])]
    z_target = z_source.clone().requires_grad_(True)
    opt = torch.optim.SGD([z_target], lr=1e-1)
    alphas, sigmas = raw.sched.alphas_cumprod.sqrt(), (1 - raw.sched.alphas_cumprod).sqrt()
    for i in range(iters):
        t, eps = draws(raw, item["name"], i, tuple(z_source.shape[1:]), torch.arange(50, 949))
        with torch.no_grad():
            z_t = [alphas[t, None, None, None] * z + sigmas[t, None, None, None] * eps for z in (z_source, z_target)]
            latent_input = torch.cat(z_t * 2)           # [src, tgt, src, tgt] x [null, null, text_src, text_tgt]
            e_t = raw.unet(latent_input, t.repeat(4), torch.cat(emb))
            e_t_uncond, e_t = e_t.chunk(2)
            e_t = e_t_uncond + guidance_scale * (e_t - e_t_uncond)
            eps_src, eps_tgt = e_t.chunk(2)
        grad = eps_tgt - eps_src
        loss = (z_target * grad.clone()).sum() / (z_target.shape[2] * z_target.shape[3])
        opt.zero_grad()
        (2000 * loss).backward()
        opt.step()
    return z_target.detach()


def plain_pds(raw, item, iters, guidance_scale=100.0, lr=0.01):
    """pds.py: t on the 500-step grid (odd, 21..979), t_prev = t - 2, shared noise and noise_t_prev, two UNet calls
    on [cond, uncond], the posterior mean with betas[t], grad = nan_to_num(z_tgt - z_src), loss 0.5 mse_mean / B."""
    sched = raw.sched
    with torch.no_grad():
        src_x0 = raw.latent(item["image"])
        tgt_emb, src_emb, uncond = raw.text(item["prompt"]), raw.text(item["source_prompt"]), raw.text("")
    tgt_x0 = src_x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([tgt_x0], lr=lr)

    def mean(xt, eps, t, t_prev):
        beta_t, alpha_t = sched.betas[t], sched.alphas[t]
        ab_t, ab_prev = sched.alphas_cumprod[t], sched.alphas_cumprod[t_prev]
        pred_x0 = (xt - torch.sqrt(1 - ab_t) * eps) / torch.sqrt(ab_t)
        c0 = torch.sqrt(ab_prev) * beta_t / (1 - ab_t)
        c1 = torch.sqrt(alpha_t) * (1 - ab_prev) / (1 - ab_t)
        return c0 * pred_x0 + c1 * xt

    for i in range(iters):
        t, noise, noise_t_prev = draws(raw, item["name"], i, tuple(src_x0.shape[1:]), 2 * torch.arange(10, 490) + 1,
                                       ("distill", "distill-prev"))
        t_prev = t - 2
        sigma_t = ((1 - sched.alphas_cumprod[t_prev]) / (1 - sched.alphas_cumprod[t]) * sched.betas[t]) ** 0.5
        zts = {}
        for latent, cond, name in ((tgt_x0, tgt_emb, "tgt"), (src_x0, src_emb, "src")):
            noisy = sched.add_noise(latent.detach(), noise, t)
            pred = raw.unet(torch.cat([noisy] * 2), torch.cat([t] * 2), torch.cat([cond, uncond])).detach()
            pred_text, pred_uncond = pred.chunk(2)
            pred = pred_uncond + guidance_scale * (pred_text - pred_uncond)
            x_t_prev = sched.add_noise(latent.detach(), noise_t_prev, t_prev)
            zts[name] = (x_t_prev - mean(noisy, pred, t, t_prev)) / sigma_t
        grad = torch.nan_to_num(zts["tgt"] - zts["src"])
        target = (tgt_x0 - grad).detach()
        loss = 0.5 * F.mse_loss(tgt_x0, target, reduction="mean") / tgt_x0.shape[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tgt_x0.detach()


def plain_sdedit(raw, item, nfe, strength, omega):
    """diffusers img2img on DDIMScheduler: the last int(nfe * strength) timesteps, add_noise to the first, DDIM
    steps with CFG on the target prompt; the final step's pred_original_sample."""
    sched = raw.sched
    sched.set_timesteps(nfe)
    init = int(nfe * strength)
    ts = sched.timesteps[nfe - init:]
    with torch.no_grad():
        z = raw.latent(item["image"])
        noise = seeding.randn(tuple(z.shape[1:]), raw.seed, "start", -1, item["name"])[None]
        z = sched.add_noise(z, noise, ts[:1])
        emb = torch.cat([raw.text(""), raw.text(item["prompt"])])
        for t in ts:
            e_u, e_c = raw.unet(torch.cat([z] * 2), t.repeat(2), emb).chunk(2)
            out = sched.step(e_u + omega * (e_c - e_u), t, z)
            z = out.prev_sample
    return out.pred_original_sample


def plain_word_swap(raw, item, nfe, omega):
    """DDIM inversion + word swap on diffusers' schedulers: ``DDIMInverseScheduler`` (from alpha_bar = 1) with the
    source prompt alone, then ``DDIMScheduler`` steps with CFG on the target prompt; the last pred_original_sample."""
    inverse = DDIMInverseScheduler.from_config(raw.sched.config, set_alpha_to_one=True)
    inverse.set_timesteps(nfe)
    with torch.no_grad():
        z = raw.latent(item["image"])
        c_src = raw.text(item["source_prompt"])
        for t in inverse.timesteps:
            z = inverse.step(raw.unet(z, t.repeat(1), c_src), t, z).prev_sample
        sched = raw.sched
        sched.set_timesteps(nfe)
        emb = torch.cat([raw.text(""), raw.text(item["prompt"])])
        for t in sched.timesteps:
            e_u, e_c = raw.unet(torch.cat([z] * 2), t.repeat(2), emb).chunk(2)
            out = sched.step(e_u + omega * (e_c - e_u), t, z)
            z = out.prev_sample
    return out.pred_original_sample
