"""Benchmark: the edit or inpainting task end to end (Lightning) vs a plain eager loop of the official algorithm,
B batched edits vs the same B edits one after the other, and the eager vs the compiled denoiser call.

All runs are in this process on the same backbone and schedule. The reference mirrors the official
``run_edit.py``: inversion evaluates [uncond, cond] in one batch and throws the conditional half away, sampling
evaluates [uncond, cond] in one batch. Prints wall time, steps/s, peak memory (CUDA max allocated, or the
growth of the CPU resident set) and the ratios; with ``--batch B`` also B different edits in one run (one UNet
call per step for all of them) against B single runs, with the speed-up and the largest difference.

    python tools/bench.py --preset shapes --size 64 --nfe 50 --batch 8
    python tools/bench.py --task inpaint --preset shapes --size 64 --nfe 60 --threads 1

The inpainting reference mirrors ``run_inpaint.py``: inversion as above, DS steps with one UNet call of the null
and the hole prompts, 10 CG iterations on the normal equations, DPS steps with the official batch of two
unconditional rows through the UNet and the decoder. The plain loops are written in the noise levels (a, s) of
the backbone's own schedule, so ``--backbone`` takes any family (SD 1.x/2.x, SDXL, SD3, Flux; presets or sources).
``--compile [MODE]`` also times the denoiser call eager vs ``torch.compile``d (same weights, same batch) and the
whole task with the compiled call.

    python tools/bench.py --backbone sd15-random --device cuda --dtype fp16 --size 512 --nfe 200
    python tools/bench.py --backbone tiny-sd3 --size 32 --nfe 50 --threads 1 --repeats 3
    python tools/bench.py --backbone sd15-random --size 256 --nfe 3 --compile
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

from dreamsampler.backbones import Backbone, BackboneOptions, Cond
from dreamsampler.cli import quiet_startup
from dreamsampler.io.images import load_image
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
def official_loop(bb: Backbone, image: Path, prompt: str, nfe: int, size: int, gamma: float,
                  lean: bool = False) -> torch.Tensor:
    """The official algorithm as a plain eager loop (its structure, including the discarded conditional pass of the
    inversion unless ``lean``), written in the noise levels (a, s) of ``bb``'s own schedule, for every family."""
    sched = bb.schedule(nfe, size)
    ctx = bb.encode_text(["", prompt])
    z = bb.encode(load_image(image, size).to(bb.device) * 2 - 1)
    lo = sched.inversion_start
    for step in reversed(sched.steps):                       # inversion: cond computed and thrown away
        uc = (bb.denoise(z, step["t"], ctx[0], lo) if lean else bb.denoise(torch.cat([z, z]), step["t"], ctx, lo)[:1])
        lv = step["level_t"]
        z, lo = lv.a * uc.z0 + lv.s * uc.eps, lv
    for step in sched.steps:                                 # sampling
        uc, c = bb.denoise(torch.cat([z, z]), step["t"], ctx, step["level_t"]).chunk(2)
        g = gamma * float(step["alpha_bar_t"])
        zbar = uc.z0 + g * (c.z0 - uc.z0)
        z = step["level_prev"].a * zbar + step["level_prev"].s * uc.eps
    return bb.decode(zbar)


