"""Vector graphics on the step contract (eq. 21): outputs a person can open, exact resume, clear errors."""

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
from killer import callbacks_yaml, fit_until_killed, kill_step, resume_last
from dreamsampler.errors import DivergedError, InputError
from dreamsampler.tasks import SVGReconstructTask, TextToSVGTask
from test_raster_browser import browser_render

KILL_SEED = int(os.environ.get("DREAMSAMPLER_KILL_SEED", "20261202"))
SOURCE = REPO / "dreamsampler/assets/demo/green_square.png"


def small(**kw):
    """The demo's settings, shortened."""
    base = dict(prompt="a green square", image=str(SOURCE), prompt_suffix="", size=64, paths=8, segments=4,
                lr_points=4.0, lr_colors=0.02, lambda_dc=100.0, omega=3.0, backbone="shapes", nfe=6,
                inner_steps=2, trajectory_every=0)
    return {**base, **kw}


@pytest.mark.parametrize("demo, files", [
    ("recon", ("final.svg", "final.png", "measurement.png", "comparison.png", "checkpoints/last.svg")),
    ("text", ("final.svg", "final.png", "sample.png", "checkpoints/last.svg")),
])
def test_demo_writes_svg_that_a_browser_draws_like_the_png(tmp_path, demo, files):
    run = tmp_path / "demo"
    proc = run_cli("fit", "-c", f"configs/svg/demo_{demo}.yaml", "--model.init_args.nfe=12",
                   "--model.init_args.trajectory_every=1", "--trainer.log_every_n_steps=1",
                   f"--trainer.default_root_dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    noise = [line for line in (proc.stdout + proc.stderr).splitlines()
             if any(w in line.lower() for w in ("warn", "val_dataloader", "weights_only"))]
    assert not noise, noise                  # a new user sees the progress and the files written, nothing else
    for name in files:
        assert (run / name).is_file(), name
    if demo == "recon":
        assert Image.open(run / "comparison.png").size == (3 * 64, 64)      # measurement | result | truth
    png = torch.from_numpy(np.asarray(Image.open(run / "final.png").convert("RGB"), dtype=np.float64) / 255)
    shot = browser_render((run / "final.svg").read_text(), 64, 64, tmp_path / "browser")
    assert (shot - png).abs().mean() < 4e-3
    assert (run / "checkpoints/last.svg").read_text() == (run / "final.svg").read_text()   # saved at the end
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    assert {"raster", "z0_hat"} <= set(events.Tags()["images"])
    assert {"train/prox", "train/dc"} & set(events.Tags()["scalars"]) == (
        {"train/prox", "train/dc"} if demo == "recon" else {"train/prox"})


def write_config(tmp: Path, run: Path, kill_at: int | None = None) -> Path:
    cfg = tmp / ("killed.yaml" if kill_at is not None else f"{run.name}.yaml")
    callbacks = callbacks_yaml(kill_at)
    cfg.write_text(f"""
model:
  class_path: dreamsampler.tasks.SVGReconstructTask
  init_args:
    prompt: a green square
    image: {SOURCE}
    prompt_suffix: ""
    sigma_y: 0.05             # seeded measurement noise
    eta: 0.3                  # seeded renoising noise
    reinit_every: 3           # seeded re-initialization of dead paths
    min_opacity: 0.75
    size: 64
    paths: 8
    lr_points: 4.0
    lr_colors: 0.02
    lambda_dc: 100.0
    omega: 3.0
    backbone: shapes
    nfe: 16
    inner_steps: 3
    trajectory_every: 0
trainer:
  default_root_dir: {run}
  enable_progress_bar: false
{callbacks}checkpoint_every: 2
threads: 1
""")
    return cfg


def test_sigkill_then_resume_writes_a_byte_identical_svg(tmp_path):
    kill_at, replay = kill_step(KILL_SEED, "svg", 3, 15)
    full = run_cli("fit", "-c", str(write_config(tmp_path, tmp_path / "full")))
    assert full.returncode == 0, full.stderr[-3000:]
    run = tmp_path / "run"
    killed = fit_until_killed(write_config(tmp_path, run, kill_at))
    assert killed.returncode == -signal.SIGKILL, f"{replay} {killed.stderr[-2000:]}"
    assert not (run / "final.svg").exists()
    assert (run / "checkpoints/last.svg").read_text().startswith("<?xml"), replay    # a usable SVG was left
    resume_last(write_config(tmp_path, run), replay)
    assert (run / "final.svg").read_bytes() == (tmp_path / "full" / "final.svg").read_bytes(), replay


