"""Write the evaluation sets the dataset configs use (deterministic; output is committed).

    python tools/make_eval_sets.py                        # -> dreamsampler/assets/eval/ (shapes prior)
    python tools/make_eval_sets.py --world scenes-faces   # -> dreamsampler/assets/eval_world/ (miniature Tables 1, 2)

Shapes world: 16 images of one shape (every color and shape, several positions and sizes) at 64². Editing: the
prompt names another color of the same shape, ``source_prompt`` the image's own caption. Inpainting: a box hole
over the shape (with a margin) and the prompt naming another color.

Scenes-and-faces world (``configs/mini/``), every sample with its ``group`` (a row of the table):
- ``edit.jsonl`` (Table 1 analog, 46 edits): neutral face -> "a face with a smile" (10), plain face -> "a face
  wearing glasses" (10), a one-object scene's circle -> square of its color (10); eq. 19 on two-object scenes:
  both objects recolored, each object's box (+ 4 px, inside its slot) its own prompt (8), and the left one alone,
  the right one kept (8).
- ``inpaint.jsonl`` (Table 2 analog, 60 holes-fillings): plain faces with the paper's ``eyes`` / ``mouth`` presets
  masked and the prompts "a face wearing glasses" / "a face with a smile", DreamSampler and TReg's initialization
  (``treg_omega`` 3) on the same 12 faces each; and both holes at once, each its own prompt (12).
The evaluation also ships a tiny random DINO-ViT (``tiny_dino/``) for the DINO-distance pipeline (random weights:
its numbers only show that the metric runs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dreamsampler import faces, scenes, shapes
from dreamsampler.metrics import save_tiny_dino
from dreamsampler.io.images import save_image

ASSETS = Path(__file__).resolve().parents[1] / "dreamsampler" / "assets"
OUT = ASSETS / "eval"


def cases(n: int = 16):
    g = torch.Generator().manual_seed(2026)
    colors, kinds = shapes.COLORS, shapes.SHAPES
    for i in range(n):
        color, shape = colors[i % len(colors)], kinds[i % len(kinds)]
        target = colors[(i % len(colors) + 1 + int(torch.randint(len(colors) - 1, (1,), generator=g))) % len(colors)]
        cx, cy = (0.4 + 0.2 * torch.rand(2, generator=g)).tolist()
        size = 0.4 + 0.15 * float(torch.rand(1, generator=g))
        yield f"s{i:02d}_{color}_{shape}", color, shape, target, (cx, cy), size


def write_jsonl(out: Path, task: str, rows: list[dict]) -> None:
    (out / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} samples to {out / f'{task}.jsonl'}")


def shapes_sets(out: Path, n: int) -> None:
    edits, holes = [], []
    for name, color, shape, target, center, size in cases(n):
        img = torch.from_numpy(shapes.render_shape(color, shape, center=center, size=size)).permute(2, 0, 1)
        save_image(img, out / "images" / f"{name}.png")
        edits.append({"image": f"images/{name}.png", "prompt": shapes.caption(target, shape),
                      "source_prompt": shapes.caption(color, shape)})
        half = size * 64 / 2 + 4
        box = [max(0, round(center[1] * 64 - half)), max(0, round(center[0] * 64 - half)),
               min(64, round(center[1] * 64 + half)), min(64, round(center[0] * 64 + half))]
        holes.append({"image": f"images/{name}.png", "prompt": shapes.caption(target, shape), "box": box})
    write_jsonl(out, "edit", edits)
    write_jsonl(out, "inpaint", holes)


def _faces(out: Path, prefix: str, n: int, seed: int, **attrs) -> list[tuple[str, faces.FaceLabel]]:
    """``n`` faces (every color in turn) with the given attributes, written as PNGs: ``[(file, label)]``."""
    labels = [faces.FaceLabel(**{**vars(lab), **attrs}) for lab in faces.held_out(n, seed)]
    files = []
    for i, (lab, img) in enumerate(zip(labels, faces.render_labels(labels, 64))):
        files.append((f"images/{prefix}{i:02d}_{lab.color}.png", lab))
        save_image(torch.as_tensor(img).permute(2, 0, 1), out / files[-1][0])
    return files


def _scenes(out: Path, prefix: str, n: int, count: int, seed: int, shape: str | None = None):
    """``n`` scenes of ``count`` objects (left color = every color in turn): ``[(file, [(color, shape), ...])]``."""
    p = scenes.sample_params(n, torch.Generator().manual_seed(seed), count=count)
    p["color"][:, 0] = torch.arange(n) % len(shapes.COLORS)
    if shape is not None:
        p["shape"][:] = shapes.SHAPES.index(shape)
    objs = [[(shapes.COLORS[int(p["color"][b, k])], shapes.SHAPES[int(p["shape"][b, k])]) for k in range(count)]
            for b in range(n)]
    files = []
    for b, img in enumerate(scenes.render_params(p, 64)):
        files.append((f"images/{prefix}{b:02d}_{'_'.join(c + '_' + s for c, s in objs[b])}.png", objs[b],
                      [_object_box(p, b, k, count) for k in range(count)]))
        save_image(img, out / files[-1][0])
    return files


def _object_box(p: dict, b: int, k: int, count: int, margin: int = 4, res: int = 64) -> list[int]:
    """The pixel box ``[top, left, bottom, right]`` of object ``k`` of scene ``b`` plus ``margin``, inside its slot."""
    (cx, cy), half = p["center"][b, k].tolist(), float(p["size"][b, k]) * res / 2 + margin
    slot = scenes.slot_box(k, count, res)
    return [max(0, round(cy * res - half)), max(slot[1], round(cx * res - half)),
            min(res, round(cy * res + half)), min(slot[3], round(cx * res + half))]


def _other(color: str, k: int) -> str:
    return shapes.COLORS[(shapes.COLORS.index(color) + k) % len(shapes.COLORS)]


def world_sets(out: Path) -> None:
    edits, holes = [], []
    for file, _ in _faces(out, "smile", 10, 11, glasses=False, smile=False):
        edits.append({"image": file, "prompt": "a face with a smile", "source_prompt": "a face",
                      "group": "face -> smile"})
    for file, _ in _faces(out, "glasses", 10, 12, glasses=False, smile=False):
        edits.append({"image": file, "prompt": "a face wearing glasses", "source_prompt": "a face",
                      "group": "face -> glasses"})
    for file, [(c, s)], _ in _scenes(out, "circle", 10, 1, 13, shape="circle"):
        edits.append({"image": file, "prompt": scenes.caption([(c, "square")]), "source_prompt": scenes.caption([(c, s)]),
                      "group": "circle -> square"})
    for k, (file, objs, boxes) in enumerate(_scenes(out, "pair", 16, 2, 14)):
        both = k < 8
        targets = [(_other(c, 2 + i), s) for i, (c, s) in enumerate(objs)][: 2 if both else 1]
        edits.append({"image": file, "regions": [{"prompt": scenes.caption([t]), "box": box}
                                                 for t, box in zip(targets, boxes)],
                      "source_prompt": scenes.caption(objs),
                      "group": "two regions (eq. 19)" if both else "left region, right kept (eq. 19)"})
    for file, _ in _faces(out, "plain", 12, 15, glasses=False, smile=False):
        stem = Path(file).stem
        for omega, method in ((None, "DreamSampler"), (3.0, "TReg init")):
            extra = {} if omega is None else {"treg_omega": omega}
            suffix = "" if omega is None else "_treg"
            holes.append({"image": file, "name": f"{stem}_glasses{suffix}", "holes": [
                {"prompt": "a face wearing glasses", "preset": "eyes"}], "group": f"eyes -> glasses, {method}",
                **extra})
            holes.append({"image": file, "name": f"{stem}_smile{suffix}", "holes": [
                {"prompt": "a face with a smile", "preset": "mouth"}], "group": f"mouth -> smile, {method}", **extra})
        holes.append({"image": file, "name": f"{stem}_both", "holes": [
            {"prompt": "a face wearing glasses", "preset": "eyes"}, {"prompt": "a face with a smile", "preset": "mouth"}],
            "group": "two holes: glasses + smile, DreamSampler"})
    write_jsonl(out, "edit", edits)
    write_jsonl(out, "inpaint", holes)
    save_tiny_dino(out / "tiny_dino", seed=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", choices=["shapes", "scenes-faces"], default="shapes")
    ap.add_argument("--out", type=Path, help="default: dreamsampler/assets/eval (shapes) or eval_world")
    ap.add_argument("-n", type=int, default=16, help="shapes world: number of images")
    args = ap.parse_args()
    if args.world == "shapes":
        shapes_sets(args.out or OUT, args.n)
    else:
        world_sets(args.out or ASSETS / "eval_world")


if __name__ == "__main__":
    main()
