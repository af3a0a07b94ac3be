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
