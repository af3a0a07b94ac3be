"""Checks of one dataset item's structure (no file content is read): each returns the problems it finds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def unknown_keys(item: dict, allowed: Sequence[str], what: str) -> list[str]:
    """Keys the task would silently ignore (a typo such as ``promt``); ``name`` and ``group`` (the row of the
    metrics table a sample counts in) are allowed everywhere."""
    unknown = sorted(set(item) - set(allowed) - {"name", "group"})
    return [f"unknown key(s) {', '.join(map(repr, unknown))} for {what} (allowed: {', '.join(allowed)}, name, "
            "group)"] if unknown else []


def file_exists(value: Any, key: str) -> list[str]:
    """``value`` names an existing file."""
    if not isinstance(value, str) or not value:
        return [f"`{key}` must be a file path, got {value!r}"]
    return [] if Path(value).is_file() else [f"{key} file {value!r} does not exist"]


def prompt_ok(value: Any, key: str = "prompt") -> list[str]:
    return [] if isinstance(value, str) and value.strip() else [f"`{key}` must be a non-empty string, got {value!r}"]


def box_ok(value: Any, key: str = "box") -> list[str]:
    ok = isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) and not isinstance(v, bool)
                                                             for v in value)
    if not ok or not (value[0] < value[2] and value[1] < value[3]):
        return [f"`{key}` must be [top, left, bottom, right] integers with top < bottom and left < right, "
                f"got {value!r}"]
    return []


def exactly_one(item: dict, keys: Sequence[str], what: str) -> list[str]:
    given = [k for k in keys if item.get(k) is not None]
    if len(given) == 1:
        return []
    return [f"{what}: give exactly one of {' or '.join(f'`{k}`' for k in keys)}, got "
            f"{', '.join(f'`{k}`' for k in given) if given else 'none'}"]


def parts(item: dict, key: str, what: str) -> tuple[list[dict], list[str]]:
    """The list of dicts under ``key`` (``regions`` / ``holes``) and its problems."""
    value = item.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(p, dict) for p in value):
        return [], [f"`{key}` must be a non-empty list of {what} objects, got {value!r}"]
    return value, []


def check_parts(item: dict, key: str, locations: Sequence[str], presets: Sequence[str] = ()) -> list[str]:
    """``regions`` / ``holes``: each ``{prompt, <exactly one of locations>}``, files existing, boxes well formed."""
    found, problems = parts(item, key, "{prompt, " + " | ".join(locations) + "}")
    for i, part in enumerate(found):
        where = f"{key}[{i}]"
        problems += [f"{where}: {p}" for p in unknown_keys(part, ("prompt", *locations), f"a {key[:-1]}")]
        problems += prompt_ok(part.get("prompt"), f"{where}.prompt")
        problems += exactly_one(part, locations, where)
        if part.get("mask") is not None:
            problems += file_exists(part["mask"], f"{where}.mask")
        if part.get("box") is not None:
            problems += box_ok(part["box"], f"{where}.box")
        if part.get("preset") is not None and part["preset"] not in presets:
            problems.append(f"{where}.preset: unknown preset {part['preset']!r} (expected one of {sorted(presets)})")
    return problems
