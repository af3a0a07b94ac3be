"""Safe SVG read/write for filled cubic-Bézier scenes (the rasterizer's input format).

Reading goes through ``defusedxml`` with DTDs, entities and external references forbidden, after a size
check, so no entity expansion, no file or network access. Supported: ``path`` (``d`` in the full path
grammar — M, L, H, V, C, S, Q, T, A, Z, relative forms, implicit repeats, compact numbers — lexed by
svgelements, whose own XML parser is never used; lines and quadratics become cubics exactly, elliptical
arcs cubics of at most 90° each), ``rect`` (incl. rounded corners), ``circle``, ``ellipse`` (4 cubics
each, the standard κ = 0.5523 approximation, radial error < 0.03 %), ``polygon``/``polyline`` (filled),
``g``; ``fill`` (named, #rgb, #rgba, #rrggbb, #rrggbbaa, rgb(), rgba(),
``none``), ``fill-opacity``, ``opacity`` (on shapes, or on a group with one shape), ``fill-rule``,
``transform`` (matrix, translate, scale, rotate, skewX, skewY) on shapes and groups, inline ``style``
declarations of those properties; ``viewBox`` (with ``preserveAspectRatio`` ``xMidYMid meet`` or ``none``),
``width``, ``height`` (px or unitless). Anything else that would change the picture — strokes,
gradients and other ``url()`` paints, ``use``, ``text``, ``image``, clip paths, masks, filters, markers,
``<style>`` sheets, nested ``svg`` — raises one :class:`SvgError` naming the element and attribute.
Elements in other XML namespaces (editor metadata) and non-rendering elements (``title``, ``desc``,
``metadata``, ``defs`` and resource definitions) are skipped.

Each ``path`` element becomes one closed loop of cubics. Several subpaths of one element are joined into
one loop by a zero-width bridge that goes out from the first subpath's start and back along the same
segment, which leaves the winding number (both fill rules) unchanged everywhere. Loops are padded to a
common length with degenerate segments at their start point, which draw nothing.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import svgelements
import torch
from svgelements import Arc, Close, CubicBezier, Line, Move, QuadraticBezier
from torch import Tensor

from dreamsampler.errors import InputError

#: Largest SVG file (bytes) ``read_svg`` accepts by default.
MAX_SVG_BYTES = 16 * 2**20
#: Most filled shapes ``read_svg`` accepts by default.
MAX_SVG_PATHS = 10_000
#: Most cubic segments (all shapes together) ``read_svg`` accepts.
MAX_SVG_SEGMENTS = 2_000_000
#: Most path segments (moves and closes included) in one ``d`` attribute.
MAX_PATH_SEGMENTS = 100_000
#: Deepest element nesting accepted.
MAX_SVG_DEPTH = 64

SVG_NS = "http://www.w3.org/2000/svg"
KAPPA = 4.0 * (math.sqrt(2.0) - 1.0) / 3.0  # cubic approximation of a quarter circle

_IGNORED = {"title", "desc", "metadata", "defs", "linearGradient", "radialGradient", "pattern", "clipPath",
            "mask", "filter", "marker", "symbol"}
_SHAPES = {"path", "rect", "circle", "ellipse", "polygon", "polyline"}
_NO_FILL = {"line"}  # stroke-only elements: draw nothing without a stroke
_PICTURE_ATTRS = ("clip-path", "mask", "filter", "marker", "marker-start", "marker-mid", "marker-end")
_INHERITED = ("fill", "fill-opacity", "fill-rule", "stroke")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NUM_RE = re.compile(_NUMBER)
_BARE_DOT = re.compile(r"(\d)\.(?!\d)")
_BARE_COMMAND = re.compile(r"([MmLlHhVvCcSsQqTtAa])[\s,]*(?:[A-Za-z]|$)")
_PATH_ARGS = {"M": 2, "L": 2, "T": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "A": 7}
_TRANSFORM = re.compile(r"\s*(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)\s*,?")


class SvgError(InputError):
    """An SVG that cannot be read safely or faithfully; the message names the element and attribute."""


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


# ----------------------------------------------------------------------------------------------- numbers
def _where(tag: str, attr: str) -> str:
    return f"<{tag}> attribute {attr!r}"


def _number(text: str, tag: str, attr: str) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        raise SvgError(f"{_where(tag, attr)}: expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise SvgError(f"{_where(tag, attr)}: expected a finite number, got {text!r}")
    return v


def _length(text: str | None, tag: str, attr: str, default: float | None = None) -> float:
    if text is None:
        if default is None:
            raise SvgError(f"<{tag}> is missing attribute {attr!r}")
        return default
    t = text.strip()
    if t.endswith("px"):
        t = t[:-2]
    if not re.fullmatch(_NUMBER, t.strip()):
        raise SvgError(f"{_where(tag, attr)}: expected a length in px (or unitless), got {text!r}")
    return _number(t, tag, attr)


def _numbers(text: str, tag: str, attr: str) -> list[float]:
    rest = _NUM_RE.sub(" ", text).replace(",", " ").strip()
    if rest:
        raise SvgError(f"{_where(tag, attr)}: expected numbers, found {rest[:20]!r}")
    return [_number(m, tag, attr) for m in _NUM_RE.findall(text)]


# ------------------------------------------------------------------------------------------------ colors
def parse_color(text: str, tag: str = "path", attr: str = "fill") -> tuple[float, float, float, float] | None:
    """CSS color → (r, g, b, a) in [0, 1]; ``None`` for ``none``/``transparent``.

    Accepts named colors (the CSS list, via Pillow's table), #rgb, #rgba, #rrggbb, #rrggbbaa, rgb()/rgba()
    with numbers or percentages.
    """
    t = text.strip().lower()
    if t in ("none", "transparent"):
        return None
    if t.startswith("#"):
        h = t[1:]
        if re.fullmatch(r"[0-9a-f]{3,4}", h):
            vals = [int(c * 2, 16) / 255 for c in h]
        elif re.fullmatch(r"[0-9a-f]{6}|[0-9a-f]{8}", h):
            vals = [int(h[i : i + 2], 16) / 255 for i in range(0, len(h), 2)]
        else:
            raise SvgError(f"{_where(tag, attr)}: malformed hex color {text!r}")
        return (*vals[:3], vals[3] if len(vals) == 4 else 1.0)
    m = re.fullmatch(r"rgba?\((.*)\)", t)
    if m:
        parts = [p.strip() for p in re.split(r"[\s,/]+", m.group(1).strip()) if p.strip()]
        if len(parts) not in (3, 4):
            raise SvgError(f"{_where(tag, attr)}: expected 3 or 4 components in {text!r}")
        out = []
        for i, p in enumerate(parts):
            pct = p.endswith("%")
            v = _number(p[:-1] if pct else p, tag, attr)
            v = v / 100 if pct else (v if i == 3 else v / 255)
            out.append(min(1.0, max(0.0, v)))
        return (*out[:3], out[3] if len(out) == 4 else 1.0)
    if re.fullmatch(r"[a-z]+", t):
        from PIL import ImageColor  # noqa: PLC0415 (Pillow's CSS color table)

        if t in ImageColor.colormap:    # getrgb: Pillow caches converted entries as tuples in the table itself
            rgb = ImageColor.getrgb(t)
            return (*(v / 255 for v in rgb[:3]), rgb[3] / 255 if len(rgb) == 4 else 1.0)
    raise SvgError(f"{_where(tag, attr)}: unsupported paint {text!r} (expected a color or 'none')")


# -------------------------------------------------------------------------------------------- transforms
Affine = tuple[float, float, float, float, float, float]  # (a, b, c, d, e, f): x' = a x + c y + e
IDENTITY: Affine = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _compose(m: Affine, n: Affine) -> Affine:
    """m ∘ n (apply n first)."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (a * a2 + c * b2, b * a2 + d * b2, a * c2 + c * d2, b * c2 + d * d2,
            a * e2 + c * f2 + e, b * e2 + d * f2 + f)


