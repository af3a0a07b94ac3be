"""Faces world: procedural data for a tiny text-to-image face prior and a deterministic attribute checker.

Images are cartoon faces on white, rendered anti-aliased (4x4 supersampling, :mod:`dreamsampler.shapes` style)
at ``res`` x ``res`` (64 by default); every length is a fraction of the image side (x to the right, y down).
A face is a filled disc of one ``FACE_COLORS`` skin color (centre ``CENTER`` +- ``JITTER`` in x and y, radius
in ``RADIUS_RANGE``) with two near-black (``DARK``) eye dots, optional glasses (a ring around each eye and a
bridge bar) and a mouth: a straight bar (neutral) or the lower part of an annulus, ends up (smile).

The geometry fits the paper's protocol rectangles (512^2 face, [top, left, bottom, right]: eyes [180, 100, 290,
400], mouth [330, 170, 430, 340]; ``EYES_BOX`` / ``MOUTH_BOX`` in fractions): for every jittered face the eyes +
glasses lie inside ``EYES_BOX``, either mouth inside ``MOUTH_BOX`` (the boxes are disjoint). The eyes box is only
0.215 of the side tall, hence eyes at ``cy - 0.07``, glasses of outer radius 0.078 and a jitter of +-0.02.

Captions (fixed grammar, ``caption``; ``parse_caption`` inverts it): ``"a [{color} ]face[ wearing glasses][ with
a smile]"``: "a face", "a face wearing glasses", "a face with a smile", "a face wearing glasses with a smile", "a
yellow face ...". The attributes map onto the paper's Table 2 prompts ("a photography of face wearing glasses" /
"... with smile"), one fixed phrase each; training captions name the color half of the time, so that both "a
face" and "a {color} face" work.

Generator API
-------------
``render_face(color, glasses, smile, center=(0.5, 0.53), radius=0.42, res=64)`` -> ``(res, res, 3)`` float32.
``sample_params(n, generator, with_color_prob=0.5)`` (fixed draw order) / ``render_params(p, res)`` -> ``(B, 3,
res, res)`` / ``params_captions(p)``: the vectorized torch pieces used by training.
``sample_dataset(n, seed, res=64)`` -> ``FacesBatch(images (n, res, res, 3), captions, labels)``.
``held_out(n, seed)`` -> balanced ``FaceLabel`` list (all 20 color x glasses x smile cases in turn);
``render_labels(labels, res)``; ``feature_coverage(p, res)``; ``box_px(box, res)``.

Checker API (images as in ``shapes.as_image``: HWC numpy / torch CHW, float [0, 1] or uint8)
-----------
``face_color(img) -> str | None``  majority nearest palette color of the non-white, non-dark pixels.
``has_glasses(img) -> bool``  dark pixels on the glasses rings around the eyes (face centre = centroid of the
non-white pixels); ``has_smile(img) -> bool``  dark mean row at the mouth ends above the middle's.
``describe_face(img) -> FaceAttrs(color, glasses, smile)`` (a NamedTuple, like ``parse_caption``'s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dreamsampler.shapes import COLORS, PALETTE, PALETTE_RGB, WHITE, WorldBatch, as_image, nearest_palette

#: skin colors: every one contrasts with the dark features (RGB distance >= 0.53) and with white (>= 0.9)
FACE_COLORS: tuple[str, ...] = ("yellow", "orange", "green", "blue", "purple")
DARK = (0.1, 0.1, 0.1)
CAPTION_WORDS: tuple[str, ...] = ("a", "face", "wearing", "glasses", "with", "smile") + FACE_COLORS
FaceAttrs = NamedTuple("FaceAttrs", [("color", str | None), ("glasses", bool), ("smile", bool)])

CENTER = (0.5, 0.53)  # default face centre (x, y)
JITTER = 0.02  # centre jitter, +- in x and y
RADIUS_RANGE = (0.40, 0.44)
EYE_DX, EYE_DY, EYE_R = 0.15, 0.07, 0.035  # eyes at (cx +- EYE_DX, cy - EYE_DY)
GLASS_IN, GLASS_OUT, BRIDGE_T = 0.055, 0.078, 0.02  # ring radii around each eye; bridge bar thickness
MOUTH_DY, MOUTH_T = 0.24, 0.04  # middle line of the mouth at cy + MOUTH_DY; stroke thickness
SMILE_HW, SMILE_RISE = 0.115, 0.065  # smile middle line: ends at dx = +-SMILE_HW, SMILE_RISE above the middle
SMILE_R = (SMILE_HW**2 + SMILE_RISE**2) / (2 * SMILE_RISE)  # arc radius of the middle line (0.134)
SMILE_COS = 1 - SMILE_RISE / SMILE_R  # cos of the arc's half angle (59 deg)
MOUTH_HX = (SMILE_R + MOUTH_T / 2) * SMILE_HW / SMILE_R  # half width of both mouths (0.132)

EYES_BOX = (180 / 512, 100 / 512, 290 / 512, 400 / 512)  # (top, left, bottom, right), fractions
MOUTH_BOX = (330 / 512, 170 / 512, 430 / 512, 340 / 512)
_SS = 4
_CAPTION_RE = re.compile(r"a (?:(\w+) )?face( wearing glasses)?( with a smile)?")
_SKIN = torch.tensor([PALETTE[c] for c in FACE_COLORS], dtype=torch.float32)


def box_px(box: Sequence[float], res: int) -> tuple[int, int, int, int]:
    """Smallest pixel box (top, left, bottom, right), bottom/right exclusive, covering a fractional box."""
    t, l, b, r = (float(v) * res for v in box)
    return int(np.floor(t + 1e-9)), int(np.floor(l + 1e-9)), int(np.ceil(b - 1e-9)), int(np.ceil(r - 1e-9))


def caption(color: str | None, glasses: bool, smile: bool) -> str:
    """``"a [{color} ]face[ wearing glasses][ with a smile]"``."""
    words = ["a"] + ([color] if color else []) + ["face"]
    return " ".join(words + (["wearing glasses"] if glasses else []) + (["with a smile"] if smile else []))


def all_prompts() -> list[str]:
    """Every caption: color (None first, then ``FACE_COLORS``) outer, then glasses, then smile."""
    return [caption(c, g, s) for c in (None,) + FACE_COLORS for g in (False, True) for s in (False, True)]



def parse_caption(text: str) -> FaceAttrs:
    """Inverse of :func:`caption`: ``(color or None, glasses, smile)``; ValueError off the grammar."""
    m = _CAPTION_RE.fullmatch(text.strip())
    if m is None or (m.group(1) is not None and m.group(1) not in FACE_COLORS):
        raise ValueError(f"not a faces caption: {text!r}")
    return FaceAttrs(m.group(1), m.group(2) is not None, m.group(3) is not None)


@dataclass(frozen=True)
class FaceLabel:
    color: str
    glasses: bool
    smile: bool
    center: tuple[float, float] = CENTER
    radius: float = 0.42

    def caption(self, with_color: bool = True) -> str:
        return caption(self.color if with_color else None, self.glasses, self.smile)


FacesBatch = WorldBatch  # labels: FaceLabel


# ----------------------------------------------------------------------------------------------- rendering
def sample_params(n: int, generator: torch.Generator, with_color_prob: float = 0.5) -> dict[str, torch.Tensor]:
    """Random attributes (each 50 %), color, geometry and caption color coin, drawn in a fixed order."""
    color = torch.randint(len(FACE_COLORS), (n,), generator=generator)
    glasses = torch.rand(n, generator=generator) < 0.5
    smile = torch.rand(n, generator=generator) < 0.5
    radius = RADIUS_RANGE[0] + (RADIUS_RANGE[1] - RADIUS_RANGE[0]) * torch.rand(n, generator=generator)
    center = torch.tensor(CENTER) + JITTER * (2 * torch.rand(n, 2, generator=generator) - 1)
    named = torch.rand(n, generator=generator) < with_color_prob
    return {"color": color, "glasses": glasses, "smile": smile, "radius": radius, "center": center, "named": named}


def _masks(p: dict[str, torch.Tensor], res: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Supersampled boolean (B, 1, res*4, res*4) masks: face disc, eyes + glasses, mouth."""
    n = res * _SS
    coords = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    x, y = coords.view(1, 1, n), coords.view(1, n, 1)
    cx, cy = p["center"][:, 0].view(-1, 1, 1).float(), p["center"][:, 1].view(-1, 1, 1).float()
    dx, dy = x - cx, y - cy
    face = dx * dx + dy * dy <= p["radius"].view(-1, 1, 1).float() ** 2
    ey = dy + EYE_DY
    d2 = torch.minimum((dx - EYE_DX) ** 2, (dx + EYE_DX) ** 2) + ey * ey  # to the nearer eye
    ring = (d2 >= GLASS_IN**2) & (d2 <= GLASS_OUT**2)
    bridge = (ey.abs() <= BRIDGE_T / 2) & (dx.abs() <= EYE_DX - (GLASS_IN + GLASS_OUT) / 2)
    eyes = (d2 <= EYE_R**2) | (p["glasses"].view(-1, 1, 1) & (ring | bridge))
    my = dy - MOUTH_DY  # 0 on the mouth's middle line (at dx = 0)
    bar = (my.abs() <= MOUTH_T / 2) & (dx.abs() <= MOUTH_HX)
    d = torch.sqrt(dx * dx + (ay := my + SMILE_R) ** 2)  # ay: relative to the smile arc's centre, above the middle
    arc = ((d - SMILE_R).abs() <= MOUTH_T / 2) & (ay >= SMILE_COS * d)
    mouth = torch.where(p["smile"].view(-1, 1, 1), arc, bar)
    return face[:, None], eyes[:, None], mouth[:, None]


