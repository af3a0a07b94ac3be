"""``rasterize``: the public entry point of the differentiable vector rasterizer."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from . import diffvg_backend, torch_backend
from .validate import BACKGROUNDS, RasterizeError, check_canvas, check_scene, even_odd_mask

BACKENDS = ("torch", "diffvg")


def rasterize(
    points: Tensor,
    colors: Tensor,
    height: int,
    width: int,
    samples: int = 2,
    *,
    fill_rule: str | Sequence[str] | Tensor = "nonzero",
    background: Literal["white", "transparent"] = "white",
    segments: int | None = None,
    backend: Literal["torch", "diffvg"] = "torch",
    seed: int = 0,
) -> Tensor:
    """Render filled closed cubic Bézier paths, differentiably w.r.t. ``points`` and ``colors``.

    Conventions (DiffVG's): pixel coordinates, origin at the top-left corner, x right, y down; pixel
    (row i, col j) covers [j, j+1) × [i, i+1). Path 0 is at the back; paths are composited with "over".

    Args:
        points: ``(P, 3n, 2)`` or batched ``(B, P, 3n, 2)``: P closed paths of n cubic segments each (every
            path in a call has the same n; pad shorter paths with degenerate segments at their start point).
            Segment s uses points 3s, 3s+1, 3s+2 and (3s+3) mod 3n.
        colors: ``(P, 4)`` or ``(B, P, 4)`` RGBA in [0, 1], not premultiplied.
        height, width: canvas size in pixels (positive ints).
        samples: s; each pixel is the box-filtered mean of s×s supersamples. Every supersample is the exact
            area coverage of its own 1/s-px sub-cell (the expectation of DiffVG's jittered samples), then
            composited per supersample.
        fill_rule: 'nonzero' (default) or 'evenodd', or one per path (a sequence of strings, or a bool
            tensor broadcastable to the leading (B, P) dims, True = even-odd).
        background: 'white' → ``(…, H, W, 3)`` composited on opaque white; 'transparent' → ``(…, H, W, 4)``
            premultiplied RGBA over a transparent background (``white = rgb + 1 − alpha``).
        segments: line segments per cubic for flattening; default chooses the count from the curves so the
            polyline stays within 0.01 px of them (4–64). Pass a fixed value for finite-difference checks.
        backend: 'torch' (pure PyTorch, CPU or CUDA, float32 or float64) or 'diffvg' (needs ``pydiffvg``;
            renders on DiffVG's CPU path in float32, stochastic samples drawn from ``seed``).
        seed: sample-jitter seed for the DiffVG backend; ignored by the torch backend (deterministic).

    Returns:
        The image, with the batch dimension if the input had one. Zero paths give the background.

    Raises:
        RasterizeError (a ``ValueError``): for any malformed argument, with the expected and the received
        value in the message.
    """
    batched = check_scene(points, colors)
    check_canvas(height, width, samples)
    if background not in BACKGROUNDS:
        raise RasterizeError(f"background: expected one of {BACKGROUNDS}, got {background!r}")
    if backend not in BACKENDS:
        raise RasterizeError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if segments is not None and (isinstance(segments, bool) or not isinstance(segments, int) or segments < 1):
        raise RasterizeError(f"segments: expected None or a positive int, got {segments!r}")
    if not batched:
        points, colors = points.unsqueeze(0), colors.unsqueeze(0)
    even_odd = even_odd_mask(fill_rule, points.shape[:2], points.device)

    if backend == "diffvg" and background == "white":
        image = diffvg_backend.render_white(points, colors, height, width, samples, even_odd, seed)
    else:
        render = diffvg_backend.render_premultiplied if backend == "diffvg" else torch_backend.render_premultiplied
        extra = (seed,) if backend == "diffvg" else (segments,)
        rgba = render(points, colors, height, width, samples, even_odd, *extra)
        image = rgba if background == "transparent" else rgba[..., :3] + (1 - rgba[..., 3:])
    return image if batched else image.squeeze(0)
