"""Feature models for the semantic metrics: CLIP and DINO-ViT loaded with ``from_pretrained``, and tiny random ones."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import transformers
from transformers import CLIPConfig, CLIPModel, CLIPProcessor, ViTConfig, ViTModel

from dreamsampler.backbones.tokenizer import write_clip_tokenizer
from dreamsampler.errors import InputError
from dreamsampler.shapes import CAPTION_WORDS, all_prompts

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
#: words the tiny CLIP tokenizer knows: every shapes-world caption word plus a few prompt words
TINY_WORDS: tuple[str, ...] = tuple(dict.fromkeys(
    [w for p in all_prompts() for w in p.split()] + list(CAPTION_WORDS) + ["an", "the", "photo", "of", "image", "shape"]
))


def _check_source(source: str, what: str) -> str:
    """``source`` if it is an existing folder or looks like a hub id ("org/name"); else an InputError."""
    if not isinstance(source, (str, Path)):
        raise InputError(f"{what} source: expected a folder path or a hub id string, got {type(source).__name__}")
    source = str(source)
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists() or not _HUB_ID.match(source) or source.count("/") > 1:
        raise InputError(f"{what}: no model folder at {source!r} (expected a folder written by save_pretrained "
                         "or a hub id like 'org/name')")
    return source


def _load_error(what: str, source: str, err: Exception) -> InputError:
    kind = "the local folder" if Path(source).is_dir() else "the hub id"
    return InputError(f"{what}: could not load from {kind} {source!r}: {err}")


def _frozen(model: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
    model = model.to(device).eval()
    model.requires_grad_(False)
    return model


def load_clip(source: str, device: str | torch.device = "cpu") -> tuple[CLIPModel, CLIPProcessor]:
    """CLIP (Radford et al. 2021) model and processor from a hub id or a local folder, eval mode, frozen."""
    source = _check_source(source, "load_clip")
    try:
        model = CLIPModel.from_pretrained(source)
        processor = CLIPProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError) as err:
        raise _load_error("load_clip", source, err) from err
    return _frozen(model, device), processor


def load_dino(source: str, device: str | torch.device = "cpu") -> tuple[ViTModel, object]:
    """DINO-ViT (Caron et al. 2021) ``ViTModel`` and its image processor from a hub id or a local folder, frozen."""
    source = _check_source(source, "load_dino")
    try:
        model = ViTModel.from_pretrained(source, add_pooling_layer=False)
        processor = transformers.AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError) as err:
        raise _load_error("load_dino", source, err) from err
    return _frozen(model, device), processor


def _image_processor(kind: str, **kwargs):
    """The PIL-backed image processor of transformers 5 (no torchvision needed), or the classic one of 4.x."""
    cls = getattr(transformers, f"{kind}ImageProcessorPil", None) or getattr(transformers, f"{kind}ImageProcessor")
    return cls(**kwargs)


def save_tiny_clip(folder: str | Path, seed: int = 0) -> str:
    """Write a random-weight tiny CLIPModel (width 32, 2 layers, 32 px, patch 8) and its processor to ``folder``."""
    folder = Path(folder)
    tokenizer = write_clip_tokenizer(folder, TINY_WORDS)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    image_processor = _image_processor("CLIP", size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(folder))
    model.save_pretrained(str(folder))
    return str(folder)


def save_tiny_dino(folder: str | Path, seed: int = 0) -> str:
    """Write a random-weight tiny ViTModel (32 px, patch 8, width 32, 2 layers, 2 heads) and processor to ``folder``."""
    folder = Path(folder)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViTModel(cfg, add_pooling_layer=False).eval()
    model.save_pretrained(str(folder))
    _image_processor("ViT", size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return str(folder)
