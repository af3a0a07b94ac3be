"""Tasks whose result ``dreamsampler validate`` (and the end of ``fit``) scores."""

from __future__ import annotations

from torch import Tensor

from ..errors import InputError
from .base import DreamSamplerTask


class ValidatedTask(DreamSamplerTask):
    """A task whose result ``dreamsampler validate`` (and the end of ``fit``) scores: it implements
    ``val_metrics()``, logged as one validation "batch" (the current result)."""

    def val_metrics(self) -> dict[str, Tensor]:
        """Named scalar metrics of the current result (e.g. faithfulness to the source)."""
        raise NotImplementedError

    def val_dataloader(self) -> list[int]:
        return [0]

    def validation_step(self, batch: int, batch_idx: int) -> None:
        if not bool(self.initialized):
            raise InputError("nothing to validate: the run has no result yet (pass --ckpt_path with a checkpoint "
                             "of this run, e.g. --ckpt_path last)")
        self.log_dict(self.val_metrics(), batch_size=len(self.sample_names))
