"""Safe SVG read/write for filled cubic-Bézier scenes (the rasterizer's input format).

Reading: the bytes are size-checked, parsed by ``defusedxml`` with DTDs, entities and external references
forbidden (no entity expansion, no file or network access), depth- and element-count-limited and checked
for unsupported features (:mod:`.validate`); then svgelements parses the same bytes (style cascade,
transforms, viewBox, shape outlines, path data) and each filled shape becomes one closed loop of cubics
(:mod:`.scene`, :mod:`.paths`).

Supported: ``path`` (the full path grammar — M, L, H, V, C, S, Q, T, A, Z, relative forms, implicit
repeats, compact numbers; lines and quadratics become cubics exactly, elliptical arcs cubics of at most 90°
each), ``rect`` (incl. rounded corners), ``circle``, ``ellipse`` (4 quarter arcs), ``polygon``/``polyline``
(filled), ``g``; ``fill`` (named, #rgb, #rgba, #rrggbb, #rrggbbaa, rgb(), rgba(), ``none``),
``fill-opacity``, ``opacity`` (on shapes, or on a group with one shape), ``fill-rule``, ``transform``
(matrix, translate, scale, rotate, skewX, skewY) on shapes and groups, inline ``style`` declarations of
those properties; ``viewBox`` (with ``preserveAspectRatio`` ``xMidYMid meet`` or ``none``), ``width``,
``height`` (px or unitless). Anything else that would change the picture — strokes, gradients and other
``url()`` paints, ``currentColor``, ``use``, ``text``, ``image``, clip paths, masks, filters, markers,
``<style>`` sheets, nested ``svg`` — raises one :class:`SvgError` naming the element and attribute.
Elements in other XML namespaces (editor metadata) and non-rendering elements (``title``, ``desc``,
``metadata``, ``defs`` and resource definitions) are skipped.

Each shape element becomes one closed loop of cubics. Several subpaths of one element are joined into one
loop by a zero-width bridge that goes out from the first subpath's start and back along the same segment,
which leaves the winding number (both fill rules) unchanged everywhere. Loops are padded to a common length
with degenerate segments at their start point, which draw nothing.

The limits below are read when ``read_svg``/``parse_path_data`` run, so they can be changed on this module.
"""
from __future__ import annotations

import os

import torch

from .paths import Point, cubic_subpaths, join_subpaths, path_segments
from .scene import SvgScene, build_scene
from .validate import SVG_NS, check_document, load_bytes, parse_xml
from .values import Affine, SvgError, parse_color, parse_transform
from .write import write_svg

__all__ = ["MAX_PATH_SEGMENTS", "MAX_SVG_BYTES", "MAX_SVG_DEPTH", "MAX_SVG_ELEMENTS", "MAX_SVG_PATHS",
           "MAX_SVG_SEGMENTS", "SVG_NS", "Affine", "SvgError", "SvgScene", "join_subpaths", "parse_color",
           "parse_path_data", "parse_transform", "read_svg", "write_svg"]

#: Largest SVG file (bytes) ``read_svg`` accepts by default.
MAX_SVG_BYTES = 16 * 2**20
#: Most filled shapes ``read_svg`` accepts by default.
MAX_SVG_PATHS = 10_000
#: Most cubic segments (all shapes together) ``read_svg`` accepts; also the most path-data segments and
#: polygon points of a document.
MAX_SVG_SEGMENTS = 2_000_000
#: Most path segments (moves and closes included) in one ``d`` attribute.
MAX_PATH_SEGMENTS = 100_000
#: Deepest element nesting accepted.
MAX_SVG_DEPTH = 64
#: Most elements (of any kind) in a document.
MAX_SVG_ELEMENTS = 100_000


def read_svg(source: str | os.PathLike | bytes, *, dtype: torch.dtype = torch.float32,
             max_bytes: int = MAX_SVG_BYTES, max_paths: int = MAX_SVG_PATHS) -> SvgScene:
    """Read filled shapes from an SVG file path (``str``/``PathLike``), SVG ``bytes``, or SVG text (a ``str``
    starting with ``<``).

    Raises:
        SvgError: over ``max_bytes`` or ``max_paths``, a DOCTYPE/entity/external reference (refused before
            anything is resolved), malformed XML, or any feature that would change the picture but is not
            supported — the message names the element and attribute.
    """
    data = load_bytes(source, max_bytes)
    height, width = check_document(parse_xml(data), max_depth=MAX_SVG_DEPTH, max_elements=MAX_SVG_ELEMENTS,
                                   max_path_segments=MAX_PATH_SEGMENTS, max_segments=MAX_SVG_SEGMENTS)
    return build_scene(data, height, width, dtype=dtype, max_paths=max_paths, max_segments=MAX_SVG_SEGMENTS,
                       max_path_segments=MAX_PATH_SEGMENTS)


def parse_path_data(d: str, tag: str = "path") -> list[list[Point]]:
    """``d`` → subpaths, each ``[start, c1, c2, end, c1, c2, end, …]`` of cubics, closed back to its start.

    svgelements' lexer reads the path grammar (with the spec's smooth-curve rule); lines and quadratics become
    cubics exactly, elliptical arcs cubics of at most 90° each; a subpath that does not end at its start gets
    a closing line (fill closes open subpaths). Malformed data, over ``MAX_PATH_SEGMENTS`` segments or
    non-finite numbers raise ``SvgError``.
    """
    return cubic_subpaths(path_segments(d, tag, MAX_PATH_SEGMENTS), tag)
