"""SVGGenerator: g(psi) for B independent vector scenes (Sec. 4.1, eq. 21)."""

from __future__ import annotations

import math

import pytest
import torch

from dreamsampler.errors import InputError
from dreamsampler.generators.svg import SVGGenerator, circle_loops, polygon_area
from dreamsampler.io.svg import read_svg, write_svg
from dreamsampler.render import rasterize

H, W = 32, 48


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def make(batch=2, names=None, seed=0, **kw) -> SVGGenerator:
    kw = {"paths": 6, "height": H, "width": W, **kw}
    g = SVGGenerator(batch, **kw)
    g.init_circles(seed, names or [f"s{i}" for i in range(batch)])
    return g


def bezier(p0, p1, p2, p3, t):
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3


# --------------------------------------------------------------------------------------- shapes, checks
def test_shapes_and_dtypes():
    g = make(batch=3, segments=5)
    assert g.outputs_latent is False
    assert g.points.shape == (3, 6, 15, 2) and g.points.dtype == torch.float32
    assert g.colors().shape == (3, 6, 4) and g.colors().dtype == torch.float32
    assert {n for n, _ in g.named_parameters()} == {"points", "rgba"}
    img = g().detach()
    assert img.shape == (3, 3, H, W) and img.dtype == torch.float32
    assert 0 <= float(img.min()) and float(img.max()) <= 1
    assert float(img.min()) < 0.99  # something was drawn


@pytest.mark.parametrize("kw, word", [
    ({"paths": 0}, "paths"), ({"segments": 0}, "segments"), ({"height": 0}, "height"), ({"width": -3}, "width"),
    ({"batch": 0}, "batch"), ({"samples": 0}, "samples"), ({"paths": True}, "paths"), ({"segments": 2.0}, "segments"),
    ({"lr_points": 0.0}, "lr_points"), ({"lr_colors": float("nan")}, "lr_colors"),
])
def test_constructor_refuses_bad_arguments(kw, word):
    kw = {"batch": 1, **kw}
    with pytest.raises(InputError, match=word) as err:
        SVGGenerator(**kw)
    assert "got" in str(err.value)


def test_param_groups_names_and_lrs():
    g = SVGGenerator(1, paths=2, height=64, width=256, lr_points=2.0, lr_colors=0.03)
    groups = g.param_groups()
    assert [grp["name"] for grp in groups] == ["points", "colors"]
    assert groups[0]["params"] == [g.points] and groups[1]["params"] == [g.rgba]
    assert groups[0]["lr"] == pytest.approx(2.0 * 256 / 512)
    assert groups[1]["lr"] == pytest.approx(0.03)
    default = SVGGenerator(1, paths=1).param_groups()
    assert (default[0]["lr"], default[1]["lr"]) == (1.0, 0.01)
    torch.optim.Adam(groups)  # a valid optimizer spec


# ---------------------------------------------------------------------------------------------- inits
def test_init_reproducible_and_batch_independent():
    a = make(batch=3, names=["a", "x", "b"], seed=7)
    alone = make(batch=1, names=["x"], seed=7)
    assert torch.equal(a.points[1], alone.points[0]) and torch.equal(a.rgba[1], alone.rgba[0])
    again = make(batch=3, names=["a", "x", "b"], seed=7)
    assert torch.equal(a.points, again.points) and torch.equal(a.rgba, again.rgba)
    assert not torch.equal(a.points[0], a.points[2])
    assert not torch.equal(make(batch=1, names=["x"], seed=8).points, alone.points)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    make(batch=1, names=["x"], seed=7)
    assert torch.equal(torch.rand(1), before)  # global RNG untouched


