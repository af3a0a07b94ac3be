"""Attribute values, parsed strictly: numbers, px lengths, colors, transform lists and ``style`` declarations.

Every error is an :class:`SvgError` whose message names the element and the attribute.
"""
from __future__ import annotations

import math
import re

from svgelements import Matrix

from dreamsampler.errors import InputError

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NUM_RE = re.compile(NUMBER)
_TRANSFORM = re.compile(r"\s*(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)\s*,?")
_TRANSFORM_ARGS = {"matrix": (6,), "translate": (1, 2), "scale": (1, 2), "rotate": (1, 3), "skewX": (1,),
                   "skewY": (1,)}

#: An affine map (a, b, c, d, e, f): x' = a x + c y + e, y' = b x + d y + f.
Affine = tuple[float, float, float, float, float, float]


class SvgError(InputError):
    """An SVG that cannot be read safely or faithfully; the message names the element and attribute."""


def where(tag: str, attr: str) -> str:
    """The start of an error message about attribute ``attr`` of element ``tag``."""
    return f"<{tag}> attribute {attr!r}"


def number(text: str, tag: str, attr: str) -> float:
    """One finite number."""
    try:
        v = float(text.strip())
    except ValueError:
        raise SvgError(f"{where(tag, attr)}: expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise SvgError(f"{where(tag, attr)}: expected a finite number, got {text!r}")
    return v


def length(text: str | None, tag: str, attr: str, default: float | None = None) -> float:
    """A length in px or unitless; ``default`` when the attribute is absent (required if ``None``)."""
    if text is None:
        if default is None:
            raise SvgError(f"<{tag}> is missing attribute {attr!r}")
        return default
    t = text.strip()
    t = t[:-2] if t.endswith("px") else t
    if not re.fullmatch(NUMBER, t.strip()):
        raise SvgError(f"{where(tag, attr)}: expected a length in px (or unitless), got {text!r}")
    return number(t, tag, attr)


def numbers(text: str, tag: str, attr: str) -> list[float]:
    """A list of numbers separated by whitespace and/or commas (packed forms such as ``1-2.5.5`` included)."""
    rest = _NUM_RE.sub(" ", text).replace(",", " ").strip()
    if rest:
        raise SvgError(f"{where(tag, attr)}: expected numbers, found {rest[:20]!r}")
    return [number(m, tag, attr) for m in _NUM_RE.findall(text)]


def parse_color(text: str, tag: str = "path", attr: str = "fill") -> tuple[float, float, float, float] | None:
    """CSS color → (r, g, b, a) in [0, 1]; ``None`` for ``none``/``transparent``.

    Accepts named colors (the CSS list, via Pillow's table), #rgb, #rgba, #rrggbb, #rrggbbaa, rgb()/rgba()
    with numbers or percentages, kept at full precision (svgelements' ``Color`` rounds to 8 bits, maps
    unknown names to black and, in 1.9.6, has a wrong ``aliceblue`` and no ``rebeccapurple``).
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
            raise SvgError(f"{where(tag, attr)}: malformed hex color {text!r}")
        return (*vals[:3], vals[3] if len(vals) == 4 else 1.0)
    m = re.fullmatch(r"rgba?\((.*)\)", t)
    if m:
        parts = [p.strip() for p in re.split(r"[\s,/]+", m.group(1).strip()) if p.strip()]
        if len(parts) not in (3, 4):
            raise SvgError(f"{where(tag, attr)}: expected 3 or 4 components in {text!r}")
        out = []
        for i, p in enumerate(parts):
            pct = p.endswith("%")
            v = number(p[:-1] if pct else p, tag, attr)
            v = v / 100 if pct else (v if i == 3 else v / 255)
            out.append(min(1.0, max(0.0, v)))
        return (*out[:3], out[3] if len(out) == 4 else 1.0)
    if re.fullmatch(r"[a-z]+", t):
        from PIL import ImageColor  # noqa: PLC0415 (Pillow's CSS color table)

        if t in ImageColor.colormap:    # getrgb: Pillow caches converted entries as tuples in the table itself
            rgb = ImageColor.getrgb(t)
            return (*(v / 255 for v in rgb[:3]), rgb[3] / 255 if len(rgb) == 4 else 1.0)
    raise SvgError(f"{where(tag, attr)}: unsupported paint {text!r} (expected a color or 'none')")


def check_transform(text: str, tag: str) -> None:
    """Refuse a ``transform`` list svgelements would read differently from the SVG grammar (it skips what it
    does not understand): only matrix/translate/scale/rotate/skewX/skewY with plain finite numbers."""
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _TRANSFORM.match(text, pos)
        if not m:
            raise SvgError(f"{where(tag, 'transform')}: cannot parse {text[pos:pos + 30]!r}")
        name, n = m.group(1), len(numbers(m.group(2), tag, "transform"))
        if n not in _TRANSFORM_ARGS[name]:
            raise SvgError(f"{where(tag, 'transform')}: wrong number of arguments to {name}(): {n}")
        pos = m.end()


def parse_transform(text: str, tag: str = "g") -> Affine:
    """An SVG ``transform`` list → one affine map (the leftmost transform is applied last), by svgelements'
    ``Matrix`` after :func:`check_transform`."""
    check_transform(text, tag)
    m = Matrix(text)
    return (m.a, m.b, m.c, m.d, m.e, m.f)


def style(attrib: dict[str, str], tag: str) -> dict[str, str]:
    """Presentation attributes overridden by inline ``style`` declarations, split as svgelements splits them.

    Declaration names must be lowercase: svgelements matches them case-sensitively, so ``Fill: red`` would
    be dropped silently where a browser applies it.
    """
    props = {k: v for k, v in attrib.items() if not k.startswith("{")}
    for decl in (attrib.get("style") or "").split(";"):
        if not decl.strip():
            continue
        name, sep, value = decl.partition(":")
        name = name.strip()
        if not sep or ":" in value:
            raise SvgError(f"{where(tag, 'style')}: malformed declaration {decl.strip()!r}")
        if name != name.lower():
            raise SvgError(f"{where(tag, 'style')}: property names must be lowercase, got {name!r}")
        props[name] = value.strip()
    return props
