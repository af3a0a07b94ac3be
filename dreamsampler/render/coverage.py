"""Exact per-cell coverage of closed polylines by signed-area accumulation.

Units: one cell = one supersample (side ``1/s`` px); coordinates are already multiplied by ``s``.
Each polyline edge is cut where it crosses cell-grid lines. A piece in cell (r, c) adds the signed area of
the cell to its right, ``dy · (c + 1 − x_mid)``, to its own cell and ``dy`` to every cell further right.
Summed along the row this is the integral of the winding number over each cell: the exact area fraction
where one boundary passes, the winding number (±1, ±2, …) inside. ``fill_fraction`` maps it to coverage.

Two views of the same numbers are produced:

* a dense, gradient-free one (a difference array + a prefix sum per row of each path's box), and
* a sparse, differentiable one at the *edge cells* (cells that contain a piece), computed from the pieces
  alone with segmented prefix sums.

The exact gradient of a cell's winding integral is zero away from edge cells (the ``dy`` of a boundary
chain crossing a whole row sums to ±1 or 0 whatever the geometry), so the sparse view carries the whole
boundary gradient while the dense work stays outside autograd.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _ragged_arange(counts: Tensor) -> tuple[Tensor, Tensor]:
    """For counts ``[2, 0, 3]`` return owners ``[0, 0, 2, 2, 2]`` and local indices ``[0, 1, 0, 1, 2]``."""
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(owner.numel(), device=counts.device) - starts[owner]
    return owner, local


@dataclass
class Coverage:
    """Winding integrals of k paths, each over its own box ``(r0, c0, nr, nc)``.

    Attributes:
        dense: per path, a gradient-free ``(nr, nc)`` tensor of winding integrals.
        edge_index: ``(m,)`` index of each edge cell into the concatenation of the flattened ``dense``.
        edge_path: ``(m,)`` path (0..k-1) of each edge cell.
        edge_winding: ``(m,)`` the same winding integrals at the edge cells, differentiable w.r.t. verts.
    """

    dense: list[Tensor]
    edge_index: Tensor
    edge_path: Tensor
    edge_winding: Tensor


def _pieces(verts: Tensor, boxes: Tensor):
    """Cut every edge at the grid lines inside its path's box; return the pieces' endpoints (autograd)."""
    k, e_per, _ = verts.shape
    dev, dt = verts.device, verts.dtype
    p0 = verts.reshape(-1, 2)
    p1 = torch.roll(verts, -1, dims=1).reshape(-1, 2)
    path = torch.arange(k, device=dev).repeat_interleave(e_per)
    with torch.no_grad():
        a, b = p0.detach(), p1.detach()
        r0, c0, nr, nc = (boxes[path, j] for j in range(4))
        # far-away coordinates only need to stay far away: clamp before integer conversion
        lo, hi = torch.minimum(a, b).clamp(-1e9, 1e9), torch.maximum(a, b).clamp(-1e9, 1e9)
        # grid lines strictly inside the edge's extent, within the box and its right/bottom border
        x_lo = torch.maximum(torch.floor(lo[:, 0]).long() + 1, c0)
        x_hi = torch.minimum(torch.ceil(hi[:, 0]).long() - 1, c0 + nc)
        y_lo = torch.maximum(torch.floor(lo[:, 1]).long() + 1, r0)
        # a point on the row line y = k belongs to row k: an edge ending (or starting) on it from above is cut
        # there too (a zero-length piece in row k), so both sides of such a vertex differentiate against row k
        y_hi = torch.minimum(torch.floor(hi[:, 1]).long(), r0 + nr)
        ex, jx = _ragged_arange((x_hi - x_lo + 1).clamp_min(0))
        ey, jy = _ragged_arange((y_hi - y_lo + 1).clamp_min(0))
        kx = (x_lo[ex] + jx).to(dt)
        ky = (y_lo[ey] + jy).to(dt)
        n_edges = p0.shape[0]
        edge_ids = torch.arange(n_edges, device=dev)
        owner = torch.cat((edge_ids, edge_ids, ex, ey))
        t = torch.cat(
            (
                torch.zeros(n_edges, dtype=torch.float64, device=dev),
                torch.ones(n_edges, dtype=torch.float64, device=dev),
                ((kx - a[ex, 0]) / (b[ex, 0] - a[ex, 0])).double(),
                ((ky - a[ey, 1]) / (b[ey, 1] - a[ey, 1])).double(),
            )
        ).clamp(0, 1)
        # per edge: start point, crossings by t, end point (a crossing at t = 0 or 1 stays between them)
        rank = torch.cat((torch.full((n_edges,), -0.5, dtype=torch.float64, device=dev),
                          torch.full((n_edges,), 1.5, dtype=torch.float64, device=dev), t[2 * n_edges :]))
        order = torch.argsort(owner.double() * 4 + 1 + rank)
        same = torch.nonzero(owner[order[:-1]] == owner[order[1:]]).squeeze(1)
        i_a, i_b = order[same], order[same + 1]
        piece_path = path[owner[i_a]]
    d = p1 - p0
    tx = (kx - p0[ex, 0]) / d[ex, 0]
    ty = (ky - p0[ey, 1]) / d[ey, 1]
    pts = torch.cat((p0, p1, p0[ex] + tx[:, None] * d[ex], p0[ey] + ty[:, None] * d[ey]))
    return pts[i_a], pts[i_b], piece_path


def winding_integral(verts: Tensor, boxes: Tensor, box_list: list[tuple[int, int, int, int]]) -> Coverage:
    """Integral of the winding number over each cell of each path's box.

    Args:
        verts: ``(k, E, 2)`` closed polylines in cell units (x right, y down); edge e joins vertex e, e+1.
        boxes: ``(k, 4)`` int64 ``(r0, c0, nr, nc)`` on ``verts.device``: each path's box, which must
            contain the visible part of the path (cells left of it count as outside); ``nr, nc ≥ 1``.
        box_list: the same boxes as Python ints.
    """
    dev, dt = verts.device, verts.dtype
    # pieces in float64: a piece's gradient is a difference of whole-row sums between neighbouring pieces of a
    # boundary, which float32 would round away (the dense view below stays in ``dt``)
    pa, pb, ppath = _pieces(verts.to(torch.float64), boxes)
    dy = pb[:, 1] - pa[:, 1]
    xm = 0.5 * (pa[:, 0] + pb[:, 0])
    sizes = [(nr, nc) for _, _, nr, nc in box_list]
    with torch.no_grad():
        ym = 0.5 * (pa[:, 1] + pb[:, 1])
        c = torch.floor(xm.clamp(-1e9, 1e9)).long()
        r0, c0, nr, nc = (boxes[ppath, j] for j in range(4))
        lr = torch.floor(ym.clamp(-1e9, 1e9)).long() - r0
        lc = c - c0
        # pieces with dy = 0 stay: a horizontal piece adds nothing, but its dy has a derivative (tilting it)
        keep = torch.nonzero((lr >= 0) & (lr < nr) & (lc < nc)).squeeze(1)
        ppath, lr, lc, c, nc = ppath[keep], lr[keep], lc[keep], c[keep], nc[keep]
        left = lc < 0  # wholly left of the box: the full dy carries into the first column
        cc = lc.clamp_min(0)
        spare = torch.tensor([r * (w + 1) for r, w in sizes], device=dev)  # one spare column per row
        cells = torch.tensor([r * w for r, w in sizes], device=dev)
        row_key = (torch.cumsum(spare, 0) - spare)[ppath] + lr * (nc + 1)
        cell_index = (torch.cumsum(cells, 0) - cells)[ppath] + lr * nc + cc
    dy, xm = dy[keep], xm[keep]
    own = torch.where(left, dy, dy * (c.to(dy.dtype) + 1 - xm))

    # dense, gradient-free: difference array + per-row prefix sums
    with torch.no_grad():
        acc = torch.zeros(int(spare.sum()), dtype=dt, device=dev)
        acc.index_add_(0, torch.cat((row_key + cc, row_key + cc + 1)), torch.cat((own, dy - own)).to(dt))
        dense, start = [], 0
        for r, w in sizes:
            dense.append(acc[start : start + r * (w + 1)].view(r, w + 1).cumsum(1)[:, :w])
            start += r * (w + 1)

    # sparse, differentiable: value at each edge cell = (dy of pieces left of it in its row) + own areas
    with torch.no_grad():
        order = torch.argsort(cell_index)
        ci, rk = cell_index[order], row_key[order]
        n = ci.numel()
        new_cell = torch.ones(n, dtype=torch.bool, device=dev)
        new_cell[1:] = ci[1:] != ci[:-1]
        new_row = torch.ones(n, dtype=torch.bool, device=dev)
        new_row[1:] = rk[1:] != rk[:-1]
        pos = torch.arange(n, device=dev)
        row_first = torch.cummax(torch.where(new_row, pos, 0), 0).values
        cell_of_piece = torch.cumsum(new_cell, 0) - 1
        first = torch.nonzero(new_cell).squeeze(1)
    dy_s = dy[order]
    before = torch.cumsum(dy_s, 0) - dy_s  # exclusive prefix over all pieces
    left_sum = before[first] - before[row_first[first]]
    own_sum = torch.zeros(first.numel(), dtype=own.dtype, device=dev).index_add(0, cell_of_piece, own[order])
    return Coverage(dense, ci[first], ppath[order][first], (left_sum + own_sum).to(dt))


def fill_fraction(winding: Tensor, even_odd: Tensor | bool) -> Tensor:
    """Coverage in [0, 1] from a winding integral: nonzero → min(1, |w|); even-odd → triangle fold of w.

    ``even_odd`` is a bool or a bool tensor broadcastable to ``winding``. Exact for cells crossed by one
    boundary; for cells where several boundaries of one path meet it is the usual accumulation-rasterizer
    approximation.
    """
    nonzero = winding.abs().clamp(max=1.0)
    if isinstance(even_odd, bool):
        return 1 - (1 - torch.remainder(winding, 2.0)).abs() if even_odd else nonzero
    if not bool(even_odd.any()):
        return nonzero
    return torch.where(even_odd, 1 - (1 - torch.remainder(winding, 2.0)).abs(), nonzero)