def parse_transform(text: str, tag: str = "g") -> Affine:
    """An SVG ``transform`` list → one affine map (the leftmost transform is applied last)."""
    out, pos = IDENTITY, 0
    text = text.strip()
    while pos < len(text):
        m = _TRANSFORM.match(text, pos)
        if not m:
            raise SvgError(f"{_where(tag, 'transform')}: cannot parse {text[pos:pos + 30]!r}")
        name, args = m.group(1), _numbers(m.group(2), tag, "transform")
        n = len(args)
        bad = {"matrix": n != 6, "translate": n not in (1, 2), "scale": n not in (1, 2),
               "rotate": n not in (1, 3), "skewX": n != 1, "skewY": n != 1}[name]
        if bad:
            raise SvgError(f"{_where(tag, 'transform')}: wrong number of arguments to {name}(): {n}")
        if name == "matrix":
            t = tuple(args)
        elif name == "translate":
            t = (1.0, 0.0, 0.0, 1.0, args[0], args[1] if n == 2 else 0.0)
        elif name == "scale":
            t = (args[0], 0.0, 0.0, args[1] if n == 2 else args[0], 0.0, 0.0)
        elif name == "rotate":
            r = math.radians(args[0])
            t = (math.cos(r), math.sin(r), -math.sin(r), math.cos(r), 0.0, 0.0)
            if n == 3:
                cx, cy = args[1], args[2]
                t = _compose(_compose((1, 0, 0, 1, cx, cy), t), (1, 0, 0, 1, -cx, -cy))
        elif name == "skewX":
            t = (1.0, 0.0, math.tan(math.radians(args[0])), 1.0, 0.0, 0.0)
        else:
            t = (1.0, math.tan(math.radians(args[0])), 0.0, 1.0, 0.0, 0.0)
        out = _compose(out, t)
        pos = m.end()
    return out


