"""Shapes world: the procedural data of the shipped prior and a deterministic color/shape checker.

Images are flat shapes (circle, square, triangle) of one palette color on a white or a palette-colored
background, rendered anti-aliased (4x4 supersampling) at ``res`` x ``res`` (64 by default).

Captions have the exact forms ``"a {color} {shape}"`` (white background) and
``"a {color} {shape} on a {background} background"`` (colored background).

Generator API
-------------
``render_shape(color, shape, center=(0.5, 0.5), size=0.5, background="white", res=64)``
    one image, ``(res, res, 3)`` float32 numpy array in [0, 1]. ``center`` is ``(x, y)`` in fractions of the
    image side (x to the right, y down), ``size`` the side of the shape's (square) bounding box as a fraction of
    the image side; circle: diameter = size; square: axis aligned, side = size; triangle: isosceles, apex up,
    base = height = size.
``sample_dataset(n, seed, res=64, background_prob=0.0)``
    ``ShapesBatch(images, captions, labels)``: ``images`` ``(n, res, res, 3)`` float32 in [0, 1], a list of
    captions and a list of ``ShapeLabel`` (color, shape, background, center, size). Deterministic in ``seed``.
``render_batch`` / ``sample_params`` are the vectorized torch pieces used by the training script.

Checker API (every function takes one image: an ``(H, W, 3)`` numpy array or torch tensor, uint8 in [0, 255]
or float in [0, 1]; a torch ``(3, H, W)`` tensor is accepted too)
-----------
``background_color(img) -> np.ndarray (3,)``  median of the 2-pixel border.
``shape_mask(img) -> np.ndarray bool (H, W)``  pixels farther than ``threshold`` (RGB Euclidean) from the
    background color, reduced to the largest 4-connected component.
``dominant_color(img) -> str | None``  majority vote of the nearest palette color over the mask pixels
    (``None`` when the mask is empty).
``classify_shape(img) -> str | None``  from the fill ratio of the mask's bounding box: about 1.0 square,
    pi/4 circle, 1/2 triangle (``None`` when the mask is empty or too small).
``describe(img) -> (color, shape)``; ``mask_iou(a, b) -> float``; ``psnr(a, b) -> float``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "green": (0.10, 0.62, 0.18),
    "blue": (0.12, 0.25, 0.88),
    "yellow": (0.96, 0.84, 0.08),
    "purple": (0.55, 0.16, 0.72),
    "orange": (0.98, 0.48, 0.06),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
WHITE = (1.0, 1.0, 1.0)
#: background names: "white" plus every palette color
BACKGROUNDS: tuple[str, ...] = ("white",) + COLORS
#: every word a caption can contain (the tokenizer makes each one a single token)
CAPTION_WORDS: tuple[str, ...] = ("a", "on", "background", "white") + COLORS + SHAPES

SIZE_RANGE = (0.32, 0.62)  # bounding-box side, fraction of the image side
_MARGIN = 0.04  # keep shapes this far (fraction of the side) from the border
_SS = 4  # supersampling factor per axis


def caption(color: str, shape: str, background: str = "white") -> str:
    """``"a {color} {shape}"`` on white, else ``"a {color} {shape} on a {background} background"``."""
    if background == "white":
        return f"a {color} {shape}"
    return f"a {color} {shape} on a {background} background"


def all_prompts(background: str = "white") -> list[str]:
    """Captions of every color x shape pair (colors outer, shapes inner), for one background."""
    return [caption(c, s, background) for c in COLORS for s in SHAPES if c != background]


def _rgb(name: str) -> tuple[float, float, float]:
    if name == "white":
        return WHITE
    if name not in PALETTE:
        raise ValueError(f"unknown color {name!r}; known: {('white',) + COLORS}")
    return PALETTE[name]


# ----------------------------------------------------------------------------------------------- rendering
def render_batch(
    shape_idx: torch.Tensor,
    color_rgb: torch.Tensor,
    bg_rgb: torch.Tensor,
    center: torch.Tensor,
    size: torch.Tensor,
    res: int = 64,
) -> torch.Tensor:
    """Vectorized anti-aliased renderer.

    shape_idx (B,) long index into ``SHAPES``; color_rgb, bg_rgb (B, 3) in [0, 1]; center (B, 2) (x, y) and
    size (B,) in fractions of the side. Returns (B, 3, res, res) float32 in [0, 1].
    """
    n = res * _SS
    coords = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    x = coords.view(1, 1, n)
    y = coords.view(1, n, 1)
    cx, cy = center[:, 0].view(-1, 1, 1), center[:, 1].view(-1, 1, 1)
    h = (size / 2).view(-1, 1, 1)
    dx, dy = x - cx, y - cy
    circle = dx * dx + dy * dy <= h * h
    square = (dx.abs() <= h) & (dy.abs() <= h)
    # apex (cx, cy - h), base corners (cx +- h, cy + h): |dx| <= (dy + h) / 2
    triangle = (dy <= h) & (dx.abs() <= (dy + h) / 2)
    sel = shape_idx.view(-1, 1, 1)
    inside = torch.where(sel == 0, circle, torch.where(sel == 1, square, triangle)).float()
    cov = torch.nn.functional.avg_pool2d(inside[:, None], _SS)  # (B, 1, res, res)
    img = cov * color_rgb[:, :, None, None] + (1 - cov) * bg_rgb[:, :, None, None]
    return img.clamp(0, 1)


@dataclass(frozen=True)
class ShapeLabel:
    color: str
    shape: str
    background: str
    center: tuple[float, float]
    size: float

    @property
    def caption(self) -> str:
        return caption(self.color, self.shape, self.background)


@dataclass
class WorldBatch:
    """A sampled dataset of a procedural world (shapes, faces): images, their captions and labels."""

    images: np.ndarray  # (n, res, res, 3) float32 in [0, 1]
    captions: list[str]
    labels: list  # the world's label records (ShapeLabel here)


ShapesBatch = WorldBatch


def sample_params(n: int, generator: torch.Generator, background_prob: float = 0.0) -> dict[str, torch.Tensor]:
    """Random labels and geometry for ``n`` images, drawn from ``generator`` in a fixed order."""
    color = torch.randint(len(COLORS), (n,), generator=generator)
    shape = torch.randint(len(SHAPES), (n,), generator=generator)
    size = SIZE_RANGE[0] + (SIZE_RANGE[1] - SIZE_RANGE[0]) * torch.rand(n, generator=generator)
    lo = size / 2 + _MARGIN
    center = lo[:, None] + (1 - 2 * lo[:, None]) * torch.rand(n, 2, generator=generator)
    colored = torch.rand(n, generator=generator) < background_prob
    # background color index among the palette colors other than the shape's own: 1..5 steps further on
    offset = 1 + torch.randint(len(COLORS) - 1, (n,), generator=generator)
    bg = torch.where(colored, 1 + (color + offset) % len(COLORS), torch.zeros_like(color))  # 0 = white
    return {"color": color, "shape": shape, "size": size, "center": center, "background": bg}


_TABLE = torch.tensor([WHITE] + [PALETTE[c] for c in COLORS], dtype=torch.float32)  # index 0 = white


def render_params(p: dict[str, torch.Tensor], res: int = 64) -> torch.Tensor:
    """(B, 3, res, res) images in [0, 1] for parameters from :func:`sample_params`."""
    return render_batch(p["shape"], _TABLE[1 + p["color"]], _TABLE[p["background"]], p["center"], p["size"], res)


def params_captions(p: dict[str, torch.Tensor]) -> list[str]:
    return [
        caption(COLORS[c], SHAPES[s], BACKGROUNDS[b])
        for c, s, b in zip(p["color"].tolist(), p["shape"].tolist(), p["background"].tolist())
    ]


def render_shape(
    color: str,
    shape: str,
    center: Sequence[float] = (0.5, 0.5),
    size: float = 0.5,
    background: str = "white",
    res: int = 64,
) -> np.ndarray:
    """One image ``(res, res, 3)`` float32 in [0, 1]; see the module docstring for the geometry."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    img = render_batch(
        torch.tensor([SHAPES.index(shape)]),
        torch.tensor([_rgb(color)], dtype=torch.float32),
        torch.tensor([_rgb(background)], dtype=torch.float32),
        torch.tensor([list(center)], dtype=torch.float32),
        torch.tensor([float(size)]),
        res,
    )
    return img[0].permute(1, 2, 0).numpy()


