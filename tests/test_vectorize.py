"""Vectorizing a raster (the start of text-to-SVG and of ``init: measurement``): seeded per sample, and the fit
draws what the raster shows, checked by the shapes checker on rendered ground truth."""

from __future__ import annotations

import pytest
import torch

from dreamsampler import shapes
from dreamsampler.generators.svg import SVGGenerator
from dreamsampler.generators.vectorize import fit_paths, mse_to, seed_circles
from dreamsampler.errors import InputError
from dreamsampler.tasks import SVGReconstructTask, TextToSVGTask

CASES = [("red", "circle"), ("green", "square"), ("blue", "triangle"), ("yellow", "square")]


def truth() -> torch.Tensor:
    return torch.stack([torch.from_numpy(shapes.render_shape(c, s, center=(0.5, 0.5), size=0.45)).permute(2, 0, 1)
                        for c, s in CASES]).float()


def test_seed_circles_sits_on_the_picture_and_is_batch_independent():
    x = truth()
    g = SVGGenerator(len(CASES), paths=8, segments=4, height=64, width=64)
    seed_circles(g, x, seed=3, names=[f"s{i}" for i in range(len(CASES))])
    alone = SVGGenerator(1, paths=8, segments=4, height=64, width=64)
    seed_circles(alone, x[2:3], seed=3, names=["s2"])
    assert torch.equal(alone.points[0], g.points[2]) and torch.equal(alone.rgba[0], g.rgba[2])
    centers = g.points.detach().mean(2)                               # (B, P, 2): the circles' centres
    for b, (c, _) in enumerate(CASES):
        cols, rows = centers[b, :, 0].long(), centers[b, :, 1].long()
        on_shape = (1 - x[b][:, rows, cols]).abs().sum(0) > 0.3       # not white under the centre
        assert on_shape.all(), (c, on_shape)
        assert torch.allclose(g.rgba[b, :, :3], x[b][:, rows, cols].T.double().float(), atol=1e-6)


def test_fit_paths_draws_what_the_raster_shows():
    torch.manual_seed(0)
    x = truth()
    g = SVGGenerator(len(CASES), paths=16, segments=4, height=64, width=64, lr_points=4.0, lr_colors=0.02)
    seed_circles(g, x, seed=0, names=[f"s{i}" for i in range(len(CASES))])
    before = mse_to(x)(g().detach())
    after = fit_paths(g, mse_to(x), iterations=60)
    print(f"\n[vectorize] squared error per image before {before.tolist()} after {after.tolist()}")
    assert (after < 0.25 * before).all(), (before, after)
    with torch.no_grad():
        out = g()
    assert [shapes.describe(out[b]) for b in range(len(CASES))] == CASES


def test_init_options_are_checked(tmp_path):
    with pytest.raises(InputError, match="init must be 'circles'.*'sample'.*got 'raster'"):
        TextToSVGTask(prompt="a red circle", init="raster")
    with pytest.raises(InputError, match="proximal must be 'latent'.*got 'image'"):
        TextToSVGTask(prompt="a red circle", proximal="image")
    with pytest.raises(InputError, match="init must be 'circles'.*'measurement'.*got 'sample'"):
        SVGReconstructTask(prompt="a red circle", image=str(tmp_path / "x.png"), init="sample")
    assert tuple(TextToSVGTask(prompt="a red circle").t_range) == (0.0, 250.0)        # a sample is refined
    assert TextToSVGTask(prompt="a red circle", init="circles").t_range is None        # the paper's: everything
