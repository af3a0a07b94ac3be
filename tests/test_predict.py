"""Dataset-scale editing: `dreamsampler predict` over a manifest, 2 DDP processes (gloo, CPU), skip-if-done."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import torch
from PIL import Image, ImageDraw

from conftest import run_cli
from dreamsampler.io.images import save_image
from dreamsampler.tasks import EditTask

SETTINGS = dict(backbone="tiny", size=16, nfe=6, gamma=3.0)


COLORS = [(220, 30, 30), (30, 160, 40), (30, 60, 220), (240, 200, 20), (160, 40, 200), (250, 140, 20),
          (20, 20, 20), (120, 120, 120)]


def make_manifest(tmp_path):
    items = []
    for i, rgb in enumerate(COLORS):
        img = Image.new("RGB", (32, 32), "white")
        ImageDraw.Draw(img).ellipse([4 + i, 6, 24 + i, 26], fill=rgb)
        img.save(tmp_path / f"shape{i}.png")
        items.append({"image": f"shape{i}.png", "prompt": "a blue circle" if i % 2 else "a red square"})
    items[3] = {"image": "shape3.png", "name": "localized",
                "regions": [{"prompt": "a blue circle", "box": [0, 0, 8, 16]},
                            {"prompt": "a green square", "box": [8, 0, 16, 8]}]}
    (tmp_path / "edits.jsonl").write_text("\n".join(json.dumps(it) for it in items) + "\n")
    return tmp_path / "edits.jsonl"


NAMES = ["shape0", "shape1", "shape2", "localized", "shape4", "shape5", "shape6", "shape7"]


def predict_args(manifest, run, *extra):
    return ["predict", "--model", "dreamsampler.tasks.EditTask", *[f"--model.{k}={v}" for k, v in SETTINGS.items()],
            "--model.eta=0.5", "--data", "dreamsampler.data.EditManifest", f"--data.manifest={manifest}",
            "--data.batch_size=2", f"--trainer.default_root_dir={run}", "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false", *extra]


def done_log(run):
    return [json.loads(line) for f in sorted((run / "predictions").glob("done.rank*.jsonl"))
            for line in f.read_text().splitlines()]


def pixels(path):
    return np.asarray(Image.open(path), dtype=int)


def test_predict_ddp_two_processes_matches_one_process_then_skips_done(tmp_path):
    manifest = make_manifest(tmp_path)
    run, single = tmp_path / "run", tmp_path / "single"
    proc = run_cli(*predict_args(manifest, run, "--trainer.devices=2", "--trainer.strategy=ddp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MEMBER: 2/2" in proc.stdout + proc.stderr            # really two processes
    log = done_log(run)
    assert sorted(r["name"] for r in log) == sorted(NAMES)         # every sample exactly once, across the ranks
    assert {r["rank"] for r in log} == {0, 1}
    files = sorted(p.name for p in (run / "predictions").glob("*.png"))
    assert files == sorted(f"{n}{s}.png" for n in NAMES for s in ["", "_comparison"])

    one = run_cli(*predict_args(manifest, single, "--trainer.devices=1"))
    assert one.returncode == 0, one.stderr[-3000:]
    for name in NAMES:                # other batch companions, other rank: the same result (fp rounding aside)
        assert np.abs(pixels(run / "predictions" / f"{name}.png")
                      - pixels(single / "predictions" / f"{name}.png")).max() <= 1, name

    # the dataset path computes the same edit as `fit` on that one image (same name -> same noise)
    task = EditTask(image=str(tmp_path / "shape1.png"), prompt="a blue circle", eta=0.5, **SETTINGS)
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path).fit(task)
    with torch.no_grad():
        save_image(task.result_images()["edited"], tmp_path / "fit.png")
    assert np.abs(pixels(tmp_path / "fit.png") - pixels(run / "predictions" / "shape1.png")).max() <= 1

    # a second run finds every sample done and rewrites nothing
    stamps = {p: p.stat().st_mtime_ns for p in (run / "predictions").iterdir()}
    again = run_cli(*predict_args(manifest, run, "--trainer.devices=1"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (run / "predictions").iterdir()} == stamps


def test_predict_keeps_no_results_in_memory(tmp_path):
    from dreamsampler.cli import DreamSamplerCLI

    cli = DreamSamplerCLI(args=predict_args(make_manifest(tmp_path), tmp_path / "run", "--model.nfe=2"))
    assert len(list((tmp_path / "run" / "predictions").glob("shape*_comparison.png"))) == 7
    assert cli.trainer.predict_loop.predictions == []          # written by the callback, not accumulated


def test_manifest_errors(tmp_path):
    from dreamsampler.data import read_manifest
    from dreamsampler.errors import InputError
    import pytest

    bad = tmp_path / "m.jsonl"
    bad.write_text('{"image": "a.png", "prompt": "x"}\n{"image": "b.png"\n')
    with pytest.raises(InputError, match="line 2: not valid JSON"):
        read_manifest(bad)
    bad.write_text('["a.png"]\n')
    with pytest.raises(InputError, match="line 1: expected a JSON object"):
        read_manifest(bad)
    bad.write_text('{"image": "a.png", "prompt": "x"}\n{"image": "sub/a.png", "prompt": "y"}\n')
    with pytest.raises(InputError, match="line 2: duplicate name 'a' \\(also line 1\\)"):
        read_manifest(bad)
