"""The "dense" strategy of the torch backend: static shapes only, no host synchronisation, no per-path loop.

Built for GPUs (``rasterize(..., strategy="auto")`` picks it on CUDA). Every tensor's shape follows from the
arguments' shapes alone — never from their values — so a render queues its kernels without waiting for the
device (no ``.item()``, ``.tolist()``, ``nonzero``); ``tests/test_raster_dense.py`` proves it by rendering
(forward and backward) on the ``meta`` device, where any of those raise, and on CUDA under
``torch.cuda.set_sync_debug_mode("error")``. The price is work ∝ paths × canvas (the "boxes" strategy's work ∝
box areas is faster on a CPU, where reading values costs nothing).

Same mathematics as ``coverage.py`` + ``composite.py`` (one cell = one supersample), same results up to rounding:

1. **Flatten** with a static segment count: ``segments``, or :func:`~.bezier.canvas_segments` (the flatness
   bound for the largest circle the canvas holds; no look at the points).
2. **Clip** each polyline edge to the canvas rows ``0 ≤ y ≤ HS`` and to ``x ≤ WS`` (Liang–Barsky; the parts
   left of the canvas stay: their ``dy`` carries into column 0).
3. **Cut** the clipped edges at the grid lines into a fixed budget of crossing slots per chunk, shared by all
   its edges: each edge's crossings get consecutive slots (offsets by a cumsum, owners by ``searchsorted``),
   the row crossings of every edge first, the column crossings after them; unused slots are masked, not
   removed. One sort by (edge, t) lines up the pieces.
4. **Accumulate**: each piece adds ``dy·(c + 1 − x_mid)`` to its cell and the rest of ``dy`` to the next cell
   of a dense difference array (paths, HS, WS + 1) (``index_add``); a cumsum along the rows gives the winding
   integrals, without autograd. As in ``coverage.py`` the geometry's gradient lives at the *edge cells* only:
   a second sort (by cell) gives every edge cell its winding integral from the pieces alone (segmented sums,
   float64), which carries the gradient.
5. **Composite** a chunk of k paths at once ("over", back to front):
   ``out = C·Π_j(1 − a_j) + Σ_i a_i·col_i·Π_{j in front of i}(1 − a_j)``: one cumprod and one batched matmul.
   The backward needs, per path, the composite *behind* it — a linear recurrence along the paths, solved by
   a division-free parallel scan (:func:`suffix_scan_`: recursive pairing, O(k) work, log₂ k steps), so opaque
   paths (1 − a = 0) are no special case. The loop over chunks has a static length; a chunk holds up to
   ``DENSE_CHUNK_CELLS`` cells on a CPU and up to 1/8 of the device memory on CUDA (one chunk at 256 paths,
   512², on a large GPU). Beyond ``DENSE_SAVE_CELLS`` cells per render, chunks are checkpointed.

**Crossing budget.** A chunk of N paths gets ``N · crossings_per_path(HS, WS, V)`` slots: two canvas
perimeters (in cells) per path plus two per polyline edge. A path's visible boundary crosses about its L1
length in grid lines, and a circle inscribed in the canvas has an L1 length of one perimeter, so this holds
every path of the benchmark scenes and of typical SVGs with room to spare (the grown 256-path scene at 512²
uses 37 % of it); the budget is shared within the chunk, so one long path borrows from short ones. If a chunk's
paths need more, the row crossings are served first: the winding numbers (the interiors) stay exact unless
the chunk crosses more *rows* than its whole budget; the column crossings are dropped from the last edges
first, and a piece spanning several cells of a row then counts at its midpoint (exact row total, approximate
split between those cells). Nothing checks this at render time (a check is a host synchronisation);
:func:`crossing_demand` reports a scene's demand and budget per chunk.

**Precision.** The pieces and the edge-cell sums run in float64 whatever the input dtype: a piece's gradient is
a difference of row sums between neighbouring pieces of a boundary, which float32 rounds away. The dense
arrays and the compositing stay in the input dtype.

**Reproducibility.** ``index_add`` on CUDA adds with atomics, so the dense winding can differ in the last bits
between runs unless ``torch.use_deterministic_algorithms(True)`` (which PyTorch honours for ``index_add``).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .bezier import canvas_segments, flatten

#: Cells (supersamples × paths × batch) per chunk on a CPU: bounds the transient memory of one chunk (about ten
#: arrays of that many cells in the backward).
DENSE_CHUNK_CELLS = 1 << 25
#: On CUDA a chunk may use this fraction of the device's memory (about ten arrays per cell, see above), up to
#: ``DENSE_CHUNK_CELLS_MAX`` cells: one chunk at 256 paths, 512², 2×2 on a large GPU (fewer kernel launches).
DENSE_CUDA_MEMORY_FRACTION = 1 / 8
DENSE_CHUNK_CELLS_MAX = 3 << 27
#: Above this many cells in a whole render, chunks are checkpointed (recomputed in the backward).
DENSE_SAVE_CELLS = 1 << 29


def crossings_per_path(hs: int, ws: int, edges_per_path: int) -> int:
    """Crossing slots per path: two canvas perimeters (cells) plus two per polyline edge (see module doc)."""
    return 2 * (hs + ws) + 2 * edges_per_path


# ------------------------------------------------------------------------------------------------ pieces
def _clip(p0: Tensor, d: Tensor, hs: int, ws: int) -> tuple[Tensor, Tensor, Tensor]:
    """Parameter range [t_in, t_out] of each edge ``p0 + t·d`` inside ``0 ≤ y ≤ hs``, ``x ≤ ws``, t ∈ [0, 1].

    Returns differentiable ``t_in``, ``t_out`` (equal to 0 where the edge is wholly outside) and the mask of
    edges with a visible part."""
    lo = torch.zeros_like(p0[:, 0])
    hi = torch.ones_like(p0[:, 0])
    dead = torch.zeros_like(p0[:, 0], dtype=torch.bool)
    # constraints f0 + t·df ≥ 0
    for f0, df in ((p0[:, 1], d[:, 1]), (hs - p0[:, 1], -d[:, 1]), (ws - p0[:, 0], -d[:, 0])):
        flat = df == 0
        t = -f0 / torch.where(flat, torch.ones_like(df), df)
        lo = torch.where(df > 0, torch.maximum(lo, t), lo)
        hi = torch.where(df < 0, torch.minimum(hi, t), hi)
        dead = dead | (flat & (f0 < 0))
    alive = ~dead & (lo < hi)
    zero = torch.zeros_like(lo)
    return torch.where(alive, lo, zero), torch.where(alive, hi, zero), alive


def _line_range(a: Tensor, b: Tensor, first: int, last: int, closed: bool) -> tuple[Tensor, Tensor]:
    """First grid line and count of the integer lines k, first ≤ k ≤ last, with min(a, b) < k < max(a, b)
    (``closed``: k ≤ max(a, b))."""
    lo = torch.minimum(a, b).clamp(first - 2, last + 2)
    hi = torch.maximum(a, b).clamp(first - 2, last + 2)
    k0 = (torch.floor(lo).long() + 1).clamp_min(first)
    k1 = (torch.floor(hi).long() if closed else torch.ceil(hi).long() - 1).clamp_max(last)
    return k0, (k1 - k0 + 1).clamp(0, last - first + 1)


def _slots(counts: Tensor, n_slots: int, offset: Tensor | int) -> tuple[Tensor, Tensor, Tensor]:
    """Static-shape ragged arange: slot j ∈ [offset, offset + Σcounts) belongs to owner e, local index l.

    Returns ``(owner, local, used)`` for all ``n_slots`` slots; unused slots have ``used`` False."""
    incl = torch.cumsum(counts, 0)
    j = torch.arange(n_slots, device=counts.device) - offset
    owner = torch.searchsorted(incl, j, right=True).clamp_max(counts.numel() - 1)
    used = (j >= 0) & (j < incl[-1])
    local = j - (incl - counts)[owner]
    return owner, local, used


def _pieces(verts: Tensor, hs: int, ws: int, n_slots: int):
    """Cut the closed polylines ``(N, V, 2)`` (cell units) at the grid lines inside the canvas.

    Returns per piece (static count ``2·N·V + n_slots − 1``): start and end points (autograd), the path index,
    and the mask of real pieces. Also the number of crossings the polylines need (a 0-d tensor)."""
    n_paths, n_vert, _ = verts.shape
    n_edges = n_paths * n_vert
    dev = verts.device
    p0 = verts.reshape(-1, 2)
    d = torch.roll(verts, -1, dims=1).reshape(-1, 2) - p0
    t_in, t_out, alive = _clip(p0, d, hs, ws)
    q0 = p0 + t_in[:, None] * d
    q1 = p0 + t_out[:, None] * d
    with torch.no_grad():
        # a point on the row line y = k belongs to row k: an edge that ends (or starts) on it from above is cut
        # there too, leaving a zero-length piece in row k, so that both sides of the vertex differentiate
        # against row k (otherwise its gradient mixes whole-row sums of rows k−1 and k)
        fy, ny = _line_range(q0[:, 1], q1[:, 1], 1, hs - 1, closed=True)
        fx, nx = _line_range(q0[:, 0], q1[:, 0], 0, ws - 1, closed=False)
        ny, nx = ny * alive, nx * alive
        # row crossings of every edge first, then column crossings (dropped first if the budget runs out)
        oy, ly, is_y = _slots(ny, n_slots, 0)
        ox, lx, is_x = _slots(nx, n_slots, ny.sum())
        owner = torch.where(is_y, oy, ox)
        line = torch.where(is_y, fy[oy] + ly, fx[ox] + lx)
        used = is_y | is_x
        demand = ny.sum() + nx.sum()
    k = line.to(verts.dtype)
    a0 = torch.where(is_y, p0[owner, 1], p0[owner, 0])
    da = torch.where(is_y, d[owner, 1], d[owner, 0])
    t = (k - a0) / torch.where(used & (da != 0), da, torch.ones_like(da))
    cross = p0[owner] + t[:, None] * d[owner]
    # the coordinate along the cut axis is the grid line itself
    cross = torch.stack((torch.where(is_y, cross[:, 0], k), torch.where(is_y, k, cross[:, 1])), -1)
    with torch.no_grad():
        eid = torch.arange(n_edges, device=dev)
        tc = t.detach().double().clamp(0, 1)
        tc = torch.minimum(torch.maximum(tc, t_in.detach().double()[owner]), t_out.detach().double()[owner])
        # per edge: start point, crossings by t, end point (a crossing at t = 0 or 1 stays between them)
        key = torch.cat((eid.double() * 4 + 0.5, eid.double() * 4 + 2.5,
                         torch.where(used, owner.double() * 4 + 1 + tc, torch.full_like(tc, 4.0 * n_edges))))
        edge = torch.cat((eid, eid, torch.where(used, owner, torch.full_like(owner, n_edges))))
        order = torch.argsort(key)
        es = edge[order]
        real = (es[:-1] == es[1:]) & (es[:-1] < n_edges)
        path = (es[:-1] // n_vert).clamp_max(n_paths - 1)
    pts = torch.cat((q0, q1, cross))[order]
    return pts[:-1], pts[1:], path, real, demand


def winding_dense(verts: Tensor, hs: int, ws: int, n_slots: int):
    """Winding integrals of N closed polylines ``(N, V, 2)`` over the whole canvas, two views:

    * ``wind``: dense ``(N, HS, WS + 1)`` (last column spare), without gradient, in ``verts.dtype``;
    * the *edge cells* (cells holding a piece, where alone the exact derivative is non-zero — see
      ``coverage.py``): per piece slot, ``edge_index`` into the flattened ``wind``, ``edge_value`` (the same
      winding integral, differentiable, from the pieces alone: the ``dy`` of the pieces left of the cell in
      its row plus the area terms in the cell) and ``edge_mask`` (one slot per edge cell is used).

    The pieces and the sparse sums run in float64: a piece's gradient is a difference of row sums between
    neighbouring pieces of one boundary, which float32 would round away. Also returns the crossings the
    polylines need (compare with ``n_slots``).
    """
    n_paths = verts.shape[0]
    width = ws + 1
    n_cells = n_paths * hs * width
    pa, pb, path, real, demand = _pieces(verts.to(torch.float64), hs, ws, n_slots)
    dy = pb[:, 1] - pa[:, 1]
    xm = 0.5 * (pa[:, 0] + pb[:, 0])
    with torch.no_grad():
        ym = 0.5 * (pa[:, 1] + pb[:, 1])
        c = torch.floor(xm.clamp(-1, ws)).long()
        r = torch.floor(ym.clamp(-1, hs)).long()
        keep = real & (r >= 0) & (r < hs) & (c < ws)
        left = c < 0  # wholly left of the canvas: the full dy carries into column 0
        cell = (path * hs + r.clamp(0, hs - 1)) * width + c.clamp(0, ws - 1)
    zero = torch.zeros_like(dy)
    dy = torch.where(keep, dy, zero)
    own = torch.where(left, dy, dy * (c.to(dy.dtype) + 1 - xm))
    with torch.no_grad():
        # dense: difference array (own area to the piece's cell, the rest of dy to the next) + prefix sums
        acc = torch.zeros(n_cells, dtype=verts.dtype, device=verts.device)
        acc.index_add_(0, torch.cat((cell, cell + 1)), torch.cat((own, dy - own)).to(verts.dtype))
        wind = acc.view(n_paths * hs, width).cumsum_(1).view(n_paths, hs, width)
        # sparse: pieces sorted by cell; the last piece of each cell stands for it
        key = torch.where(keep, cell, n_cells)
        order = torch.argsort(key)
        ks = key[order]
        row = ks // width
        pos = torch.arange(ks.numel(), device=ks.device)
        new_cell = torch.ones_like(ks, dtype=torch.bool)
        new_cell[1:] = ks[1:] != ks[:-1]
        new_row = torch.ones_like(ks, dtype=torch.bool)
        new_row[1:] = row[1:] != row[:-1]
        last = torch.ones_like(new_cell)
        last[:-1] = new_cell[1:]
        cell_first = torch.cummax(torch.where(new_cell, pos, 0), 0).values
        row_first = torch.cummax(torch.where(new_row, pos, 0), 0).values
        edge_mask = last & (ks < n_cells)
        edge_index = torch.where(edge_mask, ks, 0)
    dy_s, own_s = dy[order], own[order]
    dy_before = torch.cumsum(dy_s, 0) - dy_s  # exclusive prefix sums over the sorted pieces
    own_upto = torch.cumsum(own_s, 0)
    value = (dy_before[cell_first] - dy_before[row_first]) + (own_upto - own_upto[cell_first] + own_s[cell_first])
    edge_value = torch.where(edge_mask, value, torch.zeros_like(value)).to(verts.dtype)
    return wind, edge_index, edge_value, edge_mask, demand


# ------------------------------------------------------------------------------------------- compositing
def _fill(w: Tensor, even_odd: Tensor, rule: bool | None) -> Tensor:
    """``fill_fraction`` without host sync: ``rule`` True/False = every path even-odd/nonzero, None = per path
    (``even_odd`` broadcast over the trailing cell dim)."""
    if rule is False:
        return w.abs().clamp_(max=1.0)
    eo = 1 - (1 - torch.remainder(w, 2.0)).abs()
    return eo if rule else torch.where(even_odd, eo, w.abs().clamp(max=1.0))


def _fill_grad(w: Tensor, even_odd: Tensor, rule: bool | None) -> Tensor:
    """Derivative of :func:`_fill` (the same one-sided choices as autograd of ``fill_fraction``)."""
    nonzero = torch.sign(w) * (w.abs() <= 1)
    if rule is False:
        return nonzero
    eo = torch.sign(1 - torch.remainder(w, 2.0))
    return eo if rule else torch.where(even_odd, eo, nonzero)


def suffix_scan_(m: Tensor, c: Tensor, out: Tensor) -> Tensor:
    """``out[:, i] = m[:, i]·out[:, i+1] + c[:, i]`` with ``out[:, k] = 0`` along dim 1, without a loop over i.

    Recursive pairing (division-free, O(k) work, log2 k depth): pairs of consecutive steps compose into one
    step, the half-length problem is solved, and the other half of the positions follows in one step.
    ``c`` is used as scratch; ``out`` may be a strided view.
    """
    k = m.shape[1]
    if k == 1:
        return out.copy_(c)
    if k % 2:  # the last position stands alone; fold it into the one before
        out[:, -1].copy_(c[:, -1])
        c[:, -2].addcmul_(m[:, -2], c[:, -1])
        suffix_scan_(m[:, :-1], c[:, :-1], out[:, :-1])
        return out
    m_e, m_o, c_e, c_o = m[:, 0::2], m[:, 1::2], c[:, 0::2], c[:, 1::2]
    # S_2p = m_2p·(m_2p+1·S_2p+2 + c_2p+1) + c_2p: one step per pair
    suffix_scan_(m_e * m_o, torch.addcmul(c_e, m_e, c_o), out[:, 0::2])
    out_o = out[:, 1::2]
    out_o[:, -1].copy_(c_o[:, -1])
    torch.addcmul(c_o[:, :-1], m_o[:, :-1], out[:, 2::2], out=out_o[:, :-1])
    return out


class _Composite(torch.autograd.Function):
    """"Over" compositing of a chunk of k paths (front first along dim 1) onto a premultiplied canvas.

    ``forward(canvas (B, 4, L), wind (B, k, L), alpha (B, k), col (B, k, 4), even_odd (B, k, 1), rule,
    edge_index, edge_value, edge_mask) → (B, 4, L)`` with coverage ``a = fill(wind)·alpha``. ``wind`` carries
    no gradient; the geometry's gradient leaves through ``edge_value`` (see :func:`winding_dense`). Saves the
    incoming canvas and the coverage.
    """

    @staticmethod
    def forward(ctx, canvas, wind, alpha, col, even_odd, rule, edge_index, edge_value, edge_mask):
        cov = _fill(wind, even_odd, rule)
        ctx.save_for_backward(canvas, cov, alpha, col, even_odd, edge_index, wind.view(-1)[edge_index], edge_mask)
        ctx.rule = rule
        m, front = _transmittance(cov, alpha)
        weight = _weights(front, out=m)  # m is not needed any more
        return torch.baddbmm(canvas * front[:, -1:], col.transpose(1, 2), weight)

    @staticmethod
    def backward(ctx, grad):
        canvas, cov, alpha, col, even_odd, edge_index, w_edge, edge_mask = ctx.saved_tensors
        grad = grad.contiguous()
        bsz, k, length = cov.shape
        m, front = _transmittance(cov, alpha)
        g_canvas = grad * front[:, -1:]
        buf = _weights(front, out=torch.empty_like(m))
        g_col = torch.bmm(buf, grad.transpose(1, 2))
        gc = torch.bmm(col, grad)  # (B, k, L): grad · col_i
        # z_i = grad · (composite behind path i): z_i = m_{i+1} z_{i+1} + a_{i+1} gc_{i+1}, z_{k-1} = grad · canvas
        zbuf = m.new_empty(bsz, k + 1, length)
        zbuf[:, k] = (grad * canvas).sum(1)
        c = torch.addcmul(gc, m, gc, value=-1, out=buf)  # a_i · gc_i
        c[:, -1].addcmul_(m[:, -1], zbuf[:, k])
        suffix_scan_(m, c, zbuf[:, :k])
        del c, buf, m
        g_a = gc.sub_(zbuf[:, 1:])
        del zbuf
        g_a[:, 1:].mul_(front[:, :-1])  # d out / d a_i = Π_{j < i}(1 − a_j) · (col_i − behind_i)
        del front
        g_alpha = torch.bmm(g_a.view(bsz * k, 1, length), cov.view(bsz * k, length, 1)).view(bsz, k)
        # the geometry's gradient, at the edge cells only
        owner = edge_index // length
        g_edge = (g_a.view(-1)[edge_index] * alpha.view(-1)[owner]
                  * _fill_grad(w_edge, even_odd.view(-1)[owner], ctx.rule) * edge_mask)
        return g_canvas, None, g_alpha, g_col, None, None, None, g_edge, None


def _transmittance(cov: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """``m = 1 − cov·alpha`` and ``front[:, i] = Π_{j ≤ i} m_j`` (the light the first i + 1 paths let through)."""
    m = torch.addcmul(cov.new_ones(()), cov, alpha[..., None], value=-1)
    return m, torch.cumprod(m, 1)


def _weights(front: Tensor, out: Tensor) -> Tensor:
    """Visible share of each path: ``a_i · Π_{j < i} (1 − a_j) = front_{i−1} − front_i`` (front_{−1} = 1)."""
    torch.sub(front[:, :-1], front[:, 1:], out=out[:, 1:])
    out[:, 0] = 1 - front[:, 0]
    return out


def _paint_chunk(canvas, verts, rgba, even_odd, rule, hs, ws, n_slots):
    """Coverage of one chunk (``(B, k, V, 2)`` verts, front path first) and its compositing onto the canvas."""
    bsz, k = verts.shape[:2]
    wind, edge_index, edge_value, edge_mask, _ = winding_dense(verts.flatten(0, 1), hs, ws, n_slots)
    col = torch.cat((rgba[..., :3], torch.ones_like(rgba[..., 3:])), -1)
    return _Composite.apply(canvas, wind.view(bsz, k, -1), rgba[..., 3], col, even_odd[..., None], rule,
                            edge_index, edge_value, edge_mask)


def chunk_cells(device: torch.device, dtype: torch.dtype) -> int:
    """Cells per chunk: ``DENSE_CHUNK_CELLS``, or on CUDA a share of the device's memory (a host-side query)."""
    if device.type != "cuda":
        return DENSE_CHUNK_CELLS
    total = torch.cuda.get_device_properties(device).total_memory
    itemsize = torch.finfo(dtype).bits // 8
    share = int(total * DENSE_CUDA_MEMORY_FRACTION) // (10 * itemsize)
    return max(DENSE_CHUNK_CELLS, min(DENSE_CHUNK_CELLS_MAX, share))


