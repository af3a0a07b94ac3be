"""Overhead of each baseline on the step contract vs the plain loop of its official code, in the same process.

    python tools/bench_baselines.py [--backbone scenes-faces] [--iters 100] [--repeats 3] [--threads 2]

For SDS, DDS, PDS (and SDEdit, a reverse sweep) runs one edit of the shipped scenes-and-faces prior through the task
(``predict_samples``: load, start, the iterations, decode) and through the plain loop written from the official
code (``tests/official_baselines.py``: encode, the iterations), alternating, and prints the best wall time of each,
their ratio (goal <= 1.05) and the relative difference of the results. Run it on a quiet machine: torch's threads
spin-wait when another process holds a core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from official_baselines import Raw, plain_dds, plain_pds, plain_sdedit, plain_sds  # noqa: E402

from dreamsampler.backbones import Backbone  # noqa: E402
from dreamsampler.cli import quiet_startup  # noqa: E402
from dreamsampler.tasks import DDSEditTask, PDSEditTask, SDEditTask, SDSEditTask  # noqa: E402

ITEM = {"image": str(REPO / "dreamsampler/assets/eval_world/images/smile00_yellow.png"),
        "prompt": "a face with a smile", "source_prompt": "a face", "name": "smile00_yellow"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="scenes-faces")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    quiet_startup()
    torch.set_num_threads(args.threads)
    bb = Backbone.load(args.backbone)
    size, seed, n = 64, 0, args.iters
    raw = Raw(bb, size, seed)
    adam = lambda p: torch.optim.Adam(p, lr=0.01)  # noqa: E731
    cases = {
        "SDS": (lambda: SDSEditTask(nfe=n, optimizer=adam, guidance_scale=101.0),
                lambda: plain_sds(raw, ITEM, n)),
        "DDS": (lambda: DDSEditTask(nfe=n, grad_scale=2000 / (size // bb.vae_scale_factor) ** 2),
                lambda: plain_dds(raw, ITEM, n)),
        "PDS": (lambda: PDSEditTask(nfe=n, optimizer=adam,
                                    grad_scale=1 / (bb.latent_channels * (size // bb.vae_scale_factor) ** 2)),
                lambda: plain_pds(raw, ITEM, n)),
        "SDEdit": (lambda: SDEditTask(nfe=n, strength=0.8, omega=7.5), lambda: plain_sdedit(raw, ITEM, n, 0.8, 7.5)),
    }
    print(f"backbone {args.backbone}, {size}px, 1 sample, {n} iterations, {args.threads} threads, best of "
          f"{args.repeats}")
    print("| method | plain loop s | ours s | ratio | rel. diff |\n|---|---|---|---|---|")
    for name, (make, plain) in cases.items():
        best_ours, best_plain = float("inf"), float("inf")
        for _ in range(args.repeats):
            task = make()
            task.seed, task.size, task.backbone = seed, size, bb
            t0 = time.perf_counter()
            out = task.predict_samples([ITEM])
            best_ours = min(best_ours, time.perf_counter() - t0)
            assert "error" not in out[0], out
            psi = task.generator.psi.detach()
            t0 = time.perf_counter()
            ref = plain()
            best_plain = min(best_plain, time.perf_counter() - t0)
        diff = float((psi - ref).norm() / ref.norm())
        print(f"| {name} | {best_plain:.2f} | {best_ours:.2f} | {best_ours / best_plain:.3f} | {diff:.1e} |",
              flush=True)


if __name__ == "__main__":
    main()
