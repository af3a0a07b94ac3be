"""The training worlds: their samples are what their captions say (read back by the worlds' own checkers)."""

from __future__ import annotations

import pytest
import torch

from dreamsampler import worlds


@pytest.mark.parametrize("name", ["shapes", "scenes-faces"])
def test_every_sample_reads_as_its_caption(name):
    wld = worlds.world(name)
    images, captions = wld.sample(200, torch.Generator().manual_seed(5))
    assert images.shape == (200, 3, 64, 64) and images.min() >= 0 and images.max() <= 1
    again, same = wld.sample(200, torch.Generator().manual_seed(5))
    assert torch.equal(images, again) and captions == same
    wrong = []
    for img, cap in zip(images, captions):
        if " on a " in cap:        # the shapes world's colored backgrounds: the checker reads white ones
            continue
        if not all(wld.read(cap, img).values()):
            wrong.append(cap)
    assert not wrong, wrong[:5]
    if name == "scenes-faces":
        faces = sum("face" in c.split() for c in captions)
        two = sum(" and " in c for c in captions)
        assert 70 < faces < 130 and two > 20, (faces, two)


def test_caption_tokens_fit_the_world_budget():
    import tempfile

    from dreamsampler.backbones.tokenizer import write_clip_tokenizer

    for name in worlds.WORLDS:
        wld = worlds.world(name)

        with tempfile.TemporaryDirectory() as d:
            tok = write_clip_tokenizer(d, wld.words, max_length=wld.max_length)
            worst = "a green triangle, a green triangle and a green triangle" if name != "shapes" else \
                "a green triangle on a green background"
            ids = tok(worst).input_ids                                  # no truncation asked for
            assert len(ids) <= wld.max_length and tok.unk_token_id not in ids[1:-1], (name, len(ids))


def test_eval_prompts_and_unknown_world():
    prompts = worlds.world("scenes-faces").eval_prompts()
    assert len(prompts) == len(set(prompts)) >= 30 and any(" and " in p for p in prompts)
    with pytest.raises(ValueError, match="unknown world 'faces'"):
        worlds.world("faces")
