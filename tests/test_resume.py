"""`fit` killed with SIGKILL mid-run and resumed with `--ckpt_path last` ends bit-identical to an uninterrupted run.

The kill moment is drawn from a seeded RNG (``DREAMSAMPLER_KILL_SEED``, printed on failure), so a failing kill
can be replayed exactly; the run dies inside the process at the start of that reverse step (``killer.KillAt``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from killer import callbacks_yaml, fit_until_killed, kill_step, resume_last

KILL_SEED = int(os.environ.get("DREAMSAMPLER_KILL_SEED", "20261202"))
EVERY = 2                                                 # checkpoint every 2 reverse steps

SGD_ETA = dict(nfe=40, inner_steps=1, extra="    eta: 0.5          # stochastic renoising: the noise must survive too\n")
ADAM_INNER = dict(nfe=30, inner_steps=3, extra="""    eta: 0.3
    optimizer:
      class_path: torch.optim.Adam
      init_args: {lr: 0.05, betas: [0.9, 0.9], eps: 1.0e-6}
    lr_scheduler:
      class_path: torch.optim.lr_scheduler.LinearLR
      init_args: {start_factor: 1.0, end_factor: 0.4, total_iters: 30}
""")


def write_config(tmp: Path, image: Path, name: str, case: dict, kill_at: int | None = None) -> Path:
    cfg = tmp / f"{name}.yaml"
    callbacks = callbacks_yaml(kill_at)
    cfg.write_text(f"""
model:
  class_path: {case.get('class_path', 'dreamsampler.tasks.EditTask')}
  init_args:
    image: {image}
    prompt: a blue circle
    size: 16
    backbone: {case.get('backbone', 'tiny')}
    nfe: {case['nfe']}
    inner_steps: {case['inner_steps']}
{case['extra']}trainer:
  default_root_dir: {tmp / 'run' if kill_at is not None or name.startswith('resume') else tmp / name}
  enable_progress_bar: false
{callbacks}checkpoint_every: {EVERY}
""")
    return cfg


def final_state(run: Path, case: dict) -> dict:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == case["nfe"] * case["inner_steps"]
    return ckpt


#: a rectified-flow backbone (Core v3): eq. 5's flow analog, Adam with 2 inner steps
SD3_ADAM_ETA = dict(nfe=16, inner_steps=2, backbone="tiny-sd3", extra="""    eta: 0.5
    optimizer:
      class_path: torch.optim.Adam
      init_args: {lr: 0.05, betas: [0.9, 0.9]}
""")


#: a score-distillation baseline: i.i.d. keyed t, eps and eps_prev per iteration, Adam (its state must resume)
PDS_ADAM = dict(nfe=20, inner_steps=1, class_path="dreamsampler.tasks.PDSEditTask", extra="""    source_prompt: a red circle
    guidance_scale: 7.5
""")


@pytest.mark.parametrize("case", [SGD_ETA, ADAM_INNER, SD3_ADAM_ETA, PDS_ADAM],
                         ids=["sgd-eta", "adam-3-inner-steps-lr-schedule", "sd3-adam-eta", "pds-baseline"])
def test_sigkill_then_resume_is_bit_identical(red_circle, tmp_path, case):
    kill_at, replay = kill_step(KILL_SEED, f"{case.get('backbone', '')}{case['inner_steps']}", EVERY + 1,
                                case["nfe"] - 1)
    full = run_cli("fit", "-c", str(write_config(tmp_path, red_circle, "full", case)))
    assert full.returncode == 0, full.stderr[-3000:]

    killed = fit_until_killed(write_config(tmp_path, red_circle, "killed", case, kill_at))
    assert killed.returncode == -signal.SIGKILL, f"{replay} {killed.stderr[-2000:]}"
    run = tmp_path / "run"
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert saved == (kill_at // EVERY) * EVERY * case["inner_steps"], replay   # the last periodic checkpoint
    assert not (run / "edited.png").exists()

    resume_last(write_config(tmp_path, red_circle, "resume", case), replay)              # not a fresh start
    ours, ref = final_state(run, case), final_state(tmp_path / "full", case)
    for key in ("generator.psi", "eps_tilde"):
        assert torch.equal(ours["state_dict"][key], ref["state_dict"][key]), f"{key} differs {replay}"
    assert ours["lr_schedulers"] == ref["lr_schedulers"], replay
    assert (run / "edited.png").read_bytes() == (tmp_path / "full" / "edited.png").read_bytes(), replay
