"""Inpainting through the real CLI: outputs, exact resume after SIGKILL, validate; quality on the shapes prior."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
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


@pytest.fixture(scope="module")
def quality(shapes_backbone, tmp_path_factory):
    """One batched run for DreamSampler and one for TReg's initialization (omega = 3), shared by the tests."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("inpaint_quality")
    samples, truths = [], []
    for i, (color, shape, target) in enumerate(CASES):
        x = torch.from_numpy(shapes.render_shape(color, shape, center=(0.5, 0.5), size=0.5)).permute(2, 0, 1)
        save_image(x, tmp / f"case{i}.png")
        samples.append({"image": str(tmp / f"case{i}.png"), "holes": [{"prompt": shapes.caption(target, shape),
                                                                        "box": HOLE}]})
        truths.append(x)
    truth = torch.stack(truths)
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
        top, left, bottom, right = HOLE
        colors = [shapes.dominant_color(out[b][:, top:bottom, left:right]) for b in range(len(CASES))]
        table[name] = {"known_psnr": float((10 * torch.log10(1 / mse)).min()),
                       "hole_color": sum(c == t for c, (_, _, t) in zip(colors, CASES))}
    print(f"\n[inpaint] {table}")
    return table


def test_known_pixels_are_kept(quality):
    assert quality["dreamsampler"]["known_psnr"] >= 30, quality


def test_hole_takes_the_prompted_color(quality):
    assert quality["dreamsampler"]["hole_color"] >= 8, quality