# ------------------------------------------------------------------------------------------- path data
Point = tuple[float, float]


def _line(p: Point, q: Point) -> list[Point]:
    return [((2 * p[0] + q[0]) / 3, (2 * p[1] + q[1]) / 3), ((p[0] + 2 * q[0]) / 3, (p[1] + 2 * q[1]) / 3), q]


class _Lexer(svgelements.SVGLexicalParser):
    """svgelements' path-data lexer without its extension of ``z`` in place of a coordinate (not SVG)."""

    inline_close = property(lambda self: None, lambda self, value: None)


class _PathBuilder(svgelements.Path):
    """svgelements' segment builder (the callback of its path-data lexer), with a segment limit and the
    spec's smooth-curve rule: ``S`` reflects only a C/S control point and ``T`` only a Q/T one, else the
    first control point is the current point (svgelements 1.9.6 reflects either kind)."""

    _smooth: type = object

    def append(self, value):
        if len(self._segments) >= MAX_PATH_SEGMENTS:
            raise SvgError(f"more than {MAX_PATH_SEGMENTS} path segments (MAX_PATH_SEGMENTS)")
        super().append(value)

    def smooth_cubic(self, *points, **kwargs):
        self._smooth = CubicBezier
        return super().smooth_cubic(*points, **kwargs)

    def smooth_quad(self, *points, **kwargs):
        self._smooth = QuadraticBezier
        return super().smooth_quad(*points, **kwargs)

    @property
    def smooth_point(self):
        if self._segments and not isinstance(self._segments[-1], self._smooth):
            return self.current_point
        return super().smooth_point


def _malformed(d: str, pos: int, tag: str) -> SvgError:
    cmds = re.findall(r"[MmZzLlHhVvCcSsQqTtAa]", d[:pos])
    if not cmds or cmds[0] not in "Mm":
        problem = "path data must start with a moveto"
    elif pos < len(d) and not re.match(r"[\d.eE+\-\s,MmZzLlHhVvCcSsQqTtAa]", d[pos]):
        problem = f"unexpected character {d[pos]!r}"
    elif cmds[-1] in "Zz":
        problem = f"numbers after closepath {cmds[-1]!r}"
    else:
        k = _PATH_ARGS[cmds[-1].upper()]
        problem = f"command {cmds[-1]!r} needs {k} number{'s' * (k > 1)}"
    near = d[max(0, pos - 12) : pos + 12]
    return SvgError(f"{_where(tag, 'd')}: malformed path data at character {pos} (near {near!r}): {problem}")


