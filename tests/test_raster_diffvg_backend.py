"""Side by side with DiffVG itself (``backend="diffvg"``), when pydiffvg is importable."""
from __future__ import annotations

import math

import pytest
import torch

from dreamsampler.render import rasterize

pydiffvg = pytest.importorskip("pydiffvg", reason="pydiffvg (DiffVG) is not installed; see docs/rasterizer.md")

SEEDS = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scene(seed=5, paths=6, size=48):
    g = torch.Generator().manual_seed(seed)
    t = 2 * math.pi * torch.arange(24) / 24
    unit = torch.stack((t.cos(), t.sin()), -1)  # 8 cubics per path
    center = 8 + (size - 16) * torch.rand(paths, 2, generator=g)
    radius = 5 + 10 * torch.rand(paths, generator=g)
    points = center[:, None] + radius[:, None, None] * unit + 3 * (torch.rand(paths, 24, 2, generator=g) - 0.5)
    # the front path goes round twice (outer circle, then an inner one the same way): winding 2
    # inside, so nonzero and even-odd differ
    round_twice = torch.cat((unit[0::2], 0.5 * unit[0::2]))
    points[-1] = center[-1] + 12 * round_twice
    colors = torch.cat((torch.rand(paths, 3, generator=g), 0.6 + 0.4 * torch.rand(paths, 1, generator=g)), 1)
    weights = torch.rand(size, size, 3, generator=g) * 2 - 1
    return points, colors, weights


def _grad(points, colors, weights, size, backend, seed=0, fill_rule="nonzero", samples=2):
    p, c = points.clone().requires_grad_(), colors.clone().requires_grad_()
    img = rasterize(p, c, size, size, samples, backend=backend, seed=seed, fill_rule=fill_rule)
    (img * weights).sum().backward()
    return img.detach(), p.grad, c.grad


def _cos(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("fill_rule", ["nonzero", "evenodd"])
def test_torch_backend_matches_diffvg_seed_average(fill_rule):
    size = 48
    points, colors, weights = _scene(size=size)
    img, gp, gc = _grad(points, colors, weights, size, "torch", fill_rule=fill_rule)
    runs = [_grad(points, colors, weights, size, "diffvg", seed=s, fill_rule=fill_rule) for s in range(SEEDS)]
    d_img = torch.stack([r[0] for r in runs]).mean(0)
    d_gp = torch.stack([r[1] for r in runs]).mean(0)
    d_gc = torch.stack([r[2] for r in runs]).mean(0)
    assert (img - d_img).abs().mean() <= 1.5e-3
    assert _cos(gc, d_gc) >= 0.999
    if fill_rule == "nonzero":
        assert _cos(gp, d_gp) >= 0.99
    else:
        # Even-odd with thin self-overlap wedges: a supersample holding two boundaries of one path gets the
        # accumulation approximation (triangle fold of the winding integral), so at 2×2 the points gradient
        # is only ~0.987 of the way; it converges to DiffVG's (point-sampled, exact) as samples grow.
        assert _cos(gp, d_gp) >= 0.98
        _, gp8, _ = _grad(points, colors, weights, size, "torch", fill_rule=fill_rule, samples=8)
        assert _cos(gp8, d_gp) >= 0.997
        assert _cos(gp8, d_gp) > _cos(gp, d_gp)


def test_fill_rules_differ_in_both_backends():
    size = 48
    points, colors, _ = _scene(size=size)
    ours = [rasterize(points, colors, size, size, fill_rule=r) for r in ("nonzero", "evenodd")]
    theirs = [rasterize(points, colors, size, size, backend="diffvg", fill_rule=r) for r in ("nonzero", "evenodd")]
    delta_ours, delta_theirs = ours[0] - ours[1], theirs[0] - theirs[1]
    assert delta_ours.abs().sum() > 1.0  # the self-overlap shows
    assert (delta_ours - delta_theirs).abs().sum() < 0.15 * delta_ours.abs().sum()


def test_diffvg_backend_transparent_output_is_premultiplied_and_batched():
    size = 32
    points, colors, _ = _scene(seed=7, paths=3, size=size)
    batch_p, batch_c = torch.stack((points, points + 1.5)), torch.stack((colors, colors.flip(0)))
    rgba = rasterize(batch_p, batch_c, size, size, backend="diffvg", background="transparent")
    white = rasterize(batch_p, batch_c, size, size, backend="diffvg")
    assert rgba.shape == (2, size, size, 4) and white.shape == (2, size, size, 3)
    torch.testing.assert_close(rgba[..., :3] + 1 - rgba[..., 3:], white, atol=1e-5, rtol=0)
    assert (rgba[..., :3] <= rgba[..., 3:] + 1e-5).all()
    mean = torch.stack([rasterize(batch_p, batch_c, size, size, backend="diffvg", background="transparent", seed=s)
                        for s in range(16)]).mean(0)
    ours = rasterize(batch_p, batch_c, size, size, background="transparent")
    assert (ours - mean).abs().mean() < 3e-3  # a one-pixel shift costs ~2e-2 here
