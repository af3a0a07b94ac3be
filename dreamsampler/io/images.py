"""Validated image and mask loading: one clear error per bad file, odd-but-valid formats converted.

Every problem with a user's file (missing, a directory, not an image, truncated or corrupt, a decompression
bomb, too small to encode) is raised as :class:`~dreamsampler.errors.InputError` whose message names the file,
so the CLI prints it as one line without a traceback.
"""

from __future__ import annotations

import stat
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from ..errors import InputError
from .files import atomic_write

__all__ = ["MAX_UPSCALE", "box_mask", "check_image_size", "load_image", "load_mask", "resize_image",
           "save_image", "to_latent_mask"]

#: Above this ratio of working side to native side, :func:`check_image_size` warns that the upscale is extreme.
MAX_UPSCALE = 8

_16BIT = ("I;16", "I;16B", "I;16L", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _wh(hw: Sequence[int]) -> str:
    return f"{hw[1]}x{hw[0]}"


def _claimed_size(path: Path) -> tuple[int, int] | None:
    """(W, H) that the file's header claims, read without PIL's size check and without decoding; None if unknown."""
    try:
        Image.init()
        with open(path, "rb") as fp:
            prefix = fp.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                ok = not accept or accept(prefix)
                if not ok or isinstance(ok, str):
                    continue
                fp.seek(0)
                try:
                    return tuple(factory(fp, str(path)).size)
                except Exception:
                    continue
    except Exception:
        pass
    return None


def _bomb_error(what: str, path: Path) -> InputError:
    limit = Image.MAX_IMAGE_PIXELS
    size = _claimed_size(path)
    claim = f"claims {size[0]}x{size[1]} pixels" if size else "claims a huge size"
    return InputError(f"{what} file {str(path)!r} {claim}, over the {limit}-pixel limit (a decompression bomb?); "
                      f"use a smaller image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file")


def _open(path: str | Path, what: str) -> Image.Image:
    """Open, fully decode and EXIF-orient an image file; every failure is one InputError naming the file."""
    path = Path(path)
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{what} file {str(path)!r} does not exist") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{what} file {str(path)!r} cannot be accessed ({getattr(err, 'strerror', None) or err})") from err
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} file {str(path)!r} is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} file {str(path)!r} is not a regular file")
    if st.st_size == 0:
        raise InputError(f"{what} file {str(path)!r} is not a readable image: the file is empty")
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and 2x that: refuse those too, never decode them silently
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)      # as viewers show it (phone photos); a copy, fully loaded
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _bomb_error(what, path) from err
    except PermissionError as err:
        raise InputError(f"{what} file {str(path)!r} cannot be read ({err.strerror or err})") from err
    except MemoryError:
        raise InputError(f"{what} file {str(path)!r} is too large to decode in the available memory") from None
    except UnidentifiedImageError as err:
        raise InputError(f"{what} file {str(path)!r} is not a readable image: not a format Pillow recognizes "
                         f"(PNG, JPEG, WebP, TIFF, ...)") from err
    except Exception as err:  # PIL raises many types for corrupt files (OSError, SyntaxError, ValueError, ...)
        detail = str(err) or type(err).__name__
        raise InputError(f"{what} file {str(path)!r} is not a readable image: corrupt or truncated "
                         f"({detail})") from err
    if img.width < 1 or img.height < 1:
        raise InputError(f"{what} file {str(path)!r} is empty ({img.width}x{img.height} pixels)")
    return img


