"""`fit` killed with SIGKILL at a random step and resumed with `--ckpt_path last` ends bit-identical."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from conftest import REPO, run_cli

NFE = 150


def write_config(tmp: Path, image: Path, name: str) -> Path:
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(f"""
model:
  class_path: dreamsampler.tasks.EditTask
  init_args:
    image: {image}
    prompt: a blue circle
    size: 16
    backbone: tiny
    nfe: {NFE}
    eta: 0.5          # stochastic renoising: the (seed, step) noise must also survive the restart
trainer:
  default_root_dir: {tmp / name}
  enable_progress_bar: false
checkpoint_every: 2
""")
    return cfg


def final_psi(run: Path) -> torch.Tensor:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == NFE
    return ckpt["state_dict"]["generator.psi"]


def start_fit(cfg: Path) -> tuple[subprocess.Popen, float]:
    """Start ``dreamsampler fit`` and return it once its first checkpoint exists, with that time."""
    proc = subprocess.Popen([sys.executable, "-m", "dreamsampler.cli", "fit", "-c", str(cfg)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = Path(str(cfg)[:-5]) / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    return proc, time.time()


def test_sigkill_then_resume_is_bit_identical(red_circle, tmp_path):
    full, first_ckpt = start_fit(write_config(tmp_path, red_circle, "full"))
    assert full.wait() == 0
    span = time.time() - first_ckpt                # how long the steps after the first checkpoint take

    cfg = write_config(tmp_path, red_circle, "killed")
    run = tmp_path / "killed"
    last = run / "checkpoints" / "last.ckpt"
    proc, _ = start_fit(cfg)
    time.sleep(random.uniform(0.0, 0.4 * span))    # a random later step (span includes teardown)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < killed_at < NFE, f"kill landed at step {killed_at}: the run was not interrupted"
    assert not (run / "edited.png").exists()

    resumed = run_cli("fit", "-c", str(cfg), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stdout + resumed.stderr   # not a fresh start
    assert torch.equal(final_psi(run), final_psi(tmp_path / "full")), f"differs after a kill at step {killed_at}"
    assert (run / "edited.png").read_bytes() == (tmp_path / "full" / "edited.png").read_bytes()
