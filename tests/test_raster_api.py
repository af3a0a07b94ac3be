"""rasterize(): conventions checked against exact geometry, batching, devices, dtypes and bad input."""
from __future__ import annotations

import pytest
import torch

from dreamsampler.render import RasterizeError, rasterize


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def polygon_path(corners, dtype=torch.float64) -> torch.Tensor:
    """A closed polygon as cubic control points (each edge a straight cubic)."""
    pts = []
    for j, p in enumerate(corners):
        q = corners[(j + 1) % len(corners)]
        pts += [p, [(2 * p[0] + q[0]) / 3, (2 * p[1] + q[1]) / 3], [(p[0] + 2 * q[0]) / 3, (p[1] + 2 * q[1]) / 3]]
    return torch.tensor(pts, dtype=dtype)


def box_coverage(x0, y0, x1, y1, h, w) -> torch.Tensor:
    """Exact area of an axis-aligned rectangle inside each pixel (independent of the rasterizer)."""
    xs = torch.arange(w, dtype=torch.float64)
    ys = torch.arange(h, dtype=torch.float64)
    cx = (torch.minimum(xs + 1, torch.tensor(x1)) - torch.maximum(xs, torch.tensor(x0))).clamp_min(0)
    cy = (torch.minimum(ys + 1, torch.tensor(y1)) - torch.maximum(ys, torch.tensor(y0))).clamp_min(0)
    return cy[:, None] * cx[None, :]


@pytest.mark.parametrize("samples", [1, 2, 4])
def test_axis_aligned_rectangle_is_exact_area(samples):
    """Pixel (i, j) covers [j, j+1) × [i, i+1), origin top-left: a rect gets its exact area per pixel."""
    x0, y0, x1, y1 = 2.25, 3.5, 9.75, 7.0
    path = polygon_path([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])[None]
    color = torch.tensor([[0.2, 0.4, 0.6, 0.8]], dtype=torch.float64)
    img = rasterize(path, color, 10, 12, samples=samples)
    cov = box_coverage(x0, y0, x1, y1, 10, 12)
    expect = 1 - 0.8 * cov[..., None] * (1 - color[0, :3])
    torch.testing.assert_close(img, expect, atol=1e-9, rtol=0)
    # orientation does not matter for the nonzero rule
    reverse = torch.roll(path.flip(1), 1, dims=1)  # same loop, opposite direction
    torch.testing.assert_close(rasterize(reverse, color, 10, 12, samples=samples), expect, atol=1e-9, rtol=0)


def test_triangle_matches_fine_point_sampling():
    """A slanted edge: box-filtered image equals dense point sampling (256 samples per pixel)."""
    tri = [[1.3, 1.1], [13.7, 4.2], [5.2, 10.9]]
    path = polygon_path(tri)[None]
    color = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    img = rasterize(path, color, 12, 15, samples=2)[..., 0]
    n = 16
    off = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    ys = (torch.arange(12, dtype=torch.float64)[:, None] + off).reshape(-1)
    xs = (torch.arange(15, dtype=torch.float64)[:, None] + off).reshape(-1)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    inside = torch.ones_like(X, dtype=torch.bool)
    sgn = []
    for j in range(3):
        (ax, ay), (bx, by) = tri[j], tri[(j + 1) % 3]
        sgn.append((bx - ax) * (Y - ay) - (by - ay) * (X - ax))
    inside = ((sgn[0] > 0) & (sgn[1] > 0) & (sgn[2] > 0)) | ((sgn[0] < 0) & (sgn[1] < 0) & (sgn[2] < 0))
    cov = inside.double().view(12, n, 15, n).mean((1, 3))
    assert (img - (1 - cov)).abs().max() < 0.02
    assert (img - (1 - cov)).abs().mean() < 2e-3


def test_fill_rules_on_a_doubly_wound_square():
    """Outer square and inner square traversed the same way in one loop: nonzero fills the hole,
    even-odd leaves it empty; exact at integer corners."""
    outer = [[2.0, 2.0], [10.0, 2.0], [10.0, 10.0], [2.0, 10.0]]
    inner = [[4.0, 4.0], [8.0, 4.0], [8.0, 8.0], [4.0, 8.0]]
    # loop: outer, bridge to inner, inner, bridge back (bridges cancel)
    loop = torch.cat((polygon_path(outer), polygon_path([[2.0, 2.0], [4.0, 4.0]])[:3],
                      polygon_path(inner), polygon_path([[4.0, 4.0], [2.0, 2.0]])[:3]))[None]
    black = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    nz = rasterize(loop, black, 12, 12)[..., 0]
    eo = rasterize(loop, black, 12, 12, fill_rule="evenodd")[..., 0]
    ring = box_coverage(2, 2, 10, 10, 12, 12) - box_coverage(4, 4, 8, 8, 12, 12)
    torch.testing.assert_close(nz, 1 - box_coverage(2, 2, 10, 10, 12, 12), atol=1e-9, rtol=0)
    torch.testing.assert_close(eo, 1 - ring, atol=1e-9, rtol=0)
    per_path = rasterize(loop.repeat(2, 1, 1), black.repeat(2, 1), 12, 12, fill_rule=["evenodd", "evenodd"])
    torch.testing.assert_close(per_path[..., 0], eo, atol=1e-9, rtol=0)


