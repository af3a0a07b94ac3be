"""Per-sample image metrics (PSNR, SSIM, LPIPS) and the set-level FID, on (B, 3, H, W) tensors in [0, 1]."""

from __future__ import annotations

import functools
import importlib.util

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from dreamsampler.errors import InputError

from ._checks import check_images, check_pair

_FID_DIMS = (64, 192, 768, 2048)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per sample, 10 log10(1 / MSE) dB with data range 1 (inf for identical images)."""
    pred, target = check_pair(pred, target)
    return peak_signal_noise_ratio(pred.double(), target.double(), data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per sample (Wang et al. 2004; torchmetrics, 11x11 Gaussian window, data range 1)."""
    pred, target = check_pair(pred, target)
    return structural_similarity_index_measure(pred.double(), target.double(), data_range=1.0, reduction="none")


@functools.lru_cache(maxsize=3)
def _lpips_metric(net: str):
    """torchmetrics' LPIPS with pretrained weights (torchvision backbone + LPIPS linear heads), built once per net."""
    if importlib.util.find_spec("torchvision") is None:
        raise InputError(
            "LPIPS needs torchvision (pip install torchvision) and its pretrained weights for the "
            f"{net!r} backbone (downloaded once to the torch hub cache); torchvision is not installed"
        )
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    try:
        metric = LearnedPerceptualImagePatchSimilarity(net_type=net, reduction="none", normalize=True)
    except OSError as err:  # no cached weights and no network
        raise InputError(f"LPIPS: could not load the pretrained {net!r} backbone weights: {err}") from err
    return metric.eval()


def lpips(pred: torch.Tensor, target: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """Learned perceptual image patch similarity per sample (Zhang et al. 2018, torchmetrics); lower is closer."""
    pred, target = check_pair(pred, target)
    if net not in ("alex", "vgg", "squeeze"):
        raise InputError(f"lpips net: expected one of 'alex', 'vgg', 'squeeze', got {net!r}")
    metric = _lpips_metric(net).to(pred.device)
    metric.reset()
    with torch.no_grad():
        metric.update(pred.float(), target.float())
        out = metric.compute()
    metric.reset()
    return out.reshape(pred.shape[0])


def _fid_metric(feature: torch.nn.Module | int, image_size: tuple[int, int, int]):
    """torchmetrics' FrechetInceptionDistance for ``feature`` (InceptionV3 width or a custom feature module)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    if isinstance(feature, torch.nn.Module):
        # with a custom module torchmetrics passes the float images in [0, 1] through unchanged (``normalize=True``
        # only decides that its probe image for the feature width is float in [0, 1] of ``input_img_size``)
        return FrechetInceptionDistance(feature=feature, normalize=True, input_img_size=image_size)
    if isinstance(feature, bool) or not isinstance(feature, int) or feature not in _FID_DIMS:
        raise InputError(f"fid feature: expected an nn.Module or one of {_FID_DIMS}, got {feature!r}")
    if importlib.util.find_spec("torch_fidelity") is None:
        raise InputError(
            "FID with the standard InceptionV3 needs torch-fidelity (pip install torch-fidelity) and its "
            "pretrained weights; torch-fidelity is not installed (or pass a feature nn.Module)"
        )
    try:
        return FrechetInceptionDistance(feature=feature, normalize=True)
    except OSError as err:
        raise InputError(f"FID: could not load the pretrained InceptionV3 weights: {err}") from err


def fid(
    real: torch.Tensor, fake: torch.Tensor, feature: torch.nn.Module | int = 2048, batch_size: int = 64
) -> float:
    """Frechet Inception distance between two image sets (Heusel et al. 2017, torchmetrics); each needs >= 2 images."""
    real = check_images(real, "real", min_batch=2)
    fake = check_images(fake, "fake", min_batch=2)
    if batch_size < 1:
        raise InputError(f"fid batch_size: expected >= 1, got {batch_size}")
    metric = _fid_metric(feature, tuple(real.shape[1:]))
    params = list(feature.parameters()) if isinstance(feature, torch.nn.Module) else []
    device = params[0].device if params else real.device
    metric = metric.to(device)
    with torch.no_grad():
        for images, is_real in ((real, True), (fake, False)):
            for chunk in images.split(batch_size):
                metric.update(chunk.to(device), real=is_real)
        return float(metric.compute())