def held_out(n: int, seed: int, size_px: tuple[float, float], res: int = 64) -> list[ShapeLabel]:
    """``n`` evaluation shapes on white: colors and shapes in turn (every color, every shape), side uniform in
    ``size_px`` pixels, centre uniform in [0.35, 0.65]², drawn from ``seed`` alone."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        size = (size_px[0] + (size_px[1] - size_px[0]) * float(torch.rand(1, generator=g))) / res
        cx, cy = (0.35 + 0.3 * torch.rand(2, generator=g)).tolist()
        out.append(ShapeLabel(COLORS[i % 6], SHAPES[i % 3], "white", (cx, cy), size))
    return out


def sample_dataset(n: int, seed: int, res: int = 64, background_prob: float = 0.0) -> ShapesBatch:
    """``n`` random images with captions and labels; ``background_prob`` = share of colored backgrounds."""
    g = torch.Generator().manual_seed(seed)
    p = sample_params(n, g, background_prob)
    images = render_params(p, res).permute(0, 2, 3, 1).numpy()
    labels = [
        ShapeLabel(COLORS[c], SHAPES[s], BACKGROUNDS[b], (float(cx), float(cy)), float(sz))
        for c, s, b, (cx, cy), sz in zip(
            p["color"].tolist(), p["shape"].tolist(), p["background"].tolist(), p["center"].tolist(),
            p["size"].tolist(),
        )
    ]
    return ShapesBatch(images, [lab.caption for lab in labels], labels)


# ------------------------------------------------------------------------------------------------- checker
#: the palette as an array, rows in ``COLORS`` order
PALETTE_RGB = np.array([PALETTE[c] for c in COLORS], dtype=np.float32)
SQUARE_MIN_FILL = 0.89  # midpoint of 1.0 and pi/4
TRIANGLE_MAX_FILL = 0.64  # midpoint of pi/4 and 1/2
MIN_MASK_PIXELS = 12


def as_image(img) -> np.ndarray:
    """``(H, W, 3)`` float32 numpy array in [0, 1] from uint8/float numpy arrays or torch tensors (HWC or CHW)."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu()
        if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
            img = img.permute(1, 2, 0)
        img = img.float().numpy() if img.dtype != torch.uint8 else img.numpy()
    arr = np.asarray(img)
    if hasattr(img, "mode"):  # PIL image
        arr = np.asarray(img.convert("RGB"))
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def background_color(img) -> np.ndarray:
    """Median RGB of the 2-pixel border."""
    a = as_image(img)
    border = np.concatenate([a[:2].reshape(-1, 3), a[-2:].reshape(-1, 3), a[:, :2].reshape(-1, 3),
                             a[:, -2:].reshape(-1, 3)])
    return np.median(border, axis=0)


