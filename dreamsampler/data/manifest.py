"""Datasets of edits for ``dreamsampler predict``: a JSON-lines manifest, finished samples skipped."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from ..errors import InputError


def read_manifest(path: str | Path) -> list[dict]:
    """Items ``{"name"?, "image"?, "prompt" | "regions"}`` of a JSON-lines file (the task checks what it needs);
    relative paths are resolved against the manifest's folder, ``name`` defaults to the image's stem (else
    ``line<N>``) and must be unique: it names the sample's outputs and keys its noise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest file {str(path)!r} does not exist")
    items, names = [], set()
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"manifest {str(path)!r} line {lineno}: not valid JSON ({err.msg})") from err
        if not isinstance(item, dict) or not ({"prompt", "regions"} & set(item)):
            raise InputError(f"manifest {str(path)!r} line {lineno}: expected an object with `prompt` (or "
                             f"`regions`) and, for edits, `image`; got {line.strip()[:80]!r}")
        if item.get("image"):
            image = Path(item["image"])
            item["image"] = str(image if image.is_absolute() else path.parent / image)
            item.setdefault("name", image.stem)
        for region in item.get("regions") or []:
            if region.get("mask") and not Path(region["mask"]).is_absolute():
                region["mask"] = str(path.parent / region["mask"])
        item.setdefault("name", f"line{lineno}")
        if item["name"] in names:
            raise InputError(f"manifest {str(path)!r} line {lineno}: duplicate name {item['name']!r}")
        names.add(item["name"])
        items.append(item)
    return items


class EditManifest(L.LightningDataModule):
    """``predict`` data: one item per manifest line, ``batch_size`` samples advanced together per predict step
    (one UNet call for all of them); with DDP, Lightning's sampler gives each rank disjoint samples. Samples whose
    ``<run dir>/predictions/<name>.png`` exists are skipped, so an interrupted dataset run is restarted by running
    the same command again."""

    def __init__(self, manifest: str, batch_size: int = 1, skip_done: bool = True) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.manifest, self.batch_size, self.skip_done = manifest, batch_size, skip_done
        self.items = read_manifest(manifest)                # validate early, before any model is loaded

    def predict_dataloader(self) -> DataLoader:
        items = self.items
        if self.skip_done and self.trainer is not None:
            done = Path(self.trainer.default_root_dir) / "predictions"
            items = [it for it in items if not (done / f"{it['name']}.png").exists()]
        return DataLoader(items, batch_size=self.batch_size, shuffle=False, collate_fn=list)