def test_over_compositing_order_and_alpha():
    a = polygon_path([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    colors = torch.tensor([[1.0, 0.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.25]], dtype=torch.float64)
    img = rasterize(torch.stack((a, a)), colors, 4, 4)
    # blue (front, 0.25) over red (back, 0.5) over white
    red_on_white = 0.5 * torch.tensor([1.0, 0.0, 0.0]) + 0.5
    expect = 0.25 * torch.tensor([0.0, 0.0, 1.0]) + 0.75 * red_on_white
    torch.testing.assert_close(img, expect.double().expand(4, 4, 3), atol=1e-12, rtol=0)


def test_batch_equals_separate_calls_and_paths_off_canvas():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(3, 5, 6, 2, generator=g, dtype=torch.float64) * 40 - 8  # partly outside the canvas
    cols = torch.rand(3, 5, 4, generator=g, dtype=torch.float64)
    batched = rasterize(pts, cols, 24, 20, samples=2, segments=8)
    assert batched.shape == (3, 24, 20, 3)
    for b in range(3):
        torch.testing.assert_close(batched[b], rasterize(pts[b], cols[b], 24, 20, samples=2, segments=8))
    far = torch.full((1, 6, 2), 500.0, dtype=torch.float64)
    torch.testing.assert_close(rasterize(far, cols[0, :1], 24, 20), torch.ones(24, 20, 3, dtype=torch.float64))


def test_zero_paths_give_the_background():
    empty_p, empty_c = torch.zeros(0, 12, 2), torch.zeros(0, 4)
    torch.testing.assert_close(rasterize(empty_p, empty_c, 5, 7), torch.ones(5, 7, 3))
    torch.testing.assert_close(rasterize(empty_p, empty_c, 5, 7, background="transparent"), torch.zeros(5, 7, 4))


def test_float32_matches_float64_and_big_scene_is_chunked():
    import dreamsampler.render.torch_backend as tb

    g = torch.Generator().manual_seed(1)
    t = torch.arange(12, dtype=torch.float64) * (torch.pi / 6)
    unit = torch.stack((t.cos(), t.sin()), -1)
    pts = torch.rand(40, 1, 2, generator=g, dtype=torch.float64) * 64 + 20 * unit
    cols = torch.rand(40, 4, generator=g, dtype=torch.float64)
    w = torch.rand(64, 64, 3, generator=g, dtype=torch.float64)
    ref_p, ref_c = pts.clone().requires_grad_(), cols.clone().requires_grad_()
    (rasterize(ref_p, ref_c, 64, 64) * w).sum().backward()
    # float32
    p32, c32 = pts.float().requires_grad_(), cols.float().requires_grad_()
    img32 = rasterize(p32, c32, 64, 64)
    (img32 * w.float()).sum().backward()
    assert (img32.double() - rasterize(pts, cols, 64, 64)).abs().max() < 1e-4
    torch.testing.assert_close(p32.grad.double(), ref_p.grad, atol=2e-3 * ref_p.grad.abs().max(), rtol=0)
    # tiny chunks force several checkpointed chunks: same image and gradients
    old = tb.CHUNK_CELLS
    tb.CHUNK_CELLS = 2000
    try:
        pc, cc = pts.clone().requires_grad_(), cols.clone().requires_grad_()
        (rasterize(pc, cc, 64, 64) * w).sum().backward()
    finally:
        tb.CHUNK_CELLS = old
    torch.testing.assert_close(pc.grad, ref_p.grad)
    torch.testing.assert_close(cc.grad, ref_c.grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("strategy", ["auto", "boxes"])  # auto = dense on CUDA
def test_cuda_matches_cpu(strategy):
    g = torch.Generator().manual_seed(2)
    pts = torch.rand(2, 6, 12, 2, generator=g) * 48
    cols = torch.rand(2, 6, 4, generator=g)
    w = torch.rand(48, 48, 3, generator=g)
    pc, cc = pts.clone().requires_grad_(), cols.clone().requires_grad_()
    (rasterize(pc, cc, 48, 48, segments=12) * w).sum().backward()
    pg, cg = pts.cuda().requires_grad_(), cols.cuda().requires_grad_()
    img = rasterize(pg, cg, 48, 48, segments=12, strategy=strategy)
    (img * w.cuda()).sum().backward()
    torch.testing.assert_close(img.detach().cpu(), rasterize(pts, cols, 48, 48, segments=12), atol=1e-5, rtol=0)
    torch.testing.assert_close(pg.grad.cpu(), pc.grad, atol=1e-3, rtol=1e-3)


GOOD_P, GOOD_C = torch.zeros(2, 12, 2), torch.full((2, 4), 0.5)


@pytest.mark.parametrize(
    "points, colors, kwargs, match",
    [
        (torch.zeros(3, 12, 2), GOOD_C, {}, r"disagree on P.*\(3, 12, 2\).*\(2, 4\)"),
        (torch.zeros(2, 12, 3), GOOD_C, {}, r"points: expected shape \(P, 3n, 2\)"),
        (torch.zeros(2, 10, 2), GOOD_C, {}, r"3n control points.*got 10"),
        (GOOD_P, torch.full((2, 3), 0.5), {}, r"colors: expected shape \(P, 4\).*\(2, 3\)"),
        (GOOD_P.unsqueeze(0), GOOD_C, {}, r"colors: expected shape \(B, P, 4\)"),
        (GOOD_P.index_put((torch.tensor([0]),), torch.tensor(float("nan"))), GOOD_C, {}, "points: contains NaN or inf"),
        (GOOD_P.index_put((torch.tensor([1]),), torch.tensor(float("inf"))), GOOD_C, {}, "points: contains NaN or inf"),
        (GOOD_P, GOOD_C.index_put((torch.tensor([0]),), torch.tensor(float("nan"))), {}, "colors: contains NaN"),
        (GOOD_P, GOOD_C * 3, {}, r"colors: RGBA values must lie in \[0, 1\], got range \[1.5, 1.5\]"),
        (GOOD_P, -GOOD_C, {}, r"colors: RGBA values must lie in \[0, 1\]"),
        (GOOD_P.double(), GOOD_C, {}, "share a dtype"),
        (GOOD_P.long(), GOOD_C.long(), {}, "points: expected a float32 or float64 tensor, got torch.int64"),
        (GOOD_P.half(), GOOD_C.half(), {}, "float32 or float64"),
        ([[0.0, 0.0]], GOOD_C, {}, "points: expected a torch.Tensor, got list"),
        (GOOD_P, GOOD_C, {"height": 0}, r"height: expected a positive int, got 0 \(a zero-size canvas"),
        (GOOD_P, GOOD_C, {"width": 0}, "width: expected a positive int, got 0"),
        (GOOD_P, GOOD_C, {"width": 8.0}, "width: expected a positive int, got 8.0"),
        (GOOD_P, GOOD_C, {"samples": 0}, "samples: expected a positive int"),
        (GOOD_P, GOOD_C, {"fill_rule": "winding"}, "fill_rule: expected one of"),
        (GOOD_P, GOOD_C, {"fill_rule": ["nonzero"]}, r"one rule per path \(2\), got 1"),
        (GOOD_P, GOOD_C, {"background": "black"}, "background: expected one of"),
        (GOOD_P, GOOD_C, {"backend": "skia"}, "backend: expected one of"),
        (GOOD_P, GOOD_C, {"segments": 0}, "segments: expected None or a positive int"),
    ],
)
def test_bad_input_is_one_clear_error(points, colors, kwargs, match):
    args = {"height": 8, "width": 8, **kwargs}
    with pytest.raises(RasterizeError, match=match):
        rasterize(points, colors, **args)


def test_diffvg_backend_missing_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name == "pydiffvg":
            raise ImportError("No module named 'pydiffvg'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(RasterizeError, match="backend='diffvg' needs pydiffvg"):
        rasterize(GOOD_P, GOOD_C, 8, 8, backend="diffvg")


def test_path_larger_than_the_canvas_covers_it():
    """Edges outside the canvas on every side: the clipped box still sees the inside (winding carried in
    from the left)."""
    big = polygon_path([[-1e4, -3e3], [2e4, -1e4], [1e4, 2e4], [-2e4, 1e4]])[None]
    img = rasterize(big, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64), 6, 9)
    torch.testing.assert_close(img, torch.zeros(6, 9, 3, dtype=torch.float64), atol=1e-9, rtol=0)
    # a thin diagonal band across it: exact areas from the half-plane formula, per pixel
    band = polygon_path([[-50.0, -47.5], [60.0, 62.5], [60.0, 64.5], [-50.0, -45.5]])[None]
    img = rasterize(band, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64), 6, 9, samples=1)
    n = 64
    off = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    X = (torch.arange(9, dtype=torch.float64)[:, None] + off).reshape(-1)[None, :]
    Y = (torch.arange(6, dtype=torch.float64)[:, None] + off).reshape(-1)[:, None]
    inside = ((Y - X) > 2.5) & ((Y - X) < 4.5)
    cov = inside.double().view(6, n, 9, n).mean((1, 3))
    assert (img[..., 0] - (1 - cov)).abs().max() < 0.02
