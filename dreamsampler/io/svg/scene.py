"""The picture, by svgelements: ``SVG.parse`` of the validated bytes gives the style cascade, each shape's
transform (viewBox included) and its outline; each filled shape becomes one closed loop of cubics in pixels
with its RGBA and fill rule.

``reify=False``: outlines stay in user units and each shape's full transform is applied once, to all
points of the scene together (reifying would map every segment in Python first, and round differently).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from svgelements import SVG, Group, Rect, Shape
from torch import Tensor

from .paths import Point, cubic_subpaths, join_subpaths, needs_own_segments, path_segments
from .values import Affine, SvgError, number, parse_color, where

_INHERITED = ("fill", "fill-opacity", "fill-rule", "stroke")
_INITIAL = {"fill": "black", "stroke": "none"}  # what ``inherit`` on the root <svg> gives


@dataclass(frozen=True)
class SvgScene:
    """A scene read from SVG, ready for ``rasterize(points, colors, height, width, fill_rule=...)``.

    Attributes:
        points: ``(P, 3n, 2)`` closed cubic loops in pixel coordinates (viewBox already applied).
        colors: ``(P, 4)`` RGBA in [0, 1], not premultiplied (``opacity`` × ``fill-opacity`` in alpha).
        fill_rule: per path, 'nonzero' or 'evenodd'.
        height, width: canvas size in pixels.
        background: 'white' if the file began with an opaque white rect covering the canvas (as
            ``write_svg`` writes; it is not returned as a path), else 'none'.
    """

    points: Tensor
    colors: Tensor
    fill_rule: tuple[str, ...]
    height: int
    width: int
    background: str


@dataclass
class _Shape:
    loop: list[Point]
    rgba: tuple[float, float, float, float]
    rule: str
    matrix: Affine
    node: Shape


def _computed(values: dict, inherited: dict[str, str]) -> dict[str, str]:
    """The inherited properties of an element: svgelements' cascaded values, with ``inherit`` resolved."""
    out = dict(inherited)
    for key in _INHERITED:
        value = values.get(key)
        if value is not None and value.strip() != "inherit":
            out[key] = value.strip()
    return out


def _hidden(node) -> bool:
    """``display: none`` with spaces around it (svgelements compares the attribute unstripped)."""
    return node.values.get("display", "").strip().lower() == "none"


def _opacity(own: dict[str, str], tag: str) -> float:
    """The element's own ``opacity`` (not inherited: svgelements' cascade would copy it to the children)."""
    return min(1.0, max(0.0, number(own["opacity"], tag, "opacity"))) if "opacity" in own else 1.0


def _draws_nothing(node: Shape, tag: str) -> bool:
    """Shapes SVG leaves undrawn but svgelements would draw: polygons of fewer than 3 points, circles and
    ellipses without radii (svgelements takes 1) or with a negative one (it takes the absolute value)."""
    if tag in ("polygon", "polyline"):
        return len(node.points) < 3
    if tag in ("circle", "ellipse"):
        return ("r" if tag == "circle" else "rx") not in node.values["attributes"] or node.rx < 0 or node.ry < 0
    return False


def _loop(node: Shape, tag: str, max_path_segments: int) -> list[Point] | None:
    """The outline as one closed cubic loop in user units (``None`` if it has nothing to fill)."""
    if _draws_nothing(node, tag):
        return None
    d = node.values.get("d", "") if tag == "path" else ""
    segments = (path_segments(d, tag, max_path_segments) if needs_own_segments(d)
                else node.segments(transformed=False))
    subpaths = cubic_subpaths(segments, tag)
    return join_subpaths(subpaths) if subpaths else None


