"""The pure-PyTorch backend's "boxes" strategy: flatten → per-path boxes → coverage by area accumulation →
composite (the CPU default; the "dense" strategy for GPUs is in ``dense.py``).

Work and memory scale with the area of each path's bounding box (clipped to the canvas), never with
(paths × canvas). Paths are processed in chunks of bounded size; when autograd is recording and there is
more than one chunk, each chunk is checkpointed (recomputed in the backward), which bounds peak memory.
The boxes, the curvature-based segment count and the chunking read values on the host (``.item()``,
``.tolist()``, ``nonzero``): cheap on a CPU, a synchronisation per render on a GPU.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .bezier import auto_segments, flatten
from .composite import paint
from .coverage import fill_fraction, winding_integral

#: Supersample cells per chunk; bounds the memory one chunk holds for its backward.
CHUNK_CELLS = 1 << 22


def _boxes(verts: Tensor, height: int, width: int) -> list[tuple[int, int, int, int]]:
    """Per path ``(r0, c0, nr, nc)`` of the cells its polyline touches, clipped to the canvas."""
    with torch.no_grad():
        lo = torch.floor(verts.amin(dim=-2).clamp(-1e9, 1e9)).long()
        hi = torch.floor(verts.amax(dim=-2).clamp(-1e9, 1e9)).long()
        c0 = lo[:, 0].clamp(0, width)
        r0 = lo[:, 1].clamp(0, height)
        c1 = hi[:, 0].clamp(-1, width - 1)
        r1 = hi[:, 1].clamp(-1, height - 1)
        box = torch.stack((r0, c0, (r1 - r0 + 1).clamp_min(0), (c1 - c0 + 1).clamp_min(0)), -1)
    return [tuple(b) for b in box.cpu().tolist()]


def _chunks(boxes: list[tuple[int, int, int, int]]) -> list[list[int]]:
    """Consecutive runs of visible paths whose boxes hold at most ``CHUNK_CELLS`` cells (or one path)."""
    out, cur, cells = [], [], 0
    for i, (_, _, nr, nc) in enumerate(boxes):
        if nr == 0 or nc == 0:
            continue
        if cur and cells + nr * nc > CHUNK_CELLS:
            out.append(cur)
            cur, cells = [], 0
        cur.append(i)
        cells += nr * nc
    if cur:
        out.append(cur)
    return out


def _paint_chunk(canvas, verts, rgba, even_odd, boxes_t, box_list, batch_of):
    """Coverage of one chunk of paths and its compositing onto the canvas."""
    cov = winding_integral(verts, boxes_t, box_list)
    eo = even_odd.tolist()
    with torch.no_grad():
        dense = [fill_fraction(w, e) for w, e in zip(cov.dense, eo)]
    edge = fill_fraction(cov.edge_winding, even_odd[cov.edge_path])
    color = torch.cat((rgba[:, :3], torch.ones_like(rgba[:, 3:])), 1)
    boxes = [(b, *box) for b, box in zip(batch_of, box_list)]
    return paint(canvas, rgba[:, 3], color, edge, dense, boxes, cov.edge_index, cov.edge_path)


def render_premultiplied(
    points: Tensor, colors: Tensor, height: int, width: int, samples: int, even_odd: Tensor, segments: int | None
) -> Tensor:
    """``(B, P, 3n, 2)`` points, ``(B, P, 4)`` colors → ``(B, H, W, 4)`` premultiplied RGBA on transparent."""
    bsz, npaths = points.shape[:2]
    s = samples
    hs, ws = height * s, width * s
    canvas = torch.zeros(bsz, 4, hs, ws, dtype=points.dtype, device=points.device)
    if npaths > 0:
        k_seg = segments if segments is not None else auto_segments(points)
        # cell units: a supersample is 1×1
        verts = flatten(points, k_seg).flatten(0, 1) * s
        rgba = colors.flatten(0, 1)
        eo = even_odd.flatten(0, 1)
        boxes = _boxes(verts, hs, ws)
        chunks = _chunks(boxes)
        use_ckpt = torch.is_grad_enabled() and len(chunks) > 1 and (points.requires_grad or colors.requires_grad)
        for idx in chunks:
            sel = torch.tensor(idx, device=points.device)
            box_list = [boxes[i] for i in idx]
            boxes_t = torch.tensor(box_list, device=points.device)
            batch_of = [i // npaths for i in idx]
            args = (canvas, verts[sel], rgba[sel], eo[sel], boxes_t, box_list, batch_of)
            if use_ckpt:
                canvas = checkpoint(_paint_chunk, *args, use_reentrant=False)
            else:
                canvas = _paint_chunk(*args)
    return canvas.view(bsz, 4, height, s, width, s).mean(dim=(3, 5)).permute(0, 2, 3, 1)
