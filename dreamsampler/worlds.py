"""The procedural worlds the embedded priors are trained on: what the training script draws, and how a sample of a
prompt is checked.

A world gives ``sample(n, generator, res)`` → (images ``(n, 3, res, res)`` in [0, 1], captions), the words of its
captions (the tokenizer's vocabulary) and the token budget they need, the prompts of its text-to-image check, and
``read(prompt, image)`` → which parts of the prompt the image shows (a dict of bools, by the deterministic checkers
of :mod:`dreamsampler.shapes`, :mod:`dreamsampler.scenes` and :mod:`dreamsampler.faces`).

* ``shapes`` — one shape per image (the shipped ``shapes_prior``);
* ``scenes-faces`` — half scenes of 1–3 shapes (compositional captions), half cartoon faces with attributes (the
  paper's Table 2 prompts), for the miniature versions of the paper's protocols.
"""

from __future__ import annotations

import re
from typing import Callable

import torch
from torch import Tensor

from . import faces, scenes, shapes


class ShapesWorld:
    """One flat shape per image; 30 % on a colored background (the shipped prior's data)."""

    name = "shapes"
    words: tuple[str, ...] = shapes.CAPTION_WORDS
    max_length = 16

    def __init__(self, background_prob: float = 0.3) -> None:
        self.background_prob = background_prob

    def sample(self, n: int, generator: torch.Generator, res: int = 64) -> tuple[Tensor, list[str]]:
        p = shapes.sample_params(n, generator, self.background_prob)
        return shapes.render_params(p, res), shapes.params_captions(p)

    def eval_prompts(self) -> list[str]:
        return shapes.all_prompts()

    def read(self, prompt: str, image) -> dict[str, bool]:
        _, color, shape = prompt.split()[:3]
        got_color, got_shape = shapes.describe(image)
        return {"color": got_color == color, "shape": got_shape == shape}


#: one object of a scene caption: "a {color} {shape}"
_OBJECT = re.compile(r"a (\w+) (circle|square|triangle)")


class ScenesFacesWorld:
    """Scenes of 1–3 shapes and faces with attributes, ``face_share`` of the images faces."""

    name = "scenes-faces"
    words: tuple[str, ...] = tuple(dict.fromkeys(shapes.CAPTION_WORDS + ("and", ",") + faces.CAPTION_WORDS))
    #: a 3-object caption with three "green"s (4 tokens each in CLIP's byte-pair merges) is 22 tokens
    max_length = 24

    def __init__(self, face_share: float = 0.5) -> None:
        self.face_share = face_share

    def sample(self, n: int, generator: torch.Generator, res: int = 64) -> tuple[Tensor, list[str]]:
        is_face = torch.rand(n, generator=generator) < self.face_share
        ps, pf = scenes.sample_params(n, generator), faces.sample_params(n, generator)
        images = torch.where(is_face.view(-1, 1, 1, 1), faces.render_params(pf, res), scenes.render_params(ps, res))
        caps = [f if face else s for face, f, s in zip(is_face.tolist(), faces.params_captions(pf),
                                                         scenes.params_captions(ps))]
        return images, caps

    def eval_prompts(self) -> list[str]:
        pairs = [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "square"),
                 ("purple", "triangle"), ("orange", "circle")]
        two = [scenes.caption([a, b]) for a, b in zip(pairs, pairs[1:] + pairs[:1])]
        return faces.all_prompts() + [scenes.caption([p]) for p in pairs] + two

    def parses(self, prompt: str | None) -> bool:
        """Whether ``prompt`` is a caption of this world (a face caption or a scene caption): what ``read`` reads."""
        if not prompt:
            return False
        if "face" in prompt.split():
            try:
                faces.parse_caption(prompt)
            except ValueError:
                return False
            return True
        objs = _OBJECT.findall(prompt)
        return (1 <= len(objs) <= scenes.MAX_OBJECTS and all(c in shapes.COLORS for c, _ in objs)
                and scenes.caption(objs) == prompt.strip())

    def read(self, prompt: str, image) -> dict[str, bool]:
        if "face" in prompt.split():
            want = faces.parse_caption(prompt)
            color, glasses, smile = faces.describe_face(image)
            out = {"glasses": glasses == want.glasses, "smile": smile == want.smile}
            if want.color is not None:
                out["color"] = color == want.color
            return out
        want = _OBJECT.findall(prompt)
        got = scenes.describe_scene(image)
        return {"count": len(got) == len(want),
                "objects": len(got) == len(want) and all(g == tuple(w) for g, w in zip(got, want))}


WORLDS: dict[str, Callable[[], object]] = {"shapes": ShapesWorld, "scenes-faces": ScenesFacesWorld}


def world(name: str):
    """The world called ``name`` (``shapes`` or ``scenes-faces``)."""
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; known: {sorted(WORLDS)}")
    return WORLDS[name]()
