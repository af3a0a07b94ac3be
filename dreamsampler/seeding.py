"""The one place noise comes from: generators keyed by (run seed, purpose, step, sample), never global state.

Every random draw of a run names its purpose, so no two uses of randomness can share a stream:

================  ======  =========================================================================
purpose           step    what it draws
================  ======  =========================================================================
``start``         -1      eps_tilde of a start from noise (Alg. 2 line 1)
``eta``           i       the fresh noise of eq. (5) at reverse step i (eta > 0)
``renoise``       i       the inpainting DS step's fresh renoising noise at reverse step i
``measurement``   -1      the measurement noise n of y = A x + sigma_y n
``svg-init``      -1      the paper's start circles of an SVG (centres, colors, opacities)
``svg-reinit``    i       dead SVG paths re-initialized at reverse step i
``svg-sample``    -1      z_T of the raster sample an SVG is vectorized from (``init: sample``)
``t``             i       the timestep of score-distillation iteration i (SDS, DDS, PDS: one per sample)
``distill``       i       the noise eps of score-distillation iteration i (shared by a method's branches)
``distill-prev``  i       PDS's second noise, of x_{t_prev}, at iteration i
================  ======  =========================================================================

``sample`` is the sample's key (its name in a dataset), so a sample gets the same noise alone or in a batch, and a
resumed run draws exactly what an uninterrupted one drew. Noise is drawn on the device it is used on (no host to
device copy on the hot path): equal across runs and resumes on one device type, not across device types.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

SampleKey = int | str
#: Every purpose a noise stream may have (see the module docstring).
PURPOSES = ("start", "eta", "renoise", "measurement", "svg-init", "svg-reinit", "svg-sample", "t", "distill",
            "distill-prev")


def rng(seed: int, purpose: str, step: int = -1, sample: SampleKey = 0,
        device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` whose state depends only on ``(seed, purpose, step, sample)``."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown noise purpose {purpose!r} (expected one of {PURPOSES})")
    digest = hashlib.sha256(f"{int(seed)}:{purpose}:{int(step)}:{sample}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def randn(shape: tuple[int, ...], seed: int, purpose: str, step: int = -1, sample: SampleKey = 0,
          device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise of ``shape`` for ``(seed, purpose, step, sample)``, drawn on ``device``."""
    device = torch.device(device)
    g = rng(seed, purpose, step, sample, device)
    return torch.randn(shape, generator=g, device=device, dtype=torch.float32).to(dtype)


def randn_batch(shape: tuple[int, ...], seed: int, purpose: str, step: int, samples: Sequence[SampleKey],
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, *shape) noise, row b from ``(seed, purpose, step, samples[b])``: independent of the batch it is in."""
    return torch.stack([randn(tuple(shape), seed, purpose, step, s, device, dtype) for s in samples])


def randint_batch(high: int, seed: int, purpose: str, step: int, samples: Sequence[SampleKey]) -> torch.Tensor:
    """(B,) integers uniform in ``[0, high)`` on the host, entry b from ``(seed, purpose, step, samples[b])``."""
    return torch.cat([torch.randint(int(high), (1,), generator=rng(seed, purpose, step, s)) for s in samples])
