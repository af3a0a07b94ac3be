"""Input checks for ``rasterize``: one clear ``RasterizeError`` per problem, before any tensor math."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dreamsampler.errors import InputError

FILL_RULES = ("nonzero", "evenodd")
BACKGROUNDS = ("white", "transparent")


class RasterizeError(InputError):
    """Bad input to ``rasterize`` (a ``ValueError``): the message names the argument, what was expected and
    what came."""


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def check_scene(points: Tensor, colors: Tensor, check_values: bool = True) -> bool:
    """Check points/colors shapes, dtypes, devices and values; return True when they carry a batch dim.

    The value checks (finite points, finite colors in [0, 1]) wait for the device once, and only when
    ``check_values`` and the tensors have values (not on the 'meta' device); the details of a failure are
    looked up afterwards."""
    for name, t in (("points", points), ("colors", colors)):
        if not isinstance(t, Tensor):
            raise RasterizeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in (torch.float32, torch.float64):
            raise RasterizeError(f"{name}: expected a float32 or float64 tensor, got {t.dtype}")
    if points.dtype != colors.dtype:
        raise RasterizeError(f"points and colors must share a dtype, got {points.dtype} and {colors.dtype}")
    if points.device != colors.device:
        raise RasterizeError(f"points and colors must be on one device, got {points.device} and {colors.device}")
    if points.ndim not in (3, 4) or points.shape[-1] != 2:
        raise RasterizeError(f"points: expected shape (P, 3n, 2) or (B, P, 3n, 2), got {_shape(points)}")
    if points.shape[-2] < 3 or points.shape[-2] % 3 != 0:
        raise RasterizeError(
            f"points: expected 3n control points per path (n ≥ 1 closed cubic segments), got {points.shape[-2]}"
        )
    batched = points.ndim == 4
    want = colors.ndim == (3 if batched else 2) and colors.shape[-1] == 4
    if not want:
        expect = "(B, P, 4)" if batched else "(P, 4)"
        raise RasterizeError(f"colors: expected shape {expect} (RGBA per path), got {_shape(colors)}")
    if points.shape[:-2] != colors.shape[:-1]:
        lead = "(B, P)" if batched else "P"
        raise RasterizeError(
            f"points and colors disagree on {lead}: points {_shape(points)}, colors {_shape(colors)}"
        )
    if check_values and points.device.type != "meta":
        _check_values(points.detach(), colors.detach())
    return batched


def _check_values(points: Tensor, colors: Tensor) -> None:
    finite_p = torch.isfinite(points).all()
    finite_c = torch.isfinite(colors).all()
    in_range = ((colors >= 0) & (colors <= 1)).all()
    if bool(finite_p & finite_c & in_range):  # the one wait for the device
        return
    if not bool(finite_p):
        raise RasterizeError("points: contains NaN or inf")
    if not bool(finite_c):
        raise RasterizeError("colors: contains NaN or inf")
    lo, hi = colors.min().item(), colors.max().item()
    raise RasterizeError(f"colors: RGBA values must lie in [0, 1], got range [{lo:.6g}, {hi:.6g}]")


def check_canvas(height: int, width: int, samples: int) -> None:
    """Canvas and sampling are positive integers."""
    for name, v in (("height", height), ("width", width), ("samples", samples)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise RasterizeError(f"{name}: expected a positive int, got {v!r}")
        if v < 1:
            raise RasterizeError(f"{name}: expected a positive int, got {v} (a zero-size canvas has no pixels)")


def even_odd_mask(fill_rule: str | Sequence[str] | Tensor, lead_shape: torch.Size, device) -> Tensor:
    """``fill_rule`` ('nonzero' | 'evenodd', or one per path) → bool mask of even-odd paths."""
    if isinstance(fill_rule, str):
        if fill_rule not in FILL_RULES:
            raise RasterizeError(f"fill_rule: expected one of {FILL_RULES}, got {fill_rule!r}")
        return torch.full(lead_shape, fill_rule == "evenodd", dtype=torch.bool, device=device)
    if isinstance(fill_rule, Tensor):
        if fill_rule.dtype != torch.bool:
            raise RasterizeError(f"fill_rule: a tensor must be bool (True = even-odd), got {fill_rule.dtype}")
        try:
            return fill_rule.to(device).expand(lead_shape)
        except RuntimeError:
            raise RasterizeError(
                f"fill_rule: bool tensor of shape {tuple(fill_rule.shape)} does not fit paths {tuple(lead_shape)}"
            ) from None
    rules = list(fill_rule)
    bad = [r for r in rules if r not in FILL_RULES]
    if bad:
        raise RasterizeError(f"fill_rule: expected entries in {FILL_RULES}, got {bad[0]!r}")
    if len(rules) != lead_shape[-1]:
        raise RasterizeError(f"fill_rule: expected one rule per path ({lead_shape[-1]}), got {len(rules)}")
    mask = torch.tensor([r == "evenodd" for r in rules], dtype=torch.bool)
    if torch.device(device).type == "cuda":  # a pinned, asynchronous copy: no wait for the device
        return mask.pin_memory().to(device, non_blocking=True).expand(lead_shape)
    return mask.to(device).expand(lead_shape)


def static_rule(fill_rule: str | Sequence[str] | Tensor) -> bool | None:
    """True / False when the argument itself says every path is even-odd / nonzero (no look at tensor values),
    None otherwise (a bool tensor, or a mixed list). Call after :func:`even_odd_mask` validated it."""
    if isinstance(fill_rule, str):
        return fill_rule == "evenodd"
    if isinstance(fill_rule, Tensor):
        return None
    rules = set(fill_rule)
    return (rules == {"evenodd"}) if len(rules) == 1 else (False if not rules else None)
