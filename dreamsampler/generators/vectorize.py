"""Vectorizing a raster into an :class:`SVGGenerator` (VectorFusion's recipe: sample a raster, fit paths by MSE).

Two pure steps on a generator and an image batch: ``seed_circles`` places the paths where the picture is (seeded per
sample), ``fit_paths`` moves them by Adam on a loss such as ``||g(psi) - x||²`` through the differentiable rasterizer.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ..core import squared_error
from ..seeding import rng
from .svg import SVGGenerator, circle_loops


@torch.no_grad()
def seed_circles(gen: SVGGenerator, image: Tensor, seed: int, names: Sequence[str], radius: float | None = None,
                 purpose: str = "svg-init") -> None:
    """Opaque circles centred on pixels drawn in proportion to their distance from white, each filled with its
    pixel's color: a dotted copy of ``image`` (B, 3, H, W) in [0, 1]. Sample b draws from ``rng(seed, purpose, -1,
    names[b])`` only."""
    names = gen._check_names(names, "seed_circles")
    r = gen.default_radius() if radius is None else float(radius)
    img = image.detach().to("cpu", torch.float64)
    h, w = img.shape[-2:]
    for b, name in enumerate(names):
        weight = (1 - img[b]).clamp_min(0).pow(2).sum(0).sqrt().flatten() + 1e-6
        idx = torch.multinomial(weight, gen.paths, replacement=True, generator=rng(seed, purpose, -1, name))
        rows, cols = idx // w, idx % w
        centers = torch.stack((cols + 0.5, rows + 0.5), -1) * torch.tensor([gen.width / w, gen.height / h],
                                                                          dtype=torch.float64)
        rgb = img[b][:, rows, cols].T
        gen.points[b].copy_(circle_loops(centers, r, gen.segments))
        gen.rgba[b].copy_(torch.cat((rgb, torch.ones(gen.paths, 1, dtype=torch.float64)), -1))
    gen.even_odd.zero_()


def fit_paths(gen: SVGGenerator, loss: Callable[[Tensor], Tensor], iterations: int, lr_scale: float = 1.0) -> Tensor:
    """``iterations`` Adam steps (the generator's own learning rates × ``lr_scale``) on ``loss(g(psi))`` (per sample,
    (B,)), e.g. ``||g(psi) - x||²`` or a data-consistency term; returns the final per-sample loss."""
    groups = [{**g, "lr": g["lr"] * lr_scale} for g in gen.param_groups()]
    opt = torch.optim.Adam(groups, betas=(0.9, 0.9), eps=1e-6)
    with torch.enable_grad():
        for _ in range(iterations):
            opt.zero_grad(set_to_none=True)
            loss(gen()).sum().backward()
            opt.step()
    with torch.no_grad():
        return loss(gen())


def mse_to(image: Tensor) -> Callable[[Tensor], Tensor]:
    """The loss ``x -> ||x - image||²`` per sample (vectorizing a raster)."""
    target = image.detach()
    return lambda x: squared_error(x, target.to(x.device))
