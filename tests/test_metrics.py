"""dreamsampler.metrics: each metric against an independent computation, on tiny random models (no downloads)."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from dreamsampler.errors import InputError
from dreamsampler.metrics import (
    clip_accuracy, clip_similarity, dino_structure_distance, fid, load_clip, load_dino, lpips, mean_ci,
    prompt_accuracy, psnr, save_tiny_clip, save_tiny_dino, ssim, structure_iou,
)
from dreamsampler.shapes import render_shape

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _shape(color: str, shape: str, center=(0.5, 0.5), size: float = 0.5, res: int = 64) -> torch.Tensor:
    return torch.from_numpy(render_shape(color, shape, center=center, size=size, res=res)).permute(2, 0, 1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return load_clip(save_tiny_clip(tmp_path_factory.mktemp("clip")))


@pytest.fixture(scope="module")
def dino(tmp_path_factory):
    return load_dino(save_tiny_dino(tmp_path_factory.mktemp("dino")))


# ------------------------------------------------------------------------------------------------ image metrics
def test_psnr_of_a_known_noise_level_per_sample():
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    checker = ((yy + xx) % 2 * 2 - 1).to(torch.float64)  # +1 / -1
    target = torch.full((2, 3, 16, 16), 0.5, dtype=torch.float64)
    d = torch.tensor([0.05, 0.1], dtype=torch.float64).view(2, 1, 1, 1)
    got = psnr(target + d * checker, target)
    want = torch.tensor([10 * math.log10(1 / 0.05**2), 10 * math.log10(1 / 0.1**2)], dtype=torch.float64)
    assert got.shape == (2,)
    assert torch.allclose(got, want, atol=1e-4), (got, want)
    assert abs(float(got[0]) - 26.0206) < 1e-3
    assert torch.isinf(psnr(target, target)).all()


def test_ssim_is_one_for_identical_images_and_below_for_different():
    x = _rand(2, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-6)
    y = x.clone()
    y[1] = (y[1] + 0.2 * _rand(3, 32, 32, seed=1)).clamp(0, 1)
    got = ssim(x, y)
    assert got.shape == (2,)
    assert abs(float(got[0]) - 1) < 1e-6 and float(got[1]) < 0.99


class _TinyFeatures(torch.nn.Module):
    """Fixed random conv features (N, 16); torchmetrics hands a custom module the float images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 16, 3, stride=2)
        self.seen_dtypes: set[torch.dtype] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_dtypes.add(x.dtype)
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def _fid_reference(a: torch.Tensor, b: torch.Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a^1/2 S_b S_a^1/2), via symmetric eigendecompositions."""
    a, b = a.double(), b.double()
    sa, sb = torch.cov(a.T), torch.cov(b.T)

    def psd_sqrt(m: torch.Tensor) -> torch.Tensor:
        w, v = torch.linalg.eigh(m)
        return v @ torch.diag(w.clamp(min=0).sqrt()) @ v.T

    ra = psd_sqrt(sa)
    cross = torch.linalg.eigvalsh(ra @ sb @ ra).clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + sa.trace() + sb.trace() - 2 * cross)


def test_fid_with_a_custom_feature_module():
    net = _TinyFeatures()
    real = _rand(24, 3, 16, 16, seed=1)
    fake = _rand(24, 3, 16, 16, seed=2) * 0.5 + 0.5  # brighter, lower-contrast set
    same = fid(real, real, feature=net)
    assert abs(same) < 1e-3
    assert net.seen_dtypes == {torch.float32}
    differ = fid(real, fake, feature=net, batch_size=10)  # several update chunks
    with torch.no_grad():
        want = _fid_reference(net(real), net(fake))
    assert differ > 1e-3 + 100 * abs(same)
    assert differ == pytest.approx(want, rel=1e-3), (differ, want)
    with pytest.raises(InputError, match="at least 2"):
        fid(real[:1], fake, feature=net)


@pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is not None, reason="torch-fidelity is installed")
def test_fid_inception_without_torch_fidelity_is_a_clear_error():
    with pytest.raises(InputError, match="torch-fidelity"):
        fid(_rand(2, 3, 16, 16), _rand(2, 3, 16, 16, seed=1), feature=2048)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_lpips_without_torchvision_is_a_clear_error():
    x = _rand(1, 3, 16, 16)
    with pytest.raises(InputError, match="LPIPS needs torchvision"):
        lpips(x, x)


def test_bad_images_are_input_errors():
    x = _rand(2, 3, 8, 8)
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        psnr(x[0], x[0])
    with pytest.raises(InputError, match="same shape"):
        ssim(x, x[:1])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        psnr(x * 2, x)
    with pytest.raises(InputError, match="float"):
        psnr((x * 255).byte(), x)


# ------------------------------------------------------------------------------------------------------ mean_ci
def test_mean_ci_is_deterministic_and_contains_the_mean():
    values = _rand(50, seed=3)
    mean, low, high = mean_ci(values, resamples=2000)
    assert mean == pytest.approx(float(values.double().mean()))
    assert low < mean < high
    assert (mean, low, high) == mean_ci(values, resamples=2000)
    assert mean_ci(values, resamples=2000, seed=1) != (mean, low, high)
    # close to the normal-approximation interval mean +- 1.96 s / sqrt(n)
    half = 1.96 * float(values.double().std()) / math.sqrt(50)
    assert low == pytest.approx(mean - half, abs=0.15 * half) and high == pytest.approx(mean + half, abs=0.15 * half)
    _, low90, high90 = mean_ci(values, level=0.9, resamples=2000)
    assert low < low90 < high90 < high


def test_mean_ci_edge_cases():
    assert mean_ci([0.25]) == (0.25, 0.25, 0.25)
    with pytest.raises(InputError, match="2 NaN/inf"):
        mean_ci([1.0, float("nan"), float("inf"), 2.0])
    with pytest.raises(InputError, match="at least one"):
        mean_ci([])


# ------------------------------------------------------------------------------------------------------- DINO
def _independent_key_similarity(model, processor, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    with torch.no_grad():
        out = model(pixel_values=(x - mean) / std, output_hidden_states=True)
        last = model.layers[-1]
        keys = last.attention.k_proj(last.layernorm_before(out.hidden_states[-2]))  # input of the last layer
    keys = keys / keys.norm(dim=-1, keepdim=True)
    return torch.einsum("btd,bsd->bts", keys, keys)


def test_dino_structure_distance(dino):
    model, processor = dino
    x = _rand(3, 3, 32, 32, seed=4)  # the tiny ViT's input size: no resize
    assert dino_structure_distance(x, x, dino).abs().max() < 1e-10
    flipped = x.flip(-1)
    got = dino_structure_distance(x, flipped, dino)
    assert got.shape == (3,) and (got > 0).all()
    sa = _independent_key_similarity(model, processor, x)
    sb = _independent_key_similarity(model, processor, flipped)
    assert sa.shape == (3, 17, 17)  # CLS + 4 x 4 patches
    want = ((sa - sb) ** 2).mean(dim=(1, 2)).double()
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), (got, want)
    # larger inputs are resized to the processor size
    big = F.interpolate(x, size=(64, 64), mode="nearest")
    assert dino_structure_distance(big, big.flip(-1), dino).shape == (3,)


# ------------------------------------------------------------------------------------------------------- CLIP
def _independent_cosines(clip, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """(B, T) cosines of each image with each text, from get_image_features / get_text_features."""
    model, processor = clip
    pixels = (images * 255).round().to(torch.uint8)
    with torch.no_grad():
        pv = processor(images=list(pixels), return_tensors="pt")["pixel_values"]
        img = model.get_image_features(pixel_values=pv).pooler_output
        rows = []
        for t in texts:
            tok = processor(text=[t], return_tensors="pt")
            rows.append(model.get_text_features(**tok).pooler_output[0])
    return F.normalize(img, dim=-1) @ F.normalize(torch.stack(rows), dim=-1).T


def test_clip_accuracy_and_similarity(clip):
    images = torch.stack([_shape("red", "circle"), _shape("blue", "square"), _shape("green", "triangle"),
                          _rand(3, 64, 64, seed=5)])
    texts = ["a red circle", "a blue square", "a green triangle on a yellow background"]
    cos = _independent_cosines(clip, images, texts)  # (4, 3)
    a, b = texts[0], texts[1]
    closer_a = cos[:, 0] > cos[:, 1]
    target = [a if c else b for c in closer_a.tolist()]
    source = [b if c else a for c in closer_a.tolist()]
    assert clip_accuracy(images, target, source, clip).tolist() == [1.0] * 4
    assert clip_accuracy(images, source, target, clip).tolist() == [0.0] * 4
    for j, t in enumerate(texts):
        got = clip_similarity(images, t, clip)
        want = (100 * cos[:, j]).clamp(min=0)
        assert got.shape == (4,)
        assert torch.allclose(got, want, atol=1e-4), (got, want)
    with pytest.raises(InputError, match="expected 4 strings"):
        clip_similarity(images, texts, clip)


def test_tiny_models_are_deterministic(tmp_path, clip):
    model, _ = load_clip(save_tiny_clip(tmp_path / "again"))
    for (name, p), q in zip(model.state_dict().items(), clip[0].state_dict().values()):
        assert torch.equal(p, q), name


def test_loaders_name_a_missing_folder(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(InputError, match="no_such_model"):
        load_clip(str(missing))
    with pytest.raises(InputError, match="no_such_model"):
        load_dino(str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty"):
        load_dino(str(empty))


# -------------------------------------------------------------------------------------------------- shapes world
def test_prompt_accuracy():
    images = torch.stack([_shape("red", "circle"), _shape("blue", "square"), _shape("green", "triangle")])
    right = prompt_accuracy(images, ["red", "blue", "green"], ["circle", "square", "triangle"])
    assert right["color_acc"].tolist() == [1.0, 1.0, 1.0]
    assert right["shape_acc"].tolist() == [1.0, 1.0, 1.0]
    wrong = prompt_accuracy(images, ["blue", "blue", "red"], ["square", "circle", "triangle"])
    assert wrong["color_acc"].tolist() == [0.0, 1.0, 0.0]
    assert wrong["shape_acc"].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(InputError, match="pink"):
        prompt_accuracy(images, "pink", "circle")


def test_structure_iou():
    x = torch.stack([_shape("red", "square"), _shape("blue", "circle")])
    assert structure_iou(x, x).tolist() == [1.0, 1.0]
    # same color, square shifted right by a quarter of its side: IoU = 3/4 / (5/4) = 0.6
    moved = torch.stack([_shape("red", "square", center=(0.5 + 0.125, 0.5)), _shape("green", "circle")])
    got = structure_iou(x, moved)
    assert got[0] == pytest.approx(0.6, abs=0.03)
    assert float(got[1]) > 0.95  # recolored, same geometry (anti-aliased edge pixels may differ)
