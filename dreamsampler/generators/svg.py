"""The SVG generator: psi = control points and colors of B independent vector scenes, g(psi) = their raster.

The paper's Sec. 4.1 (eq. 21), after VectorFusion: psi holds, per sample, P closed paths of n cubic Bézier
segments (``points`` ``(B, P, 3n, 2)`` in pixels) and one RGBA fill per path; ``forward()`` renders them with
the project's differentiable rasterizer on a white background. Conventions (pixel coordinates, path 0 at the
back, the point layout of a closed loop) are the rasterizer's: see ``docs/rasterizer.md``.

**Colors: clamp, projected.** The color parameter ``rgba`` is stored directly as RGBA and clamped to [0, 1]
where it is used (``colors()``), as VectorFusion and LIVE do, rather than passed through a sigmoid:

* an optimizer step is then in color units: Adam's step (about ``lr_colors = 0.01``) moves a channel by about
  0.01 anywhere in the range, whereas through a sigmoid the same step in the logit moves a mid-grey channel
  by a quarter of that and a nearly saturated one by almost nothing — saturated, black or opaque fills,
  common in vector art, would be slow to reach and slow to leave, and the lr would mean different things
  at different colors;
* a color read from a file, or written to one, is the parameter itself: no logit of 0 or 1 to fudge.

A plain clamp has zero gradient outside [0, 1], so a channel pushed past the boundary by a step would stay
there for good. ``forward()`` therefore first projects ``rgba`` back into [0, 1] in place (``project_()``,
a no-op when nothing left the range), i.e. projected gradient descent — what VectorFusion/LIVE do with
``color.data.clamp_(0, 1)`` after each optimizer step. At exactly 0 or 1 the clamp's gradient passes, so a
projected channel can move back in at the next step. ``colors()`` is always the RGBA actually rendered.

**Learning rates.** ``param_groups()`` gives the points group ``lr = lr_points * width / 512``: ``lr_points``
is in pixels at a 512-px-wide canvas (VectorFusion's 1.0) and scales with the canvas so the same settings move
paths by the same fraction of the picture at any size. ``lr_colors`` (0.01) is in color units and is used as
given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..io.files import write_text
from ..io.svg import read_svg, write_svg
from ..render import rasterize
from ..seeding import rng

#: Canvas width (and circle radius / dead-area reference) that the paper's pixel-valued defaults refer to.
REFERENCE_SIZE = 512
#: Radius of an initial circle at 512² (VectorFusion's), scaled with min(H, W) / 512.
CIRCLE_RADIUS = 20.0
#: Area below which a path is dead, at 512² (px²), scaled with (W / 512)².
MIN_AREA = 64.0
#: Opacity range of initial fills.
OPACITY_RANGE = (0.7, 1.0)


def circle_loops(centers: Tensor, radius: float, segments: int) -> Tensor:
    """Closed cubic loops approximating circles: ``centers (..., 2)`` → control points ``(..., 3n, 2)``.

    Segment s spans angles [2πs/n, 2π(s+1)/n] (x right, y down, so clockwise on screen); its handles are
    tangent, of length κ·r with κ = 4/3·tan(π/(2n)) — the standard construction whose segment midpoints lie
    exactly on the circle. One cubic cannot close a circle (n = 1 would need κ = ∞): there the loop is a
    symmetric drop from the bottom of the circle (t = 0) through its top (t = ½) spanning its width.
    """
    r = float(radius)
    if segments == 1:
        offsets = torch.tensor([[0.0, r], [-2 * math.sqrt(3) * r, -5 * r / 3], [2 * math.sqrt(3) * r, -5 * r / 3]],
                               dtype=torch.float64)
        return centers[..., None, :] + offsets.to(centers)
    angles = torch.arange(segments, dtype=torch.float64) * (2 * math.pi / segments)
    on = torch.stack([angles.cos(), angles.sin()], -1) * r            # (n, 2) segment ends on the circle
    tangent = torch.stack([-angles.sin(), angles.cos()], -1) * r      # (n, 2) direction of travel, length r
    kappa = 4.0 / 3.0 * math.tan(math.pi / (2 * segments))
    out_handle = on + kappa * tangent                                 # leaves end s forward
    in_handle = (on - kappa * tangent).roll(-1, 0)                    # arrives at end s + 1
    offsets = torch.stack([on, out_handle, in_handle], 1).reshape(3 * segments, 2)
    return centers[..., None, :] + offsets.to(centers)


def polygon_area(points: Tensor) -> Tensor:
    """Absolute shoelace area of the closed control polygon ``(..., K, 2)`` → ``(...)``.

    A cheap stand-in for the filled area: exact for straight-edged paths, a little above the area for convex
    curved ones (the curve lies inside its control polygon's hull); parts of a self-intersecting polygon
    that wind in opposite directions cancel, which only makes such a path look smaller.
    """
    x, y = points[..., 0], points[..., 1]
    return 0.5 * (x * y.roll(-1, -1) - x.roll(-1, -1) * y).sum(-1).abs()


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"SVGGenerator: {name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"SVGGenerator: {name} must be a positive finite number, got {value!r}")
    return float(value)


class SVGGenerator(nn.Module):
    """g(psi) for B independent SVGs: ``forward() -> (B, 3, H, W)`` in [0, 1], rendered over white.

    Args:
        batch: B, the number of independent samples.
        paths: P, paths per sample (>= 1).
        segments: n, cubic segments per closed path (>= 1).
        height, width: canvas size in pixels.
        samples: supersamples per pixel side for the rasterizer.
        lr_points: Adam lr for the control points, in pixels at a 512-px-wide canvas (scaled by width / 512
            in ``param_groups()``).
        lr_colors: lr for the RGBA fills, in color units.

    Parameters (psi): ``points`` ``(B, P, 3n, 2)`` and ``rgba`` ``(B, P, 4)`` (read it through ``colors()``).
    Buffer: ``even_odd`` ``(B, P)`` bool, the fill rule per path (False = nonzero; only files set it).
    All inits start from zeros (every path a point at the origin, transparent); call one of the ``init_*``.
    """

    #: g(psi) is an image: the task encodes it with the VAE before the proximal term.
    outputs_latent = False

    def __init__(self, batch: int, paths: int = 128, segments: int = 4, height: int = 512, width: int = 512,
                 samples: int = 2, lr_points: float = 1.0, lr_colors: float = 0.01) -> None:
        super().__init__()
        self.batch = _check_int("batch", batch, 1)
        self.paths = _check_int("paths", paths, 1)
        self.segments = _check_int("segments", segments, 1)
        self.height = _check_int("height", height, 1)
        self.width = _check_int("width", width, 1)
        self.samples = _check_int("samples", samples, 1)
        self.lr_points = _check_positive("lr_points", lr_points)
        self.lr_colors = _check_positive("lr_colors", lr_colors)
        self.points = nn.Parameter(torch.zeros(batch, paths, 3 * segments, 2))
        self.rgba = nn.Parameter(torch.zeros(batch, paths, 4))
        self.register_buffer("even_odd", torch.zeros(batch, paths, dtype=torch.bool))

    # ------------------------------------------------------------------------------------------ rendering
    def colors(self) -> Tensor:
        """The ``(B, P, 4)`` RGBA fills as rendered (not premultiplied): the parameter clamped to [0, 1]."""
        return self.rgba.clamp(0.0, 1.0)

    @torch.no_grad()
    def project_(self) -> None:
        """Project the color parameter into [0, 1] in place (see the module docstring); values inside are left
        bit-for-bit as they are. Unconditional: a test of the values first would wait for the device."""
        self.rgba.clamp_(0.0, 1.0)

    def forward(self) -> Tensor:
        """Render every sample: ``(B, 3, H, W)`` in [0, 1], float32 (float64 if the module is), channels first.

        Projects the color parameter into [0, 1] first (``project_()``; no-op unless a step left the range).
        Autocast is disabled around the rasterizer (its coverage sums need full precision), so this works
        inside Lightning's ``bf16-mixed`` and returns the same float32 image as without autocast. On CUDA the
        rasterizer's value check (finite points) is skipped: it is a host synchronisation per render."""
        self.project_()
        dtype = torch.promote_types(self.points.dtype, torch.float32)
        with torch.autocast(device_type=self.points.device.type, enabled=False):
            image = rasterize(self.points.to(dtype), self.colors().to(dtype), self.height, self.width,
                              self.samples, fill_rule=self.even_odd, background="white",
                              check_values=self.points.device.type != "cuda")
        return image.permute(0, 3, 1, 2)

    def param_groups(self) -> list[dict]:
        """Two optimizer groups: the control points (lr in pixels, scaled to the canvas) and the colors."""
        return [
            {"params": [self.points], "name": "points", "lr": self.lr_points * self.width / REFERENCE_SIZE},
            {"params": [self.rgba], "name": "colors", "lr": self.lr_colors},
        ]

    # ---------------------------------------------------------------------------------------------- inits
    def _check_names(self, names: Sequence[str], what: str) -> list[str]:
        if isinstance(names, (str, bytes)) or len(names) != self.batch:
            got = f"a string {names!r}" if isinstance(names, (str, bytes)) else f"{len(names)}"
            raise InputError(f"SVGGenerator.{what}: expected one sample name per sample ({self.batch}), got {got}")
        return [str(n) for n in names]

    def default_radius(self) -> float:
        """Initial circle radius: 20 px at 512², scaled with min(H, W) / 512."""
        return CIRCLE_RADIUS * min(self.height, self.width) / REFERENCE_SIZE

    def _fresh_circles(self, seed: int, purpose: str, step: int, name: str, radius: float) -> tuple[Tensor, Tensor]:
        """P fresh circles for one sample from ``rng(seed, purpose, step, name)`` only: points (P, 3n, 2), colors
        (P, 4)."""
        g = rng(seed, purpose, step, name)
        p = self.paths
        centers = torch.rand(p, 2, generator=g, dtype=torch.float64) * torch.tensor(
            [self.width, self.height], dtype=torch.float64)
        rgb = torch.rand(p, 3, generator=g, dtype=torch.float64)
        lo, hi = OPACITY_RANGE
        alpha = lo + (hi - lo) * torch.rand(p, 1, generator=g, dtype=torch.float64)
        return circle_loops(centers, radius, self.segments), torch.cat([rgb, alpha], -1)

    @torch.no_grad()
    def init_circles(self, seed: int, names: Sequence[str], radius: float | None = None) -> None:
        """VectorFusion's init: every path a closed cubic circle of ``radius`` (default ``default_radius()``)
        with a center uniform in the canvas, fill RGB uniform in [0, 1] and opacity uniform in [0.7, 1].

        Sample b's randomness comes only from ``rng(seed, "svg-init", -1, names[b])``: it gets the same init alone
        or in any batch."""
        names = self._check_names(names, "init_circles")
        r = self.default_radius() if radius is None else _check_positive("radius", radius)
        for b, name in enumerate(names):
            pts, cols = self._fresh_circles(seed, "svg-init", -1, name, r)
            self.points[b].copy_(pts)
            self.rgba[b].copy_(cols)
        self.even_odd.zero_()

    @torch.no_grad()
    def init_from_svg(self, paths_per_sample: Sequence[str | os.PathLike]) -> None:
        """Start sample b from the SVG file ``paths_per_sample[b]`` (read with ``read_svg``).

        The file must have this generator's canvas size and at most P paths; fewer paths are topped up with
        invisible (alpha 0) degenerate paths at the canvas center, after (in front of) the file's — they draw
        nothing, and ``reinitialize_dead`` turns them into fresh circles. Loops with fewer than n segments are
        padded with degenerate segments at their start point (as ``read_svg`` pads); a loop with more than n
        real segments is refused (trailing degenerate padding beyond n is dropped). Per-path fill rules are
        kept. The file's background is not (the generator always renders over white).
        """
        if isinstance(paths_per_sample, (str, bytes, os.PathLike)) or len(paths_per_sample) != self.batch:
            got = (f"a single path {str(paths_per_sample)!r}" if isinstance(paths_per_sample, (str, bytes, os.PathLike))
                   else f"{len(paths_per_sample)}")
            raise InputError(f"SVGGenerator.init_from_svg: expected one SVG file per sample ({self.batch}), got {got}")
        loaded = [self._load_svg(Path(f)) for f in paths_per_sample]  # all checked before anything changes
        for b, (pts, cols, even_odd) in enumerate(loaded):
            self.points[b].copy_(pts)
            self.rgba[b].copy_(cols)
            self.even_odd[b].copy_(even_odd)

    def _load_svg(self, file: Path) -> tuple[Tensor, Tensor, Tensor]:
        if not file.is_file():
            raise InputError(f"SVG file {str(file)!r}: not an existing file (expected the path of an .svg file)")
        where = f"SVG file {str(file)!r}"
        try:
            scene = read_svg(file, dtype=torch.float64)
        except InputError as err:
            raise InputError(f"{where}: {err}") from err
        if (scene.height, scene.width) != (self.height, self.width):
            raise InputError(f"{where}: canvas is {scene.width}x{scene.height} px (width x height), expected "
                             f"{self.width}x{self.height}")
        count = scene.points.shape[0]
        if count == 0:
            raise InputError(f"{where}: has no filled shapes to start from (an SVG of zero paths is an empty "
                             "picture); give an SVG with at least one filled path, or leave init_svg out")
        if count > self.paths:
            raise InputError(f"{where}: has {count} filled paths, expected at most {self.paths} (paths)")
        n, k = self.segments, 3 * self.segments
        pts = scene.points
        if pts.shape[1] > k:
            moves = (pts != pts[:, :1]).any(-1)  # (count, 3n'): points away from the loop's start
            extra = moves[:, k:].any(-1)
            if bool(extra.any()):
                j = int(extra.nonzero()[0])
                real = (int(moves[j].nonzero()[-1]) + 3) // 3  # up to its last non-degenerate segment
                raise InputError(f"{where}: path {j} has {real} cubic segments, expected at most {n} (the "
                                 "generator's segments)")
            pts = pts[:, :k]
        elif pts.shape[1] < k:
            pts = torch.cat([pts, pts[:, :1].expand(-1, k - pts.shape[1], -1)], 1)
        points = torch.empty(self.paths, k, 2, dtype=torch.float64)
        colors = torch.zeros(self.paths, 4, dtype=torch.float64)
        points[:count] = pts
        points[count:] = torch.tensor([self.width / 2, self.height / 2], dtype=torch.float64)
        colors[:count] = scene.colors
        even_odd = torch.zeros(self.paths, dtype=torch.bool)
        even_odd[:count] = torch.tensor([r == "evenodd" for r in scene.fill_rule], dtype=torch.bool)
        return points, colors, even_odd

    # ------------------------------------------------------------------------------------------ dead paths
    def default_min_area(self) -> float:
        """Dead-path area threshold: 64 px² at 512², scaled with (W / 512)²."""
        return MIN_AREA * (self.width / REFERENCE_SIZE) ** 2

    @torch.no_grad()
    def dead_paths(self, min_opacity: float = 0.05, min_area: float | None = None) -> Tensor:
        """``(B, P)`` bool: paths whose rendered opacity is below ``min_opacity`` or whose control-polygon
        (shoelace, see ``polygon_area``) area is below ``min_area`` (default ``default_min_area()``)."""
        area = self.default_min_area() if min_area is None else float(min_area)
        return (self.colors()[..., 3] < min_opacity) | (polygon_area(self.points.double()) < area)

    @torch.no_grad()
    def reinitialize_dead(self, seed: int, step: int, names: Sequence[str], min_opacity: float = 0.05,
                          min_area: float | None = None) -> int:
        """Re-initialize dead paths (``dead_paths``) as fresh circles, as ``init_circles`` with the noise of
        ``rng(seed, "svg-reinit", step, names[b])``; return how many were re-initialized.

        Deterministic: every sample draws a full set of P circles and only its dead paths take theirs, so a
        path's new circle depends on (seed, step, name, its index) alone. The optimizer's moments for those
        entries are left as they are (as in LIVE/VectorFusion)."""
        names = self._check_names(names, "reinitialize_dead")
        dead = self.dead_paths(min_opacity, min_area)
        r = self.default_radius()
        for b, name in enumerate(names):
            mask = dead[b]
            if not bool(mask.any()):
                continue
            pts, cols = self._fresh_circles(seed, "svg-reinit", step, name, r)
            self.points[b][mask] = pts[mask].to(self.points)
            self.rgba[b][mask] = cols[mask].to(self.rgba)
            self.even_odd[b][mask] = False
        return int(dead.sum())

    # ------------------------------------------------------------------------------------------------ files
    def to_svg(self, b: int) -> str:
        """The SVG text (``write_svg``) of sample b: its paths, rendered colors and fill rules."""
        if isinstance(b, bool) or not isinstance(b, int) or not -self.batch <= b < self.batch:
            raise IndexError(f"SVGGenerator.to_svg: sample index {b!r} out of range for a batch of {self.batch}")
        rules = ["evenodd" if e else "nonzero" for e in self.even_odd[b].tolist()]
        return write_svg(None, self.points[b].detach().float(), self.colors()[b].detach().float(), self.height,
                         self.width, fill_rule=rules)

    def save_svg(self, b: int, path: str | os.PathLike) -> Path:
        """Write sample b's SVG to ``path`` atomically (temp file in the same folder + ``os.replace``).

        A path that cannot be written is an :class:`InputError` naming it; no temp file is left behind."""
        return write_text(self.to_svg(b), path, "SVG")
