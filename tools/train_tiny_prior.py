#!/usr/bin/env python
"""Train an embedded prior: a tiny text-conditioned latent diffusion model in diffusers SD layout, from scratch on
the procedural data of a world (``--world``, :mod:`dreamsampler.worlds`): ``shapes`` (the shipped ``shapes_prior``)
or ``scenes-faces`` (scenes of 1–3 shapes and cartoon faces with attributes).

Stages (each checkpointed under ``--work`` so a crash loses at most one stage's tail):
1. VAE (``AutoencoderKL``, 64x64x3 -> 16x16x4) on the world's images, MSE + a small KL term;
   the latent ``scaling_factor`` is measured as 1 / std of the latents of a data pool.
2. UNet (``UNet2DConditionModel``) + a 2-layer ``CLIPTextModel`` trained from scratch on the encoded pool,
   epsilon prediction, SD1.5 noise schedule, min-SNR-5 weighting, 10 % caption dropout (empty prompt), EMA.
3. Assemble ``StableDiffusionPipeline(...).save_pretrained(out)`` (safetensors) with the EMA weights,
   the ``DDIMScheduler`` of SD1.5 and a tokenizer written by ``write_clip_tokenizer``; then a quick
   text-to-image check (per-part accuracy by the world's checker: color, shape, objects, glasses, smile)
   printed and logged.

Everything is seeded: data of step ``i`` come from ``torch.Generator().manual_seed(seed * 1_000_003 + i)``,
so ``--resume`` continues bit-identically (on the same machine and thread count).

Regenerate the shipped weights::

    # shapes_prior: about 45 min on one core of a 2-core CPU
    python tools/train_tiny_prior.py --out dreamsampler/assets/shapes_prior --work /tmp/shapes_prior_work
    # world_prior (backbone "scenes-faces"): about 13 min VAE + 65 min UNet on 2 threads of a 2-core CPU
    python tools/train_tiny_prior.py --world scenes-faces --threads 2 --unet-steps 6000 \
        --out dreamsampler/assets/world_prior --work /tmp/world_prior_work
    # interrupted? the same command with --resume continues the UNet stage from its last checkpoint
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamsampler.worlds import ShapesWorld, world  # noqa: E402
from dreamsampler.backbones.tokenizer import write_clip_tokenizer  # noqa: E402



# ------------------------------------------------------------------------------------------------ models
def make_vae(args):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=tuple(args.vae_channels),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=args.vae_groups,
        sample_size=args.res,
    )


def make_unet(args, cross_dim):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=args.res // 4,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=tuple(args.unet_channels),
        layers_per_block=1,
        cross_attention_dim=cross_dim,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def make_text_encoder(args, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = tokenizer.get_vocab()
    cfg = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=args.text_dim,
        intermediate_size=4 * args.text_dim,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        projection_dim=args.text_dim,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    return CLIPTextModel(cfg)


def make_scheduler():
    from diffusers import DDIMScheduler

    # SD1.5's scheduler config
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------------------------- utils
def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 7 + stream)


def make_world(args):
    return ShapesWorld(args.background_prob) if args.world == "shapes" else world(args.world)


def batch_images(args, step: int, n: int, stream: int = 0):
    """``n`` training images in [-1, 1] and their captions, drawn from the world with step ``step``'s generator."""
    images, captions = make_world(args).sample(n, step_generator(args.seed, step, stream), args.res)
    return images * 2 - 1, captions


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    prog = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))


class Log:
    def __init__(self, work: Path, name: str):
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(work / "tb" / name))
        self.t0 = time.time()

    def scalar(self, tag, value, step):
        self.tb.add_scalar(tag, value, step)

    def line(self, msg):
        print(f"[{time.time() - self.t0:7.1f}s] {msg}", flush=True)


