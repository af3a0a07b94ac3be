"""Shared fixtures: offline tiny backbone, a small source image, a runner for the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for modules of tiny tensors: more gain little, and OpenMP threads spin-wait on a
    shared or oversubscribed CPU (measured 5-8x slower with 2 threads while other jobs ran)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_backbone():
    from dreamsampler.backbones import Backbone

    return Backbone.load("tiny")


@pytest.fixture(scope="session")
def shapes_backbone():
    """The shipped prior: trained, so its trajectories do not amplify rounding the way random weights do."""
    from dreamsampler.backbones import SHAPES_PRIOR_DIR, Backbone

    if not (SHAPES_PRIOR_DIR / "model_index.json").is_file():
        pytest.fail(f"the shipped prior is missing at {SHAPES_PRIOR_DIR}")
    return Backbone.load("shapes")


@pytest.fixture(scope="session")
def world_backbone():
    """The shipped scenes-and-faces prior (the miniature Tables 1 and 2)."""
    from dreamsampler.backbones import WORLD_PRIOR_DIR, Backbone

    if not (WORLD_PRIOR_DIR / "model_index.json").is_file():
        pytest.fail(f"the shipped scenes-and-faces prior is missing at {WORLD_PRIOR_DIR}")
    return Backbone.load("scenes-faces")


@pytest.fixture(scope="session")
def red_circle(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "red_circle.png"
    img = Image.new("RGB", (40, 40), "white")
    ImageDraw.Draw(img).ellipse([8, 6, 30, 28], fill=(220, 30, 30))
    img.save(path)
    return path


def run_cli(*args: str, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    """``dreamsampler <args>`` in a fresh interpreter (what a user types)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "dreamsampler.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def fit_task(task, backbone, tmp: Path):
    """Fit a task over its samples in one batch on a given backbone; its first result image (B, 3, S, S)."""
    import lightning as L
    import torch

    task.backbone = backbone
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp, limit_val_batches=0).fit(task)
    with torch.no_grad():
        return next(iter(task.result_images().values()))
