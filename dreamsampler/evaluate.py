"""Metrics of a dataset run, computed from its written files: ``dreamsampler evaluate <run dir>``.

``predict`` writes ``<run dir>/predictions/<name>.png`` per sample and saves its config as ``<run dir>/config.yaml``;
this module reads both (the task and manifest from the config, each sample's inputs through the task's
``eval_inputs``) and writes ``metrics.csv`` (one row per sample), ``metrics.md`` (mean and a 95 % bootstrap
interval per metric, set-level FID) and TensorBoard scalars ``eval/<metric>``. It can run again at any time
without re-running the samples, and ``predict`` runs it at its end when ``evaluate.metrics`` is set.

Per-sample metrics (each needs the inputs or models named):
- ``psnr``, ``ssim``, ``lpips`` (``lpips: true``, needs torchvision): against the ground truth (inpainting,
  SVG reconstruction); ``known_psnr``: inpainting, the known pixels only.
- ``clip_score`` (torchmetrics CLIPScore with the prompt), ``clip_accuracy`` (editing: closer to the target than
  to ``source_prompt``): a CLIP model (``clip``).
- ``dino_structure``: editing, DINO-ViT key self-similarity distance to the source (``dino``).
- shapes world (``backbone: shapes``, no download): ``color_acc`` / ``shape_acc`` (the checker reads the prompt's
  color / shape; for inpainting ``hole_color_acc``, inside each hole) and ``structure_iou`` (editing: the shape
  mask of the source vs the edit).
- scenes-and-faces world (``backbone: scenes-faces``, :mod:`dreamsampler.metrics.world_metrics`): ``attr_acc``
  (every part of the prompt shown: the CLIP-accuracy analog), ``region_acc`` / ``hole_attr_acc`` (share of the edit
  regions / holes showing what their own prompt names there), ``structure_iou`` (editing: foreground IoU with the
  source, the DINO-distance analog) and ``kept_iou`` (a localized edit: the same outside its regions).
Set-level: ``fid`` (``fid_features``: InceptionV3 layer, needs torch-fidelity; or ``vae``: the backbone's own VAE
encoder features, see ``world_metrics.VAEFeatures``) of the results against the sources (editing) or the ground
truths. Samples with a ``group`` get one row per group in ``metrics.md`` (the table's rows), after the overall one.
"""

from __future__ import annotations

import csv
import json
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from . import shapes
from .worlds import WORLDS, ScenesFacesWorld
from .errors import InputError
from .io.files import write_text
from .io.images import load_image


@dataclass
class EvalConfig:
    """What ``evaluate`` computes, at the end of ``predict`` (when ``metrics`` is set) or on its own.

    Args:
        metrics: metric names (see ``dreamsampler.evaluate``), or ``["auto"]``: every per-sample metric whose
            inputs and models are available, plus ``fid`` if ``fid_features`` is set. Empty: no evaluation.
        clip: CLIP model for ``clip_score`` / ``clip_accuracy`` (hub id or local folder; the paper's protocol
            uses ``openai/clip-vit-large-patch14``).
        dino: DINO-ViT for ``dino_structure`` (hub id or folder; ``facebook/dino-vitb8``).
        fid_features: InceptionV3 feature layer for ``fid`` (64, 192, 768 or 2048; needs torch-fidelity), or
            ``"vae"``: the backbone's VAE encoder (posterior mean pooled to 4 × 4; no download, a stand-in).
        lpips: also compute LPIPS (AlexNet; needs torchvision and its weights).
        device: where the feature models run.
    """

    metrics: list[str] | None = None
    clip: str | None = None
    dino: str | None = None
    fid_features: int | str | None = None
    lpips: bool = False
    device: str = "cpu"


def parse_shape_prompt(prompt: str | None) -> tuple[str | None, str | None]:
    """The first palette color and shape word of a shapes-world prompt (``"a blue circle ..."``)."""
    words = re.findall(r"[a-z]+", (prompt or "").lower())
    color = next((w for w in words if w in shapes.COLORS), None)
    shape = next((w for w in words if w in shapes.SHAPES), None)
    return color, shape


