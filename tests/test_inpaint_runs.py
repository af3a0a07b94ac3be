"""Inpainting through the real CLI: outputs, exact resume after SIGKILL, validate; quality on the shapes prior."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, run_cli
from dreamsampler import shapes
from dreamsampler.io.images import save_image
from dreamsampler.tasks import InpaintTask
from killer import callbacks_yaml, fit_until_killed, kill_step, resume_last

KILL_SEED = int(os.environ.get("DREAMSAMPLER_KILL_SEED", "20261202"))


def write_config(tmp: Path, run: Path, kill_at: int | None = None) -> Path:
    cfg = tmp / ("killed.yaml" if kill_at is not None else f"{run.name}.yaml")
    cfg.write_text(f"""
model:
  class_path: dreamsampler.tasks.InpaintTask
  init_args:
    image: {REPO / 'dreamsampler/assets/demo/red_circle.png'}
    holes:
      - {{prompt: a blue circle, box: [12, 12, 52, 52]}}
    null_prompt: ""
    size: 64
    backbone: shapes
    nfe: 14
    trajectory_every: 5
trainer:
  default_root_dir: {run}
  enable_progress_bar: false
{callbacks_yaml(kill_at)}checkpoint_every: 2
threads: 1
""")
    return cfg


def test_outputs_and_sigkill_resume_are_bit_identical(tmp_path):
    kill_at, replay = kill_step(KILL_SEED, "inpaint", 3, 13)
    full = run_cli("fit", "-c", str(write_config(tmp_path, tmp_path / "full")))
    assert full.returncode == 0, full.stderr[-3000:]
    for name in ("inpainted.png", "measurement.png", "mask_overlay.png", "comparison.png"):
        assert (tmp_path / "full" / name).is_file(), name
    assert Image.open(tmp_path / "full" / "comparison.png").size == (3 * 64, 64)
    run = tmp_path / "run"
    killed = fit_until_killed(write_config(tmp_path, run, kill_at))
    assert killed.returncode == -signal.SIGKILL, f"{replay} {killed.stderr[-2000:]}"
    resume_last(write_config(tmp_path, run), replay)
    assert (run / "inpainted.png").read_bytes() == (tmp_path / "full" / "inpainted.png").read_bytes(), replay
    val = run_cli("validate", "-c", str(write_config(tmp_path, run)), "--ckpt_path", "last")
    assert val.returncode == 0 and "val/known_psnr" in val.stdout, val.stderr[-2000:]


#: one shape per image, a hole over the shape, the prompt naming another color
CASES = [("red", "circle", "blue"), ("green", "square", "yellow"), ("blue", "triangle", "orange"),
         ("yellow", "circle", "purple"), ("purple", "square", "red"), ("orange", "triangle", "green"),
         ("red", "square", "green"), ("green", "circle", "red"), ("blue", "square", "yellow"),
         ("purple", "circle", "orange")]
HOLE = [12, 12, 52, 52]
#: two shapes side by side, a hole over each, each hole's prompt naming its own new color:
#: (color, shape) left, (color, shape) right, target left, target right
TWO_CASES = [("red", "circle", "blue", "square", "green", "yellow"),
             ("green", "square", "purple", "circle", "red", "orange"),
             ("blue", "triangle", "red", "square", "yellow", "purple"),
             ("yellow", "circle", "blue", "circle", "purple", "green"),
             ("purple", "square", "green", "triangle", "orange", "red"),
             ("orange", "circle", "blue", "square", "red", "green"),
             ("red", "square", "yellow", "triangle", "blue", "purple"),
             ("green", "circle", "orange", "square", "yellow", "red"),
             ("blue", "square", "purple", "circle", "orange", "yellow"),
             ("purple", "triangle", "red", "circle", "green", "blue")]
TWO_HOLES = ([18, 2, 46, 30], [18, 34, 46, 62])


def two_shapes(left: tuple[str, str], right: tuple[str, str]) -> torch.Tensor:
    a = shapes.render_shape(*left, center=(0.25, 0.5), size=0.36)
    b = shapes.render_shape(*right, center=(0.75, 0.5), size=0.36)
    return torch.from_numpy(np.where(b.sum(-1, keepdims=True) < 2.99, b, a)).permute(2, 0, 1)


def hole_color(img: torch.Tensor, box) -> str | None:
    top, left, bottom, right = box
    return shapes.dominant_color(img[:, top:bottom, left:right])


@pytest.fixture(scope="module")
def quality(shapes_backbone, tmp_path_factory):
    """The quality table: one batched run (the one-hole and the two-hole cases together) for DreamSampler and one
    for TReg's initialization (omega = 3), shared by the tests."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("inpaint_quality")
    samples, truths = [], []
    for i, (color, shape, *rest) in enumerate(CASES + TWO_CASES):
        if len(rest) == 1:
            x, holes = shapes.render_shape(color, shape, center=(0.5, 0.5), size=0.5), [(rest[0], shape, HOLE)]
            x = torch.from_numpy(x).permute(2, 0, 1)
        else:
            x, holes = two_shapes((color, shape), rest[:2]), list(zip(rest[2:], (shape, rest[1]), TWO_HOLES))
        save_image(x, tmp / f"case{i}.png")
        samples.append({"image": str(tmp / f"case{i}.png"),
                        "holes": [{"prompt": shapes.caption(t, sh), "box": box} for t, sh, box in holes]})
        truths.append(x)
    truth, n1 = torch.stack(truths), len(CASES)
    table = {}
    for name, omega in (("dreamsampler", None), ("treg_init", 3.0)):
        task = InpaintTask(samples=samples, null_prompt="", size=64, backbone="shapes", nfe=60, treg_omega=omega,
                           trajectory_every=0)
        task.backbone = shapes_backbone
        L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, default_root_dir=tmp, limit_val_batches=0).fit(task)
        with torch.no_grad():
            out = task.result_images()["inpainted"]
        known = task.known.cpu()
        mse = ((known * (out - truth)) ** 2).flatten(1).sum(1) / (3 * known.flatten(1).sum(1))
        psnr = 10 * torch.log10(1 / mse)
        one = [hole_color(out[b], HOLE) == t for b, (_, _, t) in enumerate(CASES)]
        two = [[hole_color(out[n1 + b], box) for box in TWO_HOLES] for b in range(len(TWO_CASES))]
        table[name] = {"known_psnr": float(psnr[:n1].min()), "hole_color": sum(one),
                       "two_known_psnr": float(psnr[n1:].min()),
                       "two_own_color": sum(c == t for cs, case in zip(two, TWO_CASES) for c, t in zip(cs, case[4:])),
                       "two_other_color": sum(c == t for cs, case in zip(two, TWO_CASES)
                                              for c, t in zip(cs, case[4:][::-1])),
                       "two_empty": sum(c is None for cs in two for c in cs)}
    print(f"\n[inpaint] {table}")
    return table


