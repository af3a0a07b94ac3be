"""Everything decided before svgelements sees the bytes.

The size limit; ``defusedxml`` parsing with DTDs, entities and external references forbidden (so nothing
is expanded, read or fetched); depth and element-count limits; and one :class:`SvgError` naming the element
and attribute for every feature the reader does not support, or that svgelements would read differently
from the SVG spec (it skips malformed values silently). Paint, fill rule and opacities are checked later,
on svgelements' computed values.
"""
from __future__ import annotations

import math
import os
from typing import Any


from .paths import check_path_data
from .values import SvgError, check_transform, length, numbers, style, where

SVG_NS = "http://www.w3.org/2000/svg"
#: an element of the tree ``parse_xml`` returns (defusedxml's ``fromstring``; no XML module is imported here)
Element = Any

_DEFINITIONS = {"defs", "clipPath", "pattern"}  # svgelements keeps their content out of the picture
_NON_RENDERING = _DEFINITIONS | {"title", "desc", "metadata", "linearGradient", "radialGradient", "mask",
                                 "filter", "marker", "symbol"}  # not drawn where they stand
_SHAPES = {"path", "rect", "circle", "ellipse", "polygon", "polyline"}
_DRAWN = _SHAPES | {"line", "g", "svg", "use"}  # what svgelements draws, wherever it stands
_PICTURE_ATTRS = ("clip-path", "mask", "filter", "marker", "marker-start", "marker-mid", "marker-end")
_LENGTHS = {"rect": ("x", "y", "width", "height", "rx", "ry"), "circle": ("cx", "cy", "r"),
            "ellipse": ("cx", "cy", "rx", "ry")}
_ASPECT = {"xMidYMid", "xMidYMid meet", "none", "none meet", "none slice"}


def load_bytes(source: str | os.PathLike | bytes, max_bytes: int) -> bytes:
    """The SVG bytes from a file path, ``bytes``, or SVG text (a ``str`` starting with ``<``), size-checked."""
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


def parse_xml(data: bytes) -> Element:
    """The element tree, by ``defusedxml`` with DTDs, entities and external references refused."""
    from defusedxml import DefusedXmlException  # noqa: PLC0415
    from defusedxml.ElementTree import ParseError, fromstring  # noqa: PLC0415

    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        raise SvgError(f"SVG refused: {type(err).__name__} ({err}); DOCTYPEs, entities and external "
                       "references are not allowed") from None
    except ParseError as err:
        raise SvgError(f"SVG is not well-formed XML: {err}") from None


