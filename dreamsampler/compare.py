"""``dreamsampler compare -c config.yaml``: several methods over one dataset, side by side.

The config lists ``methods`` (a name → a model config, as ``model`` of ``dreamsampler predict``) and the ``data``,
``evaluate``, ``trainer`` and ``threads`` every method shares. Each method is one ``dreamsampler predict`` run in
``<trainer.default_root_dir>/<name>`` (batched, finished samples skipped, a failing sample isolated, DDP as
``predict``), scored by the same metrics, in the order listed (``{root}`` in a method's settings is the root folder:
a pipeline stage can read an earlier method's predictions); then the comparison is written to the root:

- ``compare.csv``: one row per (method, group, metric): mean, 95 % bootstrap interval, n;
- ``compare.md``: a row per method (mean [95 % interval] per metric, samples/s of this invocation), then per group;
- ``compare.html``: a gallery, one row per sample — source or measurement | each method's result — with each
  result's metric values under it (open it in a browser; paths are relative, the folder can be moved whole).
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml

from .errors import InputError
from .io.files import write_text

SHARED_KEYS = ("data", "evaluate", "trainer", "threads", "checkpoint_every")
_NAME = re.compile(r"^[A-Za-z0-9][\w.+-]*$")


def read_config(path: Path) -> dict:
    """The compare config, checked: ``methods`` (name → ``{class_path, init_args}``), ``data``, the shared keys."""
    if not path.is_file():
        raise InputError(f"compare config {str(path)!r} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"compare config {str(path)!r} is not valid YAML: {err}") from err
    if not isinstance(cfg, dict):
        raise InputError(f"compare config {str(path)!r}: expected a mapping at the top")
    unknown = sorted(set(cfg) - {"methods", *SHARED_KEYS})
    if unknown:
        raise InputError(f"compare config {str(path)!r}: unknown key(s) {unknown}; expected `methods` and "
                         f"{list(SHARED_KEYS)}")
    methods = cfg.get("methods")
    if not isinstance(methods, dict) or not methods:
        raise InputError(f"compare config {str(path)!r}: `methods` must map method names to model configs")
    for name, model in methods.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise InputError(f"compare config: method name {name!r} must be letters, digits, '.', '_', '+', '-' "
                             "(it names the method's run folder)")
        if not isinstance(model, dict) or "class_path" not in model:
            raise InputError(f"compare config: method {name!r} needs `class_path` (a task class, e.g. "
                             "dreamsampler.tasks.DDSEditTask) and optional `init_args`")
    if not isinstance(cfg.get("data"), dict):
        raise InputError(f"compare config {str(path)!r}: `data` (the manifest every method runs on) is required")
    return cfg


def run_methods(cfg: dict, root: Path) -> tuple[dict[str, dict], list[dict], bool]:
    """One ``predict`` per method in ``root/<name>``; returns per method ``{"seconds", "samples", "failed"}``, the
    manifest's items and whether this process is rank 0."""
    from .callbacks import WritePredictions
    from .cli import DreamSamplerCLI, input_error

    # each method is one in-process LightningCLI; its "args and sys.argv both given" notice is about this, not an error
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    stats, items, rank_zero = {}, [], True
    for name, model in cfg["methods"].items():
        run_cfg = {k: cfg[k] for k in SHARED_KEYS if k in cfg}
        run_cfg["trainer"] = {**(cfg.get("trainer") or {}), "default_root_dir": str(root / name)}
        run_cfg["model"] = with_root(model, root)
        (root / name).mkdir(parents=True, exist_ok=True)
        config_file = root / name / "compare_method.yaml"
        write_text(yaml.safe_dump(run_cfg, sort_keys=False), config_file, "method config")
        done_before = _done(root / name)
        start = time.perf_counter()
        try:
            cli = DreamSamplerCLI(args=["predict", "--config", str(config_file)])
        except SystemExit as err:             # jsonargparse reports a bad config by exiting
            raise InputError(f"method {name!r}: its config is not valid (see the message above; written to "
                             f"{str(config_file)!r})") from err
        except Exception as err:
            cause = input_error(err)
            if cause is None:
                raise
            raise InputError(f"method {name!r}: {cause}") from err
        seconds = time.perf_counter() - start
        writer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, WritePredictions))
        stats[name] = {"seconds": seconds, "samples": len(_done(root / name) - done_before),
                       "failed": int(getattr(writer, "failed", 0))}
        items = [dict(it) for it in cli.datamodule.items]
        rank_zero = cli.trainer.is_global_zero
    return stats, items, rank_zero


