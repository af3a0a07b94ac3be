"""``rasterize``: the public entry point of the differentiable vector rasterizer."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from . import dense, diffvg_backend, torch_backend
from .validate import BACKGROUNDS, RasterizeError, check_canvas, check_scene, even_odd_mask, static_rule

BACKENDS = ("torch", "diffvg")
STRATEGIES = ("auto", "boxes", "dense")


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
    strategy: Literal["auto", "boxes", "dense"] = "auto",
    check_values: bool = True,
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
        segments: line segments per cubic for flattening. Default: "boxes" chooses the count from the curves so
            the polyline stays within 0.01 px of them (4–64); "dense" uses a static count from the canvas
            size (the same bound for the largest circle the canvas holds: 64 from 256² up). Pass a fixed
            value for finite-difference checks or to compare strategies.
        backend: 'torch' (pure PyTorch, CPU or CUDA, float32 or float64) or 'diffvg' (needs ``pydiffvg``;
            renders on DiffVG's CPU path in float32, stochastic samples drawn from ``seed``).
        seed: sample-jitter seed for the DiffVG backend; ignored by the torch backend (deterministic).
        strategy: how the torch backend works. 'boxes': per-path bounding boxes, work ∝ box areas, fastest on
            CPU, but its shapes depend on the values (host synchronisation, a Python loop over paths in the
            compositor). 'dense': static shapes, every path over the whole canvas in chunks, no host
            synchronisation and no per-path loop — for GPUs. 'auto' (default): 'dense' on CUDA, 'boxes'
            elsewhere. Both give the same image and gradients up to float rounding (dense drops column
            crossings only beyond a generous budget, see ``dense.py``). Only 'auto' with backend='diffvg'.
        check_values: check that points are finite and colors in [0, 1] (one host synchronisation; skipped on
            the 'meta' device). False leaves a 'dense' render free of host synchronisation; shapes, dtypes and
            devices are always checked.

    Returns:
        The image, with the batch dimension if the input had one. Zero paths give the background.

    Raises:
        RasterizeError (a ``ValueError``): for any malformed argument, with the expected and the received
        value in the message.
    """
    if not isinstance(check_values, bool):
        raise RasterizeError(f"check_values: expected a bool, got {check_values!r}")
    batched = check_scene(points, colors, check_values)
    check_canvas(height, width, samples)
    if background not in BACKGROUNDS:
        raise RasterizeError(f"background: expected one of {BACKGROUNDS}, got {background!r}")
    if backend not in BACKENDS:
        raise RasterizeError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if segments is not None and (isinstance(segments, bool) or not isinstance(segments, int) or segments < 1):
        raise RasterizeError(f"segments: expected None or a positive int, got {segments!r}")
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise RasterizeError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
    if backend == "diffvg" and strategy != "auto":
        raise RasterizeError(f"strategy: expected 'auto' with backend='diffvg' (strategies are the torch backend's), "
                             f"got {strategy!r}")
    if not batched:
        points, colors = points.unsqueeze(0), colors.unsqueeze(0)
    if not isinstance(fill_rule, (str, Tensor)):
        try:
            fill_rule = list(fill_rule)  # read once: an iterator would be empty the second time
        except TypeError:
            raise RasterizeError(f"fill_rule: expected 'nonzero', 'evenodd', one per path (a sequence of them) or "
                                 f"a bool tensor, got {fill_rule!r}") from None
    even_odd = even_odd_mask(fill_rule, points.shape[:2], points.device)

    if backend == "diffvg" and background == "white":
        image = diffvg_backend.render_white(points, colors, height, width, samples, even_odd, seed)
    else:
        if backend == "diffvg":
            rgba = diffvg_backend.render_premultiplied(points, colors, height, width, samples, even_odd, seed)
        elif strategy == "dense" or (strategy == "auto" and points.device.type == "cuda"):
            rgba = dense.render_premultiplied(points, colors, height, width, samples, even_odd, segments,
                                              static_rule(fill_rule))
        else:
            rgba = torch_backend.render_premultiplied(points, colors, height, width, samples, even_odd, segments)
        image = rgba if background == "transparent" else rgba[..., :3] + (1 - rgba[..., 3:])
    return image if batched else image.squeeze(0)