def feature_coverage(p: dict[str, torch.Tensor], res: int = 64) -> dict[str, torch.Tensor]:
    """(B, res, res) pixel coverage in [0, 1] of the ``"face"`` disc, ``"eyes"`` (+ glasses), ``"mouth"``."""
    masks = _masks(p, res)
    return {k: F.avg_pool2d(m.float(), _SS)[:, 0] for k, m in zip(("face", "eyes", "mouth"), masks)}



def render_params(p: dict[str, torch.Tensor], res: int = 64, chunk: int = 64) -> torch.Tensor:
    """(B, 3, res, res) float32 images in [0, 1] for parameters from :func:`sample_params`."""
    out = []
    for i in range(0, len(p["color"]), chunk):
        q = {k: v[i : i + chunk] for k, v in p.items()}
        face, eyes, mouth = _masks(q, res)
        cf, cd = (F.avg_pool2d(m.float(), _SS) for m in (face, eyes | mouth))
        img = (1 - cf) * torch.tensor(WHITE).view(1, 3, 1, 1) + cf * _SKIN[q["color"]][:, :, None, None]
        out.append((img * (1 - cd) + cd * torch.tensor(DARK).view(1, 3, 1, 1)).clamp(0, 1))
    return torch.cat(out) if out else torch.zeros(0, 3, res, res)


