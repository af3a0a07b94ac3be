"""Confidence intervals of per-sample metric values."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dreamsampler.errors import InputError

_MAX_CHUNK = 4_000_000  # bootstrap indices drawn per chunk (resamples x n), to bound memory


def mean_ci(
    values: torch.Tensor | Sequence[float], level: float = 0.95, resamples: int = 10000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): sample mean and percentile-bootstrap interval (Efron & Tibshirani 1993), seeded."""
    try:
        v = torch.as_tensor(values, dtype=torch.float64).detach().cpu().reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        got = type(values).__name__
        raise InputError(f"mean_ci values: expected a 1-D tensor or a list of numbers, got {got}") from err
    if not 0 < level < 1:
        raise InputError(f"mean_ci level: expected a value in (0, 1), got {level}")
    if resamples < 1:
        raise InputError(f"mean_ci resamples: expected >= 1, got {resamples}")
    n = v.numel()
    if n == 0:
        raise InputError("mean_ci values: expected at least one value, got none")
    bad = int((~torch.isfinite(v)).sum())
    if bad:
        raise InputError(f"mean_ci values: expected finite values, got {bad} NaN/inf of {n} (filter them first)")
    mean = float(v.mean())
    if n == 1:
        return mean, mean, mean
    g = torch.Generator().manual_seed(seed)
    per_chunk = max(1, _MAX_CHUNK // n)
    means = torch.cat([
        v[torch.randint(n, (min(per_chunk, resamples - start), n), generator=g)].mean(1)
        for start in range(0, resamples, per_chunk)
    ])
    alpha = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    return mean, low, high
