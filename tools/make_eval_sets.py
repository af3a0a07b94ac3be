"""Write the shapes-world evaluation sets the demo evaluations use (deterministic; output is committed).

    python tools/make_eval_sets.py     # -> dreamsampler/assets/eval/{images/, edit.jsonl, inpaint.jsonl}

16 images of one shape (every color and shape, several positions and sizes) at 64². Editing: the prompt names
another color of the same shape, ``source_prompt`` the image's own caption. Inpainting: a box hole over the shape
(with a margin) and the prompt naming another color.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dreamsampler import shapes
from dreamsampler.io.images import save_image

OUT = Path(__file__).resolve().parents[1] / "dreamsampler" / "assets" / "eval"


def cases(n: int = 16):
    g = torch.Generator().manual_seed(2026)
    colors, kinds = shapes.COLORS, shapes.SHAPES
    for i in range(n):
        color, shape = colors[i % len(colors)], kinds[i % len(kinds)]
        target = colors[(i % len(colors) + 1 + int(torch.randint(len(colors) - 1, (1,), generator=g))) % len(colors)]
        cx, cy = (0.4 + 0.2 * torch.rand(2, generator=g)).tolist()
        size = 0.4 + 0.15 * float(torch.rand(1, generator=g))
        yield f"s{i:02d}_{color}_{shape}", color, shape, target, (cx, cy), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("-n", type=int, default=16)
    args = ap.parse_args()
    edits, holes = [], []
    for name, color, shape, target, center, size in cases(args.n):
        img = torch.from_numpy(shapes.render_shape(color, shape, center=center, size=size)).permute(2, 0, 1)
        save_image(img, args.out / "images" / f"{name}.png")
        edits.append({"image": f"images/{name}.png", "prompt": shapes.caption(target, shape),
                      "source_prompt": shapes.caption(color, shape)})
        half = size * 64 / 2 + 4
        box = [max(0, round(center[1] * 64 - half)), max(0, round(center[0] * 64 - half)),
               min(64, round(center[1] * 64 + half)), min(64, round(center[0] * 64 + half))]
        holes.append({"image": f"images/{name}.png", "prompt": shapes.caption(target, shape), "box": box})
    for task, rows in (("edit", edits), ("inpaint", holes)):
        (args.out / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"wrote {len(rows)} samples to {args.out / f'{task}.jsonl'}")


if __name__ == "__main__":
    main()
