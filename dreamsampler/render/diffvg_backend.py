"""Optional DiffVG backend behind the same interface (``backend="diffvg"``).

DiffVG (github BachiLi/diffvg, not on PyPI) must be importable as ``pydiffvg``; the package never needs
it. Scenes are rendered on DiffVG's CPU path; inputs are cast to float32 there and results cast back.
DiffVG jitters its samples from ``seed``, so its image and boundary gradient are stochastic.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .validate import RasterizeError


def _import_pydiffvg():
    try:
        import pydiffvg  # noqa: PLC0415 (optional dependency)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RasterizeError(
            "backend='diffvg' needs pydiffvg (DiffVG's Python package), which is not importable: "
            f"{err}. Install DiffVG, or use the default backend='torch'."
        ) from err
    pydiffvg.set_use_gpu(False)
    pydiffvg.set_print_timing(False)
    return pydiffvg


def _render_one(pydiffvg, points: Tensor, colors: Tensor, height: int, width: int, samples: int,
                even_odd: Tensor, background: Tensor, seed: int) -> Tensor:
    n_seg = points.shape[1] // 3
    ncp = torch.full((n_seg,), 2, dtype=torch.int32)
    shapes, groups = [], []
    for p in range(points.shape[0]):
        shapes.append(pydiffvg.Path(num_control_points=ncp, points=points[p].contiguous(), is_closed=True,
                                    stroke_width=torch.tensor(0.0)))
        groups.append(pydiffvg.ShapeGroup(shape_ids=torch.tensor([p]), fill_color=colors[p].contiguous(),
                                          use_even_odd_rule=bool(even_odd[p])))
    args = pydiffvg.RenderFunction.serialize_scene(width, height, shapes, groups)
    return pydiffvg.RenderFunction.apply(width, height, samples, samples, seed, background, *args)


def render_premultiplied(points: Tensor, colors: Tensor, height: int, width: int, samples: int,
                         even_odd: Tensor, seed: int = 0) -> Tensor:
    """Same contract as the torch backend: ``(B, H, W, 4)`` premultiplied RGBA on transparent.

    DiffVG's raw transparent output is neither straight nor premultiplied at edges, so the premultiplied
    image is recovered from two renders over opaque white and opaque black backgrounds (compositing is
    linear in the background): ``rgb = black``, ``alpha = 1 − (white − black)``.
    """
    pydiffvg = _import_pydiffvg()
    white = torch.ones(height, width, 4)
    black = torch.cat((torch.zeros(height, width, 3), torch.ones(height, width, 1)), -1)

    def one(p: Tensor, c: Tensor, eo: Tensor) -> Tensor:
        on_white = _render_one(pydiffvg, p, c, height, width, samples, eo, white, seed)
        rgb = _render_one(pydiffvg, p, c, height, width, samples, eo, black, seed)[..., :3]
        return torch.cat((rgb, 1 - (on_white[..., :3] - rgb).mean(-1, keepdim=True)), -1)

    return _per_scene(points, colors, even_odd, one, empty=torch.zeros(height, width, 4))


def render_white(points: Tensor, colors: Tensor, height: int, width: int, samples: int,
                 even_odd: Tensor, seed: int = 0) -> Tensor:
    """``(B, H, W, 3)`` composited on white in one DiffVG call per scene (DiffVG's own convention)."""
    pydiffvg = _import_pydiffvg()
    white = torch.ones(height, width, 4)

    def one(p: Tensor, c: Tensor, eo: Tensor) -> Tensor:
        return _render_one(pydiffvg, p, c, height, width, samples, eo, white, seed)[..., :3]

    return _per_scene(points, colors, even_odd, one, empty=torch.ones(height, width, 3))


def _per_scene(points: Tensor, colors: Tensor, even_odd: Tensor, render, empty: Tensor) -> Tensor:
    """Run ``render(points, colors, even_odd)`` per scene on the CPU in float32 (DiffVG's only mode; the casts
    are differentiable) and stack the results back on the input's device and dtype; no paths gives ``empty``."""
    pts, cols = points.cpu().float(), colors.cpu().float()
    out = [empty if points.shape[1] == 0 else render(pts[b], cols[b], even_odd[b]) for b in range(points.shape[0])]
    return torch.stack(out).to(device=points.device, dtype=points.dtype)
