"""Datasets for ``dreamsampler predict``: a JSON-lines manifest (or a folder of images), validated as a whole.

One line = one sample = one whole DreamSampler run. What a line holds depends on the task (its ``item_keys``):

- edit (``EditTask``): ``{"image", "prompt" | "regions": [{"prompt", "mask" | "box"}], "source_prompt"?}``
- inpainting (``InpaintTask``): ``{"image", "holes": [{"prompt", "mask" | "box" | "preset"}], "treg_omega"?}``,
  or one hole written flat: ``{"image", "prompt", "mask" | "box" | "preset"}``
- SVG reconstruction (``SVGReconstructTask``): ``{"prompt", "image" | "measurement", "init_svg"?}``
- text-to-SVG (``TextToSVGTask``): ``{"prompt", "init_svg"?}``

and every line may give a ``name`` (default: the image's stem, else ``line<N>``): it names the sample's outputs and
keys its noise, so it must be unique; and a ``group`` (a label: ``metrics.md`` gets one row per group, e.g. one
per case or method of a table). Relative file paths are resolved against the manifest's folder. The whole
manifest is checked before any model is loaded (``setup``), and every bad line is reported at once; what can only
be found by reading a file's content (a corrupt image) fails that sample alone at run time (``errors.jsonl``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from ..errors import InputError

#: keys whose values are files (at the top of a line, or inside its ``regions`` / ``holes``)
FILE_KEYS = ("image", "measurement", "init_svg", "mask")
NESTED_KEYS = ("regions", "holes")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _resolve(item: dict, base: Path) -> None:
    for part in [item] + [r for key in NESTED_KEYS for r in (item.get(key) or []) if isinstance(r, dict)]:
        for key in FILE_KEYS:
            if isinstance(part.get(key), str) and part[key] and not Path(part[key]).is_absolute():
                part[key] = str(base / part[key])


def parse_manifest(path: str | Path, defaults: dict | None = None) -> tuple[list[dict], list[str]]:
    """Items of a JSON-lines file (each merged over ``defaults``, paths resolved, ``line`` = its line number) and
    the problems found in its structure (``"line N: ..."``), all of them."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest file {str(path)!r} does not exist")
    items, problems = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"line {lineno}: not valid JSON ({err.msg})")
            continue
        if not isinstance(item, dict):
            problems.append(f"line {lineno}: expected a JSON object, got {line.strip()[:80]!r}")
            continue
        item = {**json.loads(json.dumps(defaults or {})), **item}
        _resolve(item, path.parent)
        item["line"] = lineno
        items.append(item)
    return items, problems


def folder_items(folder: str | Path, defaults: dict | None = None) -> list[dict]:
    """One item per image file of ``folder`` (sorted), ``{"image": file, **defaults}``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder {str(folder)!r} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"image folder {str(folder)!r} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return [{**json.loads(json.dumps(defaults or {})), "image": str(p), "line": p.name} for p in files]


def where(item: dict) -> str:
    """``line N`` of a manifest, ``file X`` of a folder."""
    return f"line {item['line']}" if isinstance(item["line"], int) else f"file {item['line']}"


def name_items(items: list[dict]) -> list[str]:
    """Give every item its ``name`` (default: image stem, else ``line<N>``); the duplicates found."""
    problems, seen = [], {}
    for item in items:
        if "name" not in item:
            item["name"] = Path(item["image"]).stem if isinstance(item.get("image"), str) and item["image"] \
                else f"line{item['line']}"
        name = item["name"]
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            problems.append(f"{where(item)}: `name` must be a file-name-safe string, got {name!r}")
        elif name in seen:
            problems.append(f"{where(item)}: duplicate name {name!r} (also {seen[name]}): names the "
                            "outputs, so it must be unique")
        else:
            seen[name] = where(item)
    return problems


def read_manifest(path: str | Path, defaults: dict | None = None) -> list[dict]:
    """Items of a manifest, named; raises one ``InputError`` listing every structural problem."""
    items, problems = parse_manifest(path, defaults)
    problems += name_items(items)
    if problems:
        raise manifest_error(path, problems)
    return items


def manifest_error(source: str | Path, problems: list[str]) -> InputError:
    """One error listing every problem, in line order."""
    def line_of(problem: str) -> tuple:
        head = problem.split(":", 1)[0].removeprefix("line ")
        return (0, int(head), "") if head.isdigit() else (1, 0, head)
    problems = sorted(problems, key=line_of)
    listed = "\n  ".join(problems[:50]) + (f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else "")
    return InputError(f"manifest {str(source)!r}: {len(problems)} problem(s), nothing was run:\n  {listed}")


class Manifest(L.LightningDataModule):
    """``predict`` data: the lines of ``manifest`` (or the images of ``folder``), each merged over ``defaults``
    (``prompt`` is a shortcut for ``defaults: {prompt: ...}``); ``batch_size`` samples advance together per predict
    step (one UNet call for all of them). With DDP, Lightning's sampler gives each rank disjoint samples. Samples
    whose ``<run dir>/predictions/<name>.png`` exists are skipped (``skip_done``), so an interrupted dataset run
    is finished by running the same command again."""

    def __init__(self, manifest: str | None = None, folder: str | None = None, prompt: str | None = None,
                 defaults: dict[str, Any] | None = None, batch_size: int = 1, skip_done: bool = True) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if (manifest is None) == (folder is None):
            raise InputError("give exactly one of `manifest` (a JSON-lines file) or `folder` (a folder of images)")
        defaults = dict(defaults or {})
        if prompt is not None:
            defaults["prompt"] = prompt
        self.manifest, self.folder, self.defaults = manifest, folder, defaults
        self.batch_size, self.skip_done = batch_size, skip_done
        self.source = manifest if manifest is not None else folder
        self.items: list[dict] = []
        self.pending: list[dict] = []

    def read(self) -> list[dict]:
        """Read the items (named, paths resolved) and keep the structural problems for ``setup`` to report."""
        if self.manifest is not None:
            self.items, self._problems = parse_manifest(self.manifest, self.defaults)
        else:
            self.items, self._problems = folder_items(self.folder, self.defaults), []
        self._problems += name_items(self.items)
        return self.items

    def check(self, task: Any = None) -> list[dict]:
        """Read the data and check every line against ``task`` (its ``check_item``); one error listing every
        problem, or the items."""
        self.read()
        problems = list(self._problems)
        if not self.items and not problems:      # (an empty folder is refused by folder_items)
            raise InputError(f"manifest {str(self.source)!r} holds no samples: nothing to predict (expected one "
                             "JSON object per line)")
        if task is not None and hasattr(task, "check_item"):
            for item in self.items:
                problems += [f"{where(item)}: {p}" for p in task.check_item(
                    {k: v for k, v in item.items() if k != "line"})]
        if problems:
            raise manifest_error(self.source, problems)
        return self.items

    def setup(self, stage: str) -> None:
        """Check the whole dataset before the task's ``setup`` loads any model."""
        self.check(self.trainer.lightning_module if self.trainer is not None else None)

    def predict_dataloader(self) -> DataLoader:
        items = [{k: v for k, v in it.items() if k != "line"} for it in self.items]
        if self.skip_done and self.trainer is not None:
            done = Path(self.trainer.default_root_dir) / "predictions"
            items = [it for it in items if not (done / f"{it['name']}.png").exists()]
        self.pending = items
        return DataLoader(items, batch_size=self.batch_size, shuffle=False, collate_fn=list)


#: the name configs written before inpainting and SVG manifests existed use
EditManifest = Manifest
