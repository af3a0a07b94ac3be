"""Dataset-scale runs: manifests checked as a whole, fault isolation (errors.jsonl), interrupt and rerun, DDP with a
failing sample, `dreamsampler evaluate` recomputing the metrics from the files."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from conftest import run_cli
from dreamsampler.callbacks import WritePredictions
from dreamsampler.data import Manifest
from dreamsampler.errors import InputError
from dreamsampler.tasks import EditTask, InpaintTask
from killer import run_with_killer

SETTINGS = dict(backbone="tiny", size=16, nfe=6)
COLORS = [(220, 30, 30), (30, 160, 40), (30, 60, 220), (240, 200, 20), (160, 40, 200), (250, 140, 20)]


def make_images(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, rgb in enumerate(COLORS):
        img = Image.new("RGB", (32, 32), "white")
        ImageDraw.Draw(img).ellipse([4 + 2 * i, 6, 24 + i, 26], fill=rgb)
        img.save(folder / f"img{i}.png")
        names.append(f"img{i}")
    return names


def inpaint_manifest(tmp: Path, corrupt: str | None = None) -> Path:
    names = make_images(tmp / "images")
    if corrupt:
        (tmp / "images" / f"{corrupt}.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    lines = [{"image": f"images/{n}.png", "prompt": "a blue circle", "box": [4, 4, 12, 12]} for n in names]
    (tmp / "inpaint.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return tmp / "inpaint.jsonl"


def predict_args(manifest: Path, run: Path, *extra: str) -> list[str]:
    return ["predict", "--model", "dreamsampler.tasks.InpaintTask", *[f"--model.{k}={v}" for k, v in SETTINGS.items()],
            "--data", "dreamsampler.data.Manifest", f"--data.manifest={manifest}", "--data.batch_size=2",
            f"--trainer.default_root_dir={run}", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
            "--evaluate.metrics=[auto]", "--threads=1", *extra]


def done_names(run: Path) -> list[str]:
    return [json.loads(line)["name"] for f in sorted((run / "predictions").glob("done.rank*.jsonl"))
            for line in f.read_text().splitlines()]


def metric_rows(run: Path) -> dict[str, dict]:
    with open(run / "metrics.csv") as f:
        return {r["name"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted run over 6 samples (3 batches of 2) with metrics: the reference of the other tests."""
    tmp = tmp_path_factory.mktemp("full")
    manifest = inpaint_manifest(tmp)
    proc = run_cli(*predict_args(manifest, tmp / "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, manifest, proc


def test_full_run_writes_metrics_and_progress(full_run):
    tmp, _, proc = full_run
    run = tmp / "run"
    assert sorted(done_names(run)) == [f"img{i}" for i in range(6)]
    rows = metric_rows(run)
    assert sorted(rows) == [f"img{i}" for i in range(6)]
    assert set(next(iter(rows.values()))) == {"name", "psnr", "ssim", "known_psnr"}
    table = (run / "metrics.md").read_text()
    assert "| known_psnr |" in table and "95 % interval" in table
    # the CSV's known-pixel PSNR equals one computed here from the written PNG and the source image
    from dreamsampler.io.images import load_image

    pred, truth = load_image(run / "predictions" / "img2.png"), load_image(tmp / "images" / "img2.png", 16)
    known = torch.ones(1, 1, 16, 16)
    known[..., 4:12, 4:12] = 0
    mse = ((pred - truth) ** 2 * known).sum() / (3 * known.sum())
    assert float(rows["img2"]["known_psnr"]) == pytest.approx(float(10 * torch.log10(1 / mse)), rel=1e-5)
    assert float(rows["img2"]["psnr"]) == pytest.approx(float(10 * torch.log10(1 / ((pred - truth) ** 2).mean())),
                                                        rel=1e-5)
    assert "predict 2/6 samples (0 failed)" in proc.stdout and "ETA" in proc.stdout
    assert "predict finished: 6 of 6 samples written, 0 failed" in proc.stdout
    assert (run / "predictions" / "errors.jsonl").read_text() == ""


def test_interrupted_run_computes_only_the_rest_and_gives_the_same_metrics(full_run, tmp_path):
    _, manifest, _ = full_run
    run = tmp_path / "run"
    cb = ["--trainer.callbacks+=killer.KillAtPredictBatch", "--trainer.callbacks.batch=2"]
    killed = run_with_killer(*predict_args(manifest, run, *cb))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first = done_names(run)
    assert sorted(first) == ["img0", "img1", "img2", "img3"] and not (run / "metrics.csv").exists()
    again = run_cli(*predict_args(manifest, run))
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(done_names(run)[len(first):]) == ["img4", "img5"]         # only the rest was computed
    assert "predict finished: 2 of 2 samples written" in again.stdout
    assert (run / "metrics.csv").read_text() == (full_run[0] / "run" / "metrics.csv").read_text()
    for i in range(6):
        assert (run / "predictions" / f"img{i}.png").read_bytes() == \
            (full_run[0] / "run" / "predictions" / f"img{i}.png").read_bytes()


def test_corrupt_image_fails_alone_across_two_ddp_ranks(full_run, tmp_path):
    """One unreadable image among 6 samples on 2 processes: the run completes, the sample is in errors.jsonl, the
    exit status is the number of failures, the others (its batch companion included) are written and scored."""
    manifest = inpaint_manifest(tmp_path, corrupt="img3")
    run = tmp_path / "run"
    proc = run_cli(*predict_args(manifest, run, "--trainer.devices=2", "--trainer.strategy=ddp"))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "MEMBER: 2/2" in proc.stdout + proc.stderr
    errors = [json.loads(line) for line in (run / "predictions" / "errors.jsonl").read_text().splitlines()]
    assert [e["name"] for e in errors] == ["img3"] and "img3.png" in errors[0]["error"], errors
    assert "1 failed" in proc.stdout and "sample 'img3' failed" in proc.stderr
    names = done_names(run)
    assert sorted(names) == ["img0", "img1", "img2", "img4", "img5"]          # each exactly once, over both ranks
    assert sorted(metric_rows(run)) == sorted(names)
    reference = full_run[0] / "run" / "predictions"
    for name in names:               # other batch, other rank, run alone after the failure: the same result
        ours = np.asarray(Image.open(run / "predictions" / f"{name}.png"), dtype=int)
        ref = np.asarray(Image.open(reference / f"{name}.png"), dtype=int)
        assert np.abs(ours - ref).max() <= 1, name


def test_evaluate_recomputes_the_metrics_from_the_files(full_run, tmp_path):
    tmp = full_run[0]
    run = tmp_path / "copy"
    import shutil

    shutil.copytree(tmp / "run", run)
    (run / "metrics.csv").unlink()
    proc = run_cli("evaluate", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "metrics.csv").read_text() == (tmp / "run" / "metrics.csv").read_text()
    only = run_cli("evaluate", str(run), "--metrics", "psnr")
    assert only.returncode == 0, only.stderr[-3000:]
    assert set(next(iter(metric_rows(run).values()))) == {"name", "psnr"}
    bad = run_cli("evaluate", str(run), "--metrics", "psnrr")
    assert bad.returncode == 1 and "unknown metric(s) ['psnrr']" in bad.stderr, bad.stderr[-2000:]
    clip = run_cli("evaluate", str(run), "--metrics", "clip_score")
    assert clip.returncode == 1 and "evaluate.clip" in clip.stderr, clip.stderr[-2000:]
    missing = run_cli("evaluate", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "config.yaml" in missing.stderr and "Traceback" not in missing.stderr


def test_manifest_reports_every_bad_line_before_running(tmp_path):
    make_images(tmp_path / "images")
    lines = ['{"image": "images/img0.png", "prompt": "a blue circle", "box": [4, 4, 12, 12]}',
             '{"image": "images/nope.png", "prompt": "a blue circle", "preset": "eyes"}',
             '{"image": "images/img1.png", "holes": [{"prompt": "x", "preset": "nose"}]}',
             '{"image": "images/img2.png", "prompt": "a cat", "box": [4, 4, 12, 12], "strength": 2}',
             '{"image": "images/img0.png", "prompt": "again", "box": [1, 1, 5, 5]}',
             '{"image": "images/img3.png", "prompt": "a dog"']
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    proc = run_cli(*predict_args(manifest, tmp_path / "run"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    err = proc.stderr
    assert "5 problem(s), nothing was run" in err, err
    for expected in ("line 2: image file", "line 3: holes[0].preset: unknown preset 'nose'",
                     "line 4: unknown key(s) 'strength'", "line 5: duplicate name 'img0' (also line 1)",
                     "line 6: not valid JSON"):
        assert expected in err, (expected, err)
    assert not (tmp_path / "run" / "predictions").exists()


def test_manifest_schemas_of_every_task(tmp_path):
    from dreamsampler.tasks import SVGReconstructTask, TextToSVGTask

    make_images(tmp_path)
    img = str(tmp_path / "img0.png")
    edit, inpaint = EditTask(**SETTINGS), InpaintTask(**SETTINGS)
    assert edit.check_item({"image": img, "prompt": "a dog", "source_prompt": "a cat"}) == []
    assert "give exactly one of `prompt` or `regions`" in edit.check_item({"image": img})[0]
    region = edit.check_item({"image": img, "regions": [{"prompt": "a", "box": [0, 0, 4]}]})
    assert region and "regions[0].box" in region[0]
    assert inpaint.check_item({"image": img, "holes": [{"prompt": "a", "preset": "eyes"}]}) == []
    assert "not both" in inpaint.check_item({"image": img, "prompt": "a", "holes": [{"prompt": "a", "box": [0, 0, 2, 2]}]})[-1]
    recon = SVGReconstructTask(**SETTINGS)
    assert recon.check_item({"prompt": "a circle", "image": img}) == []
    assert "exactly one of `image` or `measurement`" in recon.check_item({"prompt": "a circle"})[0]
    assert "unknown key(s) 'image'" in TextToSVGTask(**SETTINGS).check_item({"prompt": "a", "image": img})[0]
    # the folder shortcut: every image of a folder with one prompt
    m = Manifest(folder=str(tmp_path), prompt="a blue circle")
    m.check(edit)
    assert [it["name"] for it in m.items] == [f"img{i}" for i in range(6)]
    assert all(it["prompt"] == "a blue circle" and Path(it["image"]).is_file() for it in m.items)
    with pytest.raises(InputError, match="exactly one of `manifest`"):
        Manifest()


class ExplodingEdit(EditTask):
    """An edit whose sample ``nan`` diverges and whose sample ``boom`` cannot be loaded."""

    def load_batch(self, items):
        if any(it["name"] == "boom" for it in items):
            raise InputError("image 'boom.png' is truncated")
        return super().load_batch(items)

    def targets(self, z_t, step):
        out = super().targets(z_t, step)
        bad = torch.tensor([n == "nan" for n in self.sample_names]).view(-1, 1, 1, 1)
        return type(out)(z0=torch.where(bad, torch.nan, out.z0), eps_renoise=out.eps_renoise)


def test_a_failing_sample_does_not_stop_or_change_its_batch(tmp_path, tiny_backbone, one_torch_thread):
    make_images(tmp_path)
    names = ["ok0", "boom", "nan", "ok1"]
    lines = [{"image": f"img{i}.png", "prompt": "a blue circle", "name": n} for i, n in enumerate(names)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    def run(task_cls, batch_size, root):
        task = task_cls(**SETTINGS)
        task.backbone = tiny_backbone
        writer = WritePredictions()
        L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, inference_mode=False,
                  callbacks=[writer], default_root_dir=root).predict(
            task, datamodule=Manifest(str(tmp_path / "m.jsonl"), batch_size=batch_size), return_predictions=False)
        return writer

    writer = run(ExplodingEdit, 4, tmp_path / "run")
    errors = {e["name"]: e["error"] for e in map(json.loads, (tmp_path / "run/predictions/errors.jsonl").open())}
    assert set(errors) == {"boom", "nan"} and writer.failed == 2 and writer.done == 2
    assert errors["boom"].startswith("InputError: image 'boom.png'") and errors["nan"].startswith("DivergedError")
    run(EditTask, 1, tmp_path / "alone")
    for n in ("ok0", "ok1"):         # retried one at a time after the batch failed: what they get alone
        a = np.asarray(Image.open(tmp_path / f"run/predictions/{n}.png"), dtype=int)
        b = np.asarray(Image.open(tmp_path / f"alone/predictions/{n}.png"), dtype=int)
        assert np.abs(a - b).max() <= 1, n


def test_edit_metrics_with_feature_models_from_local_folders(tmp_path):
    """clip_score, clip_accuracy and dino_structure through `predict` with models loaded by from_pretrained from
    local folders (tiny random ones here; the paper configs name the real hub ids); values equal the metric
    functions applied here to the written files."""
    from dreamsampler.io.images import load_image
    from dreamsampler.metrics import (clip_accuracy, clip_similarity, dino_structure_distance, load_clip, load_dino,
                                      save_tiny_clip, save_tiny_dino)

    make_images(tmp_path / "images")
    clip, dino = save_tiny_clip(tmp_path / "clip"), save_tiny_dino(tmp_path / "dino")
    lines = [{"image": f"images/img{i}.png", "prompt": "a blue circle", "source_prompt": "a red circle"}
             for i in range(2)]
    (tmp_path / "edits.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    run = tmp_path / "run"
    proc = run_cli("predict", "--model", "dreamsampler.tasks.EditTask", *[f"--model.{k}={v}" for k, v in
                                                                          SETTINGS.items()],
                   "--data", "dreamsampler.data.Manifest", f"--data.manifest={tmp_path / 'edits.jsonl'}",
                   "--data.batch_size=2", f"--trainer.default_root_dir={run}", "--trainer.accelerator=cpu",
                   "--trainer.enable_progress_bar=false", "--evaluate.metrics=[auto]", f"--evaluate.clip={clip}",
                   f"--evaluate.dino={dino}", "--threads=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = metric_rows(run)
    assert set(rows["img0"]) == {"name", "clip_score", "clip_accuracy", "dino_structure"}
    edited = load_image(run / "predictions" / "img1.png")
    source = load_image(tmp_path / "images" / "img1.png", 16)
    c, d = load_clip(clip), load_dino(dino)
    assert float(rows["img1"]["clip_score"]) == pytest.approx(float(clip_similarity(edited, ["a blue circle"], c)[0]),
                                                              rel=1e-5)
    assert float(rows["img1"]["clip_accuracy"]) == float(clip_accuracy(edited, ["a blue circle"], ["a red circle"],
                                                                       c)[0])
    assert float(rows["img1"]["dino_structure"]) == pytest.approx(float(dino_structure_distance(source, edited,
                                                                                               d)[0]), rel=1e-5)
