"""The SVG tables of docs/benchmarks.md on the shipped shapes prior, each candidate one batched run (CPU).

    python tools/svg_tables.py text                # text-to-SVG candidates, 18 (prompt, seed) pairs
    python tools/svg_tables.py recon               # reconstruction: y decides (usual x8), y leaves the shape open (x16)
    python tools/svg_tables.py text --only paper sample-250 --out runs/svg_tables

Each row prints as it finishes; ``--out`` keeps a strip of every row's results (PNG) for looking at.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio as psnr

from dreamsampler import shapes
from dreamsampler.io.images import save_image
from dreamsampler.operators import Downsample, GaussianBlur
from dreamsampler.tasks import SVGReconstructTask, TextToSVGTask

BASE = dict(prompt_suffix="", size=64, paths=16, segments=4, lr_points=4.0, lr_colors=0.02, omega=3.0,
            backbone="shapes", nfe=50, inner_steps=3, trajectory_every=0)

#: text-to-SVG candidates: (name, settings, what it tries)
TEXT = [
    ("paper", dict(init="circles"), "random circles, whole schedule, latent proximal, constant weight"),
    ("time-weight", dict(init="circles", time_weight=True), "eq. 21 with lambda_dc = 0: (1 - alpha_bar_t) weight"),
    ("pixel", dict(init="circles", proximal="pixel"), "proximal term against D(ẑ₀) in pixel space"),
    ("pixel-lr", dict(init="circles", proximal="pixel", lr_colors=0.1), "pixel, color lr x5"),
    ("sample-500", dict(init="sample", t_range=(0, 500)), "raster sample vectorized, refined over t <= 500"),
    ("sample-250", dict(init="sample"), "the default: raster sample vectorized, refined over t <= 250"),
    ("sample-250-pixel", dict(init="sample", proximal="pixel"), "the default with the pixel-space proximal term"),
]

#: reconstruction candidates (lambda_dc 100); the task's defaults are the last row
PAPER = dict(init="circles", proximal="latent", gamma=None, t_range=None)
RECON = [
    ("dc-only", dict(PAPER, lambda_sds=0.0), "data consistency alone (no prior), gamma = alpha_bar_t"),
    ("paper", PAPER, "eq. 21: random circles, whole schedule, latent proximal, gamma = alpha_bar_t"),
    ("measurement-250", dict(PAPER, init="measurement", t_range=(0, 250)),
     "paths fitted to y first, refined over t <= 250 (latent, gamma = alpha_bar_t)"),
    ("pixel-250", dict(init="measurement", gamma=None), "the same with the pixel-space proximal term"),
    ("pixel-250-gamma-0.5", dict(gamma=0.5), "the same with a constant gamma = 0.5"),
    ("pixel-500-gamma-0.5", dict(gamma=0.5, t_range=(0, 500)), "gamma = 0.5 refined over t <= 500"),
    ("latent-250-gamma-0.9", dict(proximal="latent"), "the default with the latent proximal term"),
    ("pixel-250-gamma-0.9", dict(), "the default: paths fitted to y, pixel proximal, gamma = 0.9, t <= 250"),
]

#: (set, images, operator): y decides (x8), y cannot decide the shape (x16 of the usual sizes, 8-10 px at x8)
SETS = [("usual x8", (12, 123, (20, 26)), 8), ("usual blur", (12, 123, (20, 26)), "blur"),
        ("usual x16", (12, 123, (20, 26)), 16), ("small x8", (12, 321, (8, 10)), 8)]

PAIRS = [(c, s, seed) for seed, (c, s) in enumerate((c, s) for c in shapes.COLORS[:6] for s in shapes.SHAPES)]


def fit(task, root: Path) -> torch.Tensor:
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=root).fit(task)
    with torch.no_grad():
        return task.result_images()["final"]


def read_back(images: torch.Tensor, labels) -> tuple[int, int]:
    got = [shapes.describe(images[b]) for b in range(len(labels))]
    return (sum(g == (c, s) for g, (c, s) in zip(got, labels)), sum(g[1] == s for g, (_, s) in zip(got, labels)))


def text_table(rows, out: Path) -> None:
    print("| candidate | color + shape | color | s | what |\n|---|---|---|---|---|", flush=True)
    labels = [(c, s) for c, s, _ in PAIRS]
    for name, kw, what in rows:
        task = TextToSVGTask(samples=[{"prompt": shapes.caption(c, s), "name": f"{c}_{s}_{seed}"}
                                      for c, s, seed in PAIRS], **{**BASE, **kw})
        t0 = time.time()
        final = fit(task, out / name)
        save_image(torch.cat(list(final), 2), out / f"text_{name}.png")
        both, _ = read_back(final, labels)
        color = sum(shapes.dominant_color(final[b]) == c for b, (c, _) in enumerate(labels))
        print(f"| {name} | {both}/{len(PAIRS)} | {color}/{len(PAIRS)} | {time.time() - t0:.0f} | {what} |", flush=True)


def recon_table(rows, out: Path) -> None:
    print("| set | candidate | color + shape | shape | PSNR dB | s | what |\n|---|---|---|---|---|---|---|", flush=True)
    for set_name, (n, seed, size_px), factor in SETS:
        labels = shapes.held_out(n, seed, size_px)
        tag = set_name.replace(" ", "_")
        files = []
        for i, lab in enumerate(labels):
            x = torch.from_numpy(shapes.render_shape(lab.color, lab.shape, center=lab.center, size=lab.size))
            files.append(str(save_image(x.permute(2, 0, 1), out / tag / f"{lab.color}_{lab.shape}_{i}.png")))
        samples = [{"prompt": lab.caption, "image": f} for lab, f in zip(labels, files)]
        for name, kw, what in rows:
            op = GaussianBlur(size=13, sigma=2.0) if factor == "blur" else Downsample(factor)
            task = SVGReconstructTask(samples=samples, operator=op, **{**BASE, "lambda_dc": 100.0, **kw})
            t0 = time.time()
            final = fit(task, out / tag / name)
            truth = task.svg_batch.truth
            save_image(torch.cat([torch.cat(list(truth), 2), torch.cat(list(final), 2)], 1),
                       out / f"recon_{tag}_{name}.png")
            both, shape = read_back(final, [(lab.color, lab.shape) for lab in labels])
            p = sum(float(psnr(final[b:b + 1], truth[b:b + 1], data_range=1.0)) for b in range(n)) / n
            print(f"| {set_name} | {name} | {both}/{n} | {shape}/{n} | {p:.2f} | {time.time() - t0:.0f} | {what} |",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", choices=("text", "recon"))
    ap.add_argument("--only", nargs="*", help="candidate names (default: all)")
    ap.add_argument("--out", type=Path, default=Path("runs/svg_tables"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = TEXT if args.table == "text" else RECON
    if args.only:
        unknown = set(args.only) - {r[0] for r in rows}
        if unknown:
            ap.error(f"unknown candidates {sorted(unknown)}; expected some of {[r[0] for r in rows]}")
        rows = [r for r in rows if r[0] in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    (text_table if args.table == "text" else recon_table)(rows, args.out)


if __name__ == "__main__":
    main()