def _known_psnr(pred: Tensor, inputs: dict) -> float:
    known = torch.ones_like(pred[:, :1], dtype=torch.bool)
    for mask, _ in inputs["holes"]:
        known &= ~mask
    mse = ((pred - inputs["truth"]) ** 2 * known).sum() / (3 * known.sum())
    return float(10 * torch.log10(1 / mse)) if mse > 0 else math.inf


def _hole_color_acc(pred: Tensor, inputs: dict) -> float:
    """Share of the holes whose bounding-box crop the checker reads as the hole prompt's color."""
    hits = []
    for mask, prompt in inputs["holes"]:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        crop = pred[0][:, int(rows.min()):int(rows.max()) + 1, int(cols.min()):int(cols.max()) + 1]
        hits.append(shapes.dominant_color(crop) == parse_shape_prompt(prompt)[0])
    return sum(hits) / len(hits)


_WORLD = ScenesFacesWorld()


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _union(parts: list) -> Tensor:
    return torch.stack([m for m, _ in parts]).any(0)


def _fid_feature(kind: int | str, backbone_source: str | None) -> int | torch.nn.Module:
    """The FID feature extractor: an InceptionV3 width, or ``"vae"``: the backbone's VAE encoder."""
    if kind != "vae":
        return kind
    from diffusers import AutoencoderKL

    from .backbones import SHIPPED_PRIORS
    from .metrics.world_metrics import VAEFeatures

    folder = SHIPPED_PRIORS.get(backbone_source, backbone_source)
    try:
        vae = AutoencoderKL.from_pretrained(str(folder), subfolder="vae", low_cpu_mem_usage=False)
    except (OSError, ValueError) as err:
        raise InputError(f"fid_features: vae needs a backbone with a diffusers `vae/` folder; {backbone_source!r}: "
                         f"{err}") from err
    return VAEFeatures(vae.eval().requires_grad_(False))


class Evaluator:
    """Per-sample metric functions ``(pred (1, 3, S, S), inputs) -> float``, the ones a config asks for."""

    def __init__(self, cfg: EvalConfig, world: str | None) -> None:
        self.cfg, self.world = cfg, world
        self.shapes_world = world == "shapes"
        self._clip = self._dino = None

    def clip(self):
        if self._clip is None:
            from .metrics import load_clip
            self._clip = load_clip(self.cfg.clip, device=self.cfg.device)
        return self._clip

    def dino(self):
        if self._dino is None:
            from .metrics import load_dino
            self._dino = load_dino(self.cfg.dino, device=self.cfg.device)
        return self._dino

    def available(self, inputs: dict) -> list[str]:
        """The metrics this sample's inputs and the configured models allow."""
        has = lambda k: inputs.get(k) is not None
        names = []
        if has("truth"):
            names += ["psnr", "ssim"] + (["lpips"] if self.cfg.lpips else [])
        if has("holes") and has("truth"):
            names.append("known_psnr")
        if self.cfg.clip and has("prompt"):
            names.append("clip_score")
            if has("source_prompt"):
                names.append("clip_accuracy")
        if self.cfg.dino and has("source"):
            names.append("dino_structure")
        if self.shapes_world:
            color, shape = parse_shape_prompt(inputs.get("prompt"))
            if has("holes"):
                names.append("hole_color_acc")
            else:
                names += (["color_acc"] if color else []) + (["shape_acc"] if shape else [])
            if has("source"):
                names.append("structure_iou")
        if self.world == "scenes-faces":
            parts = inputs.get("holes") or inputs.get("regions") or [(None, inputs.get("prompt"))]
            if all(_WORLD.parses(p) for _, p in parts):     # the checkers read only the world's captions
                names.append("hole_attr_acc" if has("holes") else "region_acc" if has("regions") else "attr_acc")
            if has("source"):
                kept = has("regions") and not bool(_union(inputs["regions"]).all())   # something left outside
                names += ["structure_iou"] + (["kept_iou"] if kept else [])
        return names

    def functions(self) -> dict[str, Callable[[Tensor, dict], float]]:
        from . import metrics as m
        from .metrics import world_metrics as w

        ev = self
        world = {
            "attr_acc": lambda p, i: w.all_true(w.prompt_parts(i["prompt"], p[0])),
            "region_acc": lambda p, i: _mean(w.all_true(w.region_parts(t, p[0], k)) for k, t in i["regions"]),
            "hole_attr_acc": lambda p, i: _mean(w.all_true(w.region_parts(t, p[0], k)) for k, t in i["holes"]),
            "structure_iou": lambda p, i: w.structure_iou(i["source"][0], p[0]),
            "kept_iou": lambda p, i: w.structure_iou(i["source"][0], p[0], outside=_union(i["regions"])),
        } if self.world == "scenes-faces" else {}
        return {
            "psnr": lambda p, i: float(m.psnr(p, i["truth"])[0]),
            "ssim": lambda p, i: float(m.ssim(p, i["truth"])[0]),
            "lpips": lambda p, i: float(m.lpips(p, i["truth"])[0]),
            "known_psnr": _known_psnr,
            "clip_score": lambda p, i: float(m.clip_similarity(p, [i["prompt"]], ev.clip())[0]),
            "clip_accuracy": lambda p, i: float(m.clip_accuracy(p, [i["prompt"]], [i["source_prompt"]],
                                                                ev.clip())[0]),
            "dino_structure": lambda p, i: float(m.dino_structure_distance(i["source"], p, ev.dino())[0]),
            "color_acc": lambda p, i: float(shapes.dominant_color(p[0]) == parse_shape_prompt(i["prompt"])[0]),
            "shape_acc": lambda p, i: float(shapes.classify_shape(p[0]) == parse_shape_prompt(i["prompt"])[1]),
            "hole_color_acc": _hole_color_acc,
            "structure_iou": lambda p, i: float(m.structure_iou(i["source"], p)[0]),
        } | world