def test_known_pixels_are_kept(quality):
    assert quality["dreamsampler"]["known_psnr"] >= 30, quality


def test_hole_takes_the_prompted_color(quality):
    assert quality["dreamsampler"]["hole_color"] >= 8, quality


def test_two_holes_never_take_the_other_holes_prompt(quality):
    """Each hole is guided by its own prompt (eq. 19/20): no hole of the 2 x 10 shows the other hole's color, and the
    known pixels stay >= 30 dB."""
    assert quality["dreamsampler"]["two_other_color"] == 0, quality
    assert quality["dreamsampler"]["two_known_psnr"] >= 30, quality


def test_two_holes_each_take_their_own_color(quality):
    """Each of the 2 x 10 holes shows its own prompt's color: measured 10/20 (2026-12-03), asserted >= 8/20.

    The shapes prior draws one shape per image (its whole training set): of two holes it fills one with that hole's
    color and leaves the other empty. The 70 % bar lives where it can be met, on the scenes-and-faces prior
    (``tests/test_world_prior.py::test_two_holes_each_take_their_own_attribute``); this bar only keeps today's rate."""
    own = quality["dreamsampler"]["two_own_color"]
    print(f"\n[inpaint] two holes: {own}/20 show their own prompt's color")
    assert own >= 8, quality
