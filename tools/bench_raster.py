"""Benchmark the pure-PyTorch rasterizer against DiffVG in the same process.

Prints forward and forward+backward time and peak extra memory for P ∈ {16, 64, 256} paths at 224² and
512², 2×2 samples, on two scenes:

* ``init``  — the DiffVG fixture's recipe (4 cubics per path, radius U[8, 20] px, ±3 px jitter) with
  centres spread over the canvas, like the paper's initial circles;
* ``grown`` — the same with radius and jitter scaled by W/64 (each path covers ~15 % of the canvas,
  ~40 paths stacked at 256 paths): what an optimization ends with.

DiffVG's figures (and the ratio ours / DiffVG) are printed when ``pydiffvg`` is importable.
Peak memory: on CPU the rise of the process's peak RSS (VmHWM, reset through /proc/self/clear_refs)
during one call; on CUDA ``torch.cuda.max_memory_allocated`` above the allocation before the call.

Times are the best of ``--repeats`` calls after a warm-up (robust on a shared machine). DiffVG's CPU
renderer starts its own thread per core whatever ``--threads`` says.

Usage: ``python tools/bench_raster.py [--quick] [--device cuda] [--repeats N] [--threads N] [--markdown]``.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import math
import time

import torch

from dreamsampler.render import rasterize


def make_scene(kind: str, paths: int, size: int, seed: int = 0, dtype=torch.float32):
    """Fixture-recipe scene: ``(P, 12, 2)`` points and ``(P, 4)`` colors on a ``size``² canvas.

    Same draws in the same order as the DiffVG fixture (float32 ``rand`` from ``manual_seed(seed)``), so
    ``make_scene("init", 8, 64)`` is exactly the fixture's scene; centres are scaled by ``size / 64``, and
    for ``grown`` the radius and jitter too.
    """
    g = torch.Generator().manual_seed(seed)
    scale = size / 64
    grow = scale if kind == "grown" else 1.0
    radius = (8 + 12 * torch.rand(paths, generator=g)) * grow
    center = (10 + 44 * torch.rand(paths, 2, generator=g)) * scale
    jitter = 3 * (2 * torch.rand(paths, 12, 2, generator=g) - 1) * grow
    rgb = torch.rand(paths, 3, generator=g)
    alpha = 0.7 + 0.3 * torch.rand(paths, generator=g)
    t = 2 * math.pi * torch.arange(12) / 12
    unit = torch.stack((torch.cos(t), torch.sin(t)), -1)
    points = center[:, None, :] + radius[:, None, None] * unit + jitter
    colors = torch.cat((rgb, alpha[:, None]), 1)
    return points.to(dtype), colors.to(dtype)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_extra_mib(fn, device: str) -> float:
    """Peak memory above the level before ``fn()``, in MiB."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return float("nan")
    base = _rss_kib("VmRSS")
    fn()
    return (_rss_kib("VmHWM") - base) / 1024


def time_it(fn, device: str, repeats: int) -> float:
    """Best wall time of ``fn`` in seconds over ``repeats`` calls after one warm-up (robust to a busy machine)."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(backend: str, kind: str, paths: int, size: int, device: str, repeats: int):
    points, colors = make_scene(kind, paths, size)
    points, colors = points.to(device), colors.to(device)
    weights = torch.rand(size, size, 3, generator=torch.Generator().manual_seed(1)).to(device) * 2 - 1

    def fwd():
        with torch.no_grad():
            rasterize(points, colors, size, size, 2, backend=backend)

    def fwd_bwd():
        p = points.clone().requires_grad_()
        c = colors.clone().requires_grad_()
        img = rasterize(p, c, size, size, 2, backend=backend)
        (img * weights).sum().backward()

    t_f = time_it(fwd, device, repeats)
    t_fb = time_it(fwd_bwd, device, repeats)
    mem = peak_extra_mib(fwd_bwd, device)
    return t_f, t_fb, mem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one size (224²), P ∈ {16, 64}, one repeat")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-diffvg", action="store_true", help="skip DiffVG even if importable")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import pydiffvg  # noqa: F401

        have_diffvg = not args.no_diffvg
    except ImportError:
        have_diffvg = False
    sizes = [224] if args.quick else [224, 512]
    counts = [16, 64] if args.quick else [16, 64, 256]
    repeats = 1 if args.quick else args.repeats
    print(f"# device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"samples=2x2 diffvg={'yes' if have_diffvg else 'not importable'}")
    head = ("scene", "P", "size", "ours fwd ms", "ours f+b ms", "ours peak MiB",
            "diffvg fwd ms", "diffvg f+b ms", "diffvg peak MiB", "ratio fwd", "ratio f+b")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    else:
        print(" ".join(f"{h:>14}" for h in head))
    for kind in ("init", "grown"):
        for size in sizes:
            for paths in counts:
                o = measure("torch", kind, paths, size, args.device, repeats)
                if have_diffvg:
                    d = measure("diffvg", kind, paths, size, "cpu", repeats)
                    ratio = (o[0] / d[0], o[1] / d[1])
                else:
                    d, ratio = (math.nan,) * 3, (math.nan,) * 2
                row = (kind, paths, f"{size}²", f"{o[0]*1e3:.1f}", f"{o[1]*1e3:.1f}", f"{o[2]:.0f}",
                       f"{d[0]*1e3:.1f}", f"{d[1]*1e3:.1f}", f"{d[2]:.0f}", f"{ratio[0]:.2f}", f"{ratio[1]:.2f}")
                if args.markdown:
                    print("| " + " | ".join(str(x) for x in row) + " |", flush=True)
                else:
                    print(" ".join(f"{x!s:>14}" for x in row), flush=True)


if __name__ == "__main__":
    main()