def _to_float(img: Image.Image) -> np.ndarray:
    """(H, W, C) float32 in [0, 1] from any PIL mode: 16-bit scaled, palette/alpha composited on white."""
    if img.mode in _16BIT:
        arr = np.asarray(img, dtype=np.float32)
        return np.clip(arr / 65535.0, 0, 1)[..., None].repeat(3, axis=2)
    if img.mode == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0, 1)[..., None].repeat(3, axis=2)
    if img.mode in _ALPHA_MODES + ("P",) or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _mask_values(img: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1]: luminance (mean of R, G, B) × alpha; alpha = 1 where the file has none."""
    if img.mode in _16BIT or img.mode == "F":
        lum = _to_float(img)[..., 0]
        t = img.info.get("transparency")
        if isinstance(t, int) and img.mode in _16BIT:             # 16-bit gray PNG with a tRNS gray level
            lum = lum * (np.asarray(img) != t)
        return lum.astype(np.float32)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0   # un-premultiplies RGBa / La
        return rgba[..., :3].mean(2) * rgba[..., 3]
    return np.asarray(img.convert("RGB"), dtype=np.float32).mean(2) / 255.0


def load_image(path: str | Path, size: int | tuple[int, int] | None = None) -> Tensor:
    """RGB image (1, 3, H, W) in [0, 1]; grayscale, RGBA (over white), palette and 16-bit files are converted,
    and an EXIF orientation is applied (the image as viewers show it).

    ``size`` resizes (bicubic, antialiased) to ``size × size`` or ``(height, width)``.
    """
    img = _open(path, "image")
    try:
        arr = _to_float(img)
    except Exception as err:     # a mode Pillow opens but cannot convert (e.g. some LAB / multi-band TIFFs)
        raise InputError(f"image file {str(path)!r} has pixel mode {img.mode!r}, which cannot be converted "
                         f"to RGB ({err})") from err
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    return x if size is None else resize_image(x, size)


def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw):
        raise InputError(f"size must be a positive integer or (height, width) of positive integers, got {size!r}")
    return hw


def resize_image(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bicubic, antialiased resize of (1, 3, H, W) in [0, 1] to ``size × size`` or ``(height, width)``."""
    hw = _size_hw(size)
    if x.shape[-2:] == hw:
        return x
    return F.interpolate(x, size=hw, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def check_image_size(hw: tuple[int, int], size: int | tuple[int, int], cell: int, path: str) -> None:
    """Check a source image's native ``hw = (height, width)`` against the working ``size`` (an int for
    ``size × size``, or ``(height, width)``) and the VAE's downsampling factor ``cell`` (8 for Stable Diffusion).

    Raises :class:`InputError` if the image is smaller than one latent cell (``min(h, w) < cell``); warns
    (``UserWarning``) if it would be upscaled more than :data:`MAX_UPSCALE` times on a side.
    """
    h, w = (int(v) for v in hw)
    sh, sw = _size_hw(size)
    if min(h, w) < cell:
        raise InputError(f"image file {str(path)!r} is {w}x{h} (WxH), smaller than one latent cell: it must be "
                         f"at least {cell}x{cell} pixels (the VAE's downsampling factor is {cell})")
    factor = max(sh / h, sw / w)
    if factor > MAX_UPSCALE:
        warnings.warn(f"image file {str(path)!r} is {w}x{h} (WxH) and is upscaled {factor:.3g}x to the working "
                      f"size {sw}x{sh} (more than {MAX_UPSCALE}x): expect a blurry result; use a larger source "
                      f"image", UserWarning, stacklevel=2)


def load_mask(path: str | Path, expected_hw: tuple[int, int]) -> Tensor:
    """Mask (1, H, W) in [0, 1] from an image file whose size must equal ``expected_hw`` (the source image's).

    What the pixels mean: a pixel's mask value is its luminance (the mean of R, G, B, or the gray level) in
    [0, 1], so white = 1 = the region applies there and black = 0 = it does not; gray is a soft edge. Where the
    file has an alpha channel (RGBA, LA, a palette or PNG tRNS transparency) the value is luminance × alpha:
    transparent pixels are never part of the region, whatever their color. 16-bit files are scaled from 65535.
    """
    img = _open(path, "mask")
    hw = (img.height, img.width)
    if hw != tuple(expected_hw):
        raise InputError(f"mask file {str(path)!r} is {hw[1]}x{hw[0]} (WxH) but the source image is "
                         f"{expected_hw[1]}x{expected_hw[0]}: a mask must have the image's size")
    try:
        values = _mask_values(img)
    except Exception as err:
        raise InputError(f"mask file {str(path)!r} has pixel mode {img.mode!r}, which cannot be read as a "
                         f"mask ({err})") from err
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None]


def box_mask(box: Sequence[int], hw: tuple[int, int]) -> Tensor:
    """Mask (1, H, W) that is 1 inside ``box = (top, left, bottom, right)`` (pixels, half-open)."""
    try:
        values = list(box)
    except TypeError:
        raise InputError(f"box must be [top, left, bottom, right], got {box!r}") from None
    if len(values) != 4:
        raise InputError(f"box must be [top, left, bottom, right], got {values}")
    try:
        ints = [int(v) for v in values]
        integral = all(not isinstance(v, bool) and float(v) == i for v, i in zip(values, ints))
    except (TypeError, ValueError, OverflowError):
        integral = False
    if not integral:
        raise InputError(f"box must be [top, left, bottom, right] of whole pixel numbers, got {values}")
    top, left, bottom, right = ints
    h, w = hw
    if not (0 <= top < bottom <= h and 0 <= left < right <= w):
        raise InputError(f"box {values} is empty or outside the {h}x{w} (HxW) image")
    m = torch.zeros(1, h, w)
    m[:, top:bottom, left:right] = 1
    return m


def to_latent_mask(mask: Tensor, factor: int) -> Tensor:
    """Pixel mask (1, H, W) → latent mask (1, H/f, W/f) by area averaging."""
    return F.avg_pool2d(mask[None], factor)[0] if factor > 1 else mask


def save_image(x: Tensor, path: str | Path) -> Path:
    """Write (3, H, W) or (1, 3, H, W) in [0, 1] as PNG, atomically (temp file + rename).

    A path that cannot be written (a directory, no permission, disk full) is an :class:`InputError` naming
    it; no temp file is left behind.
    """
    path = Path(path)
    x = x.detach().float().cpu().clamp(0, 1)
    if x.dim() == 4:
        x = x[0]
    arr = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"), "image")
