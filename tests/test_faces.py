"""The procedural faces world and its deterministic attribute checker, on images with known labels."""

import itertools

import numpy as np
import pytest
import torch

from dreamsampler import faces, shapes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blur(imgs: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (N, H, W, 3) images over H and W (edge padding)."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(imgs, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
    rows = sum(k[i] * pad[:, i : i + imgs.shape[1]] for i in range(2 * r + 1))
    return sum(k[i] * rows[:, :, i : i + imgs.shape[2]] for i in range(2 * r + 1)).astype(np.float32)


def _truth(labels):
    return [(lab.color, lab.glasses, lab.smile) for lab in labels]


def test_caption_grammar_and_prompts():
    assert faces.caption(None, False, False) == "a face"
    assert faces.caption(None, True, False) == "a face wearing glasses"
    assert faces.caption(None, False, True) == "a face with a smile"
    assert faces.caption("yellow", True, True) == "a yellow face wearing glasses with a smile"
    prompts = faces.all_prompts()
    assert len(prompts) == len(set(prompts)) == (1 + len(faces.FACE_COLORS)) * 4 == 24
    assert set(faces.FACE_COLORS) <= set(shapes.COLORS)
    for p in prompts:
        assert set(p.split()) <= set(faces.CAPTION_WORDS)
        assert faces.caption(*faces.parse_caption(p)) == p
    for bad in ("a red face", "a face with smile", "a yellow circle"):
        with pytest.raises(ValueError):
            faces.parse_caption(bad)


def test_boxes_are_the_papers_rectangles():
    assert faces.box_px(faces.EYES_BOX, 512) == (180, 100, 290, 400)
    assert faces.box_px(faces.MOUTH_BOX, 512) == (330, 170, 430, 340)
    assert faces.box_px(faces.EYES_BOX, 64) == (22, 12, 37, 50)  # outward rounding covers the fractional box
    assert faces.box_px(faces.MOUTH_BOX, 64) == (41, 21, 54, 43)


def test_render_face_layout():
    img = faces.render_face("yellow", glasses=False, smile=False)  # centre (32, 33.92) px, radius 26.9 px
    assert img.shape == (64, 64, 3) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    np.testing.assert_allclose(img[1, 1], 1.0)
    np.testing.assert_allclose(img[34, 32], shapes.PALETTE["yellow"], atol=1e-6)  # skin between eyes and mouth
    np.testing.assert_allclose(img[29, 22], faces.DARK, atol=1e-6)  # left eye at (22.4, 29.4)
    np.testing.assert_allclose(img[49, 32], faces.DARK, atol=1e-6)  # mouth middle at y = 49.3
    with_glasses = faces.render_face("yellow", glasses=True, smile=False)
    np.testing.assert_allclose(with_glasses[29, 32], faces.DARK, atol=1e-6)  # bridge
    np.testing.assert_allclose(img[29, 32], shapes.PALETTE["yellow"], atol=1e-6)  # no bridge without glasses


def test_sample_dataset_is_deterministic_balanced_and_captioned():
    a, b, c = faces.sample_dataset(200, seed=3), faces.sample_dataset(200, seed=3), faces.sample_dataset(200, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions and a.labels == b.labels
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (200, 64, 64, 3) and a.images.dtype == np.float32
    assert {lab.color for lab in a.labels} == set(faces.FACE_COLORS)
    for key in ("glasses", "smile"):
        assert 60 < sum(getattr(lab, key) for lab in a.labels) < 140
    named = 0
    for cap, lab in zip(a.captions, a.labels):
        color, glasses, smile = faces.parse_caption(cap)
        assert color in (None, lab.color) and (glasses, smile) == (lab.glasses, lab.smile)
        assert cap == lab.caption(with_color=color is not None)
        named += color is not None
    assert 60 < named < 140  # the color is named about half of the time
    assert faces.sample_dataset(8, seed=0, res=32).images.shape == (8, 32, 32, 3)


def test_vectorized_render_equals_render_face():
    p = faces.sample_params(24, torch.Generator().manual_seed(5))
    batch = faces.render_params(p, 64, chunk=7).permute(0, 2, 3, 1).numpy()  # chunks do not change pixels
    for img, lab in zip(batch, faces._labels(p)):
        one = faces.render_face(lab.color, lab.glasses, lab.smile, lab.center, lab.radius)
        assert np.abs(img - one).max() < 1e-5


def _box_mask(box, res):
    t, l, b, r = faces.box_px(box, res)
    m = torch.zeros(res, res, dtype=torch.bool)
    m[t:b, l:r] = True
    return m


@pytest.mark.parametrize("res", [64, 128])
def test_features_lie_inside_their_boxes_for_every_jitter(res):
    p = faces.sample_params(300 if res == 64 else 40, torch.Generator().manual_seed(res))
    # plus the extreme faces: jitter corners x radius extremes x glasses x smile
    ext = list(itertools.product((-1, 1), (-1, 1), faces.RADIUS_RANGE, (False, True), (False, True)))
    labels = faces._labels(p) + [
        faces.FaceLabel("blue", g, s, (faces.CENTER[0] + sx * faces.JITTER, faces.CENTER[1] + sy * faces.JITTER), r)
        for sx, sy, r, g, s in ext
    ]
    cov = faces.feature_coverage(faces._label_params(labels), res)
    eyes_box, mouth_box = _box_mask(faces.EYES_BOX, res), _box_mask(faces.MOUTH_BOX, res)
    eyes, mouth = cov["eyes"] > 0, cov["mouth"] > 0
    assert eyes.flatten(1).any(1).all() and mouth.flatten(1).any(1).all()
    assert not (eyes & ~eyes_box).any() and not (mouth & ~mouth_box).any()
    assert not (eyes & mouth_box).any() and not (mouth & eyes_box).any()
    assert ((cov["face"] == 1) | ~(eyes | mouth)).all()  # features sit fully on the face disc
    # a whole free pixel row / column at least between every feature and its box edges
    for m, box in ((eyes, faces.EYES_BOX), (mouth, faces.MOUTH_BOX)):
        t, l, b, r = faces.box_px(box, res)
        assert not m[:, [t, b - 1]].any() and not m[:, :, [l, r - 1]].any()


def test_feature_geometry_margins_in_fractions():
    """Analytic extents of the worst jittered faces against the fractional boxes (>= 0.006 of the side)."""
    j = faces.JITTER
    eye_top = faces.CENTER[1] - j - faces.EYE_DY - faces.GLASS_OUT
    eye_bottom = faces.CENTER[1] + j - faces.EYE_DY + faces.GLASS_OUT
    eye_left = faces.CENTER[0] - j - faces.EYE_DX - faces.GLASS_OUT
    eye_right = faces.CENTER[0] + j + faces.EYE_DX + faces.GLASS_OUT
    t, l, b, r = faces.EYES_BOX
    assert min(eye_top - t, b - eye_bottom, eye_left - l, r - eye_right) >= 0.006
    smile_top = faces.MOUTH_DY - faces.SMILE_R + (faces.SMILE_R - faces.MOUTH_T / 2) * faces.SMILE_COS
    mouth_top = faces.CENTER[1] - j + smile_top
    mouth_bottom = faces.CENTER[1] + j + faces.MOUTH_DY + faces.MOUTH_T / 2
    t, l, b, r = faces.MOUTH_BOX
    assert min(mouth_top - t, b - mouth_bottom) >= 0.006
    assert min(faces.CENTER[0] - j - faces.MOUTH_HX - l, r - faces.CENTER[0] - j - faces.MOUTH_HX) >= 0.006


def test_checker_reads_every_rendered_face():
    batch = faces.sample_dataset(240, seed=11)
    truth = _truth(batch.labels)
    assert [faces.describe_face(img) for img in batch.images] == truth
    assert faces.describe_face(torch.from_numpy(batch.images[0]).permute(2, 0, 1)) == truth[0]  # torch CHW
    assert faces.describe_face((batch.images[1] * 255).round().astype(np.uint8)) == truth[1]
    img = batch.images[2]
    assert (faces.face_color(img), faces.has_glasses(img), faces.has_smile(img)) == truth[2]


def test_checker_is_robust_to_blur_and_noise():
    batch = faces.sample_dataset(240, seed=12)
    noise = np.random.default_rng(12).normal(0.0, 0.03, batch.images.shape).astype(np.float32)
    degraded = np.clip(_blur(batch.images, 0.7) + noise, 0, 1)
    assert [faces.describe_face(img) for img in degraded] == _truth(batch.labels)


def test_checker_on_non_faces():
    assert faces.describe_face(np.ones((64, 64, 3), np.float32)) == (None, False, False)
    assert faces.describe_face(np.full((64, 64, 3), 255, np.uint8)) == (None, False, False)
    for shape in shapes.SHAPES:
        color, glasses, smile = faces.describe_face(shapes.render_shape("red", shape, (0.3, 0.7), 0.5))
        assert color in shapes.COLORS and isinstance(glasses, bool) and isinstance(smile, bool)
        assert not glasses and not smile  # a flat shape has no dark features
    tiny = shapes.render_shape("blue", "circle", (0.9, 0.1), 0.1)  # too small to be a face
    assert faces.describe_face(tiny) == (None, False, False)


def test_held_out_is_balanced_and_deterministic():
    labels = faces.held_out(40, seed=1)
    assert labels == faces.held_out(40, seed=1) and labels != faces.held_out(40, seed=2)
    cases = [(lab.color, lab.glasses, lab.smile) for lab in labels]
    assert len(set(cases[:20])) == 20 and cases[:20] == cases[20:]
    imgs = faces.render_labels(labels)
    assert [faces.describe_face(img) for img in imgs] == cases