def _path_segments(d: str, tag: str) -> list:
    """``d`` → svgelements segments (Move, Line, QuadraticBezier, CubicBezier, Arc, Close), absolute."""
    bare = _BARE_COMMAND.search(d)  # the lexer lets V, A and H go without numbers
    if bare:
        raise _malformed(d, bare.end(1), tag)
    path, lexer = _PathBuilder(), _Lexer()
    try:
        lexer.parse(path, _BARE_DOT.sub(r"\1 ", d))  # its lexer lacks the number form "1." (same length)
        ok = lexer.pos == len(d)  # the lexer stops quietly at a character it does not know
    except SvgError as err:
        raise SvgError(f"{_where(tag, 'd')}: {err}") from None
    except Exception:  # noqa: BLE001 (any failure of the library's parser is malformed data)
        ok = False
    segs = list(path)
    if not ok or (segs and not isinstance(segs[0], Move)):
        raise _malformed(d, lexer.pos, tag)
    return segs


def _arc(seg: Arc, p0: Point, p3: Point, tag: str) -> list[Point]:
    """An elliptical arc → cubics of at most 90° each: the circle's 4/3·tan(θ/4) cubic mapped onto the
    ellipse c + cos t·a + sin t·b (svgelements gives the center form, radii already corrected)."""
    if not math.isfinite(seg.sweep):
        raise SvgError(f"{_where(tag, 'd')}: arc parameters out of float range")
    if seg.sweep == 0:  # rx or ry = 0: a straight line; identical endpoints: no segment (SVG spec)
        return _line(p0, p3) if p0 != p3 else []
    c = (seg.center.x, seg.center.y)
    a = (seg.prx.x - c[0], seg.prx.y - c[1])
    b = (seg.pry.x - c[0], seg.pry.y - c[1])

    def at(t: float, o: Point = c) -> Point:
        return (o[0] + math.cos(t) * a[0] + math.sin(t) * b[0], o[1] + math.cos(t) * a[1] + math.sin(t) * b[1])

    u = (p0[0] - c[0], p0[1] - c[1])
    t0 = math.atan2((u[0] * b[0] + u[1] * b[1]) / (b[0] ** 2 + b[1] ** 2),
                    (u[0] * a[0] + u[1] * a[1]) / (a[0] ** 2 + a[1] ** 2))
    n = max(1, math.ceil(abs(seg.sweep) / (math.pi / 2) - 1e-9))
    dt = seg.sweep / n
    k = 4 / 3 * math.tan(dt / 4)
    out, q0 = [], p0
    for i in range(1, n + 1):
        t = t0 + i * dt
        q3 = p3 if i == n else at(t)
        d0, d1 = at(t - dt + math.pi / 2, (0.0, 0.0)), at(t + math.pi / 2, (0.0, 0.0))  # tangents
        out += [(q0[0] + k * d0[0], q0[1] + k * d0[1]), (q3[0] - k * d1[0], q3[1] - k * d1[1]), q3]
        q0 = q3
    return out


def parse_path_data(d: str, tag: str = "path") -> list[list[Point]]:
    """``d`` → subpaths, each ``[start, c1, c2, end, c1, c2, end, …]`` of cubics, closed back to its start.

    svgelements parses the path grammar; lines and quadratics become cubics exactly, elliptical arcs cubics
    of at most 90° each; a subpath that does not end at its start gets a closing line (fill closes open
    subpaths). Malformed data, over ``MAX_PATH_SEGMENTS`` segments or non-finite numbers raise ``SvgError``.
    """
    subpaths: list[list[Point]] = []
    cur: list[Point] = []

    def close():
        nonlocal cur
        if len(cur) > 1:
            if cur[-1] != cur[0]:
                cur.extend(_line(cur[-1], cur[0]))
            subpaths.append(cur)
        cur = []

    for seg in _path_segments(d, tag):
        if isinstance(seg, (Move, Close)):
            close()
            continue
        p0, p3 = (seg.start.x, seg.start.y), (seg.end.x, seg.end.y)
        cur = cur or [p0]
        if isinstance(seg, Line):
            cur.extend(_line(p0, p3))
        elif isinstance(seg, QuadraticBezier):  # degree elevation: exact
            q = (seg.control.x, seg.control.y)
            cur.extend([(p0[0] + 2 / 3 * (q[0] - p0[0]), p0[1] + 2 / 3 * (q[1] - p0[1])),
                        (p3[0] + 2 / 3 * (q[0] - p3[0]), p3[1] + 2 / 3 * (q[1] - p3[1])), p3])
        elif isinstance(seg, CubicBezier):
            cur.extend([(seg.control1.x, seg.control1.y), (seg.control2.x, seg.control2.y), p3])
        else:
            cur.extend(_arc(seg, p0, p3, tag))
    close()
    if not all(math.isfinite(v) for sub in subpaths for p in sub for v in p):
        raise SvgError(f"{_where(tag, 'd')}: non-finite coordinate (a number out of float range)")
    return subpaths