def params_captions(p: dict[str, torch.Tensor]) -> list[str]:
    """Captions of :func:`sample_params` draws; the color is named where ``p["named"]``."""
    return [
        caption(FACE_COLORS[c] if nm else None, bool(g), bool(s))
        for c, g, s, nm in zip(p["color"].tolist(), p["glasses"].tolist(), p["smile"].tolist(), p["named"].tolist())
    ]


def _label_params(labels: Sequence[FaceLabel]) -> dict[str, torch.Tensor]:
    if any(lab.color not in FACE_COLORS for lab in labels):
        raise ValueError(f"unknown face color in {[lab.color for lab in labels]}; known: {FACE_COLORS}")
    return {
        "color": torch.tensor([FACE_COLORS.index(lab.color) for lab in labels], dtype=torch.long),
        "glasses": torch.tensor([bool(lab.glasses) for lab in labels], dtype=torch.bool),
        "smile": torch.tensor([bool(lab.smile) for lab in labels], dtype=torch.bool),
        "radius": torch.tensor([float(lab.radius) for lab in labels], dtype=torch.float32),
        "center": torch.tensor([list(lab.center) for lab in labels], dtype=torch.float32).view(-1, 2),
        "named": torch.ones(len(labels), dtype=torch.bool),
    }


def render_labels(labels: Sequence[FaceLabel], res: int = 64) -> np.ndarray:
    """(n, res, res, 3) float32 images of the given labels."""
    return render_params(_label_params(labels), res).permute(0, 2, 3, 1).numpy()


def render_face(color: str, glasses: bool, smile: bool, center: Sequence[float] = CENTER, radius: float = 0.42,
                res: int = 64) -> np.ndarray:
    """One face, ``(res, res, 3)`` float32 in [0, 1]."""
    return render_labels([FaceLabel(color, bool(glasses), bool(smile), tuple(center), float(radius))], res)[0]


def _labels(p: dict[str, torch.Tensor]) -> list[FaceLabel]:
    cols = (p[k].tolist() for k in ("color", "glasses", "smile", "center", "radius"))
    return [FaceLabel(FACE_COLORS[c], bool(g), bool(s), tuple(ce), float(r)) for c, g, s, ce, r in zip(*cols)]


def sample_dataset(n: int, seed: int, res: int = 64, with_color_prob: float = 0.5) -> FacesBatch:
    """``n`` random faces with captions and labels, deterministic in ``seed``."""
    p = sample_params(n, torch.Generator().manual_seed(seed), with_color_prob)
    return FacesBatch(render_params(p, res).permute(0, 2, 3, 1).numpy(), params_captions(p), _labels(p))


