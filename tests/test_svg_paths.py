"""SVG path data: elliptical arcs (against svgpathtools' Arc, ``<circle>``/``<ellipse>`` and Chromium), the
rest of the grammar against svgpathtools' point evaluation, and malformed data as one clear error."""
from __future__ import annotations

import cmath
import math

import pytest
import torch
from test_raster_browser import browser_render  # the tests folder is on sys.path (no __init__.py)

from dreamsampler.io import svg as svg_module
from dreamsampler.io.svg import MAX_PATH_SEGMENTS, SvgError, parse_path_data, read_svg
from dreamsampler.render import rasterize

pytestmark = pytest.mark.usefixtures("one_torch_thread")
svgpathtools = pytest.importorskip("svgpathtools", reason="independent SVG path parser not installed")


def svg(body: str, head: str = 'width="40" height="30"') -> bytes:
    return f'<svg xmlns="http://www.w3.org/2000/svg" {head}>{body}</svg>'.encode()


def segments(loop):
    return [loop[3 * s : 3 * s + 4] for s in range(len(loop) // 3)]


def cubic_at(seg, t):
    u = 1 - t
    w = (u**3, 3 * u * u * t, 3 * u * t * t, t**3)
    return complex(sum(wi * p[0] for wi, p in zip(w, seg)), sum(wi * p[1] for wi, p in zip(w, seg)))


def raster(scene):
    return rasterize(scene.points.double(), scene.colors.double(), scene.height, scene.width,
                     fill_rule=list(scene.fill_rule))


# -------------------------------------------------------------------------------------------------- arcs
@pytest.mark.parametrize("sweep", [0, 1])
def test_circle_from_two_arcs_rasterizes_like_circle(sweep):
    arcs = read_svg(svg(f'<path d="M 30 15 A 10 10 0 0 {sweep} 10 15 A 10 10 0 0 {sweep} 30 15 Z"/>'))
    circle = read_svg(svg('<circle cx="20" cy="15" r="10"/>'))
    assert (raster(arcs) - raster(circle)).abs().mean() < 2e-3
    ellipse_arcs = read_svg(svg('<path d="M 8 15 a 12 7 0 1 1 0 0.001 Z"/>'))  # all but a sliver
    ellipse = read_svg(svg('<ellipse cx="20" cy="15" rx="12" ry="7"/>'))
    assert (raster(ellipse_arcs) - raster(ellipse)).abs().mean() < 2e-3


ARCS = [  # start, rx, ry, x-axis-rotation, large-arc, sweep, end
    *[((10, 20), 12, 8, 0, fa, fs, (25, 28)) for fa in (0, 1) for fs in (0, 1)],
    *[((10, 20), 12, 8, 30, fa, fs, (25, 28)) for fa in (0, 1) for fs in (0, 1)],
    ((3, 4), 20, 6, -75, 1, 0, (-8, 15)),  # rotated ellipse, large arc
    ((0, 0), 1, 2, 40, 0, 1, (10, 6)),  # radii too small: scaled up to just fit (half ellipse)
    ((5, 5), 10, 10, 0, 1, 1, (5.0001, 5)),  # almost a full circle: 4 pieces
]


def on_ellipse_error(p, ref):
    """Relative radial deviation of point p from svgpathtools' ellipse of the arc."""
    w = (p - ref.center) * cmath.exp(-1j * math.radians(ref.rotation))
    return abs(math.hypot(w.real / ref.radius.real, w.imag / ref.radius.imag) - 1)


@pytest.mark.parametrize("arc", ARCS)
def test_arc_lies_on_svgpathtools_ellipse(arc):
    (x0, y0), rx, ry, rot, fa, fs, (x1, y1) = arc
    (sub,) = parse_path_data(f"M {x0} {y0} A {rx} {ry} {rot} {fa} {fs} {x1} {y1}")
    pieces = segments(sub)[:-1]  # the last segment is the closing line
    ref = svgpathtools.Arc(complex(x0, y0), complex(rx, ry), rot, fa, fs, complex(x1, y1))
    n = math.ceil(abs(ref.delta) / 90 - 1e-9)
    assert len(pieces) == n and sub[0] == (x0, y0) and pieces[-1][3] == (x1, y1)  # endpoints exact
    for i, piece in enumerate(pieces):  # piece ends at equal angle steps, as svgpathtools' point(t)
        assert abs(cubic_at(piece, 1) - ref.point((i + 1) / n)) < 1e-6
        for t in torch.linspace(0, 1, 9).tolist():  # 90° pieces: the circle's 2.7e-4 relative error
            assert on_ellipse_error(cubic_at(piece, t), ref) < 2.8e-4
    mid = cubic_at(pieces[n // 2], 0.0) if n % 2 == 0 else cubic_at(pieces[n // 2], 0.5)
    assert abs(mid - ref.point(0.5)) < 1e-3 and on_ellipse_error(mid, ref) < 1e-6
    relative = parse_path_data(f"m {x0} {y0} a {rx} {ry} {rot} {fa} {fs} {x1 - x0} {y1 - y0}")
    assert max(abs(complex(*p) - complex(*q)) for p, q in zip(relative[0], sub)) < 1e-9


def test_degenerate_and_compact_arcs():
    line = parse_path_data("M 0 0 L 10 0 Z")
    assert parse_path_data("M 0 0 A 0 5 0 0 1 10 0 Z") == line  # rx = 0: a straight line (SVG spec)
    assert parse_path_data("M 0 0 A 5 0 0 0 1 10 0 Z") == line
    assert parse_path_data("M 0 0 L 10 0 A 5 5 0 0 1 10 0 Z") == line  # same endpoints: no segment
    assert parse_path_data("M0 0a5 5 0 1110 0z") == parse_path_data("M 0 0 a 5 5 0 1 1 10 0 z")  # packed flags
    assert parse_path_data("M0 0 A -5 -5 0 0 1 10 0Z") == parse_path_data("M0 0 A 5 5 0 0 1 10 0Z")


ARC_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="96" height="64" viewBox="0 0 48 32">
  <path d="M 4 16 A 8 5 0 0 1 20 16 A 8 5 0 1 1 12 20 Z" fill="teal"/>
  <path d="M 26 4 a 9 4 30 1 0 14 8 l 4 -6 z" fill="#f80" fill-opacity="0.8"/>
  <path d="M 24 26 A 2 2 0 0 0 44 26 Z M 30 25 a 3 2 -20 1 1 6 0 z" fill="#333" fill-rule="evenodd"/>
</svg>
"""


def test_arcs_match_the_browser(tmp_path):
    scene = read_svg(ARC_SVG.encode())
    ours = rasterize(scene.points.double(), scene.colors.double(), 64, 96, samples=4,
                     fill_rule=list(scene.fill_rule))
    shot = browser_render(ARC_SVG, 96, 64, tmp_path)
    err = (ours - shot).abs().mean().item()
    assert err <= 3e-3, f"mean-abs {err:.2e}"  # a flipped flag or a lost rotation: > 1e-2
    assert (ours < 0.99).double().mean() > 0.15  # the arcs drew something sizeable


# ------------------------------------------------------------------------------- the rest of the grammar
PATHS = [
    "M 1 1 H 9 10 V 8 9 h -4 -1 v -3 -1 Z",  # implicit repeats of H/V
    "m 1 1 2 0 0 3 z m 5 5 l 1 0 1 1 z",  # implicit relative linetos after m; m after z is relative
    "M 1 2 C 4 0 8 0 10 3 12 6 8 9 6 9 S 2 8 1 5 3 1 4 2 Z",  # C and S repeated
    "M 1 2 Q 5 -2 9 2 12 5 9 8 T 5 9 2 6 Z",  # Q and T repeated
    "M 0 0 Q 5 5 10 0 S 20 5 20 0 Z",  # S after Q: first control is the current point
    "M 0 0 C 5 5 8 5 10 0 T 20 0 Z",  # T after C: control is the current point
    "M 0 0 L 5 0 L 5 5 Z L 0 5 L -2 3 Z",  # drawing on after z starts at the subpath's start
    "M1.5.5L3-2.5.5,1e1Z",  # packed numbers: 1.5 .5 / 3 -2.5 / .5 10
    "M1e1-1E-1l+2.5e+0,3E0-1e-1-2ZM 1. 2. L 3..5 Z",  # exponents, signs, the form "1."
]


@pytest.mark.parametrize("d", PATHS)
def test_path_data_matches_svgpathtools_points(d):
    ours = [seg for sub in parse_path_data(d) for seg in segments(sub)]
    theirs = svgpathtools.parse_path(d)
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        for t in (0.0, 0.3, 0.5, 0.75, 1.0):  # lines, quadratics, cubics: the same parametrization
            assert abs(cubic_at(mine, t) - ref.point(t)) < 1e-12


# --------------------------------------------------------------------------------------------- errors
MALFORMED = [
    ("M0 0 L5 x 0", r"at character 8 .*unexpected character 'x'"),
    ("L 5 5", "must start with a moveto"),
    ("5 5", "must start with a moveto"),
    ("M0 0 Z 5", "numbers after closepath 'Z'"),
    ("M0 0 C 1 1 2 2", "command 'C' needs 6 numbers"),
    ("M0 0 h", "command 'h' needs 1 number"),
    ("M0 0 V Z", "command 'V' needs 1 number"),  # a command without its numbers
    ("M0 0 L 1 1 A", "command 'A' needs 7 numbers"),
    ("M0 0 Lz", "command 'L' needs 2 numbers"),  # no "z" in place of a coordinate (svgelements allows it)
    ("M0 0 c 1 1 z", "command 'c' needs 6 numbers"),
    ("M0 0 A 5 5 0 2 1 10 0", "command 'A' needs 7 numbers"),  # a flag must be 0 or 1
    ("M0 0 L 5 5 1", "command 'L' needs 2 numbers"),
    ("M0 0 L 1e400 0", "non-finite coordinate"),
    ("M0 0 A 1e200 1e200 0 0 1 5 5", "arc parameters out of float range"),
]


@pytest.mark.parametrize("d, match", MALFORMED)
def test_malformed_path_data_is_one_clear_error(d, match):
    with pytest.raises(SvgError, match=r"^<path> attribute 'd': .*" + match) as err:
        read_svg(svg(f'<path d="{d}"/>'))
    assert err.value.__cause__ is None and err.value.__context__ is None  # no library traceback


def test_segment_limit_per_path(monkeypatch):
    assert MAX_PATH_SEGMENTS == 100_000
    monkeypatch.setattr(svg_module, "MAX_PATH_SEGMENTS", 10)
    assert len(parse_path_data("M0 0" + " L1 1" * 9)[0]) == 3 * 10 + 1  # move + 9 lines: at the limit
    with pytest.raises(SvgError, match=r"<path> attribute 'd': more than 10 path segments"):
        read_svg(svg('<path d="M0 0' + " L1 1" * 10 + '"/>'))
