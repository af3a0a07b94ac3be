"""The schedule as data: an iterable of reverse steps with ``state_dict``, so Lightning resumes it exactly."""

from __future__ import annotations

from typing import Iterator

from .timesteps import Schedule


class ReverseSchedule:
    """Yields one batch per reverse step (a dict of host scalars, see :mod:`dreamsampler.schedule.timesteps`).

    Returned directly by ``train_dataloader()``: Lightning's fit loop saves ``state_dict()`` in the loop state
    and restores it with ``load_state_dict()`` (see design/lightning.md), so a resumed run continues at the
    same step.
    """

    def __init__(self, schedule: Schedule | list[dict]) -> None:
        self._batches = list(schedule.steps if isinstance(schedule, Schedule) else schedule)
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