def evaluate_samples(task: Any, items: list[dict], predictions: Path, cfg: EvalConfig) -> tuple[list[dict], dict]:
    """Rows ``{"name", <metric>: value}`` for every item with a written result, and the set-level metrics."""
    wanted = list(cfg.metrics or [])
    source = getattr(task, "backbone_source", None)
    evaluator = Evaluator(cfg, world=source if source in WORLDS else None)
    functions = evaluator.functions()
    unknown = sorted(set(wanted) - set(functions) - {"auto", "fid"})
    if unknown:
        raise InputError(f"unknown metric(s) {unknown}; known: {sorted(functions) + ['fid', 'auto']}")
    rows, preds, refs = [], [], []
    for item in items:
        path = predictions / f"{item['name']}.png"
        if not path.is_file():
            continue
        pred = load_image(path, task.size)
        inputs = task.eval_inputs(item)
        names = evaluator.available(inputs)
        if "auto" not in wanted:
            missing = [n for n in wanted if n != "fid" and n not in names]
            if missing:
                raise InputError(f"metric(s) {missing} cannot be computed for sample {item['name']!r}: they need "
                                 "inputs or models this run does not have (see `dreamsampler.evaluate`; e.g. "
                                 "`evaluate.clip` for clip_score, a `source_prompt` for clip_accuracy)")
            names = [n for n in wanted if n != "fid"]
        group = {"group": str(item["group"])} if item.get("group") is not None else {}
        rows.append({"name": item["name"], **group, **{n: functions[n](pred, inputs) for n in names}})
        preds.append(pred)
        ref = inputs.get("truth", inputs.get("source"))
        refs.append(ref)
    sets = {}
    if ("fid" in wanted or ("auto" in wanted and cfg.fid_features)) and rows:
        if not cfg.fid_features:
            raise InputError("metric `fid` needs `evaluate.fid_features` (InceptionV3 layer, e.g. 2048)")
        if any(r is None for r in refs):
            raise InputError("metric `fid` needs a reference image per sample (source or ground truth)")
        from .metrics import fid
        feature = _fid_feature(cfg.fid_features, source)
        sets["fid"] = float(fid(torch.cat(refs), torch.cat(preds), feature=feature))
        groups = [r.get("group") for r in rows]
        for g in dict.fromkeys(x for x in groups if x is not None):
            idx = [k for k, x in enumerate(groups) if x == g]
            if len(idx) >= 2:
                sets[f"fid [{g}]"] = float(fid(torch.cat([refs[k] for k in idx]), torch.cat([preds[k] for k in idx]),
                                               feature=feature))
    return rows, sets


