"""A real browser agrees: headless Chromium renders our exported SVG (and an SVG written by hand that we
read), and its screenshot is compared with our raster of the same scene.

Chromium is required in CI (``.ci/run`` installs Debian's ``chromium``): without it these tests fail when
``CI`` is set and are skipped (with the reason) elsewhere.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from dreamsampler.io.svg import read_svg, write_svg
from dreamsampler.render import rasterize

FIXTURE = Path(__file__).parent / "data" / "diffvg_ref_P8_W64.pt"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    msg = "headless Chromium not found (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(msg + "; it is required in CI")
    pytest.skip(msg)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def browser_render(svg_text: str, width: int, height: int, workdir: Path) -> torch.Tensor:
    """Screenshot of the SVG shown at exactly width × height CSS px, device scale 1 → (H, W, 3) in [0, 1]."""
    exe = _browser()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "scene.svg").write_text(svg_text, encoding="utf-8")
    (workdir / "page.html").write_text(
        "<!DOCTYPE html><html><head><style>html,body{margin:0;padding:0;overflow:hidden;background:#fff}"
        f"img{{display:block}}</style></head><body><img src=\"scene.svg\" width=\"{width}\" height=\"{height}\">"
        "</body></html>",
        encoding="utf-8",
    )
    shot = workdir / "shot.png"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={workdir / 'profile'}", f"--screenshot={shot}", f"--window-size={width},{height}",
           "--hide-scrollbars", "--force-device-scale-factor=1", "--force-color-profile=srgb",
           (workdir / "page.html").as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    img = Image.open(shot).convert("RGB")
    assert img.size == (width, height), f"screenshot is {img.size}, expected {(width, height)}"
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(height, width, 3).double() / 255


@pytest.fixture(scope="module")
def fixture_scene():
    ref = torch.load(FIXTURE, weights_only=True)
    return ref["points"].double(), ref["colors"].double()


@pytest.mark.parametrize("size, bound", [(64, 4e-3), (256, 2.5e-3)])
def test_browser_matches_our_raster_of_exported_svg(fixture_scene, tmp_path, size, bound):
    points, colors = fixture_scene
    points = points * (size / 64)
    svg = write_svg(None, points, colors, size, size)
    shot = browser_render(svg, size, size, tmp_path)
    ours = rasterize(points, colors, size, size, samples=4)
    err = (ours - shot).abs().mean().item()
    shifted = (torch.roll(ours, 1, dims=1) - shot).abs().mean().item()
    print(f"{size}²: browser vs ours mean-abs {err:.2e}, one-pixel shift {shifted:.2e}")
    assert err <= bound, f"mean-abs {err:.2e} > {bound:.1e}"
    assert shifted > 2 * err  # the comparison is sharp enough to see a one-pixel shift
    Image.fromarray((torch.cat((ours, shot), 1) * 255).round().byte().numpy()).save(tmp_path / "side_by_side.png")


HAND_SVG = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
     width="96" height="64" viewBox="0 0 48 32">
  <title>hand-written test scene</title>
  <inkscape:namedview pagecolor="#ffffff"/>
  <rect x="2" y="3" width="20" height="12" rx="3" fill="teal"/>
  <g transform="translate(30 4) rotate(20)" fill="#f80" fill-opacity="0.8">
    <path d="m 0 0 h 10 v 8 q -5 6 -10 0 z"/>
    <circle cx="5" cy="18" r="4" fill="rgb(20%, 30%, 90%)" opacity="0.7"/>
  </g>
  <ellipse cx="14" cy="24" rx="10" ry="5" style="fill: #c2185b; fill-opacity: .6"/>
  <polygon points="30,30 46,30 38,18" fill="rgb(40, 160, 60)" fill-rule="evenodd"/>
  <path fill-rule="evenodd" fill="#333" d="M 2 18 C 2 14, 8 14, 8 18 S 14 22, 14 18 T 20 18 L 20 30 L 2 30 Z
           M 6 22 L 10 22 L 10 27 L 6 27 Z"/>
  <g opacity="0.5"><path d="M40 2 L47 2 L47 9 Z" fill="black"/></g>
</svg>
"""


def test_reader_matches_browser_on_a_hand_written_svg(tmp_path):
    """Our reader + rasterizer vs Chromium on an SVG using the supported features (viewBox scaling,
    group transforms, relative/smooth/quadratic commands, shapes, colors, opacities, fill rules)."""
    scene = read_svg(HAND_SVG.encode())
    assert (scene.height, scene.width) == (64, 96) and scene.background == "none"
    assert len(scene.fill_rule) == 7 and scene.fill_rule.count("evenodd") == 2
    ours = rasterize(scene.points.double(), scene.colors.double(), 64, 96, samples=4,
                     fill_rule=list(scene.fill_rule))
    shot = browser_render(HAND_SVG, 96, 64, tmp_path)
    err = (ours - shot).abs().mean().item()
    Image.fromarray((torch.cat((ours, shot), 1) * 255).round().byte().numpy()).save(tmp_path / "side_by_side.png")
    print(f"hand-written SVG: mean-abs {err:.2e}")
    assert err <= 4e-3, f"mean-abs {err:.2e}"
    assert math.isclose(float((ours < 0.99).double().mean()), float((shot < 0.99).double().mean()), abs_tol=0.01)
