"""The one place noise comes from: generators seeded by (run seed, step, sample key), never global state."""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

SampleKey = int | str


def rng(seed: int, step: int = 0, sample: SampleKey = 0, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` whose state depends only on ``(seed, step, sample)``: reproducible across restarts.

    ``sample`` is the sample's key (its name in a dataset), so a sample gets the same noise alone or in a batch."""
    digest = hashlib.sha256(f"{int(seed)}:{int(step)}:{sample}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def randn(shape: tuple[int, ...], seed: int, step: int, sample: SampleKey = 0, device: str | torch.device = "cpu",
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise for ``(seed, step, sample)``, drawn on the CPU so every device gets the same numbers."""
    return torch.randn(shape, generator=rng(seed, step, sample), dtype=torch.float32).to(device, dtype)


def randn_batch(shape: tuple[int, ...], seed: int, step: int, samples: Sequence[SampleKey],
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, *shape) noise, row b from ``(seed, step, samples[b])``: independent of the batch it is drawn in."""
    return torch.stack([randn(tuple(shape), seed, step, s, device, dtype) for s in samples])
