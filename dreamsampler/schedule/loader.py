"""The schedule as data: an iterable of reverse steps with ``state_dict``, so Lightning resumes it exactly."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from .timesteps import alpha_bar


class ReverseSchedule:
    """Yields one batch per reverse step: ``{"step", "t", "t_prev", "alpha_bar_t", "alpha_bar_prev"}``.

    Returned directly by ``train_dataloader()``: Lightning's fit loop saves ``state_dict()`` in the loop state
    and restores it with ``load_state_dict()`` (see design/lightning.md), so a resumed run continues at the
    same step.
    """

    def __init__(self, timesteps: Tensor, alphas_cumprod: Tensor, final_alpha_cumprod: float) -> None:
        ts = [int(t) for t in timesteps]
        self._batches = [
            {
                "step": torch.tensor(i),
                "t": torch.tensor(t),
                "t_prev": torch.tensor(t_prev),
                "alpha_bar_t": torch.tensor(alpha_bar(alphas_cumprod, t, final_alpha_cumprod), dtype=torch.float64),
                "alpha_bar_prev": torch.tensor(alpha_bar(alphas_cumprod, t_prev, final_alpha_cumprod),
                                               dtype=torch.float64),
            }
            for i, (t, t_prev) in enumerate(zip(ts, ts[1:] + [-1]))
        ]
        self._next = 0

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> Iterator[dict]:
        while self._next < len(self._batches):
            batch = self._batches[self._next]
            self._next += 1
            yield batch
        self._next = 0

    def state_dict(self) -> dict:
        return {"next": self._next}

    def load_state_dict(self, state: dict) -> None:
        self._next = int(state["next"])
