"""Write a scene as a standard SVG 1.1 document that reads back to the same tensors."""
from __future__ import annotations

import os

import torch
from torch import Tensor

from .validate import SVG_NS
from .values import SvgError


def _fmt(v: float, exact64: bool) -> str:
    s = repr(float(v)) if exact64 else format(float(v), ".9g")
    if "e" in s or "E" in s:
        s = format(float(v), ".17f" if exact64 else ".12f").rstrip("0").rstrip(".")
    if s.endswith(".0"):
        s = s[:-2]
    return "0" if s in ("-0", "") else s


def write_svg(target: str | os.PathLike | None, points: Tensor, colors: Tensor, height: int, width: int,
              fill_rule: str | list[str] | tuple[str, ...] = "nonzero") -> str:
    """Write a standard SVG 1.1 document of the scene; return its text (also saved to ``target`` if given).

    The document has ``width``/``height`` and a matching ``viewBox``, an opaque white background rect,
    and one ``<path>`` per path (``M`` + ``C`` commands + ``Z``) with ``fill="rgb(r%, g%, b%)"``,
    ``fill-opacity`` and an explicit ``fill-rule``. Numbers carry enough digits to read back the same
    float32 (9 significant digits) or float64 (shortest round-trip) values.
    """
    from dreamsampler.render.validate import check_canvas, check_scene  # noqa: PLC0415

    if check_scene(points, colors):
        raise SvgError(f"write_svg takes one scene: points (P, 3n, 2), got {tuple(points.shape)}")
    check_canvas(height, width, 1)
    rules = [fill_rule] * points.shape[0] if isinstance(fill_rule, str) else list(fill_rule)
    if len(rules) != points.shape[0] or any(r not in ("nonzero", "evenodd") for r in rules):
        raise SvgError(f"fill_rule: expected 'nonzero'/'evenodd' or one per path, got {fill_rule!r}")
    exact64 = points.dtype == torch.float64
    pts = points.detach().cpu().double().tolist()
    cols = colors.detach().cpu().double().tolist()
    f = lambda v: _fmt(v, exact64)  # noqa: E731
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="{SVG_NS}" version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f'  <rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for loop, rgba, rule in zip(pts, cols, rules):
        d = [f"M {f(loop[0][0])} {f(loop[0][1])}"]
        for s in range(len(loop) // 3):
            c1, c2 = loop[3 * s + 1], loop[3 * s + 2]
            end = loop[(3 * s + 3) % len(loop)]
            d.append(f"C {f(c1[0])} {f(c1[1])} {f(c2[0])} {f(c2[1])} {f(end[0])} {f(end[1])}")
        fill = f"rgb({f(rgba[0] * 100)}%, {f(rgba[1] * 100)}%, {f(rgba[2] * 100)}%)"
        lines.append(f'  <path d="{" ".join(d)} Z" fill="{fill}" fill-opacity="{f(rgba[3])}" fill-rule="{rule}"/>')
    lines.append("</svg>")
    text = "\n".join(lines) + "\n"
    if target is not None:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)
    return text