def official_inpaint_loop(bb: Backbone, image: Path, prompt: str, box: list[int], nfe: int, size: int,
                          seed: int = 0, sigma_y: float = 0.01, lam: float = 1e-4, cg_iters: int = 10) -> torch.Tensor:
    """``run_inpaint.py`` as a plain eager loop (one hole): DS when ``i % 3 == 0 and i < 0.85 nfe``, else DPS; in
    the levels of ``bb``'s schedule (alpha_bar = the signal fraction)."""
    sched = bb.schedule(nfe, size)
    c_null, c_tgt = bb.encode_text([NULL_INPAINT]), bb.encode_text([prompt])
    ctx, ctx_null2 = Cond.cat([c_null, c_tgt]), c_null.repeat(2)
    x = load_image(image, size).to(bb.device) * 2 - 1
    known = torch.ones_like(x[:, :1])
    known[..., box[0]:box[2], box[1]:box[3]] = 0
    noise = randn(tuple(x.shape[1:]), seed, "measurement", -1, image.stem, device=bb.device)[None]
    y = known * (x + sigma_y * noise)
    hole = (1 - known)[:, :, ::bb.vae_scale_factor, ::bb.vae_scale_factor]
    with torch.no_grad():
        z, lo = bb.encode(y), sched.inversion_start
        for step in reversed(sched.steps):                           # unconditional inversion
            e = bb.denoise(z, step["t"], c_null, lo)
            lv = step["level_t"]
            z, lo = lv.a * e.z0 + lv.s * e.eps, lv
    for i, step in enumerate(sched.steps):
        t, lv, lp, a = step["t"], step["level_t"], step["level_prev"], float(step["alpha_bar_t"])
        if i % 3 == 0 and i < 0.85 * nfe:                            # DS step: TReg two-step + the hole's prompt
            with torch.no_grad():
                uc, c = bb.denoise(torch.cat([z, z]), t, ctx, lv).chunk(2)
                x0 = bb.decode(uc.z0)
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
                z0 = a * bb.encode(xs) + (1 - a) * uc.z0
                z0 = (1 - hole) * z0 + hole * ((1 - a) * z0 + a * c.z0)
                n = randn(tuple(z.shape[1:]), seed, "renoise", i, image.stem, device=bb.device)[None]
                z = lp.a * z0 + lp.s * ((1 - a) ** 0.5 * uc.eps + a ** 0.5 * n)
        else:                                                        # DPS step, official batch of 2 rows
            z = z.detach().requires_grad_()
            uc = bb.denoise(torch.cat([z, z]), t, ctx_null2, lv, grad=True)[:1]
            (g,) = torch.autograd.grad((known * (y - bb.decode(uc.z0, grad=True))).norm(), z)
            z = (lp.a * uc.z0 + lp.s * uc.eps - lp.a * g).detach()
            z0 = uc.z0.detach()          # the official output is decode(z0t): the correction only moves z
    with torch.no_grad():
        return ((bb.decode(z0) + 1) / 2).clamp(0, 1)


def trainer_for(device: str) -> L.Trainer:
    return L.Trainer(accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1, max_epochs=1,
                     logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0)   # the algorithm, not its metrics


def ours_inpaint(bb: Backbone, image: Path, prompt: str, box: list[int], nfe: int, size: int,
                 device: str) -> torch.Tensor:
    task = InpaintTask(image=str(image), holes=[{"prompt": prompt, "box": box}], size=size, backbone="tiny",
                       nfe=nfe, trajectory_every=0)
    task.backbone = bb
    trainer_for(device).fit(task)
    return task.result_images()["inpainted"]


