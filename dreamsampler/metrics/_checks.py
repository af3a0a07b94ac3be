"""Input checks shared by the metrics: one clear InputError (expected vs got) instead of a deep torch traceback."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dreamsampler.errors import InputError


def check_images(x: object, name: str = "images", min_batch: int = 1) -> torch.Tensor:
    """Return ``x`` if it is a float (B, 3, H, W) tensor with values in [0, 1] and B >= ``min_batch``."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a float torch.Tensor (B, 3, H, W) in [0, 1], got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(f"{name}: expected shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{name}: expected a float tensor in [0, 1], got dtype {x.dtype} (divide uint8 by 255)")
    if x.shape[0] < min_batch:
        raise InputError(f"{name}: expected at least {min_batch} image(s), got {x.shape[0]}")
    if x.numel() and not torch.isfinite(x).all():
        raise InputError(f"{name}: expected finite values, got {int((~torch.isfinite(x)).sum())} NaN/inf entries")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise InputError(
            f"{name}: expected values in [0, 1], got [{float(x.min()):.4g}, {float(x.max()):.4g}] (clamp first)"
        )
    return x


def check_pair(a: object, b: object, names: tuple[str, str] = ("pred", "target")) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two image batches (see :func:`check_images`) of the same shape."""
    a, b = check_images(a, names[0]), check_images(b, names[1])
    if a.shape != b.shape:
        raise InputError(
            f"{names[0]} and {names[1]}: expected the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return a, b


def check_strings(values: object, n: int, name: str) -> list[str]:
    """``n`` strings from a sequence of ``n`` strings, or one string repeated ``n`` times."""
    if isinstance(values, str):
        return [values] * n
    if not isinstance(values, Sequence) or not all(isinstance(v, str) for v in values):
        raise InputError(f"{name}: expected a string or a list of {n} strings, got {type(values).__name__}")
    if len(values) != n:
        raise InputError(f"{name}: expected {n} strings (one per image), got {len(values)}")
    return list(values)