def with_root(value: Any, root: Path) -> Any:
    """``{root}`` in any string of a method's config → the comparison's folder (a pipeline stage reads another
    method's predictions, e.g. ``raster_dir: "{root}/DPS-raster/predictions"``)."""
    if isinstance(value, dict):
        return {k: with_root(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [with_root(v, root) for v in value]
    return value.replace("{root}", str(root)) if isinstance(value, str) else value


def _done(run: Path) -> set[str]:
    """Names of the samples a run has finished (its ranks' ``done`` files)."""
    from .callbacks.outputs import _jsonl

    return {row["name"] for path in (run / "predictions").glob("done.rank*.jsonl") for row in _jsonl(path)}


def _rows(run: Path) -> list[dict]:
    """The per-sample metrics a method's run wrote (``metrics.csv``), values as floats."""
    path = run / "metrics.csv"
    if not path.is_file():
        return []
    rows = []
    for r in csv.DictReader(io.StringIO(path.read_text())):
        rows.append({k: (v if k in ("name", "group") else float(v)) for k, v in r.items() if v not in (None, "")})
    return rows


def _sets(run: Path) -> dict[str, float]:
    """The set-level metrics of a run (FID overall and per group, ``metrics_sets.json``)."""
    path = run / "metrics_sets.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def summary(per_method: dict[str, list[dict]], sets: dict[str, dict] | None = None) -> list[dict]:
    """compare.csv rows: per method, per group ("" = all samples), per metric: mean, 95 % interval, n; set-level
    metrics (FID) as one value (no interval)."""
    from .evaluate import _finite
    from .metrics import mean_ci

    out = []
    for method, rows in per_method.items():
        groups = [""] + list(dict.fromkeys(r["group"] for r in rows if r.get("group")))
        for g in groups:
            sub = [r for r in rows if not g or r.get("group") == g]
            for metric in dict.fromkeys(k for r in sub for k in r if k not in ("name", "group")):
                values = _finite(sub, metric)
                if not values:
                    continue
                mean, low, high = mean_ci(torch.tensor(values, dtype=torch.float64))
                out.append({"method": method, "group": g, "metric": metric, "mean": mean, "ci_low": low,
                            "ci_high": high, "n": len(values)})
        for key, value in (sets or {}).get(method, {}).items():          # "fid", "fid [group]"
            metric, _, group = key.partition(" [")
            group = group.rstrip("]")
            out.append({"method": method, "group": group, "metric": metric, "mean": value, "ci_low": "",
                        "ci_high": "", "n": sum(1 for r in rows if not group or r.get("group") == group)})
    return out


def _cell(c: dict | None) -> str:
    """``mean [low, high]`` of a summary row; a set-level value alone; ``–`` when missing."""
    if c is None:
        return "–"
    if c["ci_low"] == "":
        return f"{c['mean']:.4f}"
    return f"{c['mean']:.4f} [{c['ci_low']:.4f}, {c['ci_high']:.4f}]"


def markdown(table: list[dict], stats: dict[str, dict], title: str) -> str:
    """compare.md: a row per method (all samples), then a table per group."""
    metrics = list(dict.fromkeys(r["metric"] for r in table))
    lines = [f"# {title}", ""]
    for g in dict.fromkeys(r["group"] for r in table):
        if g:
            lines += ["", f"## {g}", ""]
        head = ["method", *metrics] + (["samples/s"] if not g else [])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method in stats:
            cells = {r["metric"]: r for r in table if r["method"] == method and r["group"] == g}
            row = [method] + [_cell(cells.get(m)) for m in metrics]
            if not g:
                s = stats[method]
                row.append(f"{s['samples'] / s['seconds']:.3f}" if s["samples"] else "– (all done before)")
            lines.append("| " + " | ".join(row) + " |")
    n = {m: s["samples"] for m, s in stats.items()}
    lines += ["", f"samples/s: samples computed by this invocation / its wall time per method (incl. loading); {n}."]
    return "\n".join(lines) + "\n"


def gallery(root: Path, items: list[dict], per_method: dict[str, list[dict]], table: list[dict], title: str) -> str:
    """compare.html: the summary table, then one row per sample — source | each method's result + its metrics."""
    esc = html.escape
    rel = lambda p: esc(Path(os.path.relpath(p, root)).as_posix(), quote=True)  # noqa: E731
    metrics = list(dict.fromkeys(r["metric"] for r in table if not r["group"]))
    by_name = {m: {r["name"]: r for r in rows} for m, rows in per_method.items()}
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{esc(title)}</title>",
           "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
           "padding:4px;vertical-align:top;font-size:12px}img{width:128px;height:128px;image-rendering:pixelated;"
           "display:block}.m{white-space:pre;font-family:monospace}</style></head><body>", f"<h1>{esc(title)}</h1>",
           "<table><tr><th>method</th>" + "".join(f"<th>{esc(m)}</th>" for m in metrics) + "</tr>"]
    for method in per_method:
        cells = {r["metric"]: r for r in table if r["method"] == method and not r["group"]}
        out.append(f"<tr><td>{esc(method)}</td>" + "".join(f"<td>{_cell(cells.get(m))}</td>" for m in metrics)
                   + "</tr>")
    measured = {item["name"]: next((p for m in per_method if (p := root / m / "predictions" /
                                                            f"{item['name']}_measurement.png").is_file()), None)
                for item in items}                      # what an inverse-problem method saw, when one wrote it
    with_y = any(measured.values())
    with_src = any(item.get("measurement") or item.get("image") for item in items)   # text-to-X has none
    out += ["</table>", "<h2>Samples</h2>", "<table><tr><th>sample</th>" + "<th>source / truth</th>" * with_src
            + "<th>measurement</th>" * with_y + "".join(f"<th>{esc(m)}</th>" for m in per_method) + "</tr>"]
    for item in items:
        name = item["name"]
        text = item.get("prompt") or "; ".join(p.get("prompt", "") for k in ("regions", "holes")
                                               for p in item.get(k) or [] if isinstance(p, dict))
        source = item.get("measurement") or item.get("image")
        row = [f"<td><b>{esc(name)}</b><br>{esc(str(item.get('group') or ''))}<br><i>{esc(text)}</i></td>"]
        if with_src:
            row.append(f"<td><img src=\"{rel(source)}\" alt=\"source\"></td>" if source else "<td>–</td>")
        if with_y:
            y = measured[name]
            row.append(f"<td><img src=\"{rel(y)}\" alt=\"measurement\"></td>" if y else "<td>–</td>")
        for method in per_method:
            png = root / method / "predictions" / f"{name}.png"
            values = by_name[method].get(name, {})
            meta = "\n".join(f"{k} {v:.3f}" for k, v in values.items() if k not in ("name", "group"))
            row.append(f"<td><img src=\"{rel(png)}\" alt=\"{esc(method, quote=True)}\"><div class=\"m\">{esc(meta)}"
                       "</div></td>" if png.is_file() else "<td>failed (see predictions/errors.jsonl)</td>")
        out.append("<tr>" + "".join(row) + "</tr>")
    out += ["</table>", "<p id=\"status\"></p>",
            "<script>window.addEventListener('load',()=>{const im=[...document.images];const ok=im.filter(i=>"
            "i.complete&&i.naturalWidth>0).length;const s=document.getElementById('status');s.textContent="
            "ok+'/'+im.length+' images loaded';s.dataset.loaded=ok+'/'+im.length;});</script>", "</body></html>"]
    return "\n".join(out) + "\n"


def compare(config: Path) -> tuple[Path, int]:
    """Run every method of ``config`` and write compare.csv / compare.md / compare.html; returns the root folder
    and the number of samples that failed (over all methods)."""
    cfg = read_config(config)
    root = Path((cfg.get("trainer") or {}).get("default_root_dir") or "runs/compare")
    stats, items, rank_zero = run_methods(cfg, root)
    failed = sum(s["failed"] for s in stats.values())
    if not rank_zero:
        return root, failed
    per_method = {m: _rows(root / m) for m in cfg["methods"]}
    table = summary(per_method, {m: _sets(root / m) for m in cfg["methods"]})
    title = f"{len(cfg['methods'])} methods over {len(items)} samples ({config.name})"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["method", "group", "metric", "mean", "ci_low", "ci_high", "n"])
    writer.writeheader()
    for r in table:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(buf.getvalue(), root / "compare.csv", "comparison")
    write_text(markdown(table, stats, title), root / "compare.md", "comparison")
    write_text(gallery(root, items, per_method, table, title), root / "compare.html", "comparison")
    return root, failed


def compare_command(argv: list[str]) -> int:
    """``dreamsampler compare -c config.yaml``: run several methods over one manifest and compare them; returns the
    number of failed samples (the exit status, as ``predict``)."""
    import argparse

    ap = argparse.ArgumentParser(prog="dreamsampler compare", description=compare_command.__doc__)
    ap.add_argument("-c", "--config", type=Path, required=True,
                    help="YAML with `methods` (name: {class_path, init_args}) and the shared data/evaluate/trainer")
    args = ap.parse_args(argv)
    root, failed = compare(args.config)
    if (root / "compare.md").is_file():
        md = (root / "compare.md").read_text()
        print(f"dreamsampler: wrote {root / 'compare.md'}, {root / 'compare.html'}\n{md}", flush=True)
    return failed