def chunk_size(bsz: int, npaths: int, hs: int, ws: int, cells: int | None = None) -> int:
    """Paths per chunk so one chunk holds at most ``cells`` (default ``DENSE_CHUNK_CELLS``) cells, ≥ 1 path."""
    return max(1, min(npaths, (cells or DENSE_CHUNK_CELLS) // (bsz * hs * (ws + 1))))


def render_premultiplied(points: Tensor, colors: Tensor, height: int, width: int, samples: int, even_odd: Tensor,
                         segments: int | None, rule: bool | None = None) -> Tensor:
    """``(B, P, 3n, 2)`` points, ``(B, P, 4)`` colors → ``(B, H, W, 4)`` premultiplied RGBA on transparent.

    ``rule``: True/False when every path is even-odd/nonzero (known from the argument, not the tensor), None
    for a per-path mix given by ``even_odd``.
    """
    bsz, npaths = points.shape[:2]
    s = samples
    hs, ws = height * s, width * s
    canvas = points.new_zeros(bsz, 4, hs * (ws + 1))
    if npaths > 0:
        k_seg = segments if segments is not None else canvas_segments(height, width)
        verts = flatten(points, k_seg) * s  # cell units: a supersample is 1×1
        n_vert = verts.shape[-2]
        k = chunk_size(bsz, npaths, hs, ws, chunk_cells(points.device, points.dtype))
        starts = range(0, npaths, k)
        use_ckpt = (torch.is_grad_enabled() and (points.requires_grad or colors.requires_grad) and len(starts) > 1
                    and bsz * npaths * hs * (ws + 1) > DENSE_SAVE_CELLS)
        for p0 in starts:  # a static number of chunks, back to front; each chunk is front-first inside
            sl = slice(p0, min(npaths, p0 + k))
            n = sl.stop - sl.start
            n_slots = bsz * n * crossings_per_path(hs, ws, n_vert)
            args = (canvas, verts[:, sl].flip(1), colors[:, sl].flip(1), even_odd[:, sl].flip(1), rule, hs, ws, n_slots)
            canvas = checkpoint(_paint_chunk, *args, use_reentrant=False) if use_ckpt else _paint_chunk(*args)
    image = canvas.view(bsz, 4, hs, ws + 1)[..., :ws]
    return image.reshape(bsz, 4, height, s, width, s).mean(dim=(3, 5)).permute(0, 2, 3, 1)


def crossing_demand(points: Tensor, height: int, width: int, samples: int = 2, segments: int | None = None) -> Tensor:
    """Diagnostics: per chunk of the dense strategy, ``(needed, budget)`` crossing slots (a ``(chunks, 2)``
    tensor; needed > budget means some column crossings — or, beyond the row crossings, rows — were dropped)."""
    if points.ndim == 3:
        points = points.unsqueeze(0)
    bsz, npaths = points.shape[:2]
    hs, ws = height * samples, width * samples
    k_seg = segments if segments is not None else canvas_segments(height, width)
    with torch.no_grad():
        verts = flatten(points, k_seg) * samples
        k = chunk_size(bsz, npaths, hs, ws, chunk_cells(points.device, points.dtype))
        rows = []
        for p0 in range(0, npaths, k):
            v = verts[:, p0 : p0 + k].flatten(0, 1)
            budget = v.shape[0] * crossings_per_path(hs, ws, v.shape[1])
            demand = _pieces(v.to(torch.float64), hs, ws, budget)[-1]
            rows.append(torch.stack((demand, torch.full_like(demand, budget))))
    return torch.stack(rows) if rows else torch.zeros(0, 2, dtype=torch.long, device=points.device)
