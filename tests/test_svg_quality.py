"""SVG quality on the shipped shapes prior (issue: vector graphics, item 5). Each table is ONE batched run per
setting, shared by its tests; the figures are printed (``-s``) and recorded in docs/benchmarks.md.

Measured targets that this prior does not reach are strict xfails carrying the measured numbers, not dropped."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio as psnr

from dreamsampler import shapes
from dreamsampler.io.images import save_image
from dreamsampler.operators import Downsample, GaussianBlur
from dreamsampler.tasks import SVGReconstructTask, TextToSVGTask

#: held-out images of the shapes world: every color, every shape, several positions and sizes
CASES = [("red", "circle", (0.45, 0.5), 0.5), ("green", "square", (0.55, 0.45), 0.45),
         ("blue", "triangle", (0.5, 0.55), 0.55), ("yellow", "square", (0.4, 0.6), 0.4),
         ("purple", "circle", (0.6, 0.4), 0.45), ("orange", "triangle", (0.45, 0.45), 0.5),
         ("red", "square", (0.5, 0.5), 0.35), ("green", "triangle", (0.55, 0.6), 0.45),
         ("blue", "circle", (0.35, 0.45), 0.4), ("purple", "triangle", (0.5, 0.4), 0.5)]
SETTINGS = dict(prompt_suffix="", size=64, paths=16, segments=4, lr_points=4.0, lr_colors=0.02, lambda_dc=100.0,
                omega=3.0, backbone="shapes", nfe=50, inner_steps=3, trajectory_every=0)
OPERATORS = {"sr8": lambda: Downsample(8), "blur": lambda: GaussianBlur(size=13, sigma=2.0)}


def fit(task, tmp):
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp).fit(task)


@pytest.fixture(scope="module")
def truth_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svg_quality")
    files = []
    for i, (color, shape, center, size) in enumerate(CASES):
        x = torch.from_numpy(shapes.render_shape(color, shape, center=center, size=size)).permute(2, 0, 1)
        files.append(save_image(x, tmp / f"{color}_{shape}_{i}.png"))
    return files


@pytest.fixture(scope="module", params=sorted(OPERATORS))
def table(request, truth_files, shapes_backbone, tmp_path_factory):
    """One batched run with the prior (DreamSampler) and one with lambda_sds = 0 (data consistency alone)."""
    torch.set_num_threads(1)
    samples = [{"prompt": shapes.caption(c, s), "image": str(f)} for (c, s, *_), f in zip(CASES, truth_files)]
    rows = {}
    for name, lambda_sds in (("dreamsampler", 1.0), ("dc_only", 0.0)):
        task = SVGReconstructTask(samples=samples, operator=OPERATORS[request.param](), lambda_sds=lambda_sds,
                                  **SETTINGS)
        task.backbone = shapes_backbone
        fit(task, tmp_path_factory.mktemp(name))
        with torch.no_grad():
            rows[name] = task.result_images()["final"]
        truth, bicubic = task.svg_batch.truth, task.bicubic_baseline()
    rows["bicubic"] = bicubic
    per_image = {k: [float(psnr(v[b:b + 1], truth[b:b + 1], data_range=1.0)) for b in range(len(CASES))]
                 for k, v in rows.items()}
    read_back = {k: sum(shapes.dominant_color(v[b]) == c and shapes.classify_shape(v[b]) == s
                        for b, (c, s, *_) in enumerate(CASES)) for k, v in rows.items() if k != "bicubic"}
    mean = {k: sum(v) / len(v) for k, v in per_image.items()}
    print(f"\n[{request.param}] mean PSNR " + ", ".join(f"{k} {v:.2f} dB" for k, v in mean.items())
          + "; checker reads color+shape: " + ", ".join(f"{k} {v}/{len(CASES)}" for k, v in read_back.items()))
    return {"operator": request.param, "mean": mean, "read_back": read_back}


def test_reconstruction_beats_bicubic_upsampling(table):
    assert table["mean"]["dreamsampler"] > table["mean"]["bicubic"], table


def test_checker_reads_back_color_and_shape(table):
    assert table["read_back"]["dreamsampler"] >= 8, table


@pytest.mark.xfail(strict=True, reason="measured on this prior: data consistency alone reconstructs these flat "
                   "shapes better (sr8: see docs/benchmarks.md); the prior's pull costs PSNR here")
def test_prior_helps_beyond_data_consistency(table):
    assert table["mean"]["dreamsampler"] > table["mean"]["dc_only"], table


PAIRS = [(c, s, seed) for seed, (c, s) in enumerate(
    [(c, s) for c in ("red", "green", "blue", "yellow", "purple", "orange") for s in ("circle", "square")])]


@pytest.fixture(scope="module")
def text_table(shapes_backbone, tmp_path_factory):
    """Text-to-SVG for 12 (prompt, seed) pairs in one batched run (the seed is the sample's noise key)."""
    torch.set_num_threads(1)
    settings = {k: v for k, v in SETTINGS.items() if k != "lambda_dc"}
    task = TextToSVGTask(samples=[{"prompt": shapes.caption(c, s), "name": f"{c}_{s}_{seed}"}
                                  for c, s, seed in PAIRS], **settings)
    task.backbone = shapes_backbone
    fit(task, tmp_path_factory.mktemp("text_to_svg"))
    with torch.no_grad():
        final = task.result_images()["final"]
    color = sum(shapes.dominant_color(final[b]) == c for b, (c, _, _) in enumerate(PAIRS))
    both = sum(shapes.dominant_color(final[b]) == c and shapes.classify_shape(final[b]) == s
               for b, (c, s, _) in enumerate(PAIRS))
    print(f"\n[text-to-svg] checker reads the prompt on {both}/{len(PAIRS)} (color alone {color}/{len(PAIRS)})")
    return {"both": both, "color": color}


@pytest.mark.xfail(strict=True, reason="measured on this prior: the checker reads the prompt on about 1 in 6 "
                   "(see docs/benchmarks.md); the 64² SVG does not follow the tiny prior's targets closely enough")
def test_text_to_svg_reads_back_the_prompt(text_table):
    assert text_table["both"] >= 0.8 * len(PAIRS), text_table