def held_out(n: int, seed: int) -> list[FaceLabel]:
    """``n`` evaluation labels: color, glasses, smile in turn (every 20 cover all cases), geometry from ``seed``."""
    p = sample_params(n, torch.Generator().manual_seed(seed))
    i = torch.arange(n)
    p.update(color=i % len(FACE_COLORS), glasses=(i // len(FACE_COLORS)) % 2 == 1,
             smile=(i // (2 * len(FACE_COLORS))) % 2 == 1)
    return _labels(p)


# ------------------------------------------------------------------------------------------------- checker
WHITE_DIST = 0.3  # RGB distance from white above which a pixel is part of the face (skin or feature)
MIN_FACE_FRAC = 0.05  # fewer skin-colored pixels than this share of the image: no face (rendered: ~0.5)
# Mean dark fraction (0 = skin, 1 = DARK) over the glasses ring sample band, GLASS_BAND radii from the eye
# centres: rendered (res 64, 400 faces) without glasses 0.00, with 0.955 on average (min 0.92; 0.63 after blur
# sigma 0.7 px + noise 0.03). Every image a prior makes is a VAE decode, and the world prior's VAE thins the
# 1.5-px rings: its reconstructions of 400 held-out faces read 0.42-0.98 with glasses, 0.00-0.045 without, so the
# threshold sits between those two (0.25), not at the midpoint of the rendered averages.
GLASS_BAND = (0.060, 0.074)
GLASSES_MIN_DARK = 0.25
# Mouth curvature = mean dark row of the middle columns minus that of the end columns (fractions of the side):
# rendered neutral 0.000 (+-0.0005), smile 0.036 on average (0.030-0.039, clean or blurred + noisy, res 32-128):
# threshold at the midpoint.
MOUTH_MID, MOUTH_END = 0.04, (0.07, 0.14)  # |x - cx| ranges of the middle and end columns
SMILE_MIN_CURVE = 0.018


def _analyze(img):
    """(color, (cx, cy), dark fraction (H, W) in [0, 1], pixel x (1, W), pixel y (H, 1)) or None (no face)."""
    a = as_image(img)
    h, w, _ = a.shape
    nonwhite = np.linalg.norm(a - np.array(WHITE, np.float32), axis=-1) > WHITE_DIST
    labels = nearest_palette(a)
    skinlike = nonwhite & (np.linalg.norm(a - np.array(DARK, np.float32), axis=-1)
                           > np.linalg.norm(a - PALETTE_RGB[labels], axis=-1))
    if skinlike.sum() < MIN_FACE_FRAC * h * w:
        return None
    k = int(np.bincount(labels[skinlike], minlength=len(COLORS)).argmax())
    skin = np.median(a[skinlike & (labels == k)], axis=0)
    ys, xs = np.nonzero(nonwhite)
    cx, cy = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
    d = skin - np.array(DARK, np.float32)
    alpha = np.clip(((skin - a) @ d) / max(float(d @ d), 1e-6), 0.0, 1.0)
    px, py = (np.arange(w) + 0.5) / w, (np.arange(h) + 0.5) / h
    return COLORS[k], (cx, cy), alpha, px[None, :], py[:, None]


def _in_box(box, px, py) -> np.ndarray:
    """Boolean (H, W) mask of the pixel box :func:`box_px` of ``box``."""
    (t, _, b, _), (_, l, _, r) = box_px(box, py.shape[0]), box_px(box, px.shape[1])
    rows, cols = np.arange(py.shape[0])[:, None], np.arange(px.shape[1])
    return (rows >= t) & (rows < b) & (cols >= l) & (cols < r)


def _glasses(res) -> bool:
    _, (cx, cy), alpha, px, py = res
    d = np.sqrt(np.minimum((px - cx - EYE_DX) ** 2, (px - cx + EYE_DX) ** 2) + (py - cy + EYE_DY) ** 2)
    band = (d >= GLASS_BAND[0]) & (d <= GLASS_BAND[1]) & _in_box(EYES_BOX, px, py)
    return bool(band.any() and alpha[band].mean() >= GLASSES_MIN_DARK)


def _smile(res) -> bool:
    _, (cx, _), alpha, px, py = res
    wgt, ax, rows = np.clip((alpha - 0.25) / 0.5, 0, 1) * _in_box(MOUTH_BOX, px, py), np.abs(px - cx), []
    for sel in (ax <= MOUTH_MID, (ax >= MOUTH_END[0]) & (ax <= MOUTH_END[1])):
        if (m := wgt * sel).sum() < 1.0:  # less than one pixel of dark mass: no mouth there
            return False
        rows.append(float((m * py).sum() / m.sum()))
    return rows[0] - rows[1] >= SMILE_MIN_CURVE


def describe_face(img) -> FaceAttrs:
    """``(face_color, has_glasses, has_smile)``, analysing the image once; ``(None, False, False)`` if no face."""
    res = _analyze(img)
    return FaceAttrs(None, False, False) if res is None else FaceAttrs(res[0], _glasses(res), _smile(res))


def face_color(img) -> str | None:
    return describe_face(img)[0]


def has_glasses(img) -> bool:
    return describe_face(img)[1]


def has_smile(img) -> bool:
    return describe_face(img)[2]
