"""Scenes-and-faces world metrics from the deterministic checkers of :mod:`dreamsampler.scenes` and
:mod:`dreamsampler.faces` (the miniature Tables 1 and 2), and FID on the prior's own VAE encoder features.

* ``prompt_parts(prompt, image)`` — which parts of a world prompt an image shows (:meth:`ScenesFacesWorld.read`);
* ``region_parts(prompt, image, mask)`` — the same, restricted to a region (an edit region or an inpainting hole):
  a face prompt's glasses are read when the region meets the eyes box, its smile when it meets the mouth box
  (only the attributes the prompt *names* are asked for: two holes of one face each carry their own attribute);
  a one-object scene prompt is read as the object whose centroid lies in the region's bounding box;
* ``structure_iou(source, edited, outside=None)`` — IoU of the foreground masks (every non-white pixel: the face
  disc with its features, or the scene's shapes), optionally only outside a region (the "other object unchanged"
  check of a localized edit);
* ``VAEFeatures(vae)`` — a feature extractor for torchmetrics' FID: the VAE posterior mean, average-pooled to
  4 × 4 (64 numbers per image for a 4-channel latent): a documented stand-in for Inception, whose ImageNet features
  mean little on 64² cartoons and need a download.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dreamsampler import faces, scenes, shapes
from dreamsampler.worlds import ScenesFacesWorld

_WORLD = ScenesFacesWorld()


def prompt_parts(prompt: str, image) -> dict[str, bool]:
    """Which parts of ``prompt`` the whole image shows (see :meth:`ScenesFacesWorld.read`)."""
    return _WORLD.read(prompt, image)


def _bbox(mask: np.ndarray) -> list[int]:
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    return [int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1]


def _meets(mask: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    t, l, b, r = faces.box_px(box, mask.shape[0])
    return bool(mask[t:b, l:r].any())


def region_parts(prompt: str, image, mask) -> dict[str, bool]:
    """Which attributes ``prompt`` names inside ``mask`` (an (H, W) bool array or tensor) the image shows there."""
    mask = np.asarray(torch.as_tensor(mask).squeeze().cpu(), dtype=bool)
    if "face" in prompt.split():
        want, got = faces.parse_caption(prompt), faces.describe_face(image)
        out = {}
        if want.glasses and _meets(mask, faces.EYES_BOX):
            out["glasses"] = got.glasses
        if want.smile and _meets(mask, faces.MOUTH_BOX):
            out["smile"] = got.smile
        if not out:  # a plain "a face" region: the face is there, in the named color if any
            out["face"] = got.color is not None and (want.color is None or got.color == want.color)
        return out
    found = scenes.describe_box(image, _bbox(mask))
    want = tuple(prompt.split()[1:3])
    return {"object": found == want}


def all_true(parts: dict[str, bool]) -> float:
    return float(bool(parts) and all(parts.values()))


def structure_iou(source, edited, outside=None) -> float:
    """IoU of the non-white masks of ``source`` and ``edited``, over the image or only where ``outside`` is False."""
    ma, mb = (np.linalg.norm(shapes.as_image(x) - np.array(shapes.WHITE, np.float32), axis=-1) > faces.WHITE_DIST
              for x in (source, edited))
    if outside is not None:
        keep = ~np.asarray(torch.as_tensor(outside).squeeze().cpu(), dtype=bool)
        ma, mb = ma & keep, mb & keep
    return shapes.mask_iou(ma, mb)


class VAEFeatures(torch.nn.Module):
    """FID features: the VAE posterior mean of images in [0, 1] (torchmetrics passes uint8 unless normalize=True),
    average-pooled to ``pool`` × ``pool`` and flattened."""

    def __init__(self, vae: torch.nn.Module, pool: int = 4) -> None:
        super().__init__()
        self.vae, self.pool = vae, pool
        self.num_features = vae.config.latent_channels * pool * pool

    def forward(self, images: Tensor) -> Tensor:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        param = next(self.vae.parameters())
        with torch.no_grad():
            mean = self.vae.encode((x * 2 - 1).to(param)).latent_dist.mean
        return torch.nn.functional.adaptive_avg_pool2d(mean.float(), self.pool).flatten(1)
