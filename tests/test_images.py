"""Image and mask files: every bad file is one InputError naming it; masks mean luminance × alpha."""

from __future__ import annotations

import os
import struct
import sys
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from dreamsampler.cli import main
from dreamsampler.errors import InputError
from dreamsampler.io import images
from dreamsampler.io.images import (MAX_UPSCALE, box_mask, check_image_size, load_image, load_mask, resize_image,
                                    save_image, to_latent_mask)

LIMIT = Image.MAX_IMAGE_PIXELS


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(w: int, h: int) -> bytes:
    """A tiny PNG whose IHDR claims ``w × h`` 8-bit gray pixels (the pixel data is not there)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""))


def raises_input_error(fn, *args) -> str:
    with pytest.raises(InputError) as exc:
        fn(*args)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- decompression bombs
def test_crafted_png_header_is_valid():
    """The crafted bytes really are a PNG of the claimed size (so the bomb tests test the size check)."""
    import io
    with Image.open(io.BytesIO(png_claiming(3, 2))) as img:
        assert img.size == (3, 2) and img.format == "PNG"


@pytest.mark.parametrize("what, loader", [("image", load_image), ("mask", lambda p: load_mask(p, (1, 1)))])
def test_decompression_bomb_is_one_clear_error(tmp_path, what, loader):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(60000, 60000))
    assert bomb.stat().st_size < 100                           # a few bytes, not a real huge image
    assert 60000 * 60000 > 2 * LIMIT                           # PIL's error range
    msg = raises_input_error(loader, bomb)
    assert msg.startswith(f"{what} file {str(bomb)!r} claims 60000x60000 pixels, over the {LIMIT}-pixel limit "
                          f"(a decompression bomb?); ")
    assert "MAX_IMAGE_PIXELS" in msg


def test_decompression_bomb_warning_range_is_refused_too(tmp_path):
    w, h = 10000, 9000                                         # LIMIT < w*h <= 2*LIMIT: PIL would only warn
    assert LIMIT < w * h <= 2 * LIMIT
    bomb = tmp_path / "big.png"
    bomb.write_bytes(png_claiming(w, h))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # no warning escapes either
        msg = raises_input_error(load_image, bomb)
    assert f"claims {w}x{h} pixels, over the {LIMIT}-pixel limit" in msg
    # the filter was local: PIL's own warning behaviour is untouched afterwards
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(bomb).close()


def test_image_just_under_the_limit_is_not_a_bomb(tmp_path):
    """At or below MAX_IMAGE_PIXELS the size check passes (this one then fails as truncated, not as a bomb)."""
    side = int(LIMIT ** 0.5)
    f = tmp_path / "under.png"
    f.write_bytes(png_claiming(side, side))
    msg = raises_input_error(load_image, f)
    assert "decompression bomb" not in msg and "corrupt or truncated" in msg


def test_bomb_limit_follows_pil_setting(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("L", (20, 20), 0).save(tmp_path / "real.png")   # 400 > 2*100: a real file, decoded nowhere
    msg = raises_input_error(load_image, tmp_path / "real.png")
    assert "claims 20x20 pixels, over the 100-pixel limit" in msg


def test_bomb_through_the_cli_is_one_line(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(60000, 60000))
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--model", "dreamsampler.tasks.EditTask", f"--model.image={bomb}", "--model.prompt=x",
              "--model.size=16", "--model.backbone=tiny", "--model.nfe=2",
              f"--trainer.default_root_dir={tmp_path / 'run'}", "--trainer.enable_progress_bar=false"])
    msg = str(exc.value.code)
    assert msg.startswith(f"dreamsampler: error: image file {str(bomb)!r} claims 60000x60000 pixels"), msg


# ---------------------------------------------------------------- unreadable files
def _truncated_png(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "good.png"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.png"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def test_truncated_png(tmp_path):
    bad = _truncated_png(tmp_path)
    msg = raises_input_error(load_image, bad)
    assert msg.startswith(f"image file {str(bad)!r} is not a readable image: corrupt or truncated")
    msg = raises_input_error(load_mask, bad, (64, 64))
    assert msg.startswith(f"mask file {str(bad)!r} is not a readable image: corrupt or truncated")


def test_corrupt_chunk_crc(tmp_path):
    data = bytearray(png_claiming(4, 4))
    data[29] ^= 0xFF                                           # break the IHDR CRC
    bad = tmp_path / "crc.png"
    bad.write_bytes(bytes(data))
    assert "is not a readable image" in raises_input_error(load_image, bad)


def test_truncated_jpeg(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(good.read_bytes()[:400])
    assert "is not a readable image" in raises_input_error(load_image, bad)


def test_missing_directory_empty_and_text_files(tmp_path):
    assert raises_input_error(load_image, tmp_path / "nope.png") == \
        f"image file {str(tmp_path / 'nope.png')!r} does not exist"
    assert raises_input_error(load_image, tmp_path / "nope" / "x.png").endswith("does not exist")
    assert raises_input_error(load_mask, tmp_path, (4, 4)) == \
        f"mask file {str(tmp_path)!r} is a directory, not an image file"
    (tmp_path / "empty.png").write_bytes(b"")
    assert raises_input_error(load_image, tmp_path / "empty.png").endswith("is not a readable image: "
                                                                          "the file is empty")
    (tmp_path / "notes.png").write_text("this is text, not a picture")
    msg = raises_input_error(load_image, tmp_path / "notes.png")
    assert msg.startswith(f"image file {str(tmp_path / 'notes.png')!r} is not a readable image: not a format")
    (tmp_path / "file").write_bytes(b"x")
    assert raises_input_error(load_image, tmp_path / "file" / "x.png").endswith("does not exist")


def test_odd_paths(tmp_path):
    assert "cannot be accessed" in raises_input_error(load_image, "a\0b.png")
    long = tmp_path / ("x" * 5000)
    assert raises_input_error(load_image, long) == f"image file {str(long)!r} cannot be accessed (File name too long)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert raises_input_error(load_image, fifo) == f"image file {str(fifo)!r} is not a regular file"


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    f = tmp_path / "secret.png"
    Image.new("L", (8, 8)).save(f)
    f.chmod(0)
    try:
        assert "cannot be read" in raises_input_error(load_image, f)
    finally:
        f.chmod(0o600)


def test_unconvertible_mode(tmp_path, monkeypatch):
    Image.new("L", (8, 8)).save(tmp_path / "ok.png")

    def broken(img):
        raise ValueError("conversion not supported")

    monkeypatch.setattr(images, "_to_float", broken)
    monkeypatch.setattr(images, "_mask_values", broken)
    assert "cannot be converted to RGB" in raises_input_error(load_image, tmp_path / "ok.png")
    assert "cannot be read as a mask" in raises_input_error(load_mask, tmp_path / "ok.png", (8, 8))


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("L", (6, 2), 0)
    img.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6                                           # "rotate 90° clockwise to display"
    img.save(tmp_path / "phone.png", exif=exif)
    x = load_image(tmp_path / "phone.png")
    assert x.shape == (1, 3, 6, 2)                             # shown as 2 wide × 6 high
    assert x[0, 0, 0, 1] == 1 and x[0, 0].sum() == 1           # the marked corner went to the top right
    assert load_mask(tmp_path / "phone.png", (6, 2)).shape == (1, 6, 2)


# ---------------------------------------------------------------- tiny images
def test_image_smaller_than_a_latent_cell():
    assert raises_input_error(check_image_size, (1, 1), 512, 8, "dot.png") == \
        ("image file 'dot.png' is 1x1 (WxH), smaller than one latent cell: it must be at least 8x8 pixels "
         "(the VAE's downsampling factor is 8)")
    assert "is 100x7 (WxH)" in raises_input_error(check_image_size, (7, 100), 64, 8, "strip.png")


def test_extreme_upscale_warns():
    with pytest.warns(UserWarning) as rec:
        check_image_size((8, 10), 512, 8, "small.png")
    assert len(rec) == 1
    assert str(rec[0].message) == ("image file 'small.png' is 10x8 (WxH) and is upscaled 64x to the working size "
                                   "512x512 (more than 8x): expect a blurry result; use a larger source image")
    with pytest.warns(UserWarning, match=r"is 64x64 \(WxH\) and is upscaled 9x to the working size 576x64"):
        check_image_size((64, 64), (64, 576), 8, "wide.png")


def test_ordinary_sizes_pass_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_image_size((8, 8), 8 * MAX_UPSCALE, 8, "edge.png")           # exactly 8x: fine
        check_image_size((40, 40), 16, 8, "down.png")                      # downscaling: fine
        check_image_size((512, 768), (512, 512), 8, "photo.png")
        check_image_size((3, 3), 16, 1, "pixels.png")                      # no VAE: cell 1


def test_check_image_size_is_exported():
    assert "check_image_size" in images.__all__
    assert set(images.__all__) >= {"load_image", "resize_image", "load_mask", "box_mask", "to_latent_mask",
                                   "save_image"}


# ---------------------------------------------------------------- mask semantics
def _save(tmp_path, name, img):
    img.save(tmp_path / name)
    return tmp_path / name


def test_grayscale_and_rgb_masks_as_before(tmp_path):
    g = np.array([[0, 51, 128, 255]], dtype=np.uint8)
    m = load_mask(_save(tmp_path, "g.png", Image.fromarray(g)), (1, 4))
    assert m.shape == (1, 1, 4) and m.dtype == torch.float32
    torch.testing.assert_close(m, torch.from_numpy(g / 255.0).float()[None])
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [10, 20, 30], [255, 0, 0]]], dtype=np.uint8)
    m = load_mask(_save(tmp_path, "rgb.png", Image.fromarray(rgb)), (1, 4))
    torch.testing.assert_close(m, torch.tensor([[[1.0, 0.0, 20 / 255, 85 / 255]]]))
    deep = np.full((2, 2), 40000, dtype=np.uint16)
    m = load_mask(_save(tmp_path, "deep.png", Image.fromarray(deep)), (2, 2))
    torch.testing.assert_close(m, torch.full((1, 2, 2), 40000 / 65535))
    bilevel = Image.new("1", (2, 1), 0)
    bilevel.putpixel((1, 0), 1)
    torch.testing.assert_close(load_mask(_save(tmp_path, "b.png", bilevel), (1, 2)), torch.tensor([[[0.0, 1.0]]]))


def test_rgba_mask_is_luminance_times_alpha(tmp_path):
    px = np.array([[[255, 255, 255, 0],          # white but transparent: not in the region (was 1 before)
                    [0, 0, 0, 0],                # black transparent: 0 (was 1 before: composited on white)
                    [255, 255, 255, 255],        # opaque white: 1
                    [255, 255, 255, 128],        # half-transparent white: 0.5
                    [0, 0, 0, 255],              # opaque black: 0
                    [128, 128, 128, 255]]], dtype=np.uint8)
    m = load_mask(_save(tmp_path, "rgba.png", Image.fromarray(px, "RGBA")), (1, 6))
    torch.testing.assert_close(m, torch.tensor([[[0.0, 0.0, 1.0, 128 / 255, 0.0, 128 / 255]]]))


def test_la_and_palette_transparency_masks(tmp_path):
    la = Image.fromarray(np.array([[[255, 0], [255, 255], [100, 255]]], dtype=np.uint8), "LA")
    torch.testing.assert_close(load_mask(_save(tmp_path, "la.png", la), (1, 3)),
                               torch.tensor([[[0.0, 1.0, 100 / 255]]]))
    p = Image.new("P", (3, 1), 0)
    p.putpalette([255, 255, 255, 255, 255, 255, 0, 0, 0])
    p.putpixel((1, 0), 1)
    p.putpixel((2, 0), 2)
    p.info["transparency"] = 0                  # palette entry 0 (white) is transparent
    torch.testing.assert_close(load_mask(_save(tmp_path, "p.png", p), (1, 3)), torch.tensor([[[0.0, 1.0, 0.0]]]))
    p.info["transparency"] = bytes([0, 255, 255])
    torch.testing.assert_close(load_mask(_save(tmp_path, "p2.png", p), (1, 3)), torch.tensor([[[0.0, 1.0, 0.0]]]))
    gray = Image.new("L", (2, 1), 255)
    gray.info["transparency"] = 255             # PNG tRNS on grayscale: that gray level is transparent
    gray.putpixel((1, 0), 254)
    torch.testing.assert_close(load_mask(_save(tmp_path, "trns.png", gray), (1, 2)),
                               torch.tensor([[[0.0, 254 / 255]]]))


def test_rgba_image_still_composited_over_white(tmp_path):
    f = _save(tmp_path, "rgba.png", Image.new("RGBA", (2, 2), (0, 0, 0, 0)))
    torch.testing.assert_close(load_image(f), torch.ones(1, 3, 2, 2))
    assert float(load_mask(f, (2, 2)).max()) == 0.0


def test_mask_of_wrong_size(tmp_path):
    f = _save(tmp_path, "m.png", Image.new("L", (17, 9), 255))
    assert raises_input_error(load_mask, f, (40, 40)) == \
        (f"mask file {str(f)!r} is 17x9 (WxH) but the source image is 40x40: a mask must have the image's size")


# ---------------------------------------------------------------- boxes, sizes, saving
def test_box_mask():
    m = box_mask([1, 2, 3, 5], (4, 6))
    assert m.shape == (1, 4, 6) and m.sum() == 6 and m[0, 1:3, 2:5].all()
    assert box_mask([0.0, 0, 4, 6.0], (4, 6)).sum() == 24                 # whole-number floats are fine


@pytest.mark.parametrize("box, text", [
    (5, "box must be [top, left, bottom, right], got 5"),
    ([1, 2, 3], "box must be [top, left, bottom, right], got [1, 2, 3]"),
    (["a", 0, 4, 4], "of whole pixel numbers, got ['a', 0, 4, 4]"),
    ([0.5, 0, 4, 4], "of whole pixel numbers"),
    ([None, 0, 4, 4], "of whole pixel numbers"),
    ([0, 0, float("inf"), 4], "of whole pixel numbers"),
    ([2, 0, 2, 4], "box [2, 0, 2, 4] is empty or outside the 4x6 (HxW) image"),
    ([0, 0, 5, 4], "is empty or outside"),
])
def test_bad_boxes(box, text):
    assert text in raises_input_error(box_mask, box, (4, 6))


@pytest.mark.parametrize("size", [0, -3, (8,), (8, 0), (8, 8.5), "16"])
def test_bad_resize_size(size):
    assert "size must be a positive integer" in raises_input_error(resize_image, torch.zeros(1, 3, 4, 4), size)


def test_resize_and_latent_mask():
    x = torch.rand(1, 3, 6, 6)
    assert resize_image(x, 6) is x
    assert resize_image(x, (4, 8)).shape == (1, 3, 4, 8)
    torch.testing.assert_close(to_latent_mask(torch.ones(1, 16, 8), 8), torch.ones(1, 2, 1))


def test_save_roundtrip_and_unwritable_paths(tmp_path):
    x = torch.rand(3, 5, 7)
    out = save_image(x[None], tmp_path / "sub" / "a.png")
    torch.testing.assert_close(load_image(out)[0], (x * 255).round() / 255, atol=1e-6, rtol=0)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.png"]    # no temp file left
    (tmp_path / "taken.png").mkdir()
    msg = raises_input_error(save_image, x, tmp_path / "taken.png")
    assert msg.startswith(f"cannot write image file {str(tmp_path / 'taken.png')!r}")
    (tmp_path / "file").write_bytes(b"")
    assert "cannot write image file" in raises_input_error(save_image, x, tmp_path / "file" / "b.png")
    assert not list(tmp_path.glob(".*.tmp"))
