"""A callback for the resume tests: SIGKILL its own process at the start of a chosen reverse step.

Used through the real CLI (``trainer.callbacks`` in a test config, with ``tests/`` on PYTHONPATH), so a run dies
at a reproducible moment — after the checkpoint of an earlier step, in the middle of the schedule."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAt(L.Callback):
    """``os.kill(getpid(), SIGKILL)`` when reverse step ``step`` (0-based) is about to run."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if int(batch["step"]) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class KillAtPredictBatch(L.Callback):
    """SIGKILL when predict batch ``batch`` (0-based) is about to run: the batches before it are written."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


def callbacks_yaml(kill_at: int | None) -> str:
    """The ``trainer.callbacks`` lines of a test config that kills the run at ``kill_at`` (empty for None)."""
    if kill_at is None:
        return ""
    return f"  callbacks:\n    - class_path: killer.KillAt\n      init_args: {{step: {kill_at}}}\n"


def run_with_killer(*args: str) -> "subprocess.CompletedProcess":
    """``dreamsampler <args>`` in a fresh interpreter that can import this module (``tests/`` on the path)."""
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "dreamsampler.cli", *args], cwd=tests.parent,
                          env=env, capture_output=True, text=True, timeout=300)


def fit_until_killed(config) -> "subprocess.CompletedProcess":
    """``dreamsampler fit -c config`` with the killer importable."""
    return run_with_killer("fit", "-c", str(config))


def kill_step(seed: int, tag: str, low: int, high: int) -> tuple[int, str]:
    """The reverse step to kill at, drawn from ``Random(f"{seed}:{tag}")`` in [low, high), and the replay hint."""
    import random

    step = random.Random(f"{seed}:{tag}").randrange(low, high)
    return step, f"(replay: DREAMSAMPLER_KILL_SEED={seed}, killed at reverse step {step})"


def resume_last(config, replay: str) -> None:
    """``dreamsampler fit -c config --ckpt_path last`` must succeed and really restore (not start afresh)."""
    from conftest import run_cli

    resumed = run_cli("fit", "-c", str(config), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stdout + resumed.stderr, replay
