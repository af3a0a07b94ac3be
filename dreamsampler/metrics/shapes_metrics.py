"""Shapes-world metrics from the deterministic checker of :mod:`dreamsampler.shapes` (color, shape, mask)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dreamsampler.errors import InputError
from dreamsampler.shapes import COLORS, SHAPES, describe, mask_iou, shape_mask

from ._checks import check_images, check_pair, check_strings


def _known(values: list[str], known: tuple[str, ...], name: str) -> list[str]:
    bad = sorted({v for v in values if v not in known})
    if bad:
        raise InputError(f"{name}: expected names from {known}, got {bad}")
    return values


def prompt_accuracy(
    images: torch.Tensor, colors: str | Sequence[str], shapes_: str | Sequence[str]
) -> dict[str, torch.Tensor]:
    """{"color_acc", "shape_acc"}: 1.0 where shapes.describe(image) finds the asked color / shape, per sample."""
    images = check_images(images)
    n = images.shape[0]
    colors = _known(check_strings(colors, n, "colors"), COLORS, "colors")
    shapes_ = _known(check_strings(shapes_, n, "shapes_"), SHAPES, "shapes_")
    found = [describe(img) for img in images.detach().cpu()]
    color_acc = torch.tensor([float(c == want) for (c, _), want in zip(found, colors)], dtype=torch.float64)
    shape_acc = torch.tensor([float(s == want) for (_, s), want in zip(found, shapes_)], dtype=torch.float64)
    return {"color_acc": color_acc, "shape_acc": shape_acc}


def structure_iou(source: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """IoU of shapes.shape_mask(source) and shapes.shape_mask(edited) per sample (1.0 when both are empty)."""
    source, edited = check_pair(source, edited, ("source", "edited"))
    pairs = zip(source.detach().cpu(), edited.detach().cpu())
    return torch.tensor([mask_iou(shape_mask(a), shape_mask(b)) for a, b in pairs], dtype=torch.float64)
