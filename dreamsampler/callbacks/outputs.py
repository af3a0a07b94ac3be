"""Callbacks that write what a person looks at: result PNGs, and z0_hat trajectories in TensorBoard."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from ..io.images import save_image


def run_dir(trainer: L.Trainer) -> Path:
    """The run directory: the logger's directory, else ``trainer.default_root_dir``."""
    return Path(trainer.log_dir or trainer.default_root_dir)


class ExportResults(L.Callback):
    """At the end of ``fit``, write each of ``pl_module.result_images()`` as ``<run dir>/<name>.png``."""

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            images = pl_module.result_images()
        for name, img in images.items():
            path = save_image(img, run_dir(trainer) / f"{name}.png")
            print(f"dreamsampler: wrote {path}")


class LogTrajectory(L.Callback):
    """Log the decoded z0_hat that the task stored (every ``trajectory_every`` steps) to TensorBoard."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        z = getattr(pl_module, "last_z0_hat", None)
        if z is None or not trainer.is_global_zero:
            return
        pl_module.last_z0_hat = None
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                with torch.no_grad():
                    img = pl_module.decode_latent(z)[0].float().cpu()
                logger.experiment.add_image("z0_hat", img, global_step=int(batch["step"]))


class WritePredictions(BasePredictionWriter):
    """Write each predicted sample as it finishes: ``<run dir>/predictions/<name>.png`` (+ other images as
    ``<name>_<key>.png``), atomically, from whichever rank computed it."""

    def __init__(self) -> None:
        super().__init__(write_interval="batch")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        out = Path(trainer.default_root_dir) / "predictions"
        for sample in prediction or []:
            name = sample["name"]
            images = [(k, v) for k, v in sample.items() if k != "name"]     # the first one is the main result
            for i, (key, img) in enumerate(images):
                save_image(img, out / (f"{name}.png" if i == 0 else f"{name}_{key}.png"))