def test_init_ranges():
    g = make(batch=2, paths=200, seed=1)
    centers = g.points.detach()[..., 0::3, :].mean(-2)
    assert float(centers[..., 0].min()) >= 0 and float(centers[..., 0].max()) <= W
    assert float(centers[..., 1].min()) >= 0 and float(centers[..., 1].max()) <= H
    rgb, alpha = g.rgba.detach()[..., :3], g.rgba.detach()[..., 3]
    assert 0 <= float(rgb.min()) and float(rgb.max()) <= 1 and float(rgb.std()) > 0.2
    assert 0.7 <= float(alpha.min()) and float(alpha.max()) <= 1
    assert not bool(g.even_odd.any())


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_circle_geometry(n):
    r, c = 20.0, torch.tensor([100.0, 60.0], dtype=torch.float64)
    loop = circle_loops(c, r, n)
    assert loop.shape == (3 * n, 2)
    kappa = 4 / 3 * math.tan(math.pi / (2 * n))
    on, h1, h2 = loop[0::3], loop[1::3], loop[2::3]
    torch.testing.assert_close((on - c).norm(dim=-1), torch.full((n,), r, dtype=torch.float64))
    torch.testing.assert_close((h1 - on).norm(dim=-1), torch.full((n,), kappa * r, dtype=torch.float64))
    torch.testing.assert_close((h2 - on.roll(-1, 0)).norm(dim=-1), torch.full((n,), kappa * r, dtype=torch.float64))
    mid = bezier(on, h1, h2, on.roll(-1, 0), 0.5)
    assert float(((mid - c).norm(dim=-1) / r - 1).abs().max()) < 1e-3
    if n >= 4:  # the whole curve, not only its midpoints
        t = torch.linspace(0, 1, 33, dtype=torch.float64)[:, None, None]
        curve = bezier(on, h1, h2, on.roll(-1, 0), t)
        assert float(((curve - c).norm(dim=-1) / r - 1).abs().max()) < 2e-3


def test_default_radius_scales_with_canvas():
    g = make(batch=1, paths=3, height=128, width=256, segments=4)
    on = g.points[0, :, 0::3].double()
    radius = (on - on.mean(-2, keepdim=True)).norm(dim=-1)
    torch.testing.assert_close(radius, torch.full_like(radius, 20 * 128 / 512), atol=1e-4, rtol=0)
    g.init_circles(0, ["s0"], radius=3.0)
    on = g.points[0, :, 0::3].double()
    torch.testing.assert_close((on - on.mean(-2, keepdim=True)).norm(dim=-1), torch.full_like(radius, 3.0),
                               atol=1e-4, rtol=0)


def test_single_segment_loop_is_a_drop_through_the_circle():
    c, r = torch.tensor([10.0, 10.0], dtype=torch.float64), 4.0
    p0, p1, p2 = circle_loops(c, r, 1)
    torch.testing.assert_close(p0, c + torch.tensor([0.0, r], dtype=torch.float64))
    torch.testing.assert_close(bezier(p0, p1, p2, p0, 0.5), c - torch.tensor([0.0, r], dtype=torch.float64))
    img = make(batch=1, paths=2, segments=1)().detach()
    assert float(img.min()) < 0.99


def test_init_names_must_match_batch():
    g = SVGGenerator(2, paths=2, height=H, width=W)
    with pytest.raises(InputError, match=r"one sample name per sample \(2\), got 1"):
        g.init_circles(0, ["a"])
    with pytest.raises(InputError, match="a string"):
        g.init_circles(0, "ab")


# ---------------------------------------------------------------------------------------- rendering
def test_forward_equals_rasterize():
    g = make(batch=2, samples=3)
    expected = rasterize(g.points, g.colors(), H, W, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(g(), expected, rtol=0, atol=0)


def test_bf16_autocast_renders_float32_and_the_same_image():
    g = make(batch=2)
    plain = g()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = g()
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain, rtol=0, atol=0)


def test_gradients_reach_points_and_colors():
    g = make(batch=2)
    (g() * torch.linspace(0, 1, W)).sum().backward()
    for p in (g.points, g.rgba):
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()) and float(p.grad.abs().sum()) > 0
    assert bool((g.rgba.grad[1].abs().sum(-1) > 0).all())  # every path's color matters


def test_colors_stay_in_range_after_a_large_adam_step():
    g = make(batch=1)
    opt = torch.optim.Adam([{"params": [g.rgba], "lr": 5.0}])
    for sign in (1.0, -1.0):
        opt.zero_grad()
        (sign * g().sum()).backward()
        opt.step()
        raw = g.rgba.detach()
        assert float(raw.max()) > 1.2 or float(raw.min()) < -0.2  # the raw step left the range
        cols = g.colors().detach()
        assert 0 <= float(cols.min()) and float(cols.max()) <= 1
        img = g().detach()  # projects the parameter back
        assert 0 <= float(g.rgba.detach().min()) and float(g.rgba.detach().max()) <= 1
        assert 0 <= float(img.min()) and float(img.max()) <= 1
    # projected onto the boundary, the clamp passes the rendered colors' gradient: nothing is stuck there
    at_edge = (g.rgba == 0) | (g.rgba == 1)
    assert bool(at_edge.any())
    opt.zero_grad()
    ((g() - 0.5) ** 2).sum().backward()
    cols = g.colors().detach().requires_grad_(True)
    ((rasterize(g.points.detach(), cols, H, W).permute(0, 3, 1, 2) - 0.5) ** 2).sum().backward()
    torch.testing.assert_close(g.rgba.grad, cols.grad, rtol=0, atol=0)
    assert float(g.rgba.grad[at_edge].abs().max()) > 0