class _Collector:
    """Walks svgelements' tree: groups compose opacity, shapes become loops (with the reader's limits)."""

    def __init__(self, max_paths: int, max_segments: int, max_path_segments: int):
        self.max_paths, self.max_segments, self.max_path_segments = max_paths, max_segments, max_path_segments
        self.shapes: list[_Shape] = []
        self.segments = 0

    def group(self, node: Group, inherited: dict[str, str]) -> None:
        own = node.values["attributes"]
        tag = own["tag"]
        paint = _computed(node.values, inherited)
        opacity = _opacity(own, tag)
        first = len(self.shapes)
        for child in node:
            if _hidden(child):
                continue
            if isinstance(child, Group):
                self.group(child, paint)
            elif isinstance(child, Shape):
                self.shape(child, paint)
        if opacity != 1.0:
            if len(self.shapes) - first > 1:
                raise SvgError(f"{where(tag, 'opacity')}: group opacity over {len(self.shapes) - first} shapes is "
                               "not supported (it is not the same as per-shape opacity where they overlap)")
            for s in self.shapes[first:]:
                s.rgba = (*s.rgba[:3], s.rgba[3] * opacity)

    def shape(self, node: Shape, inherited: dict[str, str]) -> None:
        own = node.values["attributes"]
        tag = own["tag"]
        paint = _computed(node.values, inherited)
        if paint["stroke"] not in ("none", "transparent"):
            raise SvgError(f"{where(tag, 'stroke')}: strokes are not supported (got {paint['stroke']!r})")
        if tag == "line":  # stroke-only: draws nothing without a stroke
            return
        if paint["fill"].startswith("url("):
            raise SvgError(f"{where(tag, 'fill')}: paint {paint['fill']!r} is not supported (plain colors only)")
        rgba = parse_color(paint["fill"], tag, "fill")
        if rgba is None:
            return
        fill_opacity = number(paint["fill-opacity"], tag, "fill-opacity") if "fill-opacity" in paint else 1.0
        rule = paint.get("fill-rule", "nonzero")
        if rule not in ("nonzero", "evenodd"):
            raise SvgError(f"{where(tag, 'fill-rule')}: expected 'nonzero' or 'evenodd', got {rule!r}")
        opacity = _opacity(own, tag)
        loop = _loop(node, tag, self.max_path_segments)
        if loop is None:
            return
        if len(self.shapes) > self.max_paths:  # one extra allowed: it may be the background rect
            raise SvgError(f"<svg>: more than {self.max_paths} filled shapes (max_paths)")
        self.segments += len(loop) // 3
        if self.segments > self.max_segments:
            raise SvgError(f"<svg>: more than {self.max_segments} cubic segments in total")
        alpha = min(1.0, max(0.0, fill_opacity)) * opacity * rgba[3]
        m = node.transform
        self.shapes.append(_Shape(loop, (*rgba[:3], alpha), rule, (m.a, m.b, m.c, m.d, m.e, m.f), node))


def _is_background(shape: _Shape, height: int, width: int) -> bool:
    """An opaque white rect with square corners, axis-aligned, covering the canvas."""
    node, (a, b, c, d, e, f) = shape.node, shape.matrix
    own = node.values["attributes"]
    if not isinstance(node, Rect) or shape.rgba != (1.0, 1.0, 1.0, 1.0) or own.get("rx") or own.get("ry"):
        return False
    x0, y0 = a * node.x + e, d * node.y + f
    x1, y1 = x0 + a * node.width, y0 + d * node.height
    return b == 0 and c == 0 and x0 <= 0 and y0 <= 0 and x1 >= width and y1 >= height


def _points(shapes: list[_Shape]) -> Tensor:
    """Loops padded to a common length with their start point (degenerate segments draw nothing), mapped
    to pixels by each shape's transform; float64."""
    n_max = max(len(s.loop) for s in shapes)
    pts = torch.tensor([s.loop + [s.loop[0]] * (n_max - len(s.loop)) for s in shapes], dtype=torch.float64)
    a, b, c, d, e, f = torch.tensor([s.matrix for s in shapes], dtype=torch.float64)[:, None, :].unbind(-1)
    x, y = pts.unbind(-1)
    return torch.stack((a * x + c * y + e, b * x + d * y + f), -1)


def build_scene(data: bytes, height: int, width: int, *, dtype: torch.dtype, max_paths: int, max_segments: int,
                max_path_segments: int) -> SvgScene:
    """The scene of validated SVG bytes on a ``height`` × ``width`` canvas."""
    doc = SVG.parse(io.BytesIO(data), reify=False)  # None if the root has display: none
    collector = _Collector(max_paths, max_segments, max_path_segments)
    if doc is not None and not _hidden(doc):
        collector.group(doc, _INITIAL)
    shapes = collector.shapes
    background = "none"
    if shapes and _is_background(shapes[0], height, width):
        background = "white"
        shapes = shapes[1:]
    if len(shapes) > max_paths:
        raise SvgError(f"<svg>: more than {max_paths} filled shapes (max_paths)")
    if not shapes:
        return SvgScene(torch.zeros(0, 3, 2, dtype=dtype), torch.zeros(0, 4, dtype=dtype), (), height, width,
                        background)
    colors = torch.tensor([s.rgba for s in shapes], dtype=torch.float64)
    return SvgScene(_points(shapes).to(dtype), colors.to(dtype), tuple(s.rule for s in shapes), height, width,
                    background)