# --------------------------------------------------------------------------------------------------- VAE
def train_vae(args, work: Path):
    torch.manual_seed(args.seed)
    vae = make_vae(args)
    with torch.no_grad():  # start with a small posterior std (logvar bias), so early training is not pure noise
        vae.quant_conv.bias[4:].fill_(args.vae_logvar_init)
    log = Log(work, "vae")
    log.line(f"VAE {n_params(vae) / 1e6:.3f} M params, {args.vae_steps} steps, batch {args.vae_batch}")
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    vae.train()
    for step in range(args.vae_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.vae_steps, args.vae_lr, 100)
        x, _ = batch_images(args, step, args.vae_batch, stream=1)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        mse = F.mse_loss(rec, x)
        kl = post.kl().mean() / (4 * (args.res // 4) ** 2)
        loss = mse + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == args.vae_steps - 1:
            psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-12))  # images in [-1, 1]
            log.scalar("vae/mse", mse.item(), step)
            log.scalar("vae/kl", kl.item(), step)
            log.scalar("vae/train_psnr", psnr, step)
            log.line(f"vae step {step} mse {mse.item():.5f} psnr {psnr:.2f} kl {kl.item():.3f}")
    vae.eval()
    held = heldout_psnr(vae, args)
    log.scalar("vae/heldout_psnr", held, args.vae_steps)
    log.line(f"VAE held-out PSNR {held:.2f} dB")
    vae.save_pretrained(str(work / "vae"), safe_serialization=True)
    return vae


@torch.no_grad()
def heldout_psnr(vae, args, n: int = 256) -> float:
    x = make_world(args).sample(n, torch.Generator().manual_seed(10_000 + args.seed), args.res)[0] * 2 - 1
    rec = torch.cat([vae.decode(vae.encode(xb).latent_dist.mode()).sample for xb in x.split(64)])
    mse = (((rec.clamp(-1, 1) - x) / 2) ** 2).mean(dim=(1, 2, 3))
    return float((10 * torch.log10(1 / mse)).mean())


