"""Scenes world: 1–3 flat shapes side by side, compositional captions, and a deterministic per-object checker.

The shapes are those of :mod:`dreamsampler.shapes` (circle, square, triangle in its 6 palette colors), on white,
one per **slot**: a scene of n objects splits the canvas into n equal vertical columns, left to right, and puts one
object in each (its own jitter and size, never touching a neighbour or the border). Two objects of a scene may share
a color or a shape.

Caption grammar (objects named left to right)::

    n = 1:  "a {c1} {s1}"                              (the shapes world's own caption)
    n = 2:  "a {c1} {s1} and a {c2} {s2}"
    n = 3:  "a {c1} {s1}, a {c2} {s2} and a {c3} {s3}"

Why this grammar: a tiny text encoder learns nothing about binding from a bag of words, but a fixed left-to-right
order ties each (color, shape) pair to a place, so a prompt per region (eq. 19) or per hole (eq. 20) — "a blue
square" for the left half — names what that region of a two-object scene should show, and the one-object captions
stay exactly the shapes prior's. Only the words of the shapes world plus "and" and "," are used.

Generator API: ``render_scene(objects, res=64)`` (objects: ``SceneObject`` list, left to right) → ``(res, res, 3)``
float32 numpy; ``sample_params(n, generator)`` / ``render_params(p, res)`` / ``params_captions(p)`` vectorized
(torch, for training); ``sample_dataset(n, seed)``; ``slot_box(i, n, res)`` the pixel box of slot i of n.

Checker API (images as in :mod:`dreamsampler.shapes`): ``objects(img)`` → ``[(color, shape, mask)]`` of every
foreground component of at least ``MIN_OBJECT_PIXELS`` pixels, left to right; ``describe_scene(img)`` → their
(color, shape) pairs; ``describe_box(img, box)`` → (color, shape) of the largest object whose centroid lies in a
``[top, left, bottom, right]`` box (``(None, None)`` if none); ``structure_iou(a, b, box=None)`` the IoU of the
foreground masks (optionally restricted to a box).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import shapes
from .shapes import COLORS, SHAPES

#: objects per scene
MAX_OBJECTS = 3
#: bounding-box side as a fraction of the image side, by the number of objects (one object: the shapes world's range)
SIZE_RANGES = {1: shapes.SIZE_RANGE, 2: (0.30, 0.40), 3: (0.20, 0.27)}
#: keep this much (fraction of the side) between an object and its slot's edges and the canvas border
_GAP = 0.04
#: a component smaller than this is noise, not an object (a 3-object scene's smallest triangle has ~80 pixels at 64²)
MIN_OBJECT_PIXELS = 20


@dataclass(frozen=True)
class SceneObject:
    color: str
    shape: str
    center: tuple[float, float] = (0.5, 0.5)   #: (x, y), fractions of the side
    size: float = 0.35                          #: bounding-box side, fraction of the side


def caption(objects: list[tuple[str, str]]) -> str:
    """The grammar above for ``[(color, shape), ...]`` left to right."""
    parts = [f"a {c} {s}" for c, s in objects]
    if not 1 <= len(parts) <= MAX_OBJECTS:
        raise ValueError(f"a scene has 1 to {MAX_OBJECTS} objects, got {len(parts)}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def slot_box(i: int, n: int, res: int = 64) -> list[int]:
    """``[top, left, bottom, right]`` pixels of slot ``i`` of ``n`` (a full-height column)."""
    if not 0 <= i < n <= MAX_OBJECTS:
        raise ValueError(f"slot {i} of {n}: expected 0 <= i < n <= {MAX_OBJECTS}")
    return [0, round(res * i / n), res, round(res * (i + 1) / n)]


def _coverage(shape_idx: torch.Tensor, center: torch.Tensor, size: torch.Tensor, res: int) -> torch.Tensor:
    """``(B, 1, res, res)`` anti-aliased coverage of one shape per image (the shapes world's renderer, in black on
    white, turned around)."""
    b = shape_idx.shape[0]
    return 1 - shapes.render_batch(shape_idx, torch.zeros(b, 3), torch.ones(b, 3), center, size, res)[:, :1]


def render_scene(objects: list[SceneObject], res: int = 64) -> np.ndarray:
    """One scene, ``(res, res, 3)`` float32 in [0, 1]; objects are painted in order over white."""
    if not 1 <= len(objects) <= MAX_OBJECTS:
        raise ValueError(f"a scene has 1 to {MAX_OBJECTS} objects, got {len(objects)}")
    pad = [SceneObject("red", "circle")] * (MAX_OBJECTS - len(objects))        # unused slots (count < 3)
    objs = list(objects) + pad
    p = {"count": torch.tensor([len(objects)]),
         "color": torch.tensor([[COLORS.index(o.color) for o in objs]]),
         "shape": torch.tensor([[SHAPES.index(o.shape) for o in objs]]),
         "center": torch.tensor([[o.center for o in objs]], dtype=torch.float32),
         "size": torch.tensor([[o.size for o in objs]], dtype=torch.float32)}
    return render_params(p, res)[0].permute(1, 2, 0).numpy()


def sample_params(n: int, generator: torch.Generator, count: int | None = None) -> dict[str, torch.Tensor]:
    """Random scenes, drawn from ``generator`` in a fixed order: ``count`` (n,) in 1..3 (or all ``count``) and per
    slot ``color``, ``shape`` (n, 3) long, ``center`` (n, 3, 2), ``size`` (n, 3) (slots beyond ``count`` unused)."""
    if count is not None and not 1 <= count <= MAX_OBJECTS:
        raise ValueError(f"a scene has 1 to {MAX_OBJECTS} objects, got count={count}")
    count = (1 + torch.randint(MAX_OBJECTS, (n,), generator=generator) if count is None
             else torch.full((n,), count, dtype=torch.long))
    color = torch.randint(len(COLORS), (n, MAX_OBJECTS), generator=generator)
    shape = torch.randint(len(SHAPES), (n, MAX_OBJECTS), generator=generator)
    u_size, u_xy = torch.rand(n, MAX_OBJECTS, generator=generator), torch.rand(n, MAX_OBJECTS, 2, generator=generator)
    lo = torch.tensor([SIZE_RANGES[k][0] for k in (1, 2, 3)])[count - 1, None]
    hi = torch.tensor([SIZE_RANGES[k][1] for k in (1, 2, 3)])[count - 1, None]
    size = lo + (hi - lo) * u_size
    width = 1.0 / count[:, None].float()                                   # slot width
    left = torch.arange(MAX_OBJECTS).float()[None] * width
    half = size / 2 + _GAP
    cx = left + half + (width - 2 * half).clamp_min(0) * u_xy[..., 0]
    cy = half + (1 - 2 * half) * u_xy[..., 1]
    return {"count": count, "color": color, "shape": shape, "center": torch.stack([cx, cy], -1), "size": size}


def render_params(p: dict[str, torch.Tensor], res: int = 64) -> torch.Tensor:
    """``(B, 3, res, res)`` in [0, 1] for parameters from :func:`sample_params` (vectorized over the batch)."""
    img = torch.ones(p["count"].shape[0], 3, res, res)
    pal = torch.tensor([shapes.PALETTE[c] for c in COLORS])
    for k in range(MAX_OBJECTS):
        cov = _coverage(p["shape"][:, k], p["center"][:, k], p["size"][:, k], res)
        cov = cov * (p["count"] > k).float().view(-1, 1, 1, 1)
        img = img * (1 - cov) + pal[p["color"][:, k]].view(-1, 3, 1, 1) * cov
    return img


def params_captions(p: dict[str, torch.Tensor]) -> list[str]:
    return [caption([(COLORS[int(p["color"][b, k])], SHAPES[int(p["shape"][b, k])]) for k in range(int(n))])
            for b, n in enumerate(p["count"])]


@dataclass
class ScenesBatch:
    images: np.ndarray            #: (n, res, res, 3) float32 in [0, 1]
    captions: list[str]
    objects: list[list[SceneObject]]


def sample_dataset(n: int, seed: int, res: int = 64) -> ScenesBatch:
    """``n`` random scenes with captions and their objects, deterministic in ``seed``."""
    p = sample_params(n, torch.Generator().manual_seed(seed))
    objs = [[SceneObject(COLORS[int(p["color"][b, k])], SHAPES[int(p["shape"][b, k])],
                         tuple(float(v) for v in p["center"][b, k]), float(p["size"][b, k])) for k in range(int(m))]
            for b, m in enumerate(p["count"])]
    return ScenesBatch(render_params(p, res).permute(0, 2, 3, 1).numpy(), params_captions(p), objs)


# ------------------------------------------------------------------------------------------------ checker
def coverage(img) -> np.ndarray:
    """``(H, W)`` how much of each pixel a palette color covers: a pixel ``p = c·color + (1 − c)·background`` gives
    ``c``, with the color whose line from the background passes nearest to ``p`` (so edges read the same whatever
    the object's color: a recolored object keeps its mask)."""
    a = shapes.as_image(img)
    d = a - shapes.background_color(a)                                       # (H, W, 3)
    v = shapes.PALETTE_RGB - shapes.background_color(a)                      # (K, 3)
    c = (d @ v.T) / np.maximum((v * v).sum(-1), 1e-6)                        # (H, W, K)
    resid = np.linalg.norm(d[..., None, :] - c[..., None] * v, axis=-1)     # (H, W, K)
    return np.take_along_axis(c, resid.argmin(-1)[..., None], -1)[..., 0]


def foreground(img, threshold: float = 0.5) -> np.ndarray:
    """Pixels covered more than ``threshold`` by a palette color (see :func:`coverage`)."""
    return coverage(img) > threshold


def objects(img) -> list[tuple[str, str | None, np.ndarray]]:
    """``(color, shape, mask)`` of every foreground component of >= ``MIN_OBJECT_PIXELS`` pixels, left to right."""
    a = shapes.as_image(img)
    fg = foreground(a)
    if not fg.any():
        return []
    label = shapes.label_components(fg)
    ids, counts = np.unique(label[fg], return_counts=True)
    masks = [label == i for i, c in zip(ids, counts) if c >= MIN_OBJECT_PIXELS]
    masks.sort(key=lambda m: np.nonzero(m)[1].mean())
    return [(shapes.dominant_color(a, m), shapes.classify_shape(a, m), m) for m in masks]


def describe_scene(img) -> list[tuple[str, str | None]]:
    """(color, shape) of every object, left to right."""
    return [(c, s) for c, s, _ in objects(img)]


def describe_box(img, box: list[int]) -> tuple[str | None, str | None]:
    """(color, shape) of the largest object whose centroid lies in ``box = [top, left, bottom, right]``."""
    t, l, b, r = box
    best = None
    for c, s, m in objects(img):
        ys, xs = np.nonzero(m)
        if t <= ys.mean() < b and l <= xs.mean() < r and (best is None or m.sum() > best[2].sum()):
            best = (c, s, m)
    return (None, None) if best is None else best[:2]


def structure_iou(a, b, box: list[int] | None = None) -> float:
    """IoU of the foreground masks of two images, over the whole image or inside ``box``."""
    ma, mb = foreground(a), foreground(b)
    if box is not None:
        t, l, bt, r = box
        ma, mb = ma[t:bt, l:r], mb[t:bt, l:r]
    return shapes.mask_iou(ma, mb)