def label_components(mask: np.ndarray) -> np.ndarray:
    """4-connected components of a boolean mask: each pixel's component id (the smallest flat index in it), and
    ``mask.size`` outside the mask (label propagation: min index over neighbours, with pointer jumping)."""
    h, w = mask.shape
    big = h * w
    label = np.where(mask, np.arange(big).reshape(h, w), big)
    while True:
        p = np.pad(label, 1, constant_values=big)
        nb = np.minimum.reduce([label, p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])
        nb = np.where(mask, nb, big)
        # pointer jumping: follow each label to the label of the pixel it names (fast convergence)
        flat = nb.ravel()
        jumped = np.where(mask, flat[np.minimum(nb, big - 1)].reshape(h, w), big)
        nb = np.minimum(nb, np.where(mask, jumped, big))
        if np.array_equal(nb, label):
            return label
        label = nb


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest 4-connected component of a boolean mask."""
    if not mask.any():
        return np.zeros_like(mask, dtype=bool)
    label = label_components(mask)
    ids, counts = np.unique(label[mask], return_counts=True)
    return label == ids[counts.argmax()]


def shape_mask(img, threshold: float = 0.3) -> np.ndarray:
    """Boolean (H, W) mask of the foreground shape: far from the background color, largest component."""
    a = as_image(img)
    dist = np.linalg.norm(a - background_color(a), axis=-1)
    return _largest_component(dist > threshold)


def nearest_palette(rgb: np.ndarray) -> np.ndarray:
    """Index into ``COLORS`` of the nearest palette color, for an (..., 3) array."""
    d = ((np.asarray(rgb, dtype=np.float32)[..., None, :] - PALETTE_RGB) ** 2).sum(-1)
    return d.argmin(-1)


def dominant_color(img, mask: np.ndarray | None = None) -> str | None:
    """Most frequent nearest-palette color over the shape mask (``None`` if the mask is empty)."""
    a = as_image(img)
    m = shape_mask(a) if mask is None else mask
    if not m.any():
        return None
    votes = np.bincount(nearest_palette(a[m]), minlength=len(COLORS))
    return COLORS[int(votes.argmax())]


def fill_ratio(mask: np.ndarray) -> float:
    """Mask area over the area of its bounding box (0 for an empty mask)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return 0.0
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    return float(len(ys) / box)


def classify_shape(img, mask: np.ndarray | None = None) -> str | None:
    """``"square"`` / ``"circle"`` / ``"triangle"`` from the bounding-box fill ratio of the shape mask."""
    m = shape_mask(img) if mask is None else mask
    if m.sum() < MIN_MASK_PIXELS:
        return None
    r = fill_ratio(m)
    if r >= SQUARE_MIN_FILL:
        return "square"
    if r <= TRIANGLE_MAX_FILL:
        return "triangle"
    return "circle"


def describe(img) -> tuple[str | None, str | None]:
    """``(dominant_color, shape)`` of one image, computing the mask once."""
    a = as_image(img)
    m = shape_mask(a)
    return dominant_color(a, m), classify_shape(a, m)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 if both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def psnr(a, b) -> float:
    """PSNR in dB of two images in [0, 1] (any matching shapes, numpy or torch)."""
    a = a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float64)
    b = b.detach().cpu().double().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, np.float64)
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)
