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
    dev, dt = points.device, points.dtype
    pts, cols = points.cpu().float(), colors.cpu().float()  # differentiable casts
    out = []
    for b in range(points.shape[0]):
        if points.shape[1] == 0:
            out.append(torch.zeros(height, width, 4))
            continue
        white = torch.ones(height, width, 4)
        black = torch.cat((torch.zeros(height, width, 3), torch.ones(height, width, 1)), -1)
        on_white = _render_one(pydiffvg, pts[b], cols[b], height, width, samples, even_odd[b], white, seed)
        on_black = _render_one(pydiffvg, pts[b], cols[b], height, width, samples, even_odd[b], black, seed)
        rgb = on_black[..., :3]
        alpha = 1 - (on_white[..., :3] - rgb).mean(-1, keepdim=True)
        out.append(torch.cat((rgb, alpha), -1))
    return torch.stack(out).to(device=dev, dtype=dt)


def render_white(points: Tensor, colors: Tensor, height: int, width: int, samples: int,
                 even_odd: Tensor, seed: int = 0) -> Tensor:
    """``(B, H, W, 3)`` composited on white in one DiffVG call per scene (DiffVG's own convention)."""
    pydiffvg = _import_pydiffvg()
    dev, dt = points.device, points.dtype
    pts, cols = points.cpu().float(), colors.cpu().float()
    out = []
    for b in range(points.shape[0]):
        if points.shape[1] == 0:
            out.append(torch.ones(height, width, 3))
            continue
        white = torch.ones(height, width, 4)
        img = _render_one(pydiffvg, pts[b], cols[b], height, width, samples, even_odd[b], white, seed)
        out.append(img[..., :3])
    return torch.stack(out).to(device=dev, dtype=dt)
