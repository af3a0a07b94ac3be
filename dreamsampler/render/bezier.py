"""Cubic Bézier paths → closed polylines (pure tensor functions).

A path is ``3n`` control points: segment ``s`` uses points ``3s, 3s+1, 3s+2`` and ``(3s+3) mod 3n``,
so the path is closed by construction (the last segment ends at point 0).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

#: Flattening tolerance (in output pixels) used when ``segments`` is not given.
DEFAULT_TOLERANCE_PX = 0.01
#: Bounds for the automatic number of line segments per cubic.
MIN_SEGMENTS, MAX_SEGMENTS = 4, 64


def cubic_segments(points: Tensor) -> Tensor:
    """Split ``(..., 3n, 2)`` closed-path control points into ``(..., n, 4, 2)`` cubic segments."""
    start = points[..., 0::3, :]
    return torch.stack(
        (start, points[..., 1::3, :], points[..., 2::3, :], torch.roll(start, -1, dims=-2)), dim=-2
    )


def auto_segments(points: Tensor, tolerance: float = DEFAULT_TOLERANCE_PX) -> int:
    """Line segments per cubic so the polyline stays within ``tolerance`` px of every curve.

    Uses the standard bound for uniform subdivision: deviation ≤ max|B''| / (8 K²), with
    ``max|B''| ≤ 6 max(|P0 − 2P1 + P2|, |P1 − 2P2 + P3|)``. Returns one K for the whole call so tensors
    stay rectangular, clipped to [MIN_SEGMENTS, MAX_SEGMENTS].
    """
    if points.numel() == 0:
        return MIN_SEGMENTS
    with torch.no_grad():
        seg = cubic_segments(points.detach())
        d1 = seg[..., 0, :] - 2 * seg[..., 1, :] + seg[..., 2, :]
        d2 = seg[..., 1, :] - 2 * seg[..., 2, :] + seg[..., 3, :]
        second = 6.0 * torch.maximum(d1.norm(dim=-1), d2.norm(dim=-1)).max().item()
    if not math.isfinite(second):  # astronomically large coordinates overflow the bound
        return MAX_SEGMENTS
    k = math.ceil(math.sqrt(second / (8.0 * tolerance))) if second > 0 else MIN_SEGMENTS
    return int(min(MAX_SEGMENTS, max(MIN_SEGMENTS, k)))


#: |P0 − 2P1 + P2| of the standard quarter-circle cubic, per unit radius (κ = 0.5523).
QUARTER_CIRCLE_D2 = math.hypot(1 - 0.5523, 1 - 2 * 0.5523)


def canvas_segments(height: int, width: int, tolerance: float = DEFAULT_TOLERANCE_PX) -> int:
    """A static segment count (from the canvas size alone, no look at the points): the flatness bound of
    :func:`auto_segments` for a quarter-circle cubic of radius max(H, W)/2 — the largest circle the canvas
    holds — clipped to [MIN_SEGMENTS, MAX_SEGMENTS]. 64 from 256² up, 34 at 64², 17 at 16²."""
    second = 6.0 * QUARTER_CIRCLE_D2 * max(height, width) / 2
    k = math.ceil(math.sqrt(second / (8.0 * tolerance)))
    return int(min(MAX_SEGMENTS, max(MIN_SEGMENTS, k)))


def flatten(points: Tensor, segments: int) -> Tensor:
    """Closed polyline vertices ``(..., n*segments, 2)`` sampled uniformly in each cubic's parameter.

    Vertex ``k`` of segment ``s`` is B_s(k / segments), k = 0..segments-1; the polyline is closed
    (its last vertex connects back to vertex 0). Linear in ``points``, so autograd is exact.
    """
    t = torch.arange(segments, dtype=points.dtype, device=points.device) / segments
    u = 1 - t
    basis = torch.stack((u**3, 3 * u * u * t, 3 * u * t * t, t**3), dim=-1)  # (K, 4)
    verts = torch.einsum("kj,...sjd->...skd", basis, cubic_segments(points))
    return verts.flatten(-3, -2)
