"""The one place noise comes from: generators seeded by (run seed, step, sample id), never global state."""

from __future__ import annotations

import hashlib

import torch


def generator(seed: int, step: int = 0, sample: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` whose state depends only on ``(seed, step, sample)``: reproducible across restarts."""
    digest = hashlib.sha256(f"{int(seed)}:{int(step)}:{int(sample)}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def randn(shape: tuple[int, ...], seed: int, step: int, sample: int = 0, device: str | torch.device = "cpu",
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise for ``(seed, step, sample)``, drawn on the CPU so every device gets the same numbers."""
    return torch.randn(shape, generator=generator(seed, step, sample), dtype=torch.float32).to(device, dtype)