def fit(task, tmp_path, **kw):
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, **kw)
    trainer.fit(task)
    return trainer


def test_text_to_svg_runs_from_noise_without_measurement(shapes_backbone, tmp_path):
    task = TextToSVGTask(prompt="a red circle", prompt_suffix="", size=64, paths=4, backbone="shapes", nfe=3)
    task.backbone = shapes_backbone
    fit(task, tmp_path, enable_checkpointing=False)
    assert task.result_images()["final"].shape == (1, 3, 64, 64)
    assert task.result_texts()["final.svg"][0].count("<path") == 4


class Diverging(SVGReconstructTask):
    """The data term's weight turns NaN at reverse step 3, so Adam's update makes psi NaN inside that step."""

    def terms(self, g_out, latent, targets, step):
        terms = super().terms(g_out, latent, targets, step)
        if int(step["step"]) == 3:
            terms["dc"].weight = float("nan")
        return terms


def test_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(shapes_backbone, tmp_path):
    from dreamsampler.callbacks import RunCheckpoint

    task = Diverging(**small(t_range=[0, 1000]))       # the whole schedule: step 3 exists
    task.backbone = shapes_backbone
    ckpt = RunCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=2 * 2)
    with pytest.raises(DivergedError, match="NaN or infinite at reverse step 3"):
        fit(task, tmp_path, callbacks=[ckpt])
    saved = torch.load(tmp_path / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2 * 2 and torch.isfinite(saved["state_dict"]["generator.points"]).all()
    assert "nan" not in (tmp_path / "checkpoints/last.svg").read_text().lower()


def test_bad_svg_inputs(shapes_backbone, tmp_path):
    Image.new("RGB", (16, 16), "white").save(tmp_path / "y.png")
    with pytest.raises(InputError, match=r"measurement file .* is 16x16 \(WxH\), but Downsample of the 64x64 "
                                         r"canvas gives 8x8"):
        SVGReconstructTask(**{**small(), "image": None, "measurement": str(tmp_path / "y.png")})
    with pytest.raises(InputError, match="paths must be a positive integer"):
        SVGReconstructTask(**small(paths=0))
    with pytest.raises(InputError, match="give exactly one of `image`"):
        SVGReconstructTask(**small(image=None))
    bad = tmp_path / "text.svg"
    bad.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><text x="1" y="9">hi</text></svg>')
    task = TextToSVGTask(samples=[{"prompt": "a red circle", "init_svg": str(bad)}], prompt_suffix="", size=64,
                         paths=4, backbone="shapes", nfe=2)
    task.backbone = shapes_backbone
    with pytest.raises(InputError, match=r"text\.svg.*<text>"):
        fit(task, tmp_path, enable_checkpointing=False)


def test_dataset_predict_writes_each_samples_svg(tmp_path):
    from dreamsampler.cli import DreamSamplerCLI
    from dreamsampler.io.svg import read_svg

    manifest = tmp_path / "svgs.jsonl"
    manifest.write_text(f'{{"prompt": "a green square", "image": "{SOURCE}", "name": "sq"}}\n'
                        f'{{"prompt": "a green square", "image": "{SOURCE}", "name": "sq2"}}\n')
    run = tmp_path / "run"
    DreamSamplerCLI(args=["predict", "--model", "dreamsampler.tasks.SVGReconstructTask", "--model.prompt_suffix=",
                          "--model.size=64", "--model.paths=4", "--model.nfe=2", "--model.backbone=shapes",
                          "--data", "dreamsampler.data.EditManifest", f"--data.manifest={manifest}",
                          "--data.batch_size=2", f"--trainer.default_root_dir={run}",
                          "--trainer.enable_progress_bar=false"])
    for name in ("sq", "sq2"):
        scene = read_svg(run / "predictions" / f"{name}_final.svg")
        assert scene.points.shape[0] == 4 and (run / "predictions" / f"{name}_comparison.png").is_file()
