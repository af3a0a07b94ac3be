"""Benchmark dataset runs: samples/s of the demo evaluations with B = 1 and B = 8, and peak memory as the dataset
grows (N small vs N large, the same samples repeated under new names), all in this process.

    python tools/bench_eval.py --task edit --threads 1                 # samples/s, B = 1 vs 8, 16 samples
    python tools/bench_eval.py --task edit --scale 20 200 --nfe 10      # peak memory, 20 vs 200 samples
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import PeakMemory  # noqa: E402

from dreamsampler.callbacks import WritePredictions  # noqa: E402
from dreamsampler.cli import quiet_startup  # noqa: E402
from dreamsampler.data import Manifest  # noqa: E402
from dreamsampler.evaluate import EvalConfig, evaluate_run  # noqa: E402
from dreamsampler.tasks import EditTask, InpaintTask  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "dreamsampler" / "assets" / "eval"
DEMO = {"edit": (EditTask, dict(size=64, backbone="shapes", nfe=50, gamma=0.3, trajectory_every=0)),
        "inpaint": (InpaintTask, dict(size=64, backbone="shapes", null_prompt="", nfe=60, trajectory_every=0))}


def manifest_of(task: str, n: int, folder: Path) -> Path:
    """``n`` samples: the demo set's lines repeated under new names (so each is a new sample with its own noise)."""
    lines = [json.loads(line) for line in (ASSETS / f"{task}.jsonl").read_text().splitlines()]
    rows = []
    for i in range(n):
        row = dict(lines[i % len(lines)])
        row["image"] = str(ASSETS / row["image"])
        row["name"] = f"n{i:04d}"
        rows.append(json.dumps(row))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task}_{n}.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def run(task: str, n: int, batch: int, nfe: int | None, root: Path, bb) -> tuple[float, int, float]:
    """Wall seconds of ``predict`` over n samples, peak memory growth, and the evaluation's seconds."""
    cls, settings = DEMO[task]
    task_obj = cls(**{**settings, **({"nfe": nfe} if nfe else {})})
    task_obj.backbone = bb
    data = Manifest(str(manifest_of(task, n, root)), batch_size=batch)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, inference_mode=False,
                        callbacks=[WritePredictions()], default_root_dir=root / f"{task}_{n}_{batch}")
    with PeakMemory(torch.device("cpu")) as mem:
        t0 = time.perf_counter()
        trainer.predict(task_obj, datamodule=data, return_predictions=False)
        wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    evaluate_run(Path(trainer.default_root_dir), task_obj, data.items, EvalConfig(metrics=["auto"]))
    return wall, mem.peak, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(DEMO), default="edit")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--scale", type=int, nargs=2, metavar=("N_SMALL", "N_LARGE"),
                    help="instead: peak memory of N_SMALL vs N_LARGE samples (batch = the last of --batches)")
    ap.add_argument("--nfe", type=int, help="override the demo's NFE")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    quiet_startup()
    torch.set_num_threads(args.threads)
    from dreamsampler.backbones import Backbone

    bb = Backbone.load("shapes")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run(args.task, 2, 2, 2, root / "warm", bb)                       # warm-up: allocator, kernels, text cache
        print(f"task={args.task} threads={args.threads} nfe={args.nfe or DEMO[args.task][1]['nfe']}")
        print(f"{'samples':>8s}{'B':>4s}{'wall s':>10s}{'samples/s':>11s}{'peak MiB':>10s}{'eval s':>8s}")
        configs = [(n, args.batches[-1]) for n in args.scale] if args.scale else \
            [(args.samples, b) for b in args.batches]
        results = []
        for n, b in configs:
            wall, peak, ev = run(args.task, n, b, args.nfe, root, bb)
            results.append((wall, peak))
            print(f"{n:8d}{b:4d}{wall:10.2f}{n / wall:11.3f}{peak / 2**20:10.1f}{ev:8.2f}", flush=True)
        (w0, p0), (w1, p1) = results[0], results[-1]
        if args.scale:
            print(f"peak memory {args.scale[1]} vs {args.scale[0]} samples: {p1 / max(p0, 1):.2f}x")
        else:
            print(f"samples/s B={configs[-1][1]} vs B={configs[0][1]}: {w0 / w1:.2f}x")


if __name__ == "__main__":
    main()
