"""Validated image and mask loading: one clear error per bad file, odd-but-valid formats converted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import InputError


def _open(path: str | Path, what: str) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {str(path)!r} does not exist")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(f"{what} file {str(path)!r} is not a readable image ({err})") from err
    return img


def _to_float(img: Image.Image) -> np.ndarray:
    """(H, W, C) float32 in [0, 1] from any PIL mode: 16-bit scaled, palette/alpha composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        return np.clip(arr / 65535.0, 0, 1)[..., None].repeat(3, axis=2)
    if img.mode == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0, 1)[..., None].repeat(3, axis=2)
    if img.mode in ("RGBA", "LA", "P", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: str | Path, size: int | tuple[int, int] | None = None) -> Tensor:
    """RGB image (1, 3, H, W) in [0, 1]; grayscale, RGBA (over white), palette and 16-bit files are converted.

    ``size`` resizes (bicubic, antialiased) to ``size × size`` or ``(height, width)``.
    """
    arr = _to_float(_open(path, "image"))
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    return x if size is None else resize_image(x, size)


def resize_image(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bicubic, antialiased resize of (1, 3, H, W) in [0, 1] to ``size × size`` or ``(height, width)``."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if x.shape[-2:] == hw:
        return x
    return F.interpolate(x, size=hw, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def load_mask(path: str | Path, expected_hw: tuple[int, int]) -> Tensor:
    """Mask (1, H, W) in [0, 1] from an image file whose size must equal ``expected_hw`` (the source image's)."""
    img = _open(path, "mask")
    hw = (img.height, img.width)
    if hw != tuple(expected_hw):
        raise InputError(f"mask file {str(path)!r} is {hw[1]}x{hw[0]} (WxH) but the source image is "
                         f"{expected_hw[1]}x{expected_hw[0]}: a mask must have the image's size")
    return torch.from_numpy(_to_float(img).mean(2))[None]


def box_mask(box: Sequence[int], hw: tuple[int, int]) -> Tensor:
    """Mask (1, H, W) that is 1 inside ``box = (top, left, bottom, right)`` (pixels, half-open)."""
    if len(box) != 4:
        raise InputError(f"box must be [top, left, bottom, right], got {list(box)}")
    top, left, bottom, right = (int(v) for v in box)
    h, w = hw
    if not (0 <= top < bottom <= h and 0 <= left < right <= w):
        raise InputError(f"box {list(box)} is empty or outside the {h}x{w} (HxW) image")
    m = torch.zeros(1, h, w)
    m[:, top:bottom, left:right] = 1
    return m


def to_latent_mask(mask: Tensor, factor: int) -> Tensor:
    """Pixel mask (1, H, W) → latent mask (1, H/f, W/f) by area averaging."""
    return F.avg_pool2d(mask[None], factor)[0] if factor > 1 else mask


def save_image(x: Tensor, path: str | Path) -> Path:
    """Write (3, H, W) or (1, 3, H, W) in [0, 1] as PNG, atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = x.detach().float().cpu().clamp(0, 1)
    if x.dim() == 4:
        x = x[0]
    arr = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