def _metric_names(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r if k not in ("name", "group")))


def _finite(rows: list[dict], n: str) -> list[float]:
    return [r[n] for r in rows if n in r and math.isfinite(r[n])]


def group_table(rows: list[dict], sets: dict) -> list[str]:
    """One row per ``group`` (in order of appearance): its sample count, each metric's mean, its set-level FID."""
    groups = list(dict.fromkeys(r["group"] for r in rows if r.get("group") is not None))
    if not groups:
        return []
    names = _metric_names(rows)
    fid = "fid" in sets
    lines = ["", "## By group", "", "| group | n | " + " | ".join(names + ["fid"] * fid) + " |",
             "|---|---|" + "---|" * (len(names) + fid)]
    for g in groups:
        sub = [r for r in rows if r.get("group") == g]
        cells = [f"{sum(v) / len(v):.4f}" if (v := _finite(sub, n)) else "–" for n in names]
        cells += [f"{sets[f'fid [{g}]']:.4f}" if f"fid [{g}]" in sets else "–"] * fid
        lines.append(f"| {g} | {len(sub)} | " + " | ".join(cells) + " |")
    return lines


def metric_table(rows: list[dict], sets: dict, title: str) -> str:
    """``metrics.md``: per metric the mean, a 95 % percentile-bootstrap interval and the sample count; then one row
    per group when the samples have groups."""
    from .metrics import mean_ci

    names = _metric_names(rows)
    lines = [f"# {title}", "", f"{len(rows)} samples.", "", "| metric | mean | 95 % interval | n |", "|---|---|---|---|"]
    for n in names:
        values = _finite(rows, n)
        skipped = sum(1 for r in rows if n in r) - len(values)
        if not values:
            lines.append(f"| {n} | – | – | 0 |")
            continue
        mean, low, high = mean_ci(torch.tensor(values, dtype=torch.float64))
        note = f" ({skipped} infinite left out)" if skipped else ""
        lines.append(f"| {n} | {mean:.4f} | [{low:.4f}, {high:.4f}] | {len(values)}{note} |")
    if "fid" in sets:
        lines.append(f"| fid (set) | {sets['fid']:.4f} | – | {len(rows)} |")
    return "\n".join(lines + group_table(rows, sets)) + "\n"


def write_metrics(run: Path, rows: list[dict], sets: dict, title: str) -> None:
    names = _metric_names(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["name", *(["group"] * any("group" in r for r in rows)), *names])
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(buf.getvalue(), run / "metrics.csv", "metrics")
    write_text(metric_table(rows, sets, title), run / "metrics.md", "metrics")
    write_text(json.dumps(sets, indent=1), run / "metrics_sets.json", "metrics")     # set-level (FID) values
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run)) as tb:
        for n in names:
            values = _finite(rows, n)
            if values:
                tb.add_scalar(f"eval/{n}", sum(values) / len(values), len(rows))
        for n, v in sets.items():      # "fid [group]" -> eval/fid/group
            tb.add_scalar("eval/" + re.sub(r"[^\w/.-]+", "_", n.replace(" [", "/").rstrip("]")), v, len(rows))


def evaluate_run(run: Path, task: Any, items: list[dict], cfg: EvalConfig) -> str:
    """Compute and write the metrics of a run directory; returns the ``metrics.md`` table."""
    rows, sets = evaluate_samples(task, items, run / "predictions", cfg)
    title = f"{type(task).__name__} over {len(items)} samples ({run})"
    write_metrics(run, rows, sets, title)
    return metric_table(rows, sets, title)