# --------------------------------------------------------------------------------------- dead paths
def test_polygon_area_of_a_square():
    sq = torch.tensor([[0.0, 0.0], [3.0, 0.0], [3.0, 2.0], [0.0, 2.0]])
    assert float(polygon_area(sq)) == pytest.approx(6.0)
    assert float(polygon_area(sq.flip(0))) == pytest.approx(6.0)


def test_reinitialize_dead_exactly_transparent_and_tiny_paths():
    names = ["a", "b"]
    g = make(batch=2, names=names)
    assert g.reinitialize_dead(0, 5, names) == 0
    with torch.no_grad():
        g.rgba[0, 3, 3] = 0.01                       # transparent
        center = g.points[1, 4].mean(0)
        g.points[1, 4] = center + 0.01 * (g.points[1, 4] - center)  # tiny
    dead = torch.zeros(2, 6, dtype=torch.bool)
    dead[0, 3] = dead[1, 4] = True
    assert torch.equal(g.dead_paths(), dead)
    before_p, before_c = g.points.detach().clone(), g.rgba.detach().clone()
    twin = SVGGenerator(2, paths=6, height=H, width=W)
    twin.load_state_dict(g.state_dict())

    assert g.reinitialize_dead(3, 9, names) == 2
    keep = ~dead
    assert torch.equal(g.points[keep], before_p[keep]) and torch.equal(g.rgba[keep], before_c[keep])
    assert not torch.equal(g.points[dead], before_p[dead])
    assert float(g.rgba.detach()[dead][:, 3].min()) >= 0.7
    on = g.points[dead][:, 0::3].double()
    torch.testing.assert_close((on - on.mean(-2, keepdim=True)).norm(dim=-1),
                               torch.full((2, 4), g.default_radius(), dtype=torch.float64), atol=1e-4, rtol=0)
    assert not bool(g.dead_paths().any())

    assert twin.reinitialize_dead(3, 9, names) == 2  # deterministic
    assert torch.equal(twin.points, g.points) and torch.equal(twin.rgba, g.rgba)
    other = SVGGenerator(2, paths=6, height=H, width=W)
    other.load_state_dict(twin.state_dict())
    with torch.no_grad():
        other.rgba[0, 0, 3] = 0.0
    other.reinitialize_dead(3, 10, names)
    assert not torch.equal(other.points[0, 0], g.points[0, 0])  # another step, other noise
    assert torch.equal(other.points[1], g.points[1])


def test_reinitialize_dead_thresholds():
    g = make(batch=1, names=["a"], height=512, width=512, paths=3)
    assert g.default_min_area() == 64.0
    assert make(batch=1, names=["a"], height=128, width=256, paths=1).default_min_area() == pytest.approx(16.0)
    area = float(polygon_area(g.points.detach()[0, 0].double()))
    assert g.reinitialize_dead(0, 0, ["a"], min_area=area * 0.999) == 0
    assert g.reinitialize_dead(0, 0, ["a"], min_opacity=1.01) == 3