def join_subpaths(subpaths: list[list[Point]]) -> list[Point]:
    """Subpaths → one closed loop ``[start, c1, c2, p1, …, c1, c2]`` (3n points; the last end is ``start``).

    Each later subpath hangs off the first one's start s0 by a line s0 → s_i and the same line back, so the
    bridge's contributions to the winding number cancel exactly.
    """
    s0 = subpaths[0][0]
    loop = list(subpaths[0][:-1])
    for sub in subpaths[1:]:
        si = sub[0]
        loop += [s0, *_line(s0, si)[:2]]
        loop += sub[:-1]
        loop += [si, *_line(si, s0)[:2]]
    return loop


# ------------------------------------------------------------------------------------------------ shapes
def _ellipse_loop(cx: float, cy: float, rx: float, ry: float) -> list[Point]:
    k = KAPPA
    return [(cx + rx, cy), (cx + rx, cy + k * ry), (cx + k * rx, cy + ry), (cx, cy + ry),
            (cx - k * rx, cy + ry), (cx - rx, cy + k * ry), (cx - rx, cy),
            (cx - rx, cy - k * ry), (cx - k * rx, cy - ry), (cx, cy - ry),
            (cx + k * rx, cy - ry), (cx + rx, cy - k * ry)]


def _rect_loop(x: float, y: float, w: float, h: float, rx: float, ry: float) -> list[Point]:
    if rx <= 0 or ry <= 0:
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        loop: list[Point] = []
        for j in range(4):
            loop.append(corners[j])
            loop.extend(_line(corners[j], corners[(j + 1) % 4])[:2])
        return loop
    k = KAPPA
    pts = [(x + rx, y), *_line((x + rx, y), (x + w - rx, y))[:2], (x + w - rx, y),
           (x + w - rx + k * rx, y), (x + w, y + ry - k * ry), (x + w, y + ry),
           *_line((x + w, y + ry), (x + w, y + h - ry))[:2], (x + w, y + h - ry),
           (x + w, y + h - ry + k * ry), (x + w - rx + k * rx, y + h), (x + w - rx, y + h),
           *_line((x + w - rx, y + h), (x + rx, y + h))[:2], (x + rx, y + h),
           (x + rx - k * rx, y + h), (x, y + h - ry + k * ry), (x, y + h - ry),
           *_line((x, y + h - ry), (x, y + ry))[:2], (x, y + ry),
           (x, y + ry - k * ry), (x + rx - k * rx, y)]
    return pts