def ours(bb: Backbone, image: Path | None, prompt: str | None, nfe: int, size: int, gamma: float, device: str,
         samples: list[dict] | None = None) -> torch.Tensor:
    task = EditTask(image=None if samples else str(image), prompt=None if samples else prompt, samples=samples,
                    size=size, backbone="tiny", nfe=nfe, gamma=gamma, trajectory_every=0)   # the given bb runs
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
    ap.add_argument("--backbone", "--preset", dest="preset", default="tiny",
                    help="a preset (tiny, tiny-xl, tiny-sd3, tiny-flux, sd15-random, sdxl-random, sd3-random), shapes, "
                         "or any backbone source")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--nfe", type=int, default=50)
    ap.add_argument("--gamma", type=float, default=0.2)
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each (after one warm-up of each)")
    ap.add_argument("--batch", type=int, default=0, help="also time B batched edits vs B sequential ones")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--compile", nargs="?", const="default", default=None,
                    help="also time the eager vs the torch.compile'd denoiser call (optionally a mode, e.g. "
                         "reduce-overhead for CUDA graphs)")
    ap.add_argument("--compile-call-only", action="store_true", help="with --compile: only the denoiser call")
    ap.add_argument("--channels-last", action="store_true", help="channels-last memory format for UNet and VAE")
    ap.add_argument("--skip-reference", action="store_true", help="only time dreamsampler (large backbones)")
    ap.add_argument("--lean-reference", action="store_true",
                    help="the edit reference inverts with the unconditional row only (as dreamsampler does), so the "
                         "ratio is the harness's own overhead, not the official code's extra work")
    args = ap.parse_args()
    quiet_startup()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bb = Backbone.load(args.preset, dtype=args.dtype, device=device,
                       options=BackboneOptions(channels_last=args.channels_last))
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "src.png"
        Image.radial_gradient("L").convert("RGB").resize((args.size, args.size)).save(image)
        prompt = "a blue circle"
        if args.task == "edit":
            run_ref = lambda: official_loop(bb, image, prompt, args.nfe, args.size, args.gamma, args.lean_reference)
            run_ours = lambda: ours(bb, image, prompt, args.nfe, args.size, args.gamma, args.device)
        else:
            box = [args.size // 4, args.size // 4, 3 * args.size // 4, 3 * args.size // 4]
            run_ref = lambda: official_inpaint_loop(bb, image, prompt, box, args.nfe, args.size)
            run_ours = lambda: ours_inpaint(bb, image, prompt, box, args.nfe, args.size, args.device)
        runs = {"dreamsampler": run_ours} if args.skip_reference else {"reference": run_ref, "dreamsampler": run_ours}
        for fn in runs.values():
            fn()                                           # warm-up (allocator, kernels, text cache)
        timings = {name: [] for name in runs}
        for _ in range(args.repeats):                      # interleaved A B A B: pairs see the same machine speed
            for name, fn in runs.items():
                timings[name].append(timed(fn, device))
        best = {name: min(ts, key=lambda r: r[1]) for name, ts in timings.items()}
        if not args.skip_reference:
            paired = sorted(o[1] / r[1] for o, r in zip(timings["dreamsampler"], timings["reference"]))
            diff = (best["dreamsampler"][0].float() - best["reference"][0].float()).abs().max().item()
        if args.compile:
            bench_compile(bb, args, device, image, prompt)
    steps = 2 * args.nfe
    print(f"task={args.task} preset={args.preset} device={args.device} dtype={args.dtype} size={args.size} nfe={args.nfe} "
          f"(inversion + sampling = {steps} steps){' lean reference' if args.lean_reference else ''}")
    print(f"{'':14s}{'wall s':>10s}{'steps/s':>10s}{'peak MiB':>10s}")
    for name, (_, wall, peak) in best.items():
        print(f"{name:14s}{wall:10.3f}{steps / wall:10.1f}{peak / 2**20:10.1f}")
    if args.skip_reference:
        return
    (_, w_o, p_o), (_, w_r, p_r) = best["dreamsampler"], best["reference"]
    print(f"ratio ours/reference: wall {w_o / w_r:.3f} (best runs; median of {len(paired)} interleaved pairs "
          f"{paired[len(paired) // 2]:.3f}, range {paired[0]:.3f}-{paired[-1]:.3f}), peak memory "
          f"{p_o / max(p_r, 1):.3f}; max |ours - reference| on the decoded image: {diff:.2e}")
    if args.batch:
        bench_batch(bb, args, device)


def bench_compile(bb: Backbone, args, device: torch.device, image: Path, prompt: str) -> None:
    """The denoiser call (null + prompt rows, one step) eager vs torch.compile'd on the same weights, then the whole
    edit with the compiled call."""
    mode = True if args.compile == "default" else args.compile
    compiled = Backbone.from_components(bb.components, dtype=args.dtype, device=device, name=bb.name,
                                        options=BackboneOptions(compile=mode, channels_last=args.channels_last))
    step = bb.schedule(args.nfe, args.size).steps[0]
    cond = bb.encode_text(["", prompt])
    z = torch.randn(2, *bb.latent_shape(args.size), generator=torch.Generator().manual_seed(0)).to(device)
    call = lambda b: b.denoise(z, step["t"], cond, step["level_t"]).eps  # noqa: E731
    with torch.no_grad():
        (ref, _, _), (out, first, _) = timed(lambda: call(bb), device), timed(lambda: call(compiled), device)
        calls = 3 if device.type == "cpu" else 20
        eager = min(timed(lambda: [call(bb) for _ in range(calls)], device)[1] for _ in range(3)) / calls
        fast = min(timed(lambda: [call(compiled) for _ in range(calls)], device)[1] for _ in range(3)) / calls
    print(f"\ndenoiser call ({bb.name}, 2 rows at {args.size}², {args.dtype}): eager {1e3 * eager:.1f} ms, compiled "
          f"({args.compile}) {1e3 * fast:.1f} ms, ratio {fast / eager:.3f}; first compiled call (compiling) "
          f"{first:.1f} s; max |compiled - eager| {(out - ref).abs().max().item():.2e}")
    if args.compile_call_only:
        return
    edit = lambda: ours(compiled, image, prompt, args.nfe, args.size, args.gamma, args.device)  # noqa: E731
    _, first, _ = timed(edit, device)          # compiles the inversion's batch shape too (1 row vs 2 in sampling)
    _, wall, _ = timed(edit, device)
    print(f"whole edit with the compiled call: {wall:.3f} s ({2 * args.nfe / wall:.1f} steps/s; the first run, "
          f"compiling the inversion's shape too, took {first:.1f} s)")


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
