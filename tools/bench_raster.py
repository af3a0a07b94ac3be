"""Benchmark the pure-PyTorch rasterizer against DiffVG in the same process.

Default table: forward and forward+backward time and peak extra memory for P ∈ {16, 64, 256} paths at 224²
and 512², 2×2 samples, on two scenes:

* ``init``  — the DiffVG fixture's recipe (4 cubics per path, radius U[8, 20] px, ±3 px jitter) with
  centres spread over the canvas, like the paper's initial circles;
* ``grown`` — the same with radius and jitter scaled by W/64 (each path covers ~15 % of the canvas,
  ~40 paths stacked at 256 paths): what an optimization ends with.

``--scaling``: P ∈ {16, 64, 256, 1024} at 512² (both scenes) — how time and memory grow with the paths.
``--strategy boxes|dense|auto`` picks the torch backend's strategy (``rasterize(strategy=...)``; auto =
dense on CUDA, boxes elsewhere). ``--paths``/``--sizes``/``--scenes`` pick rows by hand.
``--sync-check`` (CUDA) first renders forward+backward under ``torch.cuda.set_sync_debug_mode("error")``
with ``check_values=False`` and prints ``sync check: ok`` or the synchronising call.

DiffVG's figures (and the ratio ours / DiffVG) are printed when ``pydiffvg`` is importable and not
``--no-diffvg``; DiffVG runs in a child process because it aborts the process where more than 256 shapes
overlap one sample (``aborts`` in its columns: the grown scene at 1024 paths). Peak memory: on CPU the rise of the process's peak RSS (VmHWM, reset through
/proc/self/clear_refs) during one call; on CUDA ``torch.cuda.max_memory_allocated`` above the allocation before
the call.

Times are the best of ``--repeats`` calls after a warm-up (robust on a shared machine); a call whose
warm-up takes longer than ``--long`` seconds (default 5) is timed by that one call alone (seconds-long calls
have no warm-up effects worth a second run). Peak memory is read during the last timed forward+backward.
DiffVG's CPU renderer starts its own thread per core whatever ``--threads`` says.

Usage: ``python tools/bench_raster.py [--quick | --scaling] [--strategy S] [--device cuda] [--repeats N]
[--threads N] [--markdown] [--no-diffvg]``.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import math
import multiprocessing
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


class _Peak:
    """Peak memory above the level at entry, in MiB (``.mib`` after the block)."""

    def __init__(self, device: str):
        self.device, self.mib = device, math.nan

    def __enter__(self):
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = _rss_kib("VmRSS")
        except OSError:
            self.base = None
        return self

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        elif self.base is not None:
            self.mib = (_rss_kib("VmHWM") - self.base) / 1024
        return False


def time_it(fn, device: str, repeats: int, long_s: float = 2.0, peak: bool = False) -> tuple[float, float]:
    """Best wall time of ``fn`` in seconds over ``repeats`` calls after one warm-up, and (``peak``) the peak
    extra memory in MiB of the last call. A warm-up slower than ``long_s`` (or ``repeats=0``) is the only call."""

    def call(metered: bool) -> tuple[float, float]:
        meter = _Peak(device)
        if metered:
            meter.__enter__()
        t0 = time.perf_counter()
        fn()
        _sync(device)
        elapsed = time.perf_counter() - t0
        if metered:
            meter.__exit__(None, None, None)
        return elapsed, meter.mib

    first, mib = call(peak)
    if first > long_s or repeats == 0:
        return first, mib
    times = []
    for i in range(repeats):
        elapsed, m = call(peak and i == repeats - 1)
        times.append(elapsed)
        mib = m if peak and i == repeats - 1 else mib
    return min(times), mib


def measure(backend: str, kind: str, paths: int, size: int, device: str, repeats: int, strategy: str = "auto",
            long_s: float = 2.0):
    """(forward s, forward+backward s, peak MiB of a forward+backward) for one scene."""
    points, colors = make_scene(kind, paths, size)
    points, colors = points.to(device), colors.to(device)
    weights = torch.rand(size, size, 3, generator=torch.Generator().manual_seed(1)).to(device) * 2 - 1
    kw = {"backend": backend} if backend == "diffvg" else {"strategy": strategy}

    def fwd():
        with torch.no_grad():
            rasterize(points, colors, size, size, 2, **kw)

    def fwd_bwd():
        p = points.clone().requires_grad_()
        c = colors.clone().requires_grad_()
        img = rasterize(p, c, size, size, 2, **kw)
        (img * weights).sum().backward()

    t_f, _ = time_it(fwd, device, repeats, long_s)
    t_fb, mem = time_it(fwd_bwd, device, repeats, long_s, peak=True)
    return t_f, t_fb, mem


def _diffvg_worker(queue, kind: str, paths: int, size: int, repeats: int, long_s: float, threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)
    queue.put(measure("diffvg", kind, paths, size, "cpu", repeats, long_s=long_s))


def measure_diffvg(kind: str, paths: int, size: int, repeats: int, long_s: float, threads: int):
    """``measure`` for DiffVG in a child process: DiffVG aborts the whole process (``assert num_fragments <
    max_hit_shapes``) where more than 256 shapes overlap one sample. Returns None when the child died."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_diffvg_worker, args=(queue, kind, paths, size, repeats, long_s, threads))
    child.start()
    child.join()
    return queue.get() if child.exitcode == 0 else None