def _shape_loop(tag: str, el) -> list[Point] | None:
    """Control-point loop of a shape element (``None`` if it has no area to fill)."""
    g = el.get
    if tag == "path":
        subs = parse_path_data(g("d", ""), tag)
        return join_subpaths(subs) if subs else None
    if tag == "rect":
        w, h = _length(g("width"), tag, "width"), _length(g("height"), tag, "height")
        if w < 0 or h < 0:
            raise SvgError(f"<rect>: negative width or height ({w}, {h})")
        if w == 0 or h == 0:
            return None
        rx_t, ry_t = g("rx"), g("ry")
        rx = _length(rx_t, tag, "rx", 0.0) if rx_t not in (None, "auto") else None
        ry = _length(ry_t, tag, "ry", 0.0) if ry_t not in (None, "auto") else None
        rx = ry if rx is None else rx
        ry = rx if ry is None else ry
        rx, ry = min(rx or 0.0, w / 2), min(ry or 0.0, h / 2)
        return _rect_loop(_length(g("x"), tag, "x", 0.0), _length(g("y"), tag, "y", 0.0), w, h, rx, ry)
    if tag == "circle":
        r = _length(g("r"), tag, "r", 0.0)
        if r <= 0:
            return None
        return _ellipse_loop(_length(g("cx"), tag, "cx", 0.0), _length(g("cy"), tag, "cy", 0.0), r, r)
    if tag == "ellipse":
        rx, ry = _length(g("rx"), tag, "rx", 0.0), _length(g("ry"), tag, "ry", 0.0)
        if rx <= 0 or ry <= 0:
            return None
        return _ellipse_loop(_length(g("cx"), tag, "cx", 0.0), _length(g("cy"), tag, "cy", 0.0), rx, ry)
    # polygon / polyline: filled as a closed polygon
    vals = _numbers(g("points", ""), tag, "points")
    if len(vals) % 2:
        raise SvgError(f"{_where(tag, 'points')}: odd number of coordinates ({len(vals)})")
    if len(vals) < 6:
        return None
    pts = list(zip(vals[0::2], vals[1::2]))
    loop: list[Point] = []
    for j, p in enumerate(pts):
        loop.append(p)
        loop.extend(_line(p, pts[(j + 1) % len(pts)])[:2])
    return loop


