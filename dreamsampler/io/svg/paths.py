"""Path data and outlines: a strict check of ``d`` (svgelements' lexer and grammar), and svgelements' path
segments (of paths and of every other shape) → closed loops of cubics.

Lines and quadratics become cubics exactly; an elliptical arc becomes cubics of at most 90° each with the
circle's 4/3·tan(θ/4) handles (radial error < 2.8e-4). svgelements' own ``Arc.as_cubic_curves`` is not used:
its handle length (Maisonobe's) has a 2e-3 radial error on 90° pieces, 7x more.
"""
from __future__ import annotations

import itertools
import math
import re

import svgelements
from svgelements import Arc, Close, CubicBezier, Line, Move, QuadraticBezier

from .values import SvgError, where

Point = tuple[float, float]

_BARE_DOT = re.compile(r"(\d)\.(?!\d)")
_BARE_COMMAND = re.compile(r"([MmLlHhVvCcSsQqTtAa])[\s,]*(?:[A-Za-z]|$)")
_SMOOTH = re.compile(r"[SsTt]")
_PATH_ARGS = {"M": 2, "L": 2, "T": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "A": 7}
_FLOAT = re.compile(svgelements.PATTERN_FLOAT)  # the lexer's number
_COMMAND = re.compile(r"([MmLlTtHhVvCcSsQqZz])([^MmLlTtHhVvCcSsQqZzAa]*)")


def _plain_grammar() -> re.Pattern:
    """Path data without arcs, exactly as svgelements' lexer reads it (its number form, its separators,
    implicit repeats), for checking the common case without running the lexer. Numbers match atomically
    (``(?=(…))(?P=…)``), so a match never re-splits them and takes linear time."""
    ids, sep = itertools.count(), r"[ ,\t\n\x0c\r]*"

    def numbers(k: int) -> str:
        return sep.join(f"(?=(?P<n{i}>{svgelements.PATTERN_FLOAT}))(?P=n{i})" for i in itertools.islice(ids, k))

    def command(letters: str, k: int) -> str:
        return f"[{letters}]{sep}{numbers(k)}(?:{sep}{numbers(k)})*"

    commands = "|".join([command("LlTt", 2), command("HhVv", 1), command("Cc", 6), command("SsQq", 4), "[Zz]",
                         command("Mm", 2)])
    return re.compile(f"{sep}{command('Mm', 2)}(?:{sep}(?:{commands}))*{sep}")


_PLAIN = _plain_grammar()


class _Lexer(svgelements.SVGLexicalParser):
    """svgelements' path-data lexer without its extension of ``z`` in place of a coordinate (not SVG)."""

    inline_close = property(lambda self: None, lambda self, value: None)


class _PathBuilder(svgelements.Path):
    """svgelements' segment builder with a segment limit, arc flags required, and the spec's smooth-curve
    rule: ``S`` reflects only a C/S control point and ``T`` only a Q/T one, else the first control point is
    the current point (svgelements 1.9.6 reflects either kind, also in the paths ``SVG.parse`` builds)."""

    _smooth: type = object
    limit: float = math.inf

    def append(self, value):
        if len(self._segments) >= self.limit:
            raise SvgError(f"more than {self.limit} path segments (MAX_PATH_SEGMENTS)")
        super().append(value)

    def smooth_cubic(self, *points, **kwargs):
        self._smooth = CubicBezier
        return super().smooth_cubic(*points, **kwargs)

    def smooth_quad(self, *points, **kwargs):
        self._smooth = QuadraticBezier
        return super().smooth_quad(*points, **kwargs)

    def arc(self, *args, **kwargs):
        if None in args:  # a flag other than 0 or 1 (the lexer passes None on)
            raise ValueError("missing arc flag")
        return super().arc(*args, **kwargs)

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
    return SvgError(f"{where(tag, 'd')}: malformed path data at character {pos} (near {near!r}): {problem}")


