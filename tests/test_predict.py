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


def make_manifest(tmp_path):
    items = []
    for i, rgb in enumerate([(220, 30, 30), (30, 160, 40), (30, 60, 220), (240, 200, 20)]):
        img = Image.new("RGB", (32, 32), "white")
        ImageDraw.Draw(img).ellipse([4 + i, 6, 24 + i, 26], fill=rgb)
        img.save(tmp_path / f"shape{i}.png")
        items.append({"image": f"shape{i}.png", "prompt": "a blue circle"})
    items[3] = {"image": "shape3.png", "name": "localized",
                "regions": [{"prompt": "a blue circle", "box": [0, 0, 8, 16]}]}
    (tmp_path / "edits.jsonl").write_text("\n".join(json.dumps(it) for it in items) + "\n")
    return tmp_path / "edits.jsonl"


def test_predict_ddp_two_processes_then_skip_done(tmp_path):
    manifest = make_manifest(tmp_path)
    run = tmp_path / "run"
    args = ["predict", "--model", "dreamsampler.tasks.EditTask", *[f"--model.{k}={v}" for k, v in SETTINGS.items()],
            "--data", "dreamsampler.data.EditManifest", f"--data.manifest={manifest}",
            f"--trainer.default_root_dir={run}", "--trainer.accelerator=cpu", "--trainer.devices=2",
            "--trainer.strategy=ddp", "--trainer.enable_progress_bar=false"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MEMBER: 2/2" in proc.stdout + proc.stderr            # really two processes
    names = sorted(p.name for p in (run / "predictions").glob("*.png"))
    assert names == sorted(f"{n}{s}.png" for n in ["shape0", "shape1", "shape2", "localized"]
                           for s in ["", "_comparison"])

    # the dataset path computes the same edit as `fit` on that one image
    task = EditTask(image=str(tmp_path / "shape1.png"), prompt="a blue circle", **SETTINGS)
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path).fit(task)
    with torch.no_grad():
        save_image(task.result_images()["edited"], tmp_path / "fit.png")
    fit_px = np.asarray(Image.open(tmp_path / "fit.png"), dtype=int)
    pred_px = np.asarray(Image.open(run / "predictions" / "shape1.png"), dtype=int)
    assert np.abs(fit_px - pred_px).max() <= 1

    # a second run finds every sample done and rewrites nothing
    stamps = {p: p.stat().st_mtime_ns for p in (run / "predictions").iterdir()}
    again = run_cli(*[a for a in args if not a.startswith("--trainer.devices") and "strategy" not in a])
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (run / "predictions").iterdir()} == stamps


def test_manifest_errors(tmp_path):
    from dreamsampler.data import read_manifest
    from dreamsampler.errors import InputError
    import pytest

    bad = tmp_path / "m.jsonl"
    bad.write_text('{"image": "a.png", "prompt": "x"}\n{"image": "b.png"\n')
    with pytest.raises(InputError, match="line 2: not valid JSON"):
        read_manifest(bad)
    bad.write_text('{"image": "a.png"}\n')
    with pytest.raises(InputError, match="line 1: expected an object with `image` and `prompt`"):
        read_manifest(bad)
    bad.write_text('{"image": "a.png", "prompt": "x"}\n{"image": "sub/a.png", "prompt": "y"}\n')
    with pytest.raises(InputError, match="duplicate name 'a'"):
        read_manifest(bad)
