"""Benchmark: where the time of one SVG DreamSampler step goes (eq. 21), in one process.

Splits a step into the rasterizer (forward, backward), the VAE encoder (forward, backward: the only network
gradients of the step) and the UNet (forward of [null, c_y] × B, no graph), each timed on the task's own
tensors, and times whole steps of the task (``dream_step`` with its Adam update) for comparison.

    python tools/bench_svg.py --preset shapes --size 64 --paths 16 --threads 1          # the demo's step
    python tools/bench_svg.py --preset sd15-random --size 512 --paths 128 --repeats 0     # SD1.5 scale, CPU
    python tools/bench_svg.py --preset sd15-random --size 512 --paths 256 --device cuda --dtype fp16
"""

from __future__ import annotations

import argparse
import time

import torch

from dreamsampler.backbones import Backbone
from dreamsampler.cli import quiet_startup
from dreamsampler.core import renoise
from dreamsampler.tasks import TextToSVGTask


def best_ms(fn, device: torch.device, repeats: int) -> float:
    """Best of ``repeats`` calls after one warm-up call; ``repeats=0``: one cold call (big CPU runs)."""
    times = []
    for _ in range(repeats + 1 if repeats else 1):    # the first call warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times[1:] or times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="shapes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--paths", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    quiet_startup()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bb = Backbone.load(args.preset, dtype=args.dtype, device=device)
    task = TextToSVGTask(samples=[{"prompt": "a red circle", "name": f"s{i}"} for i in range(args.batch)],
                         prompt_suffix="", size=args.size, paths=args.paths, backbone=args.preset, nfe=50)
    task.backbone = bb
    task.to(device)
    task.prepare_batch(task.fit_batch)
    step = next(iter(task.reverse_schedule()))
    gen = task.generator

    def raster_fb():
        gen().sum().backward()

    image = gen().detach().requires_grad_()

    def encoder_fb():
        bb.encode(image * 2 - 1, grad=True).sum().backward()

    with torch.no_grad():
        z_t = renoise(task.encode_generated(gen()), task.eps_tilde, step["level_t"])
    opts, _ = task.make_optimizers()
    rows = [
        ("rasterizer forward", lambda: gen()),
        ("rasterizer forward+backward", raster_fb),
        ("VAE encoder forward", lambda: bb.encode(image.detach() * 2 - 1)),
        ("VAE encoder forward+backward", encoder_fb),
        (f"UNet forward ({2 * args.batch} rows)", lambda: task.targets(z_t, step)),
        ("whole step (dream_step, 1 Adam step)", lambda: task.dream_step(step, opts, [])),
    ]
    print(f"preset={args.preset} device={args.device} dtype={args.dtype} canvas={args.size}² paths={args.paths} "
          f"batch={args.batch} threads={torch.get_num_threads()}")
    timed = [(name, best_ms(fn, device, args.repeats)) for name, fn in rows]
    total = timed[-1][1]
    print("| part | ms | share of a step |\n|---|---|---|")
    for name, ms in timed:
        print(f"| {name} | {ms:.1f} | {100 * ms / total:.0f} % |")


if __name__ == "__main__":
    main()
