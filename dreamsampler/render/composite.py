"""Back-to-front "over" compositing of per-path coverage boxes onto a premultiplied RGBA canvas ("boxes").

A custom autograd function: the forward paints each path's box in place (one ``lerp`` per path) and keeps
only the box it overwrote; the backward walks the paths front to back. The dense coverage enters without
gradient; the boundary gradient enters through the sparse edge-cell coverage (see ``coverage.py``).

Why a Python loop over paths stays here: the boxes differ in size and position, so compositing them without
the loop means listing every (path, cell) pair of every box, sorting the pairs by cell and running a
segmented scan over each cell's paths — an O(N log N) sort of all box cells (10–40 M pairs at 256 paths,
512², 2×2) plus scans, several times the work of the in-place ``lerp``s, which touch each box cell once at
memory speed. On a CPU the loop's overhead is a few µs per path (≈ 1 ms of the 150–2800 ms of a 256-path
render), so the loop is the fast choice there. On a GPU, where each loop step is a kernel launch and the
boxes need a host synchronisation, the "dense" strategy (``dense.py``) composites a chunk of paths at once.
"""
from __future__ import annotations

import torch
from torch import Tensor


class _Paint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, canvas, alpha, color, edge_cov, covs, boxes, edge_index, edge_path):
        out = canvas.clone()
        befores = []
        for i, (b, r0, c0, nr, nc) in enumerate(boxes):
            view = out[b, :, r0 : r0 + nr, c0 : c0 + nc]
            befores.append(view.clone())
            view.lerp_(color[i, :, None, None].expand_as(view), covs[i] * alpha[i])
        ctx.boxes = boxes
        ctx.save_for_backward(alpha, color, edge_index, edge_path, *covs, *befores)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        alpha, color, edge_index, edge_path, *rest = ctx.saved_tensors
        k = len(ctx.boxes)
        covs, befores = rest[:k], rest[k:]
        grad = grad_out.clone()
        g_alpha = torch.zeros_like(alpha)
        g_color = torch.zeros_like(color)
        g_a = []
        for i in range(k - 1, -1, -1):
            b, r0, c0, nr, nc = ctx.boxes[i]
            g = grad[b, :, r0 : r0 + nr, c0 : c0 + nc]
            a = covs[i] * alpha[i]
            ga = (g * (color[i, :, None, None] - befores[i])).sum(0)  # d out / d a, (nr, nc)
            g_a.append(ga.reshape(-1))
            g_alpha[i] = torch.dot(ga.reshape(-1), covs[i].reshape(-1))
            g_color[i] = (g * a).sum((1, 2))
            g.mul_(1 - a)
        g_a = torch.cat(g_a[::-1]) if g_a else grad.new_zeros(0)
        g_edge = g_a[edge_index] * alpha[edge_path]
        return grad, g_alpha, g_color, g_edge, None, None, None, None


def paint(canvas: Tensor, alpha: Tensor, color: Tensor, edge_cov: Tensor, covs: list[Tensor],
          boxes: list[tuple[int, int, int, int, int]], edge_index: Tensor, edge_path: Tensor) -> Tensor:
    """Composite k paths back to front (list order) onto ``canvas``.

    Per path i and cell: ``a = covs[i] · alpha[i]``, ``out = before + a · (color[i] − before)``.

    Args:
        canvas: ``(B, 4, H, W)`` premultiplied RGBA, channels first.
        alpha: ``(k,)`` path opacities. color: ``(k, 4)`` paint at full opacity, ``(r, g, b, 1)``.
        edge_cov: ``(m,)`` coverage at the edge cells (carries the boundary gradient; its values are the
            same as ``covs`` there).
        covs: per path a gradient-free ``(nr, nc)`` coverage of its box.
        boxes: per path ``(batch, r0, c0, nr, nc)`` inside the canvas.
        edge_index: ``(m,)`` index of each edge cell into the concatenated flattened ``covs``.
        edge_path: ``(m,)`` path of each edge cell.
    """
    return _Paint.apply(canvas, alpha, color, edge_cov, covs, boxes, edge_index, edge_path)
