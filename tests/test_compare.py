"""``dreamsampler compare``: the demo (six editing methods on the shipped scenes-and-faces prior) as one run shared
by the table's quality bars, its files, the browser check and the rerun; and the config's errors."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli
from dreamsampler.compare import read_config
from dreamsampler.errors import InputError
from test_raster_browser import _browser

DEMO = REPO / "configs/compare/demo_edit.yaml"
DEMO_SVG = REPO / "configs/compare/demo_svg.yaml"
METHODS = ["DreamSampler", "DDS", "PDS", "SDS", "DDIM+word-swap", "SDEdit+word-swap"]


def run_demo(tmp_path_factory, demo: Path):
    """A demo config, run whole into a temporary folder: (run folder, config, process)."""
    root = tmp_path_factory.mktemp("compare")
    cfg = yaml.safe_load(demo.read_text())
    cfg["trainer"]["default_root_dir"] = str(root / "run")
    cfg["data"]["init_args"]["manifest"] = str(REPO / cfg["data"]["init_args"]["manifest"])
    config = root / demo.name
    config.write_text(yaml.safe_dump(cfg))
    proc = run_cli("compare", "-c", str(config), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run", config, proc


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The editing demo, run whole once (about 3 minutes on 2 cores)."""
    return run_demo(tmp_path_factory, DEMO)


@pytest.fixture(scope="module")
def demo_svg_run(tmp_path_factory):
    """The SVG-reconstruction demo, run whole once (about 2.5 minutes on 2 cores)."""
    return run_demo(tmp_path_factory, DEMO_SVG)


def table(run: Path) -> dict[tuple[str, str, str], float]:
    rows = csv.DictReader((run / "compare.csv").open())
    return {(r["method"], r["group"], r["metric"]): float(r["mean"]) for r in rows}


# measured (6 edits, seed 0): attr_acc 1.00 / 0.67 / 0.83 / 0.67 / 0.67 / 1.00; structure IoU 0.923 / 0.894 / 0.940 /
# 0.898 / 0.791 / 0.865 (DreamSampler, DDS, PDS, SDS, DDIM + word swap, SDEdit + word swap)
BARS = {"DreamSampler": (0.83, 0.88), "DDS": (0.5, 0.84), "PDS": (0.5, 0.88), "SDS": (0.5, 0.84),
        "DDIM+word-swap": (0.5, 0.7), "SDEdit+word-swap": (0.66, 0.8)}


def test_demo_edit_table(demo_run):
    """The editing table on the shipped prior: every method edits (attribute accuracy) and keeps the layout
    (structure IoU); DreamSampler is at least as accurate as every baseline and keeps the structure better than the
    two sampling baselines."""
    got = table(demo_run[0])
    for m in METHODS:
        print(f"{m:18s} attr_acc {got[m, '', 'attr_acc']:.3f}  structure_iou {got[m, '', 'structure_iou']:.3f}  "
              f"fid(vae) {got[m, '', 'fid']:.3f}")
    for m, (acc, iou) in BARS.items():
        assert got[m, "", "attr_acc"] >= acc, (m, got[m, "", "attr_acc"])
        assert got[m, "", "structure_iou"] >= iou, (m, got[m, "", "structure_iou"])
    assert all(got["DreamSampler", "", "attr_acc"] >= got[m, "", "attr_acc"] for m in METHODS)
    for m in ("DDIM+word-swap", "SDEdit+word-swap"):
        assert got["DreamSampler", "", "structure_iou"] > got[m, "", "structure_iou"]


