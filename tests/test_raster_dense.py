"""The "dense" strategy (static shapes, no host synchronisation) against the "boxes" strategy, exact geometry,
finite differences, and the ``meta`` device (which refuses every data-dependent host synchronisation)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import dreamsampler.render.dense as dense
from dreamsampler.render import RasterizeError, rasterize
from dreamsampler.render.bezier import canvas_segments
from test_raster_api import box_coverage, polygon_path  # the tests folder is on sys.path (no __init__.py)
from test_raster_fixture import _cos, _small_scene

FIXTURE = Path(__file__).parent / "data" / "diffvg_ref_P8_W64.pt"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIXTURE, weights_only=True)


def _bench():
    path = Path(__file__).parents[1] / "tools" / "bench_raster.py"
    spec = importlib.util.spec_from_file_location("bench_raster", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def _render_grad(points, colors, weights, strategy, **kw):
    p, c = points.clone().requires_grad_(), colors.clone().requires_grad_()
    img = rasterize(p, c, weights.shape[-3], weights.shape[-2], strategy=strategy, **kw)
    (img * weights).sum().backward()
    return img.detach(), p.grad, c.grad


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


# ------------------------------------------------------------------------------ agreement with "boxes"
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_dense_equals_boxes_on_the_fixture_scene(ref, dtype, tol):
    """Same image and gradients (same segments) up to rounding; measured: float64 ≤ 3e-15 relative,
    float32 image ≤ 2e-7 max-abs, points gradient ≤ 3e-6 relative, colors ≤ 1e-6."""
    pts, cols, w = ref["points"].to(dtype), ref["colors"].to(dtype), ref["weights"].to(dtype)
    box = _render_grad(pts, cols, w, "boxes", segments=16)
    den = _render_grad(pts, cols, w, "dense", segments=16)
    assert (den[0] - box[0]).abs().max() <= tol
    assert _rel(den[1], box[1]) <= tol and _rel(den[2], box[2]) <= tol


@pytest.mark.parametrize("fill_rule", ["nonzero", "evenodd"])
def test_dense_equals_boxes_on_overlapping_opaque_paths(fill_rule):
    """Opaque paths (1 − a = 0 inside): the compositor's backward has no division; batched, some paths off or
    across the canvas border, one path going round twice."""
    g = torch.Generator().manual_seed(4)
    t = 2 * torch.pi * torch.arange(12, dtype=torch.float64) / 12
    unit = torch.stack((t.cos(), t.sin()), -1)
    centers = torch.rand(2, 7, 1, 2, generator=g, dtype=torch.float64) * 44 - 6
    radius = 4 + 10 * torch.rand(2, 7, 1, 1, generator=g, dtype=torch.float64)
    pts = centers + radius * (unit + 0.3 * (torch.rand(2, 7, 12, 2, generator=g, dtype=torch.float64) - 0.5))
    pts[:, -1] = 16 + 9 * torch.cat((unit[0::2], 0.5 * unit[0::2]))  # round twice: winding 2 inside
    pts[1, 2] += 300  # far off the canvas
    cols = torch.rand(2, 7, 4, generator=g, dtype=torch.float64)
    cols[..., 3] = torch.where(torch.rand(2, 7, generator=g) < 0.6, 1.0, cols[..., 3].double())
    w = torch.rand(2, 30, 34, 4, generator=g, dtype=torch.float64) - 0.5
    kw = {"segments": 5, "fill_rule": fill_rule, "background": "transparent"}
    box = _render_grad(pts, cols, w, "boxes", **kw)
    den = _render_grad(pts, cols, w, "dense", **kw)
    assert (den[0] - box[0]).abs().max() <= 1e-12
    assert _rel(den[1], box[1]) <= 1e-10 and _rel(den[2], box[2]) <= 1e-10


def test_dense_matches_the_diffvg_fixture_with_its_defaults(ref):
    """The fixture targets of ``test_raster_fixture`` hold for dense with its static segment count."""
    assert canvas_segments(64, 64) == 34
    image, g_points, g_colors = _render_grad(ref["points"], ref["colors"], ref["weights"] / (64 * 64), "dense")
    diff = (image.double() - ref["image_white_mean"].double()).abs()
    assert diff.mean() <= 1e-3 and diff.max() <= 0.1
    assert _cos(g_points, ref["grad_points_mean"]) >= 0.995
    assert _cos(g_colors, ref["grad_colors_mean"]) >= 0.9995


def test_dense_equals_boxes_on_a_grown_benchmark_scene():
    """A benchmark scene (grown, 24 paths, 96²) in float32, several chunks: measured ≤ 1e-5 relative."""
    points, colors = _bench().make_scene("grown", 24, 96)
    w = torch.rand(96, 96, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    box = _render_grad(points, colors, w, "boxes", segments=12)
    old = dense.DENSE_CHUNK_CELLS
    dense.DENSE_CHUNK_CELLS = 5 * 192 * 193  # five paths per chunk
    try:
        den = _render_grad(points, colors, w, "dense", segments=12)
    finally:
        dense.DENSE_CHUNK_CELLS = old
    assert (den[0] - box[0]).abs().max() <= 1e-5
    assert _cos(den[1], box[1]) >= 1 - 1e-8 and _rel(den[1], box[1]) <= 1e-4
    assert _rel(den[2], box[2]) <= 1e-5


# ------------------------------------------------------------------------------ exact geometry, rules
def test_rectangle_area_fill_rules_and_big_path():
    x0, y0, x1, y1 = 2.25, 3.5, 9.75, 7.0
    rect = polygon_path([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])[None]
    black = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    for s in (1, 3):
        img = rasterize(rect, black, 10, 12, samples=s, strategy="dense")[..., 0]
        torch.testing.assert_close(img, 1 - box_coverage(x0, y0, x1, y1, 10, 12), atol=1e-9, rtol=0)
    outer = [[2.0, 2.0], [10.0, 2.0], [10.0, 10.0], [2.0, 10.0]]
    inner = [[4.0, 4.0], [8.0, 4.0], [8.0, 8.0], [4.0, 8.0]]
    loop = torch.cat((polygon_path(outer), polygon_path([[2.0, 2.0], [4.0, 4.0]])[:3],
                      polygon_path(inner), polygon_path([[4.0, 4.0], [2.0, 2.0]])[:3]))[None]
    ring = box_coverage(2, 2, 10, 10, 12, 12) - box_coverage(4, 4, 8, 8, 12, 12)
    torch.testing.assert_close(rasterize(loop, black, 12, 12, strategy="dense")[..., 0],
                               1 - box_coverage(2, 2, 10, 10, 12, 12), atol=1e-9, rtol=0)
    for rule in ("evenodd", ["evenodd"], torch.tensor([True])):
        torch.testing.assert_close(rasterize(loop, black, 12, 12, strategy="dense", fill_rule=rule)[..., 0],
                                   1 - ring, atol=1e-9, rtol=0)
    big = polygon_path([[-1e4, -3e3], [2e4, -1e4], [1e4, 2e4], [-2e4, 1e4]])[None]
    torch.testing.assert_close(rasterize(big, black, 6, 9, strategy="dense"), torch.zeros(6, 9, 3, dtype=torch.float64),
                               atol=1e-9, rtol=0)


def test_mixed_fill_rules_batched_and_zero_paths():
    points, colors, _ = _small_scene()
    rules = torch.tensor([[True, False, True], [False, False, True]])
    pts, cols = torch.stack((points, points + 0.6)), torch.stack((colors, colors.flip(0)))
    for strategy in ("boxes", "dense"):
        img = rasterize(pts, cols, 16, 16, segments=6, fill_rule=rules, strategy=strategy)
        if strategy == "boxes":
            expect = img
        else:
            torch.testing.assert_close(img, expect, atol=1e-12, rtol=0)
    one = rasterize(pts[1], cols[1], 16, 16, segments=6, fill_rule=["nonzero", "nonzero", "evenodd"], strategy="dense")
    torch.testing.assert_close(one, expect[1], atol=1e-12, rtol=0)
    empty = rasterize(torch.zeros(0, 12, 2), torch.zeros(0, 4), 5, 7, strategy="dense")
    torch.testing.assert_close(empty, torch.ones(5, 7, 3))
    off = rasterize(torch.full((2, 6, 2), -40.0), torch.full((2, 4), 0.5), 5, 7, strategy="dense",
                    background="transparent")
    torch.testing.assert_close(off, torch.zeros(5, 7, 4))


@pytest.mark.parametrize("fill_rule", ["nonzero", "evenodd"])
def test_gradient_matches_finite_differences(fill_rule):
    points, colors, weights = _small_scene()

    def loss(p, c):
        return (rasterize(p, c, 16, 16, samples=2, segments=6, fill_rule=fill_rule, strategy="dense") * weights).sum()

    assert torch.autograd.gradcheck(loss, (points.requires_grad_(), colors.requires_grad_()), eps=1e-6,
                                    atol=1e-6, rtol=1e-4)


def test_gradient_matches_finite_differences_batched_transparent_chunked_checkpointed(monkeypatch):
    points, colors, weights = _small_scene()
    pts = torch.stack((points, points.flip(0) + 0.37)).requires_grad_()
    cols = torch.stack((colors, colors.flip(0))).requires_grad_()
    w4 = torch.cat((weights, weights[..., :1]), -1)
    monkeypatch.setattr(dense, "DENSE_CHUNK_CELLS", 2 * 48 * 49)  # one path per chunk (B = 2)
    monkeypatch.setattr(dense, "DENSE_SAVE_CELLS", 0)  # checkpoint every chunk

    def loss(p, c):
        return (rasterize(p, c, 16, 16, samples=3, segments=5, background="transparent", strategy="dense") * w4).sum()

    assert torch.autograd.gradcheck(loss, (pts, cols), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_horizontal_edges_and_vertices_on_grid_lines():
    """An axis-aligned rectangle (edges with dy = 0): the gradient equals one-sided finite differences off the
    grid; with corners on grid lines (not differentiable) both strategies return the same one-sided choice."""
    w = torch.rand(12, 14, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    col = torch.tensor([[0.2, 0.5, 0.7, 0.8]], dtype=torch.float64)

    def loss(p, strategy):
        return (rasterize(p, col, 12, 14, segments=3, strategy=strategy) * w).sum()

    off = polygon_path([[2.3, 3.4], [9.6, 3.4], [9.6, 8.7], [2.3, 8.7]])[None]
    eps = 1e-7
    num = torch.zeros_like(off)
    with torch.no_grad():
        base = loss(off, "dense")
        for i in range(off.shape[1]):
            for d in range(2):
                q = off.clone()
                q[0, i, d] += eps
                num[0, i, d] = (loss(q, "dense") - base) / eps
    on = polygon_path([[2.0, 3.0], [9.5, 3.0], [9.5, 8.5], [2.0, 8.5]])[None]
    grads = {}
    for strategy in ("boxes", "dense"):
        for name, path in (("off", off), ("on", on)):
            p = path.clone().requires_grad_()
            loss(p, strategy).backward()
            grads[strategy, name] = p.grad
    torch.testing.assert_close(grads["dense", "off"], num, atol=1e-6, rtol=0)
    torch.testing.assert_close(grads["boxes", "off"], num, atol=1e-6, rtol=0)
    torch.testing.assert_close(grads["dense", "on"], grads["boxes", "on"], atol=1e-12, rtol=0)


def test_float32_vertex_on_a_row_line_keeps_its_gradient():
    """Rounded to float32, a vertex of this scene lands exactly on a row line; its gradient must still match
    float64's (it once mixed whole-row sums of the two rows: 178 % off for dense, 3 % for boxes)."""
    points, colors = _bench().make_scene("init", 256, 512)
    points, colors = points[175:176], colors[175:176]
    w = torch.rand(512, 512, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref = _render_grad(points.double(), colors.double(), w.double(), "boxes", segments=32)[1]
    for strategy in ("boxes", "dense"):
        g = _render_grad(points, colors, w, strategy, segments=32)[1]
        assert _rel(g, ref) <= 1e-4, strategy


# ------------------------------------------------------------------------------ no host synchronisation
@pytest.mark.parametrize("fill_rule", ["nonzero", "evenodd", "mixed-list", "tensor"])
def test_dense_runs_on_the_meta_device(fill_rule, monkeypatch):
    """Meta tensors have no values: any .item(), .tolist(), bool(), nonzero or value-dependent shape raises.
    Forward and backward, batched, several checkpointed chunks."""
    monkeypatch.setattr(dense, "DENSE_CHUNK_CELLS", 2 * 80 * 97)
    monkeypatch.setattr(dense, "DENSE_SAVE_CELLS", 0)
    rule = {"mixed-list": ["evenodd", "nonzero", "evenodd"], "tensor": torch.tensor([True, False, True], device="meta")}
    p = torch.empty(2, 3, 12, 2, device="meta", requires_grad=True)
    c = torch.empty(2, 3, 4, device="meta", requires_grad=True)
    img = rasterize(p, c, 40, 48, strategy="dense", fill_rule=rule.get(fill_rule, fill_rule))
    assert img.shape == (2, 40, 48, 3) and img.device.type == "meta"
    img.sum().backward()
    assert p.grad.shape == p.shape and c.grad.shape == c.shape


def test_boxes_does_not_run_on_the_meta_device():
    """The meta check has teeth: the boxes strategy reads values (boxes, chunks) and fails there."""
    p, c = torch.empty(3, 12, 2, device="meta"), torch.empty(3, 4, device="meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        rasterize(p, c, 40, 48, strategy="boxes")


def test_auto_strategy_is_boxes_on_cpu(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("dense used on CPU")

    monkeypatch.setattr(dense, "render_premultiplied", refuse)
    points, colors, _ = _small_scene()
    rasterize(points, colors, 16, 16)
    with pytest.raises(AssertionError, match="dense used"):
        rasterize(points, colors, 16, 16, strategy="dense")


def test_check_values_false_skips_value_checks_and_stays_safe():
    """Without value checks NaN input must not index out of bounds (indices are clamped)."""
    points, colors, _ = _small_scene()
    points = points.clone()
    points[0, 0] = float("nan")
    with pytest.raises(RasterizeError, match="NaN"):
        rasterize(points, colors, 16, 16, strategy="dense")
    img = rasterize(points, colors, 16, 16, strategy="dense", check_values=False)
    assert img.shape == (16, 16, 3)


# ------------------------------------------------------------------------------ building blocks
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 13, 32])
def test_suffix_scan_matches_a_loop(k):
    g = torch.Generator().manual_seed(k)
    m = torch.rand(2, k, 7, generator=g, dtype=torch.float64)
    m[:, ::3] = 0.0  # opaque layers
    c = torch.randn(2, k, 7, generator=g, dtype=torch.float64)
    expect = torch.zeros_like(c)
    run = torch.zeros(2, 7, dtype=torch.float64)
    for i in range(k - 1, -1, -1):
        run = m[:, i] * run + c[:, i]
        expect[:, i] = run
    out = torch.empty(2, k + 1, 7, dtype=torch.float64)[:, :k]  # a strided view, as the compositor uses it
    torch.testing.assert_close(dense.suffix_scan_(m, c.clone(), out), expect, atol=1e-12, rtol=0)


def test_edge_values_equal_the_dense_winding_and_budget_holds():
    points, colors = _bench().make_scene("grown", 16, 64)
    verts = dense.flatten(points.double(), 16) * 2
    n_slots = 16 * dense.crossings_per_path(128, 128, verts.shape[1])
    wind, index, value, mask, demand = dense.winding_dense(verts, 128, 128, n_slots)
    assert int(demand) <= n_slots
    assert int(mask.sum()) > 0
    torch.testing.assert_close(value[mask], wind.reshape(-1)[index[mask]], atol=1e-9, rtol=0)
    table = dense.crossing_demand(points, 64, 64, segments=16)
    assert bool((table[:, 0] <= table[:, 1]).all())


def test_rows_stay_exact_when_the_budget_runs_out(monkeypatch):
    """With slots for the row crossings only, the interior (winding) of a quadrilateral of long edges
    (segments=1) stays exact; only the cells its edges cross are approximated (a piece spanning several
    cells of a row counts at its midpoint)."""
    corners = [[3.3, 2.2], [40.7, 5.1], [37.9, 29.6], [1.4, 27.3]]
    quad = polygon_path(corners)[None]
    black = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    kw = {"samples": 1, "segments": 1}
    exact = rasterize(quad, black, 32, 44, strategy="boxes", **kw)
    needed = int(dense.crossing_demand(quad, 32, 44, **kw)[0, 0])  # ~ 54 rows + ~ 80 columns
    monkeypatch.setattr(dense, "crossings_per_path", lambda hs, ws, e: 60)
    assert needed > 60
    cut = rasterize(quad, black, 32, 44, strategy="dense", **kw)
    interior = exact[..., 0] < 1e-12
    assert bool(interior.any()) and (cut[..., 0][interior]).abs().max() < 1e-12  # still fully covered
    err = (cut - exact).abs()
    assert err.max() < 0.5 and err.mean() < 0.015, (float(err.max()), float(err.mean()))  # measured 0.46, 0.0096


def test_strategy_is_validated():
    p, c = torch.zeros(2, 12, 2), torch.full((2, 4), 0.5)
    with pytest.raises(RasterizeError, match=r"strategy: expected one of \('auto', 'boxes', 'dense'\), got 'fast'"):
        rasterize(p, c, 8, 8, strategy="fast")
    with pytest.raises(RasterizeError, match="strategy: expected 'auto' with backend='diffvg'"):
        rasterize(p, c, 8, 8, strategy="dense", backend="diffvg")
    with pytest.raises(RasterizeError, match="check_values: expected a bool, got 1"):
        rasterize(p, c, 8, 8, check_values=1)
    with pytest.raises(RasterizeError, match="fill_rule: expected 'nonzero', 'evenodd', one per path"):
        rasterize(p, c, 8, 8, fill_rule=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_dense_is_sync_free_and_matches_cpu():
    """On CUDA, 'auto' is dense and a render (check_values=False) makes no synchronising CUDA call."""
    points, colors = _bench().make_scene("grown", 16, 64)
    w = torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cpu = _render_grad(points, colors, w, "boxes", segments=16)
    p, c = points.cuda().requires_grad_(), colors.cuda().requires_grad_()
    rasterize(p, c, 64, 64, segments=16, check_values=False)  # warm-up (allocator, kernels)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        img = rasterize(p, c, 64, 64, segments=16, check_values=False)
        (img * w.cuda()).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.testing.assert_close(img.detach().cpu(), cpu[0], atol=1e-5, rtol=0)
    assert _rel(p.grad.cpu(), cpu[1]) <= 1e-4 and _rel(c.grad.cpu(), cpu[2]) <= 1e-4
