"""Benchmark: the edit or inpainting task end to end (Lightning) vs a plain eager loop of the official algorithm,
and B batched edits vs the same B edits one after the other.

All runs are in this process on the same backbone and schedule. The reference mirrors the official
``run_edit.py``: inversion evaluates [uncond, cond] in one batch and throws the conditional half away, sampling
evaluates [uncond, cond] in one batch. Prints wall time, steps/s, peak memory (CUDA max allocated, or the
growth of the CPU resident set) and the ratios; with ``--batch B`` also B different edits in one run (one UNet
call per step for all of them) against B single runs, with the speed-up and the largest difference.

    python tools/bench.py --preset shapes --size 64 --nfe 50 --batch 8
    python tools/bench.py --task inpaint --preset shapes --size 64 --nfe 60 --threads 1

The inpainting reference mirrors ``run_inpaint.py``: inversion as above, DS steps with one UNet call of the null
and the hole prompts, 10 CG iterations on the normal equations, DPS steps with the official batch of two
unconditional rows through the UNet and the decoder.
    python tools/bench.py --preset sd15-random --device cuda --dtype fp16 --size 512 --nfe 200
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import lightning as L
import torch
from PIL import Image

from dreamsampler.backbones import Backbone
from dreamsampler.cli import quiet_startup
from dreamsampler.io.images import load_image
from dreamsampler.schedule import ddim_timesteps
from dreamsampler.seeding import randn
from dreamsampler.tasks import EditTask, InpaintTask

NULL_INPAINT = "out of focus, depth of field"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak CUDA allocation, or peak growth of the CPU RSS (sampled every 2 ms) over a block."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base, self._stop = rss_bytes(), False
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, rss_bytes() - self.base)
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self._stop = True
            self._thread.join()
            self.peak = max(self.peak, rss_bytes() - self.base)


@torch.no_grad()
def official_loop(bb: Backbone, image: Path, prompt: str, nfe: int, size: int, gamma: float) -> torch.Tensor:
    """The official algorithm as a plain eager loop (its structure, including the discarded conditional pass)."""
    ts = ddim_timesteps(nfe, bb.num_train_timesteps).tolist()
    ab = bb.alphas_cumprod.to(bb.device)
    abar = lambda t: ab[t] if t >= 0 else torch.tensor(bb.final_alpha_cumprod, device=bb.device)
    uc, c = bb.encode_text([""]), bb.encode_text([prompt])
    ctx = torch.cat([uc, c])
    z = bb.encode(load_image(image, size).to(bb.device) * 2 - 1)
    a_prev = torch.tensor(1.0, device=bb.device)
    for t in reversed(ts):                                   # inversion: cond computed and thrown away
        e_uc, _ = bb.eps(torch.cat([z, z]), t, ctx).chunk(2)
        z0 = (z - (1 - a_prev).sqrt() * e_uc) / a_prev.sqrt()
        z = abar(t).sqrt() * z0 + (1 - abar(t)).sqrt() * e_uc
        a_prev = abar(t)
    for t, tp in zip(ts, ts[1:] + [-1]):                     # sampling
        e_uc, e_c = bb.eps(torch.cat([z, z]), t, ctx).chunk(2)
        e_hat = e_uc + abar(t) * gamma * (e_c - e_uc)
        zbar = (z - (1 - abar(t)).sqrt() * e_hat) / abar(t).sqrt()
        z = abar(tp).sqrt() * zbar + (1 - abar(tp)).sqrt() * e_uc
    return bb.decode(zbar)


def official_inpaint_loop(bb: Backbone, image: Path, prompt: str, box: list[int], nfe: int, size: int,
                          seed: int = 0, sigma_y: float = 0.01, lam: float = 1e-4, cg_iters: int = 10) -> torch.Tensor:
    """``run_inpaint.py`` as a plain eager loop (one hole): DS when ``i % 3 == 0 and i < 0.85 nfe``, else DPS."""
    ts = ddim_timesteps(nfe, bb.num_train_timesteps).tolist()
    ab = bb.alphas_cumprod.to(bb.device)
    abar = lambda t: ab[t] if t >= 0 else torch.tensor(bb.final_alpha_cumprod, device=bb.device)
    c_null, c_tgt = bb.encode_text([NULL_INPAINT]), bb.encode_text([prompt])
    x = load_image(image, size).to(bb.device) * 2 - 1
    known = torch.ones_like(x[:, :1])
    known[..., box[0]:box[2], box[1]:box[3]] = 0
    noise = randn(tuple(x.shape[1:]), seed, -2, image.stem, device=bb.device)[None]
    y = known * (x + sigma_y * noise)
    hole = (1 - known)[:, :, ::bb.vae_scale_factor, ::bb.vae_scale_factor]
    with torch.no_grad():
        z, a_prev = bb.encode(y), torch.tensor(1.0, device=bb.device)
        for t in reversed(ts):                                       # unconditional inversion
            e = bb.eps(z, t, c_null)
            z = abar(t).sqrt() * (z - (1 - a_prev).sqrt() * e) / a_prev.sqrt() + (1 - abar(t)).sqrt() * e
            a_prev = abar(t)
    for i, (t, tp) in enumerate(zip(ts, ts[1:] + [-1])):
        a, a_p = abar(t), abar(tp)
        if i % 3 == 0 and i < 0.85 * nfe:                            # DS step: TReg two-step + the hole's prompt
            with torch.no_grad():
                e_uc, e_c = bb.eps(torch.cat([z, z]), t, torch.cat([c_null, c_tgt])).chunk(2)
                z0_uc, z0_c = (z - (1 - a).sqrt() * e_uc) / a.sqrt(), (z - (1 - a).sqrt() * e_c) / a.sqrt()
                x0 = bb.decode(z0_uc)
                b = known * y + lam * x0                             # CG on (A^T A + lam I) x = A^T y + lam x0
                xs = x0.clone()
                r = b - (known * xs + lam * xs)
                p, rr = r, (r * r).sum()
                for _ in range(cg_iters):
                    if rr == 0:                                      # converged exactly (2 distinct eigenvalues)
                        break
                    ap = known * p + lam * p
                    alpha = rr / (p * ap).sum()
                    xs, r = xs + alpha * p, r - alpha * ap
                    rr_new = (r * r).sum()
                    p, rr = r + rr_new / rr * p, rr_new
                z0 = a * bb.encode(xs) + (1 - a) * z0_uc
                z0 = (1 - hole) * z0 + hole * ((1 - a) * z0 + a * z0_c)
                n = randn(tuple(z.shape[1:]), seed, i, image.stem, device=bb.device)[None]
                z = a_p.sqrt() * z0 + (1 - a_p).sqrt() * ((1 - a).sqrt() * e_uc + a.sqrt() * n)
        else:                                                        # DPS step, official batch of 2 rows
            z = z.detach().requires_grad_()
            e_uc = bb.eps(torch.cat([z, z]), t, torch.cat([c_null, c_null]), grad=True).chunk(2)[0]
            z0 = (z - (1 - a).sqrt() * e_uc) / a.sqrt()
            (g,) = torch.autograd.grad((known * (y - bb.decode(z0, grad=True))).norm(), z)
            z = (a_p.sqrt() * z0 + (1 - a_p).sqrt() * e_uc - a_p.sqrt() * g).detach()
            z0 = z0.detach() - g
    with torch.no_grad():
        return ((bb.decode(z0) + 1) / 2).clamp(0, 1)


def trainer_for(device: str) -> L.Trainer:
    return L.Trainer(accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1, max_epochs=1,
                     logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0)   # the algorithm, not its metrics


def ours_inpaint(bb: Backbone, image: Path, prompt: str, box: list[int], nfe: int, size: int,
                 device: str) -> torch.Tensor:
    task = InpaintTask(image=str(image), holes=[{"prompt": prompt, "box": box}], size=size, backbone=bb.name,
                       nfe=nfe, trajectory_every=0)
    task.backbone = bb
    trainer_for(device).fit(task)
    return task.result_images()["inpainted"]


def ours(bb: Backbone, image: Path | None, prompt: str | None, nfe: int, size: int, gamma: float, device: str,
         samples: list[dict] | None = None) -> torch.Tensor:
    task = EditTask(image=None if samples else str(image), prompt=None if samples else prompt, samples=samples,
                    size=size, backbone=bb.name, nfe=nfe, gamma=gamma, trajectory_every=0)
    task.backbone = bb
    trainer_for(device).fit(task)
    with torch.no_grad():
        return task.backbone.decode(task.generator.psi)


def timed(fn, device: torch.device):
    with PeakMemory(device) as mem:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    return out, wall, mem.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="edit", choices=["edit", "inpaint"])
    ap.add_argument("--preset", default="tiny", help="tiny | sd15-random | shapes | any backbone source")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--nfe", type=int, default=50)
    ap.add_argument("--gamma", type=float, default=0.2)
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each (after one warm-up of each)")
    ap.add_argument("--batch", type=int, default=0, help="also time B batched edits vs B sequential ones")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    quiet_startup()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bb = Backbone.load(args.preset, dtype=args.dtype, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "src.png"
        Image.radial_gradient("L").convert("RGB").resize((args.size, args.size)).save(image)
        prompt = "a blue circle"
        if args.task == "edit":
            run_ref = lambda: official_loop(bb, image, prompt, args.nfe, args.size, args.gamma)
            run_ours = lambda: ours(bb, image, prompt, args.nfe, args.size, args.gamma, args.device)
        else:
            box = [args.size // 4, args.size // 4, 3 * args.size // 4, 3 * args.size // 4]
            run_ref = lambda: official_inpaint_loop(bb, image, prompt, box, args.nfe, args.size)
            run_ours = lambda: ours_inpaint(bb, image, prompt, box, args.nfe, args.size, args.device)
        run_ref(), run_ours()                              # warm-up (allocator, kernels, text cache)
        best = {}
        for name, fn in (("reference", run_ref), ("dreamsampler", run_ours)):
            runs = [timed(fn, device) for _ in range(args.repeats)]
            best[name] = min(runs, key=lambda r: r[1])
        diff = (best["dreamsampler"][0].float() - best["reference"][0].float()).abs().max().item()
    steps = 2 * args.nfe
    print(f"task={args.task} preset={args.preset} device={args.device} dtype={args.dtype} size={args.size} nfe={args.nfe} "
          f"(inversion + sampling = {steps} steps)")
    print(f"{'':14s}{'wall s':>10s}{'steps/s':>10s}{'peak MiB':>10s}")
    for name, (_, wall, peak) in best.items():
        print(f"{name:14s}{wall:10.3f}{steps / wall:10.1f}{peak / 2**20:10.1f}")
    (_, w_o, p_o), (_, w_r, p_r) = best["dreamsampler"], best["reference"]
    print(f"ratio ours/reference: wall {w_o / w_r:.3f}, peak memory {p_o / max(p_r, 1):.3f}; "
          f"max |ours - reference| on the decoded image: {diff:.2e}")
    if args.batch:
        bench_batch(bb, args, device)


def bench_batch(bb: Backbone, args, device: torch.device) -> None:
    """B different edits (images and prompts) in one run vs the same B edits as B runs."""
    colors = ["red", "green", "blue", "yellow", "purple", "orange"]
    with tempfile.TemporaryDirectory() as tmp:
        samples = []
        for i in range(args.batch):
            path = Path(tmp) / f"src{i}.png"
            Image.radial_gradient("L").rotate(37 * i).convert("RGB").resize((args.size, args.size)).save(path)
            samples.append({"image": str(path), "prompt": f"a {colors[i % 6]} circle", "name": f"s{i}"})
        run = lambda group: ours(bb, None, None, args.nfe, args.size, args.gamma, args.device, samples=group)
        run_batched = lambda: run(samples)
        run_sequential = lambda: torch.cat([run([s]) for s in samples])
        run_batched(), run_sequential()                    # warm-up
        res = {name: min((timed(fn, device) for _ in range(args.repeats)), key=lambda r: r[1])
               for name, fn in (("sequential", run_sequential), ("batched", run_batched))}
    diff = (res["batched"][0].float() - res["sequential"][0].float()).abs().max().item()
    print(f"\nB={args.batch} different edits (inversion + sampling = {2 * args.nfe} steps each)")
    print(f"{'':14s}{'wall s':>10s}{'edits/s':>10s}{'peak MiB':>10s}")
    for name, (_, wall, peak) in res.items():
        print(f"{name:14s}{wall:10.3f}{args.batch / wall:10.2f}{peak / 2**20:10.1f}")
    print(f"speed-up batched vs sequential: {res['sequential'][1] / res['batched'][1]:.2f}x; "
          f"max |batched - sequential| on the decoded images: {diff:.2e}")


if __name__ == "__main__":
    main()