# --------------------------------------------------------------------------------------------- files
def test_to_svg_round_trip(tmp_path):
    g = make(batch=2)
    with torch.no_grad():
        g.rgba[1, 2] = torch.tensor([0.0, 1.0, 0.25, 0.0])
    scene = read_svg(g.to_svg(1))
    assert (scene.height, scene.width, scene.background) == (H, W, "white")
    assert scene.fill_rule == ("nonzero",) * 6
    torch.testing.assert_close(scene.points, g.points[1].detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(scene.colors, g.colors()[1].detach(), atol=1e-6, rtol=0)

    out = g.save_svg(0, tmp_path / "sub" / "s0.svg")
    assert out.read_text() == g.to_svg(0)
    assert sorted(p.name for p in out.parent.iterdir()) == ["s0.svg"]  # no temp file left
    with pytest.raises(InputError, match="cannot write SVG file"):
        g.save_svg(0, tmp_path)
    with pytest.raises(IndexError):
        g.to_svg(2)


def test_init_from_svg_good_files(tmp_path):
    src = make(batch=2, names=["p", "q"], paths=3)
    files = [src.save_svg(b, tmp_path / f"{b}.svg") for b in range(2)]
    g = SVGGenerator(2, paths=5, height=H, width=W)
    g.init_from_svg([str(f) for f in files])
    torch.testing.assert_close(g.points[:, :3], src.points.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(g.colors()[:, :3], src.colors().detach(), atol=1e-6, rtol=0)
    pad = g.points[:, 3:].detach()
    assert bool((g.rgba[:, 3:, 3] == 0).all()) and bool((pad == pad[..., :1, :]).all())  # invisible, degenerate
    torch.testing.assert_close(g(), src(), atol=1e-5, rtol=0)
    assert torch.equal(g.dead_paths()[:, 3:], torch.ones(2, 2, dtype=torch.bool))
    assert g.reinitialize_dead(0, 0, ["p", "q"]) == 4

    # shorter loops are padded; per-path fill rules kept
    (tmp_path / "mixed.svg").write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}">'
        '<rect x="2" y="3" width="10" height="8" fill="#ff0000"/>'
        '<path d="M 20 4 L 40 4 L 30 28 Z" fill="blue" fill-opacity="0.5" fill-rule="evenodd"/></svg>')
    six = SVGGenerator(1, paths=2, segments=6, height=H, width=W)
    six.init_from_svg([tmp_path / "mixed.svg"])
    scene = read_svg(tmp_path / "mixed.svg")
    assert torch.equal(six.even_odd, torch.tensor([[False, True]]))
    expected = rasterize(scene.points, scene.colors, H, W, fill_rule=list(scene.fill_rule))
    torch.testing.assert_close(six()[0], expected.permute(2, 0, 1), atol=1e-5, rtol=0)
    assert read_svg(six.to_svg(0)).fill_rule == ("nonzero", "evenodd")

    # trailing degenerate segments beyond n are dropped, not refused
    four = make(batch=1, names=["z"], paths=2, segments=4)
    padded = torch.cat([four.points[0].detach(), four.points[0, :, :1].detach().expand(-1, 6, -1)], 1)
    write_svg(tmp_path / "padded.svg", padded, four.colors()[0].detach(), H, W)
    back = SVGGenerator(1, paths=2, segments=4, height=H, width=W)
    back.init_from_svg([tmp_path / "padded.svg"])
    torch.testing.assert_close(back.points, four.points.detach(), atol=1e-6, rtol=0)


def test_init_from_svg_bad_files(tmp_path):
    src = make(batch=1, names=["p"], paths=3)
    good = src.save_svg(0, tmp_path / "good.svg")
    g = SVGGenerator(1, paths=3, height=H, width=W)
    before = g.points.detach().clone()

    def refused(files, *words, gen=g):
        with pytest.raises(InputError) as err:
            gen.init_from_svg(files)
        for w in words:
            assert w in str(err.value), str(err.value)

    refused([good, good], "one SVG file per sample (1), got 2")
    refused(str(good), "one SVG file per sample", "single path")
    refused([tmp_path / "missing.svg"], "missing.svg", "not an existing file")
    (tmp_path / "big.svg").write_text(src.to_svg(0).replace(f'width="{W}"', 'width="64"', 1)
                                      .replace(f"0 0 {W} {H}", f"0 0 64 {H}"))
    refused([tmp_path / "big.svg"], "big.svg", f"64x{H}", f"expected {W}x{H}")
    refused([good], "good.svg", "has 3 filled paths, expected at most 2",
            gen=SVGGenerator(1, paths=2, height=H, width=W))
    refused([good], "good.svg", "path 0 has 4 cubic segments, expected at most 2",
            gen=SVGGenerator(1, paths=3, segments=2, height=H, width=W))
    (tmp_path / "stroke.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}">'
                                         '<circle cx="5" cy="5" r="3" fill="red" stroke="black"/></svg>')
    refused([tmp_path / "stroke.svg"], "stroke.svg", "stroke")
    (tmp_path / "empty.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}"/>')
    refused([tmp_path / "empty.svg"], "empty.svg", "no filled shapes")
    two = SVGGenerator(2, paths=3, height=H, width=W)
    two_before = two.points.detach().clone()
    refused([good, tmp_path / "stroke.svg"], "stroke.svg", gen=two)
    assert torch.equal(two.points, two_before) and torch.equal(g.points, before)  # nothing half-loaded
