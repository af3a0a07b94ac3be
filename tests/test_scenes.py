"""The scenes world: rendering, the caption grammar and the per-object checker, on rendered ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamsampler import scenes, shapes

N = 300


@pytest.fixture(scope="module")
def data():
    return scenes.sample_dataset(N, seed=7)


def blur_noise(img: np.ndarray, seed: int, sigma: float = 0.7, noise: float = 0.03) -> np.ndarray:
    """A mild Gaussian blur and additive noise (seeded), as a diffusion sample's edges and speckle."""
    r = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-r ** 2 / (2 * sigma ** 2))
    k = (k[:, None] * k[None]) / k.sum() ** 2
    x = torch.from_numpy(img).permute(2, 0, 1)[:, None]
    x = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k[None, None])[:, 0].permute(1, 2, 0)
    g = torch.Generator().manual_seed(seed)
    return (x + noise * torch.randn(x.shape, generator=g)).clamp(0, 1).numpy()


def truth(objs):
    return [(o.color, o.shape) for o in objs]


def test_caption_grammar():
    assert scenes.caption([("red", "circle")]) == shapes.caption("red", "circle")
    assert scenes.caption([("red", "circle"), ("blue", "square")]) == "a red circle and a blue square"
    assert scenes.caption([("red", "circle"), ("blue", "square"), ("green", "triangle")]) == \
        "a red circle, a blue square and a green triangle"
    with pytest.raises(ValueError, match="1 to 3 objects, got 4"):
        scenes.caption([("red", "circle")] * 4)


def test_dataset_is_deterministic_and_captions_name_the_objects(data):
    assert np.array_equal(scenes.sample_dataset(20, seed=7).images, scenes.sample_dataset(20, seed=7).images)
    assert not np.array_equal(scenes.sample_dataset(20, seed=8).images, scenes.sample_dataset(20, seed=7).images)
    assert all(c == scenes.caption(truth(o)) for c, o in zip(data.captions, data.objects))
    counts = np.bincount([len(o) for o in data.objects], minlength=4)[1:]
    assert (counts > N / 5).all(), counts                                  # 1, 2 and 3 objects all occur


def test_vectorized_render_equals_render_scene(data):
    for img, objs in list(zip(data.images, data.objects))[:30]:
        assert np.abs(scenes.render_scene(objs) - img).max() < 1e-5


def test_every_object_stays_in_its_slot(data):
    for img, objs in zip(data.images, data.objects):
        for k, o in enumerate(objs):
            t, l, b, r = scenes.slot_box(k, len(objs))
            one = scenes.foreground(scenes.render_scene([o]))
            assert one.any()
            assert not one[:, :l].any() and not one[:, r:].any() and not one[:t].any() and not one[b:].any(), (k, o)


def test_checker_reads_every_rendered_scene(data):
    wrong = [(i, c) for i, (img, objs, c) in enumerate(zip(data.images, data.objects, data.captions))
             if scenes.describe_scene(img) != truth(objs)]
    print(f"\n[scenes] checker reads {N - len(wrong)}/{N} rendered scenes")
    assert not wrong, wrong[:5]


def test_checker_reads_blurred_noisy_scenes(data):
    wrong = [i for i, (img, objs) in enumerate(zip(data.images, data.objects))
             if scenes.describe_scene(blur_noise(img, seed=i)) != truth(objs)]
    print(f"\n[scenes] checker reads {N - len(wrong)}/{N} blurred (sigma 0.7 px) and noisy (std 0.03) scenes")
    # measured 298/300 (2026-12-03): the misses are 14-16 px objects of 3-object scenes whose noisy edge pixels move
    # the bounding-box fill ratio across a circle/triangle or square/circle midpoint; bar 295
    assert N - len(wrong) >= 295, [(i, data.captions[i]) for i in wrong[:5]]


def test_describe_box_reads_each_slot(data):
    for img, objs in zip(data.images, data.objects):
        for k, o in enumerate(objs):
            assert scenes.describe_box(img, scenes.slot_box(k, len(objs))) == (o.color, o.shape)
    blank = np.ones((64, 64, 3), np.float32)
    assert scenes.objects(blank) == [] and scenes.describe_box(blank, [0, 0, 64, 64]) == (None, None)


def test_structure_iou_sees_moves_not_recolors():
    a = [scenes.SceneObject("red", "circle", (0.25, 0.5), 0.35), scenes.SceneObject("blue", "square", (0.75, 0.5), 0.35)]
    recolored = [a[0], scenes.SceneObject("green", "square", (0.75, 0.5), 0.35)]
    moved = [a[0], scenes.SceneObject("blue", "square", (0.75, 0.3), 0.35)]
    img = scenes.render_scene(a)
    assert scenes.structure_iou(img, scenes.render_scene(recolored)) == 1.0
    assert scenes.structure_iou(img, scenes.render_scene(moved)) < 0.75
    left = scenes.slot_box(0, 2)
    assert scenes.structure_iou(img, scenes.render_scene(moved), box=left) == 1.0   # the other object unchanged
    with pytest.raises(ValueError, match="slot 2 of 2"):
        scenes.slot_box(2, 2)


def test_render_scene_refuses_more_objects_than_slots():
    with pytest.raises(ValueError, match="1 to 3 objects, got 4"):
        scenes.render_scene([scenes.SceneObject("red", "circle")] * 4)