def _local(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return None, tag


def _check_size(root: Element, max_depth: int, max_elements: int) -> None:
    """Depth and element count over every element, skipped subtrees included (svgelements walks them all)."""
    stack, count = [(root, 0)], 0
    while stack:
        el, depth = stack.pop()
        count += 1
        if depth > max_depth:
            raise SvgError(f"<{_local(el.tag)[1]}>: elements nested deeper than {max_depth}")
        if count > max_elements:
            raise SvgError(f"<svg>: more than {max_elements} elements")
        stack.extend((child, depth + 1) for child in el)


def _canvas(root: Element) -> tuple[int, int]:
    """(height, width) in pixels; refuse what svgelements' viewport transform would get wrong."""
    props = style(root.attrib, "svg")
    if "transform" in props:
        raise SvgError(f"{where('svg', 'transform')}: a transform on the root <svg> is not supported")
    for attr in ("x", "y"):  # no effect on the root (SVG spec); svgelements would shift the picture
        if attr in props and length(props[attr], "svg", attr) != 0:
            raise SvgError(f"{where('svg', attr)}: must be 0 on the root <svg>, got {props[attr]!r}")
    vb, w_t, h_t = props.get("viewBox"), props.get("width"), props.get("height")
    box = None
    if vb is not None:
        box = numbers(vb, "svg", "viewBox")
        if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
            raise SvgError(f"<svg> attribute 'viewBox': expected 'min-x min-y width height' with positive size, "
                           f"got {vb!r}")
    if (w_t is None or h_t is None) and box is None:
        raise SvgError("<svg>: needs 'width' and 'height' or a 'viewBox' to size the canvas")
    w = length(w_t, "svg", "width") if w_t is not None else box[2]
    h = length(h_t, "svg", "height") if h_t is not None else box[3]
    if w <= 0 or h <= 0 or w != int(w) or h != int(h):
        raise SvgError(f"<svg>: width and height must be positive whole numbers of pixels, got {w} × {h}")
    par = props.get("preserveAspectRatio", "xMidYMid")
    if box is not None and not math.isclose(w / box[2], h / box[3], rel_tol=1e-9) and par not in _ASPECT:
        raise SvgError(f"<svg> attribute 'preserveAspectRatio': {par!r} is not supported (only "
                       "'xMidYMid meet' or 'none', single-spaced)")
    return int(h), int(w)


class _Walk:
    """The refusals, element by element in document order; counts path segments against the limits."""

    def __init__(self, max_path_segments: int, max_segments: int):
        self.max_path_segments, self.max_segments, self.segments = max_path_segments, max_segments, 0

    def element(self, el: Element, root: bool = False) -> None:
        ns, tag = _local(el.tag)
        foreign = ns not in (None, SVG_NS)
        if foreign or tag in _NON_RENDERING:
            self._skipped(el, tag, flattened=foreign or tag not in _DEFINITIONS)
            return
        props = style(el.attrib, tag)
        if props.get("display", "").lower() == "none":  # svgelements' test: it skips the same subtrees
            return
        for attr in _PICTURE_ATTRS:
            if props.get(attr, "none").strip() not in ("none", ""):
                raise SvgError(f"{where(tag, attr)}: {attr} is not supported (it would change the picture)")
        if props.get("visibility", "visible").strip() not in ("visible", "inherit"):
            raise SvgError(f"{where(tag, 'visibility')}: only 'visible' is supported")
        for attr in ("fill", "stroke"):  # svgelements would substitute the 'color' property
            if props.get(attr, "").strip().lower() == "currentcolor":
                raise SvgError(f"{where(tag, attr)}: paint {props[attr]!r} is not supported (plain colors only)")
        if "transform" in props and not root:
            check_transform(props["transform"], tag)
        if tag == "g" or root:
            for child in el:
                self.element(child)
        elif tag != "line":  # stroke-only: refused later if it has a stroke, else draws nothing
            self._shape(el, tag, props)

    def _skipped(self, el: Element, tag: str, flattened: bool) -> None:
        """A subtree the picture skips, but svgelements reads: it applies ``<style>`` sheets wherever they are,
        and draws the shapes inside elements it does not know (marker, symbol, mask, foreign ones)."""
        for inner in el.iter():
            ns, name = _local(inner.tag)
            if ns not in (None, SVG_NS) or inner is el:
                continue
            if name == "style":
                raise SvgError("<style>: element is not supported (it would change the picture)")
            if flattened and name in _DRAWN:
                raise SvgError(f"<{tag}>: a <{name}> inside it is not supported (only inside <defs>)")

    def _shape(self, el: Element, tag: str, props: dict[str, str]) -> None:
        if tag not in _SHAPES:
            raise SvgError(f"<{tag}>: element is not supported (it would change the picture)")
        for child in el:
            ns, name = _local(child.tag)
            if ns in (None, SVG_NS) and name not in _NON_RENDERING:
                raise SvgError(f"<{tag}>: child elements are not supported")
            self.element(child)  # non-rendering: checked as skipped
        if tag == "path":
            self._count(check_path_data(props.get("d", ""), tag, self.max_path_segments))
        elif tag in ("polygon", "polyline"):
            vals = numbers(props.get("points", ""), tag, "points")
            if len(vals) % 2:
                raise SvgError(f"{where(tag, 'points')}: odd number of coordinates ({len(vals)})")
            self._count(len(vals) // 2)
        else:
            self._lengths(tag, props)

    def _lengths(self, tag: str, props: dict[str, str]) -> None:
        """px lengths; a rect's size given, and neither it nor the corner radii negative (svgelements would
        take a missing size from an ancestor's attribute, and scoop the corners); an ellipse's radii both
        given or neither (svgelements takes a missing one as 1) and no ``r`` (it would draw a circle)."""
        values = {attr: length(props[attr], tag, attr) for attr in _LENGTHS[tag] if attr in props}
        if tag == "ellipse" and "r" in props:
            raise SvgError(f"{where(tag, 'r')}: not an attribute of <ellipse>")
        if tag == "rect":
            for attr in ("width", "height"):
                length(props.get(attr), tag, attr)  # required
            for attr in ("width", "height", "rx", "ry"):
                if values.get(attr, 0.0) < 0:
                    raise SvgError(f"{where(tag, attr)}: must not be negative, got {props[attr]!r}")
        if tag == "ellipse" and ("rx" in values) != ("ry" in values):
            raise SvgError(f"<ellipse> is missing attribute {'ry' if 'rx' in values else 'rx'!r}")

    def _count(self, segments: int) -> None:
        self.segments += segments
        if self.segments > self.max_segments:
            raise SvgError(f"<svg>: more than {self.max_segments} path segments in total")


def check_document(root: Element, *, max_depth: int, max_elements: int, max_path_segments: int,
                   max_segments: int) -> tuple[int, int]:
    """Refuse what cannot be read safely or faithfully; return the canvas (height, width) in pixels."""
    _check_size(root, max_depth, max_elements)
    ns, tag = _local(root.tag)
    if tag != "svg" or ns not in (None, SVG_NS):
        raise SvgError(f"root element is <{tag}>, expected <svg>")
    canvas = _canvas(root)
    _Walk(max_path_segments, max_segments).element(root, root=True)
    return canvas
