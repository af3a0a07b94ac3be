"""SVG read/write: geometry against an independent parser (svgpathtools, when installed) and exact
shapes, round trips, and refusal of unsafe or unsupported files."""
from __future__ import annotations

import math
import sys

import pytest
import torch

from dreamsampler.io.svg import (MAX_SVG_BYTES, SvgError, parse_color, parse_path_data, parse_transform,
                                 read_svg, write_svg)
from dreamsampler.render import rasterize


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def svg(body: str, head: str = 'width="40" height="30"') -> bytes:
    return f'<svg xmlns="http://www.w3.org/2000/svg" {head}>{body}</svg>'.encode()


def cubic_at(seg, t):
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = seg
    u = 1 - t
    return (u**3 * x0 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t**3 * x3,
            u**3 * y0 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t**3 * y3)


def segments(loop):
    return [(loop[3 * s], loop[3 * s + 1], loop[3 * s + 2], loop[3 * s + 3]) for s in range(len(loop) // 3)]


PATHS = [
    "M 1 2 L 10 4 L 3 9 Z",
    "m 1 2 l 9 2 l -7 5 z",
    "M 1 1 H 9 V 8 h -4 v -3 Z",
    "M 1 2 C 4 0 8 0 10 3 S 12 9 6 9 Z",
    "M1,2c3-2 7-2 9,1s2,6-4,6z",
    "M 1 2 Q 5 -2 9 2 T 9 8 Z",
    "m1 2q4-4 8 0t0 6z",
    "M 0 0 L 3 0 L 3 3 1 3 Z",  # implicit lineto after the moveto pair
    "M 1 1 L 5 1 5 5 Z M 2 2 L 4 2 4 4 Z",
    "M1.5e1-2.5.5.5Z",  # exponents and packed numbers
]


@pytest.mark.parametrize("d", PATHS)
def test_path_data_matches_svgpathtools(d):
    svgpathtools = pytest.importorskip("svgpathtools", reason="independent SVG path parser not installed")
    theirs = svgpathtools.parse_path(d)
    ours = [seg for sub in parse_path_data(d) for seg in segments(sub)]
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        for t in (0.0, 0.25, 0.5, 0.8, 1.0):
            x, y = cubic_at(mine, t)
            p = ref.point(t)  # lines and quadratics: same parametrization as their exact cubic
            assert math.isclose(x, p.real, abs_tol=1e-9) and math.isclose(y, p.imag, abs_tol=1e-9)


def test_arcs_are_read():  # (arcs were refused before svgelements; tests/test_svg_paths.py checks them)
    (sub,) = parse_path_data("M 0 0 A 5 5 0 0 1 10 0 Z")
    assert len(sub) == 3 * 3 + 1 and sub[6] == (10, 0) and math.isclose(sub[3][1], -5, abs_tol=1e-12)


def test_transforms_compose_like_the_spec():
    a, b, c, d, e, f = parse_transform("translate(10 20) rotate(90) scale(2, 3)")
    # point (1, 1): scale → (2, 3), rotate 90° → (-3, 2), translate → (7, 22)
    assert math.isclose(a * 1 + c * 1 + e, 7, abs_tol=1e-12) and math.isclose(b * 1 + d * 1 + f, 22, abs_tol=1e-12)
    m = parse_transform("matrix(1 2 3 4 5 6)")
    assert m == (1, 2, 3, 4, 5, 6)
    r = parse_transform("rotate(90 5 5)")
    assert math.isclose(r[0] * 10 + r[2] * 5 + r[4], 5, abs_tol=1e-12)
    assert math.isclose(r[1] * 10 + r[3] * 5 + r[5], 10, abs_tol=1e-12)
    with pytest.raises(SvgError, match="transform"):
        parse_transform("perspective(3)")


@pytest.mark.parametrize(
    "text, rgba",
    [("red", (1, 0, 0, 1)), ("#0f0", (0, 1, 0, 1)), ("#0000ff", (0, 0, 1, 1)), ("#ff000080", (1, 0, 0, 128 / 255)),
     ("rgb(255, 128, 0)", (1, 128 / 255, 0, 1)), ("rgb(50%, 25%, 100%)", (0.5, 0.25, 1, 1)),
     ("rgba(0, 0, 255, 0.5)", (0, 0, 1, 0.5)), ("cornflowerblue", (100 / 255, 149 / 255, 237 / 255, 1)),
     ("none", None)],
)
def test_colors(text, rgba):
    got = parse_color(text)
    assert got == rgba if rgba is None else all(math.isclose(g, r, abs_tol=1e-12) for g, r in zip(got, rgba))


def test_shapes_read_as_exact_geometry():
    scene = read_svg(svg(
        '<rect x="2" y="3" width="10" height="5" fill="black"/>'
        '<g transform="translate(20 0)"><polygon points="0,0 8,0 8,8" fill="#fff" fill-opacity="0.5" opacity="0.5"/></g>'
        '<circle cx="10" cy="20" r="4"/>'))
    assert scene.points.shape == (3, 12, 2) and scene.fill_rule == ("nonzero",) * 3
    # the rect: anchor points are its corners, controls on the edges
    assert scene.points[0, 0::3].tolist() == [[2, 3], [12, 3], [12, 8], [2, 8]]
    # polygon padded with degenerate segments at its start: draws the same
    assert scene.points[1, 9:].tolist() == [[20, 0]] * 3
    torch.testing.assert_close(scene.colors[1], torch.tensor([1, 1, 1, 0.25]))
    # circle: anchors on the circle, 4 cubics
    anchors = scene.points[2, 0::3] - torch.tensor([10.0, 20.0])
    torch.testing.assert_close(anchors.norm(dim=1), torch.full((4,), 4.0))
    img = rasterize(scene.points[:1].double(), scene.colors[:1].double(), 30, 40)
    assert img[3:8, 2:12].max() == 0 and img[:3].min() == 1 and img[8:].min() == 1


def test_viewbox_maps_to_pixels():
    scene = read_svg(svg('<rect x="1" y="1" width="2" height="2"/>', 'width="40" height="40" viewBox="0 0 4 4"'))
    assert (scene.height, scene.width) == (40, 40)
    assert scene.points[0, 0::3].tolist() == [[10, 10], [30, 10], [30, 30], [10, 30]]
    meet = read_svg(svg('<rect x="0" y="0" width="4" height="4"/>', 'width="80" height="40" viewBox="0 0 4 4"'))
    assert meet.points[0, 0::3].tolist() == [[20, 0], [60, 0], [60, 40], [20, 40]]  # xMidYMid meet


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_same_tensors_and_raster(tmp_path, dtype):
    g = torch.Generator().manual_seed(0)
    points = (torch.rand(5, 9, 2, generator=g, dtype=torch.float64) * 50 - 5).to(dtype)
    colors = torch.rand(5, 4, generator=g, dtype=torch.float64).to(dtype)
    rules = ["nonzero", "evenodd", "nonzero", "evenodd", "nonzero"]
    path = tmp_path / "scene.svg"
    text = write_svg(path, points, colors, 36, 48, fill_rule=rules)
    assert path.read_text() == text and 'viewBox="0 0 48 36"' in text and 'fill-rule="evenodd"' in text
    scene = read_svg(path, dtype=dtype)
    assert scene.background == "white" and (scene.height, scene.width) == (36, 48)
    assert list(scene.fill_rule) == rules
    tol = 0 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(scene.points, points, atol=tol, rtol=tol)
    torch.testing.assert_close(scene.colors, colors, atol=tol, rtol=tol)
    torch.testing.assert_close(rasterize(scene.points, scene.colors, 36, 48, fill_rule=list(scene.fill_rule)),
                               rasterize(points, colors, 36, 48, fill_rule=rules), atol=1e-6, rtol=0)


UNSUPPORTED = [
    ('<path d="M0 0 L5 0 L5 5Z" stroke="red"/>', r"<path> attribute 'stroke'"),
    ('<g stroke="#000"><circle r="3" cx="5" cy="5"/></g>', r"<circle> attribute 'stroke'"),
    ('<path d="M0 0 L5 0 L5 5Z" style="stroke: blue"/>', r"<path> attribute 'stroke'"),
    ('<path d="M0 0 L5 0 L5 5Z" fill="url(#grad)"/>', r"<path> attribute 'fill'.*url"),
    ('<use href="#a"/>', r"<use>: element is not supported"),
    ('<text x="1" y="1">hi</text>', r"<text>: element is not supported"),
    ('<image href="x.png" width="3" height="3"/>', r"<image>: element is not supported"),
    ('<style>path { fill: red }</style>', r"<style>: element is not supported"),
    ('<svg width="3" height="3"/>', r"<svg>: element is not supported"),
    ('<path d="M0 0 L5 0 L5 5Z" clip-path="url(#c)"/>', r"<path> attribute 'clip-path'"),
    ('<g filter="url(#f)"><path d="M0 0 L5 0 L5 5Z"/></g>', r"<g> attribute 'filter'"),
    ('<path d="M0 0 L5 0 L5 5Z" marker-end="url(#m)"/>', r"<path> attribute 'marker-end'"),
    ('<path d="M0 0 A 3 3 0 2 1 5 5Z"/>', r"<path> attribute 'd'.*command 'A' needs 7 numbers"),
    ('<g opacity="0.5"><circle r="3" cx="5" cy="5"/><circle r="3" cx="7" cy="5"/></g>', r"<g> attribute 'opacity'.*2 shapes"),
    ('<path d="M0 0 L5 0 L5 5Z" fill="currentColor"/>', r"<path> attribute 'fill'"),
    ('<path d="M0 0 L5 0 L5 5Z" fill="blurple"/>', r"<path> attribute 'fill'.*unsupported paint"),
    ('<path d="M0 0 L5 0 L5 5Z" fill-rule="winding"/>', r"<path> attribute 'fill-rule'"),
    ('<path d="M0 0 L5 0 L5 5Z" visibility="hidden"/>', r"<path> attribute 'visibility'"),
    ('<rect width="5" height="x"/>', r"<rect> attribute 'height'"),
    ('<path d="M0 0 L5 0 L5"/>', r"command 'L' needs 2 numbers"),
]


@pytest.mark.parametrize("body, match", UNSUPPORTED)
def test_unsupported_features_are_one_clear_error(body, match):
    with pytest.raises(SvgError, match=match):
        read_svg(svg(body))


def test_non_rendering_content_is_skipped():
    scene = read_svg(svg('<title>t</title><desc>d</desc><defs><linearGradient id="g"/></defs>'
                         '<path d="M0 0 L5 0 L5 5Z" display="none"/><path d="M0 0 L5 0 L5 5Z" fill="none"/>'
                         '<line x1="0" y1="0" x2="5" y2="5"/><path d="M0 0 L5 0 L5 5Z"/>'))
    assert scene.points.shape[0] == 1


@pytest.mark.parametrize("head, match", [('width="40%" height="30"', r"attribute 'width'.*px"),
                                         ('', "needs 'width' and 'height' or a 'viewBox'"),
                                         ('width="10.5" height="4"', "whole numbers of pixels")])
def test_canvas_size_errors(head, match):
    with pytest.raises(SvgError, match=match):
        read_svg(svg("", head))


def _audit_opens():
    """Record every file open / socket connect while active (sys.audit hooks cannot be removed)."""
    events = []
    state = {"on": False}

    def hook(event, args):
        if state["on"] and event in ("open", "socket.connect", "urllib.Request"):
            events.append((event, args[0]))

    sys.addaudithook(hook)
    return events, state


_EVENTS, _STATE = _audit_opens()


@pytest.mark.parametrize(
    "doc, match",
    [
        ('<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">'
         '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>', "DTDForbidden"),
        ('<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
         '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
         '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><title>&d;&d;&d;</title></svg>', "DTDForbidden"),
        ('<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY secret SYSTEM "file://{secret}">]>'
         '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><title>&secret;</title></svg>', "DTDForbidden"),
        ('<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY net SYSTEM "http://127.0.0.1:9/x">]>'
         '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><title>&net;</title></svg>', "DTDForbidden"),
    ],
)
def test_unsafe_xml_is_refused_without_reading_anything(tmp_path, doc, match):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    data = doc.replace("{secret}", str(secret)).encode()
    _EVENTS.clear()
    _STATE["on"] = True
    try:
        with pytest.raises(SvgError, match=match):
            read_svg(data)
    finally:
        _STATE["on"] = False
    assert not [e for e in _EVENTS if "secret" in str(e[1]) or e[0] != "open"], _EVENTS


def test_size_and_path_count_limits(tmp_path):
    big = tmp_path / "big.svg"
    big.write_bytes(svg("<!--" + "x" * 2000 + "-->"))
    with pytest.raises(SvgError, match=r"SVG file is \d+ bytes, over the limit of 1000 bytes"):
        read_svg(big, max_bytes=1000)
    with pytest.raises(SvgError, match="over the limit of 1000 bytes"):
        read_svg(big.read_bytes(), max_bytes=1000)
    assert MAX_SVG_BYTES >= 2**20
    many = svg('<path d="M0 0 L5 0 L5 5Z"/>' * 6)
    with pytest.raises(SvgError, match="more than 5 filled shapes"):
        read_svg(many, max_paths=5)
    assert read_svg(many, max_paths=6).points.shape[0] == 6
    with pytest.raises(SvgError, match="not well-formed XML"):
        read_svg(b"<svg")
    with pytest.raises(SvgError, match=r"root element is <html>"):
        read_svg(b"<html/>")


def test_write_rejects_bad_scenes():
    with pytest.raises(ValueError, match="colors: RGBA values must lie in"):
        write_svg(None, torch.zeros(1, 3, 2), torch.full((1, 4), 2.0), 4, 4)
    with pytest.raises(SvgError, match="one scene"):
        write_svg(None, torch.zeros(2, 1, 3, 2), torch.zeros(2, 1, 4), 4, 4)


def test_root_svg_presentation_attributes_apply():
    scene = read_svg(svg('<rect width="2" height="2"/>', 'width="4" height="4" fill="red" opacity="0.5"'))
    torch.testing.assert_close(scene.colors, torch.tensor([[1.0, 0.0, 0.0, 0.5]]))
    with pytest.raises(SvgError, match=r"<svg> attribute 'transform'"):
        read_svg(svg('<rect width="2" height="2"/>', 'width="4" height="4" transform="scale(2)"'))
    with pytest.raises(SvgError, match=r"<rect> attribute 'stroke'"):
        read_svg(svg('<rect width="2" height="2"/>', 'width="4" height="4" stroke="red"'))


def test_named_colors_after_pillow_cached_them():
    """Pillow converts its color table's entries to tuples in place once ``getrgb`` has seen a name."""
    from PIL import Image

    from dreamsampler.io.svg import parse_color

    Image.new("RGB", (1, 1), "orange")          # caches colormap["orange"] as a tuple
    assert parse_color("orange") == (1.0, 165 / 255, 0.0, 1.0)