# ------------------------------------------------------------------------------------------------ reading
def _local(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return None, tag


def _style(el, tag: str) -> dict[str, str]:
    """Presentation attributes overridden by inline ``style`` declarations."""
    props = {k: v for k, v in el.attrib.items() if not k.startswith("{")}
    for decl in (el.get("style") or "").split(";"):
        if not decl.strip():
            continue
        name, sep, value = decl.partition(":")
        if not sep:
            raise SvgError(f"{_where(tag, 'style')}: malformed declaration {decl.strip()!r}")
        props[name.strip().lower()] = value.strip()
    return props


class _Reader:
    def __init__(self, max_paths: int):
        self.max_paths = max_paths
        self.shapes: list[tuple[list[Point], tuple[float, float, float, float], str, str, Affine, object]] = []
        self.segments = 0

    def walk(self, el, inherited: dict[str, str], ctm: Affine, depth: int) -> None:
        ns, tag = _local(el.tag)
        if ns not in (None, SVG_NS):
            return  # foreign-namespace element (editor metadata): not rendered
        if depth > MAX_SVG_DEPTH:
            raise SvgError(f"<{tag}>: elements nested deeper than {MAX_SVG_DEPTH}")
        if tag in _IGNORED:
            return
        props = _style(el, tag)
        if props.get("display", "").strip() == "none":
            return
        for attr in _PICTURE_ATTRS:
            if props.get(attr, "none").strip() not in ("none", ""):
                raise SvgError(f"{_where(tag, attr)}: {attr} is not supported (it would change the picture)")
        if props.get("visibility", "visible").strip() not in ("visible", "inherit"):
            raise SvgError(f"{_where(tag, 'visibility')}: only 'visible' is supported")
        state = dict(inherited)
        for key in _INHERITED:
            if key in props and props[key].strip() != "inherit":
                state[key] = props[key].strip()
        root = tag == "svg" and depth == 0
        if "transform" in props:
            if root:
                raise SvgError(f"{_where(tag, 'transform')}: a transform on the root <svg> is not supported")
            ctm = _compose(ctm, parse_transform(props["transform"], tag))
        opacity = min(1.0, max(0.0, _number(props["opacity"], tag, "opacity"))) if "opacity" in props else 1.0

        if tag == "g" or root:  # the root <svg> groups its children (viewBox handled by the caller)
            first = len(self.shapes)
            for child in el:
                self.walk(child, state, ctm, depth + 1)
            if opacity != 1.0:
                if len(self.shapes) - first > 1:
                    raise SvgError(
                        f"{_where(tag, 'opacity')}: group opacity over {len(self.shapes) - first} shapes is not "
                        "supported (it is not the same as per-shape opacity where they overlap)"
                    )
                for j in range(first, len(self.shapes)):
                    loop, rgba, rule, stag, m, el_ = self.shapes[j]
                    self.shapes[j] = (loop, (*rgba[:3], rgba[3] * opacity), rule, stag, m, el_)
            return
        if tag in _NO_FILL:
            if state.get("stroke", "none") not in ("none", "transparent"):
                raise SvgError(f"{_where(tag, 'stroke')}: strokes are not supported")
            return
        if tag not in _SHAPES:
            raise SvgError(f"<{tag}>: element is not supported (it would change the picture)")
        if state.get("stroke", "none") not in ("none", "transparent"):
            raise SvgError(f"{_where(tag, 'stroke')}: strokes are not supported (got {state['stroke']!r})")
        if len(list(el)) and any(_local(c.tag)[0] in (None, SVG_NS) and _local(c.tag)[1] not in _IGNORED
                                 for c in el):
            raise SvgError(f"<{tag}>: child elements are not supported")
        fill_text = state.get("fill", "black")
        if fill_text.startswith("url(") or fill_text.lower() == "currentcolor":
            raise SvgError(f"{_where(tag, 'fill')}: paint {fill_text!r} is not supported (plain colors only)")
        rgba = parse_color(fill_text, tag, "fill")
        if rgba is None:
            return
        fo = _number(state["fill-opacity"], tag, "fill-opacity") if "fill-opacity" in state else 1.0
        rule = state.get("fill-rule", "nonzero")
        if rule not in ("nonzero", "evenodd"):
            raise SvgError(f"{_where(tag, 'fill-rule')}: expected 'nonzero' or 'evenodd', got {rule!r}")
        loop = _shape_loop(tag, el)
        if loop is None:
            return
        if len(self.shapes) > self.max_paths:  # one extra allowed: it may be the background rect
            raise SvgError(f"<svg>: more than {self.max_paths} filled shapes (max_paths)")
        self.segments += len(loop) // 3
        if self.segments > MAX_SVG_SEGMENTS:
            raise SvgError(f"<svg>: more than {MAX_SVG_SEGMENTS} cubic segments in total")
        alpha = min(1.0, max(0.0, fo)) * opacity * rgba[3]
        self.shapes.append((loop, (rgba[0], rgba[1], rgba[2], alpha), rule, tag, ctm, el))


def _viewport(root) -> tuple[int, int, Affine]:
    vb = root.get("viewBox")
    w_t, h_t = root.get("width"), root.get("height")
    box = None
    if vb is not None:
        box = _numbers(vb, "svg", "viewBox")
        if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
            raise SvgError(f"<svg> attribute 'viewBox': expected 'min-x min-y width height' with positive size, "
                           f"got {vb!r}")
    if (w_t is None or h_t is None) and box is None:
        raise SvgError("<svg>: needs 'width' and 'height' or a 'viewBox' to size the canvas")
    w = _length(w_t, "svg", "width") if w_t is not None else box[2]
    h = _length(h_t, "svg", "height") if h_t is not None else box[3]
    if w <= 0 or h <= 0 or w != int(w) or h != int(h):
        raise SvgError(f"<svg>: width and height must be positive whole numbers of pixels, got {w} × {h}")
    m = IDENTITY
    if box is not None:
        sx, sy = w / box[2], h / box[3]
        par = (root.get("preserveAspectRatio") or "xMidYMid meet").split()
        if math.isclose(sx, sy, rel_tol=1e-9) or par[0] == "none":
            m = (sx, 0.0, 0.0, sy, -box[0] * sx, -box[1] * sy)
        elif par in (["xMidYMid"], ["xMidYMid", "meet"]):
            s = min(sx, sy)
            tx = (w - box[2] * s) / 2 - box[0] * s
            ty = (h - box[3] * s) / 2 - box[1] * s
            m = (s, 0.0, 0.0, s, tx, ty)
        else:
            raise SvgError(f"<svg> attribute 'preserveAspectRatio': {' '.join(par)!r} is not supported")
    return int(h), int(w), m


def _load_bytes(source: str | os.PathLike | bytes, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, str) and source.lstrip().startswith("<"):
        data = source.encode("utf-8")
    else:
        try:
            size = os.stat(source).st_size
        except OSError as err:
            raise SvgError(f"cannot read SVG file {os.fspath(source)!r}: {err.strerror}") from None
        if size > max_bytes:
            raise SvgError(f"SVG file is {size} bytes, over the limit of {max_bytes} bytes (max_bytes)")
        with open(source, "rb") as f:
            data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SvgError(f"SVG data is over the limit of {max_bytes} bytes (max_bytes)")
    return data


def _parse_xml(data: bytes):
    from defusedxml import DefusedXmlException  # noqa: PLC0415
    from defusedxml.ElementTree import ParseError, fromstring  # noqa: PLC0415

    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        raise SvgError(f"SVG refused: {type(err).__name__} ({err}); DOCTYPEs, entities and external "
                       "references are not allowed") from None
    except ParseError as err:
        raise SvgError(f"SVG is not well-formed XML: {err}") from None


def read_svg(source: str | os.PathLike | bytes, *, dtype: torch.dtype = torch.float32,
             max_bytes: int = MAX_SVG_BYTES, max_paths: int = MAX_SVG_PATHS) -> SvgScene:
    """Read filled shapes from an SVG file path (``str``/``PathLike``), SVG ``bytes``, or SVG text (a ``str``
    starting with ``<``).

    Raises:
        SvgError: over ``max_bytes`` or ``max_paths``, a DOCTYPE/entity/external reference (refused before
            anything is resolved), malformed XML, or any feature that would change the picture but is not
            supported — the message names the element and attribute.
    """
    root = _parse_xml(_load_bytes(source, max_bytes))
    ns, tag = _local(root.tag)
    if tag != "svg" or ns not in (None, SVG_NS):
        raise SvgError(f"root element is <{tag}>, expected <svg>")
    height, width, view = _viewport(root)
    reader = _Reader(max_paths)
    reader.walk(root, {}, IDENTITY, 0)
    shapes = reader.shapes
    background = "none"
    if shapes and _is_background(shapes[0], height, width, view):
        background = "white"
        shapes = shapes[1:]
    if len(shapes) > max_paths:
        raise SvgError(f"<svg>: more than {max_paths} filled shapes (max_paths)")
    if not shapes:
        return SvgScene(torch.zeros(0, 3, 2, dtype=dtype), torch.zeros(0, 4, dtype=dtype), (), height, width,
                        background)
    n_max = max(len(s[0]) for s in shapes)
    points = torch.empty(len(shapes), n_max, 2, dtype=torch.float64)
    for j, (loop, *_r, m, _el) in enumerate(shapes):
        pts = torch.tensor(loop, dtype=torch.float64)
        full = _compose(view, m)
        mat = torch.tensor([[full[0], full[2]], [full[1], full[3]]], dtype=torch.float64)
        pts = pts @ mat.T + torch.tensor([full[4], full[5]], dtype=torch.float64)
        points[j, : len(loop)] = pts
        points[j, len(loop) :] = pts[0]  # degenerate segments at the start point draw nothing
    colors = torch.tensor([s[1] for s in shapes], dtype=torch.float64)
    return SvgScene(points.to(dtype), colors.to(dtype), tuple(s[2] for s in shapes), height, width, background)


def _is_background(shape, height: int, width: int, view: Affine) -> bool:
    loop, rgba, _rule, tag, m, el = shape
    if tag != "rect" or rgba != (1.0, 1.0, 1.0, 1.0) or el.get("rx") or el.get("ry"):
        return False
    full = _compose(view, m)
    x0 = full[0] * _length(el.get("x"), "rect", "x", 0.0) + full[4]
    y0 = full[3] * _length(el.get("y"), "rect", "y", 0.0) + full[5]
    x1 = x0 + full[0] * _length(el.get("width"), "rect", "width")
    y1 = y0 + full[3] * _length(el.get("height"), "rect", "height")
    return full[1] == 0 and full[2] == 0 and x0 <= 0 and y0 <= 0 and x1 >= width and y1 >= height


# ------------------------------------------------------------------------------------------------ writing
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