# -------------------------------------------------------------------------------------------------- UNet
@torch.no_grad()
def encode_pool(vae, args, log):
    means, stds, caps = [], [], []
    for i in range(args.pool // 64):
        x, captions = batch_images(args, i, 64, stream=2)
        d = vae.encode(x).latent_dist
        means.append(d.mean)
        stds.append(d.std)
        caps += captions
    mean, std = torch.cat(means), torch.cat(stds)
    g = torch.Generator().manual_seed(args.seed)
    sample = mean + std * torch.randn(mean.shape, generator=g)
    sf = float(1.0 / sample.std())
    log.line(f"pool {len(caps)} latents, posterior std {float(std.mean()):.4f}, scaling_factor {sf:.4f}")
    return mean, std, caps, sf


def tokenize(tokenizer, captions):
    return tokenizer(
        captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def train_unet(args, work: Path, vae, tokenizer):
    torch.manual_seed(args.seed + 1)
    log = Log(work, "unet")
    text = make_text_encoder(args, tokenizer)
    unet = make_unet(args, args.text_dim)
    log.line(
        f"UNet {n_params(unet) / 1e6:.3f} M, text encoder {n_params(text) / 1e6:.3f} M params, "
        f"{args.unet_steps} steps, batch {args.unet_batch}"
    )
    vae.eval()
    mean, std, caps, sf = encode_pool(vae, args, log)
    ids_all = tokenize(tokenizer, caps)
    ids_null = tokenize(tokenizer, [""])[0]
    ac = make_scheduler().alphas_cumprod  # (1000,)
    snr = ac / (1 - ac)
    weight = torch.clamp(snr, max=args.min_snr) / snr  # min-SNR-gamma for epsilon prediction

    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.unet_lr, weight_decay=0.01)
    ema = [p.detach().clone() for p in params]
    start = 0
    ckpt = work / "unet_ckpt.pt"
    if args.resume and ckpt.exists():
        st = torch.load(ckpt, weights_only=True)
        unet.load_state_dict(st["unet"])
        text.load_state_dict(st["text"])
        opt.load_state_dict(st["opt"])
        ema = st["ema"]
        start = st["step"]
        log.line(f"resumed at step {start}")
    unet.train()
    text.train()
    for step in range(start, args.unet_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.unet_steps, args.unet_lr, 200)
        gen = step_generator(args.seed, step, stream=3)
        idx = torch.randint(len(caps), (args.unet_batch,), generator=gen)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * sf
        ids = ids_all[idx].clone()
        drop = torch.rand(args.unet_batch, generator=gen) < args.caption_dropout
        ids[drop] = ids_null
        t = torch.randint(0, 1000, (args.unet_batch,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        a = ac[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        emb = text(ids)[0]
        pred = unet(zt, t, emb).sample
        loss = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
        loss = (loss * weight[t]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - decay)
        if step % 50 == 0 or step == args.unet_steps - 1:
            log.scalar("unet/loss", loss.item(), step)
            log.scalar("unet/lr", opt.param_groups[0]["lr"], step)
            log.line(f"unet step {step} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e}")
        if (step + 1) % args.ckpt_every == 0 or step == args.unet_steps - 1:
            torch.save(
                {"unet": unet.state_dict(), "text": text.state_dict(), "opt": opt.state_dict(), "ema": ema,
                 "step": step + 1},
                ckpt,
            )
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    unet.eval()
    text.eval()
    return unet, text, sf, log


# ---------------------------------------------------------------------------------------------- assemble
def assemble(out: Path, vae, unet, text, tokenizer_dir: Path, sf: float, wld):
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    vae.register_to_config(scaling_factor=sf)
    tok = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=make_scheduler(),
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(str(out), safe_serialization=True)
    # also the slow-tokenizer files (vocab.json, merges.txt): save_pretrained may write tokenizer.json only
    write_clip_tokenizer(out / "tokenizer", wld.words, max_length=wld.max_length)
    for f in out.rglob("*.safetensors"):  # safetensors writes 0600; package data must be world-readable
        f.chmod(0o644)
    return pipe


@torch.no_grad()
def quick_eval(folder: Path, wld, seeds=(0, 1), guidance: float = 3.0, steps: int = 50):
    """Per-part accuracy (``world.read``: color, shape, glasses, ...) of text-to-image samples of the world's check
    prompts, the images (rows = seeds), and per prompt the share of seeds showing every part."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompts = wld.eval_prompts()
    hits: dict[str, list[bool]] = {}
    per_prompt: dict[str, list[bool]] = {}
    images = []
    for seed in seeds:
        gens = [torch.Generator().manual_seed(seed * 1000 + i) for i in range(len(prompts))]
        imgs = pipe(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=gens,
                    output_type="np").images
        images.append(imgs)
        for p, img in zip(prompts, imgs):
            parts = wld.read(p, img)
            for part, ok in parts.items():
                hits.setdefault(part, []).append(bool(ok))
            per_prompt.setdefault(p, []).append(all(parts.values()))
    return ({part: sum(v) / len(v) for part, v in hits.items()}, images,
            {p: sum(v) / len(v) for p, v in per_prompt.items()})


def save_grid(images, path: Path, scale: int = 1):
    """Rows = seeds, columns = prompts (the world's ``eval_prompts()`` order); 2-px white gutters."""
    import numpy as np
    from PIL import Image

    rows = [np.concatenate([np.pad(im, ((2, 2), (2, 2), (0, 0)), constant_values=1.0) for im in seed_imgs], axis=1)
            for seed_imgs in images]
    grid = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    img = Image.fromarray(grid)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path, optimize=True)


# -------------------------------------------------------------------------------------------------- main
def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="dreamsampler/assets/shapes_prior", help="diffusers folder to write")
    ap.add_argument("--work", default="/tmp/shapes_prior_work", help="checkpoints + TensorBoard logs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--world", default="shapes", choices=["shapes", "scenes-faces"],
                    help="the procedural data (dreamsampler.worlds)")
    ap.add_argument("--background-prob", type=float, default=0.3, help="share of colored-background images")
    ap.add_argument("--vae-channels", type=int, nargs=3, default=[16, 32, 64])
    ap.add_argument("--vae-steps", type=int, default=1200)
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--vae-lr", type=float, default=2e-3)
    ap.add_argument("--vae-groups", type=int, default=8)
    ap.add_argument("--vae-logvar-init", type=float, default=-8.0)
    ap.add_argument("--vae-kl", type=float, default=1e-5)
    ap.add_argument("--skip-vae", action="store_true", help="reuse <work>/vae from an earlier run")
    ap.add_argument("--vae-only", action="store_true", help="stop after the VAE stage")
    ap.add_argument("--unet-channels", type=int, nargs=3, default=[32, 64, 64])
    ap.add_argument("--text-dim", type=int, default=64)
    ap.add_argument("--unet-steps", type=int, default=3600)
    ap.add_argument("--unet-batch", type=int, default=32)
    ap.add_argument("--unet-lr", type=float, default=1e-3)
    ap.add_argument("--pool", type=int, default=16384, help="number of pre-encoded training images")
    ap.add_argument("--min-snr", type=float, default=5.0)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--resume", action="store_true", help="continue the UNet stage from <work>/unet_ckpt.pt")
    ap.add_argument("--eval-only", action="store_true", help="only the text-to-image check of --out (+ grid)")
    ap.add_argument("--eval-seeds", type=int, default=2, help="seeds per prompt for the closing check (0: skip)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.eval_only:
        torch.set_num_threads(args.threads)
        acc, images, per_prompt = quick_eval(Path(args.out), make_world(args),
                                             seeds=tuple(range(max(1, args.eval_seeds))))
        print("| prompt | every part shown |\n|---|---|")
        print("\n".join(f"| {p} | {v:.0%} |" for p, v in per_prompt.items()))
        print("text-to-image: " + " ".join(f"{k} {v:.3f}" for k, v in acc.items()), flush=True)
        save_grid(images, Path(args.work) / "samples.png")
        print(f"grid: {Path(args.work) / 'samples.png'}", flush=True)
        return
    if args.device != "cpu":
        raise SystemExit("only --device cpu is implemented (the shipped weights are trained on CPU)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    wld = make_world(args)
    tok = write_clip_tokenizer(work / "tokenizer", wld.words, max_length=wld.max_length)

    if args.skip_vae or args.resume:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(str(work / "vae"))
        print(f"reusing VAE from {work / 'vae'}", flush=True)
    else:
        vae = train_vae(args, work)
        if args.vae_only:
            return
    t_vae = time.time() - t0
    unet, text, sf, log = train_unet(args, work, vae, tok)
    t_unet = time.time() - t0 - t_vae
    assemble(out, vae, unet, text, work / "tokenizer", sf, wld)
    info = {
        "params": {"vae": n_params(vae), "unet": n_params(unet), "text_encoder": n_params(text)},
        "scaling_factor": sf,
        "minutes": {"vae": t_vae / 60, "unet": t_unet / 60},
        "cpu_minutes": (time.process_time() - c0) / 60,
        "threads": args.threads,
        "args": vars(args),
    }
    log.line(f"wrote {out}: {json.dumps(info['params'])}, minutes {info['minutes']}")
    if args.eval_seeds:
        acc, images, _ = quick_eval(out, wld, seeds=tuple(range(args.eval_seeds)))
        save_grid(images, work / "samples.png")
        info["quick_eval"] = {**{f"{k}_acc": v for k, v in acc.items()}, "guidance": 3.0, "steps": 50}
        for k, v in acc.items():
            log.scalar(f"eval/{k}_acc", v, args.unet_steps)
        log.line("text-to-image: " + " ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    (work / "train_info.json").write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