def sync_check(strategy: str) -> None:
    """Forward+backward on CUDA under ``set_sync_debug_mode("error")``: any synchronising call raises."""
    points, colors = make_scene("grown", 64, 256)
    p, c = points.cuda().requires_grad_(), colors.cuda().requires_grad_()
    w = torch.rand(256, 256, 3, device="cuda")
    (rasterize(p, c, 256, 256, strategy=strategy, check_values=False) * w).sum().backward()  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        (rasterize(p, c, 256, 256, strategy=strategy, check_values=False) * w).sum().backward()
        print(f"sync check: ok (strategy={strategy}, forward+backward, 64 paths, 256²)", flush=True)
    except RuntimeError as err:
        print(f"sync check: FAILED (strategy={strategy}): {str(err).splitlines()[0]}", flush=True)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one size (224²), P ∈ {16, 64}, one repeat")
    ap.add_argument("--scaling", action="store_true", help="P ∈ {16, 64, 256, 1024} at 512², both scenes")
    ap.add_argument("--paths", type=int, nargs="+", help="path counts (overrides the presets)")
    ap.add_argument("--sizes", type=int, nargs="+", help="canvas sizes (overrides the presets)")
    ap.add_argument("--scenes", nargs="+", choices=("init", "grown"), default=("init", "grown"))
    ap.add_argument("--strategy", default="auto", choices=("auto", "boxes", "dense"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long", type=float, default=5.0, help="seconds: slower calls are timed once")
    ap.add_argument("--no-diffvg", action="store_true", help="skip DiffVG even if importable")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--sync-check", action="store_true", help="(CUDA) check a render for host synchronisation")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import pydiffvg  # noqa: F401

        have_diffvg = not args.no_diffvg
    except ImportError:
        have_diffvg = False
    if args.scaling:
        sizes, counts = [512], [16, 64, 256, 1024]
    elif args.quick:
        sizes, counts = [224], [16, 64]
    else:
        sizes, counts = [224, 512], [16, 64, 256]
    sizes, counts = args.sizes or sizes, args.paths or counts
    repeats = 1 if args.quick else args.repeats
    strategy = args.strategy
    if strategy == "auto":
        strategy = "dense" if torch.device(args.device).type == "cuda" else "boxes"
    gpu = ""
    if torch.device(args.device).type == "cuda":
        gpu = f" gpu={torch.cuda.get_device_name(args.device)}"
    print(f"# device={args.device}{gpu} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"strategy={strategy} samples=2x2 diffvg={'yes' if have_diffvg else 'no'}", flush=True)
    if args.sync_check:
        if torch.device(args.device).type == "cuda":
            sync_check(strategy)
        else:
            print("sync check: skipped (needs --device cuda)")
    head = ("scene", "P", "size", "ours fwd ms", "ours f+b ms", "ours peak MiB",
            "diffvg fwd ms", "diffvg f+b ms", "diffvg peak MiB", "ratio fwd", "ratio f+b")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    else:
        print(" ".join(f"{h:>14}" for h in head))
    for kind in args.scenes:
        for size in sizes:
            for paths in counts:
                o = measure("torch", kind, paths, size, args.device, repeats, strategy, args.long)
                ours = (f"{o[0]*1e3:.1f}", f"{o[1]*1e3:.1f}", f"{o[2]:.0f}")
                d = measure_diffvg(kind, paths, size, repeats, args.long, args.threads) if have_diffvg else None
                if d is not None:
                    theirs = (f"{d[0]*1e3:.1f}", f"{d[1]*1e3:.1f}", f"{d[2]:.0f}", f"{o[0] / d[0]:.2f}",
                              f"{o[1] / d[1]:.2f}")
                else:
                    theirs = ("aborts",) * 3 + ("—",) * 2 if have_diffvg else ("—",) * 5
                row = (kind, paths, f"{size}²", *ours, *theirs)
                if args.markdown:
                    print("| " + " | ".join(str(x) for x in row) + " |", flush=True)
                else:
                    print(" ".join(f"{x!s:>14}" for x in row), flush=True)


if __name__ == "__main__":
    main()