def check_path_data(d: str, tag: str, max_segments: int) -> int:
    """Refuse malformed ``d`` or more than ``max_segments`` segments; return the number of segments.

    Path data without arcs that matches the lexer's grammar is counted from its numbers; anything else is
    built, which also locates the error.
    """
    if _PLAIN.fullmatch(d):
        count = sum(1 if cmd in "Zz" else len(_FLOAT.findall(args)) // _PATH_ARGS[cmd.upper()]
                    for cmd, args in _COMMAND.findall(d))
        if count <= max_segments:
            return count
    return len(path_segments(d, tag, max_segments))


def needs_own_segments(d: str) -> bool:
    """Whether svgelements' ``SVG.parse`` may build ``d`` wrongly: smooth commands (its reflection rule) or
    numbers of the form ``1.`` (which its lexer stops at)."""
    return bool(_SMOOTH.search(d) or _BARE_DOT.search(d))


def path_segments(d: str, tag: str, max_segments: int) -> list:
    """``d`` → svgelements segments (Move, Line, QuadraticBezier, CubicBezier, Arc, Close), absolute;
    malformed data is one ``SvgError`` at its first bad character."""
    bare = _BARE_COMMAND.search(d)  # the lexer lets V, A and H go without numbers
    if bare:
        raise _malformed(d, bare.end(1), tag)
    path, lexer = _PathBuilder(), _Lexer()
    path.limit = max_segments
    try:
        lexer.parse(path, _BARE_DOT.sub(r"\1 ", d))  # its lexer lacks the number form "1." (same length)
        ok = lexer.pos == len(d)  # the lexer stops quietly at a character it does not know
    except SvgError as err:
        raise SvgError(f"{where(tag, 'd')}: {err}") from None
    except Exception:  # noqa: BLE001 (any failure of the library's parser is malformed data)
        ok = False
    segs = list(path)
    if not ok or (segs and not isinstance(segs[0], Move)):
        raise _malformed(d, lexer.pos, tag)
    return segs


def _line(p: Point, q: Point) -> list[Point]:
    return [((2 * p[0] + q[0]) / 3, (2 * p[1] + q[1]) / 3), ((p[0] + 2 * q[0]) / 3, (p[1] + 2 * q[1]) / 3), q]


def _arc(seg: Arc, p0: Point, p3: Point, tag: str) -> list[Point]:
    """An elliptical arc → cubics of at most 90° each: the circle's 4/3·tan(θ/4) cubic mapped onto the
    ellipse c + cos t·a + sin t·b (svgelements gives the center form, radii already corrected)."""
    if not math.isfinite(seg.sweep):
        raise SvgError(f"{where(tag, 'd')}: arc parameters out of float range")
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


def _same_point(p: Point, q: Point, points: list[Point]) -> bool:
    """p and q equal up to rounding (1e-12 of the subpath's extent): svgelements computes the last quarter arc
    of an ellipse to ``point_at_t(2π)``, a rounding away from its start."""
    if p == q:
        return True
    tol = 1e-12 * max(abs(v) for pt in points for v in pt)
    return math.isfinite(tol) and abs(p[0] - q[0]) <= tol and abs(p[1] - q[1]) <= tol


def cubic_subpaths(segments, tag: str = "path") -> list[list[Point]]:
    """svgelements segments → subpaths, each ``[start, c1, c2, end, …]`` of cubics, closed back to its start.

    A subpath that does not end at its start gets a closing line (fill closes open subpaths), one that ends
    within rounding of it ends there exactly; a subpath without segments is dropped. Non-finite coordinates
    raise ``SvgError``.
    """
    subpaths: list[list[Point]] = []
    cur: list[Point] = []

    def close():
        nonlocal cur
        if len(cur) > 1:
            if _same_point(cur[-1], cur[0], cur):
                cur[-1] = cur[0]
            else:
                cur.extend(_line(cur[-1], cur[0]))
            subpaths.append(cur)
        cur = []

    for seg in segments:
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
        raise SvgError(f"{where(tag, 'd')}: non-finite coordinate (a number out of float range)")
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
