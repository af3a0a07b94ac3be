"""Text conditioning as one object, whatever the family needs: one row per prompt, indexable and batched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class Cond:
    """The denoiser's conditioning for N prompt rows: every tensor has the rows first — token embeddings
    (``hidden``), pooled embeddings (``pooled``) or whatever else a family's denoiser reads. Tasks only select,
    repeat and concatenate rows (``cond[rows]``, ``cond.repeat(n)``, ``Cond.cat``); what is inside is the family's
    business, so localized guidance, batches of samples and the text cache work the same for every family."""

    tensors: dict[str, Tensor]

    def __len__(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def __getitem__(self, rows) -> "Cond":
        if isinstance(rows, int):
            rows = slice(rows, rows + 1)
        return Cond({k: v[rows] for k, v in self.tensors.items()})

    def repeat(self, n: int) -> "Cond":
        """Every row ``n`` times in a row (a one-row null prompt for ``n`` samples)."""
        return Cond({k: v.repeat_interleave(n, dim=0) for k, v in self.tensors.items()})

    @staticmethod
    def cat(conds: Sequence["Cond"]) -> "Cond":
        keys = conds[0].tensors.keys()
        return Cond({k: torch.cat([c.tensors[k] for c in conds]) for k in keys})

    @staticmethod
    def stack(rows: Sequence[dict[str, Tensor]]) -> "Cond":
        """One ``Cond`` from per-prompt rows (each a dict of tensors without the row dimension)."""
        return Cond({k: torch.stack([r[k] for r in rows]) for k in rows[0]})