def test_demo_svg_table(demo_svg_run):
    """SVG reconstruction x8 on the shipped shapes prior: DreamSampler beats data consistency alone (the prior's
    share) and the Fig. 5 pipeline with SDS refinement (which, without a data term, leaves the measurement: the
    paper's point); the pipeline's DPS raster and its PDS refinement stay close to y."""
    got = table(demo_svg_run[0])
    methods = ["DreamSampler", "DC-alone", "DPS-raster", "Fig5+SDS", "Fig5+PDS"]
    for m in methods:
        print(f"{m:14s} psnr {got[m, '', 'psnr']:.2f}  shape_acc {got[m, '', 'shape_acc']:.3f}  "
              f"color_acc {got[m, '', 'color_acc']:.3f}")
    # measured (6 shapes, seed 0): psnr 33.07 / 31.91 / 31.62 / 15.05 / 32.25; shape_acc 0.83 / 1 / 1 / 0.83 / 1
    assert got["DreamSampler", "", "psnr"] >= 31.5
    assert got["DreamSampler", "", "psnr"] > got["DC-alone", "", "psnr"]
    assert got["DreamSampler", "", "psnr"] > got["Fig5+SDS", "", "psnr"] + 10
    assert got["DPS-raster", "", "psnr"] >= 29.5 and got["Fig5+PDS", "", "psnr"] >= 29.5
    for m in methods:
        assert got[m, "", "color_acc"] >= 0.83 and got[m, "", "shape_acc"] >= 0.66, m
    html = (demo_svg_run[0] / "compare.html").read_text()
    assert html.count("<img ") == 6 * (2 + len(methods))      # source, measurement, each method
    assert html.count('alt="measurement"') == 6


def test_compare_files_and_gallery_in_a_browser(demo_run, tmp_path):
    run, config, proc = demo_run
    md = (run / "compare.md").read_text()
    for m in METHODS:
        assert re.search(rf"^\| {re.escape(m)} \| [0-9.]+ \[", md, re.M), m
        assert (run / m / "metrics.csv").is_file()
    assert "## face -> glasses" in md and "samples/s" in md
    html = (run / "compare.html").read_text()
    assert html.count("<img ") == 6 * (1 + len(METHODS))
    dom = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (run / "compare.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-loaded="(\d+)/(\d+)"', dom)
    assert loaded, dom[-500:]
    print(f"chromium: {loaded.group(1)}/{loaded.group(2)} images loaded")
    assert loaded.group(1) == loaded.group(2) == str(6 * (1 + len(METHODS)))


def test_markdown_says_when_nothing_was_recomputed():
    from dreamsampler.compare import markdown

    table = [{"method": "A", "group": "", "metric": "psnr", "mean": 30.0, "ci_low": 29.0, "ci_high": 31.0, "n": 2},
             {"method": "A", "group": "", "metric": "fid", "mean": 1.5, "ci_low": "", "ci_high": "", "n": 2}]
    md = markdown(table, {"A": {"seconds": 3.0, "samples": 0, "failed": 0}}, "t")
    assert "| A | 30.0000 [29.0000, 31.0000] | 1.5000 | – (all done before) |" in md, md


@pytest.mark.parametrize("text, message", [
    ("data: {}\n", "`methods` must map"),
    ("methods: {DDS: {init_args: {}}}\ndata: {}\n", "needs `class_path`"),
    ("methods: {'a/b': {class_path: x}}\ndata: {}\n", "method name 'a/b'"),
    ("methods: {DDS: {class_path: x}}\n", "`data`"),
    ("methods: {DDS: {class_path: x}}\ndata: {}\nmodel: {}\n", "unknown key(s) ['model']"),
])
def test_compare_config_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        read_config(path)


def test_compare_names_the_failing_method(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "methods": {"DDS": {"class_path": "dreamsampler.tasks.DDSEditTask",
                            "init_args": {"backbone": "tiny", "size": 16, "t_range": [900, 50]}}},
        "data": {"class_path": "dreamsampler.data.Manifest",
                 "init_args": {"manifest": str(REPO / "dreamsampler/assets/eval_world/compare_edit.jsonl")}},
        "trainer": {"default_root_dir": str(tmp_path / "run")}}))
    proc = run_cli("compare", "-c", str(path))
    assert proc.returncode != 0
    assert "method 'DDS'" in proc.stderr and "t_range" in proc.stderr, proc.stderr[-2000:]
