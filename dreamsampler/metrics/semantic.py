"""Semantic metrics from feature models: CLIP score and CLIP editing accuracy, DINO-ViT structure distance."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics.functional.multimodal.clip_score import _clip_score_update

from dreamsampler.errors import InputError

from ._checks import check_images, check_pair, check_strings

#: ImageNet mean/std, the DINO / Splicing-ViT normalization, used for a bare ViTModel without a processor
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _TensorFeatures(torch.nn.Module):
    """CLIP model whose ``get_*_features`` return the projected embedding tensor, as torchmetrics expects.

    transformers 5 returns a ``BaseModelOutputWithPooling`` (embedding in ``pooler_output``) where 4.x returned the
    tensor; torchmetrics 1.9's CLIPScore calls ``.norm`` on the result and fails on the former.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    @staticmethod
    def _tensor(out) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        return self._tensor(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        return self._tensor(self.model.get_text_features(*args, **kwargs))


def _clip_parts(clip: object) -> tuple[torch.nn.Module, object]:
    if not (isinstance(clip, tuple) and len(clip) == 2 and hasattr(clip[0], "get_image_features")):
        raise InputError(f"clip: expected the (CLIPModel, CLIPProcessor) tuple of load_clip, got {type(clip).__name__}")
    return clip


def _clip_scores(images: torch.Tensor, texts: list[str], clip: object) -> torch.Tensor:
    """100 * cos(image, text) per pair, unclamped (torchmetrics' CLIPScore update on uint8 images, one batch)."""
    model, processor = _clip_parts(clip)
    device = next(model.parameters()).device
    pixels = (images.detach() * 255).round().to(torch.uint8).to(device)  # the processors rescale by 1/255
    with torch.no_grad():
        score, _ = _clip_score_update(list(pixels), texts, _TensorFeatures(model), processor)
    return score.float().to(images.device)


def clip_similarity(images: torch.Tensor, texts: str | Sequence[str], clip: object) -> torch.Tensor:
    """CLIPScore per sample (Hessel et al. 2021, torchmetrics' definition): 100 * max(cos(E_image, E_text), 0)."""
    images = check_images(images)
    texts = check_strings(texts, images.shape[0], "texts")
    return _clip_scores(images, texts, clip).clamp(min=0)


def clip_accuracy(
    images: torch.Tensor, target_texts: str | Sequence[str], source_texts: str | Sequence[str], clip: object
) -> torch.Tensor:
    """1.0 where the image's CLIP embedding is closer (cosine) to the target than to the source text (pix2pix-zero)."""
    images = check_images(images)
    target_texts = check_strings(target_texts, images.shape[0], "target_texts")
    source_texts = check_strings(source_texts, images.shape[0], "source_texts")
    to_target = _clip_scores(images, target_texts, clip)
    to_source = _clip_scores(images, source_texts, clip)
    return (to_target > to_source).float()


def _dino_parts(dino: object) -> tuple[torch.nn.Module, tuple[int, int], torch.Tensor, torch.Tensor]:
    """ViT model, input (height, width), mean and std from a (ViTModel, processor) tuple or a bare ViTModel."""
    model, processor = dino if isinstance(dino, tuple) and len(dino) == 2 else (dino, None)
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "config") and hasattr(model, "embeddings")):
        raise InputError(
            f"dino: expected the (ViTModel, processor) tuple of load_dino or a ViTModel, got {type(dino).__name__}"
        )
    size, side = getattr(processor, "size", None), model.config.image_size
    height = size.get("height") if hasattr(size, "get") else None  # dict or transformers 5 SizeDict
    width = size.get("width") if hasattr(size, "get") else None
    hw = (height, width) if height and width else (side, side)
    mean = getattr(processor, "image_mean", None) or IMAGENET_MEAN
    std = getattr(processor, "image_std", None) or IMAGENET_STD
    return model, hw, torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)


def _last_key_projection(model: torch.nn.Module) -> torch.nn.Module:
    """The key Linear of the last transformer layer (transformers 5: ``layers[-1].attention.k_proj``; 4.x too)."""
    layers = getattr(model, "layers", None)
    if layers is None:  # transformers 4.x: encoder.layer[i].attention.attention.key
        layers = model.encoder.layer
        return layers[-1].attention.attention.key
    return layers[-1].attention.k_proj


def _key_self_similarity(images: torch.Tensor, dino: object) -> torch.Tensor:
    """(B, T, T) cosine self-similarity of the last layer's keys (all heads concatenated, CLS included)."""
    model, hw, mean, std = _dino_parts(dino)
    param = next(model.parameters())
    x = images.to(param.device, param.dtype)
    if tuple(x.shape[-2:]) != hw:
        x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
    x = (x - mean.to(x)) / std.to(x)
    captured: list[torch.Tensor] = []
    handle = _last_key_projection(model).register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(pixel_values=x)
    finally:
        handle.remove()
    keys = F.normalize(captured[-1], dim=-1)  # (B, T, heads * head_dim)
    return keys @ keys.transpose(1, 2)


def dino_structure_distance(source: torch.Tensor, edited: torch.Tensor, dino: object) -> torch.Tensor:
    """Splicing-ViT structure distance (Tumanyan et al. 2022): MSE of last-layer key self-similarity matrices."""
    source, edited = check_pair(source, edited, ("source", "edited"))
    sim_source = _key_self_similarity(source, dino)
    sim_edited = _key_self_similarity(edited, dino)
    return (sim_source.double() - sim_edited.double()).square().mean(dim=(1, 2)).to(source.device)
