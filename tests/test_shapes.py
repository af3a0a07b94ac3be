"""The procedural shapes generator and the deterministic color/shape checker, on images with known labels."""

import numpy as np
import pytest
import torch

from dreamsampler import shapes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_captions_have_the_exact_forms():
    assert shapes.caption("red", "circle") == "a red circle"
    assert shapes.caption("red", "circle", "blue") == "a red circle on a blue background"
    prompts = shapes.all_prompts()
    assert len(prompts) == len(shapes.COLORS) * len(shapes.SHAPES) == 18
    assert set(shapes.COLORS) >= {"red", "green", "blue", "yellow", "purple", "orange"}
    assert set(shapes.SHAPES) >= {"circle", "square", "triangle"}
    for cap in shapes.sample_dataset(50, seed=0, background_prob=0.5).captions:
        assert set(cap.split()) <= set(shapes.CAPTION_WORDS)


def test_render_shape_geometry_and_range():
    img = shapes.render_shape("red", "square", center=(0.25, 0.75), size=0.25, res=64)
    assert img.shape == (64, 64, 3) and img.dtype == np.float32
    assert img.min() >= 0 and img.max() <= 1
    # square of side 16 px centered at (x=16, y=48): rows 40..55, cols 8..23
    m = shapes.shape_mask(img)
    ys, xs = np.nonzero(m)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (40, 55, 8, 23)
    np.testing.assert_allclose(img[48, 16], shapes.PALETTE["red"], atol=1e-6)
    np.testing.assert_allclose(img[5, 60], 1.0)


def test_sample_dataset_is_deterministic_and_varied():
    a = shapes.sample_dataset(64, seed=3, background_prob=0.5)
    b = shapes.sample_dataset(64, seed=3, background_prob=0.5)
    c = shapes.sample_dataset(64, seed=4, background_prob=0.5)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (64, 64, 64, 3)
    assert {lab.background for lab in a.labels} > {"white"}
    assert all(lab.background != lab.color for lab in a.labels)
    white = shapes.sample_dataset(32, seed=0)
    assert all(cap.count(" ") == 2 for cap in white.captions)  # "a {color} {shape}"


@pytest.mark.parametrize("background", shapes.BACKGROUNDS)
def test_checker_recovers_every_label(background):
    g = np.random.default_rng(len(background))
    for color in shapes.COLORS:
        if color == background:
            continue
        for shape in shapes.SHAPES:
            for _ in range(3):
                size = g.uniform(*shapes.SIZE_RANGE)
                center = g.uniform(size / 2 + 0.04, 1 - size / 2 - 0.04, size=2)
                img = shapes.render_shape(color, shape, center, size, background)
                assert shapes.describe(img) == (color, shape), (color, shape, background, center, size)


def test_checker_on_random_dataset_and_input_types():
    data = shapes.sample_dataset(200, seed=1, background_prob=0.5)
    for img, lab in zip(data.images, data.labels):
        assert shapes.describe(img) == (lab.color, lab.shape)
    img = data.images[0]
    as_u8 = (img * 255).round().astype(np.uint8)
    chw = torch.from_numpy(img).permute(2, 0, 1)
    for variant in (as_u8, torch.from_numpy(img), chw, torch.from_numpy(as_u8)):
        assert shapes.dominant_color(variant) == data.labels[0].color
        assert shapes.classify_shape(variant) == data.labels[0].shape
        np.testing.assert_array_equal(shapes.shape_mask(variant), shapes.shape_mask(img))


def test_mask_iou_tracks_structure():
    a = shapes.shape_mask(shapes.render_shape("red", "circle", (0.5, 0.5), 0.5))
    recolored = shapes.shape_mask(shapes.render_shape("blue", "circle", (0.5, 0.5), 0.5))
    moved = shapes.shape_mask(shapes.render_shape("red", "circle", (0.3, 0.3), 0.5))
    assert shapes.mask_iou(a, recolored) == 1.0
    assert shapes.mask_iou(a, moved) < 0.5
    # a circle covers pi/4 of the square of its diameter
    sq = shapes.shape_mask(shapes.render_shape("red", "square", (0.5, 0.5), 0.5))
    assert shapes.mask_iou(a, sq) == pytest.approx(np.pi / 4, abs=0.03)


def test_checker_is_robust_to_noise_and_specks():
    g = np.random.default_rng(0)
    img = shapes.render_shape("purple", "triangle", (0.5, 0.55), 0.5)
    noisy = np.clip(img + g.normal(0, 0.04, img.shape), 0, 1)
    noisy[3:5, 50:52] = shapes.PALETTE["green"]  # a speck away from the shape
    assert shapes.describe(noisy) == ("purple", "triangle")


def test_empty_image_has_no_label():
    blank = np.ones((64, 64, 3), np.float32)
    assert not shapes.shape_mask(blank).any()
    assert shapes.describe(blank) == (None, None)


def test_psnr():
    a = np.zeros((8, 8, 3))
    assert shapes.psnr(a, a) == float("inf")
    assert shapes.psnr(a, a + 0.1) == pytest.approx(20.0)
    assert shapes.psnr(torch.zeros(3, 4, 4), torch.full((3, 4, 4), 0.01)) == pytest.approx(40.0)
