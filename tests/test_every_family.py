"""Every task runs on every backbone family (tiny presets): one short fit and one 2-sample predict each, with
finite results of the right size. (The SIGKILL resume on tiny-sd3 is a case of ``tests/test_resume.py``.)"""

from __future__ import annotations

import json
import os

import lightning as L
import pytest
import torch
from PIL import Image, ImageDraw

from dreamsampler.callbacks import WritePredictions
from dreamsampler.data import Manifest
from dreamsampler.errors import InputError
from dreamsampler.tasks import EditTask, GenerateTask, InpaintTask, SVGReconstructTask, TextToSVGTask

FAMILIES = ["tiny", "tiny-xl", "tiny-sd3", "tiny-flux"]
SIZE = 16
# t_range: the SVG tasks refine over t <= 250 by default, which a 3-step flow schedule (1000, 761, 444) never reaches
SVG = dict(paths=4, segments=3, prompt_suffix="", reinit_every=2, reinit_until=3, t_range=[0, 500])


def shape_images(tmp_path, n: int = 2) -> list[str]:
    paths = []
    for i in range(n):
        img = Image.new("RGB", (32, 32), "white")
        ImageDraw.Draw(img).ellipse([4 + 3 * i, 6, 24, 26], fill=(220, 30 + 80 * i, 30))
        img.save(tmp_path / f"img{i}.png")
        paths.append(str(tmp_path / f"img{i}.png"))
    return paths


def cases(images: list[str]):
    """(task class, settings, the fit's own samples, two dataset items) for every application."""
    regions = [{"prompt": "a blue circle", "box": [0, 0, 8, 16]}, {"prompt": "a green square", "box": [8, 0, 16, 8]}]
    return {
        "edit": (EditTask, {}, dict(image=images[0], regions=regions),
                 [{"image": images[0], "regions": regions}, {"image": images[1], "prompt": "a red square"}]),
        "inpaint": (InpaintTask, {}, dict(image=images[0], holes=[{"prompt": "a blue circle", "box": [4, 4, 12, 12]}]),
                    [{"image": p, "prompt": "a blue circle", "box": [4, 4, 12, 12]} for p in images]),
        "svg-recon": (SVGReconstructTask, dict(SVG, operator={"class_path": "dreamsampler.operators.Downsample",
                                                              "init_args": {"factor": 4}}),
                      dict(prompt="a red circle", image=images[0]),
                      [{"prompt": "a red circle", "image": p} for p in images]),
        "text-to-svg": (TextToSVGTask, SVG, dict(prompt="a red circle"),
                        [{"prompt": "a red circle", "name": "a"}, {"prompt": "a blue square", "name": "b"}]),
        "generate": (GenerateTask, {}, dict(prompt="a red circle"),
                     [{"prompt": "a red circle", "name": "a"}, {"prompt": "a blue square", "name": "b"}]),
    }


def make(cls, settings: dict, backbone: str, **given):
    settings = dict(settings)
    if isinstance(settings.get("operator"), dict):
        from dreamsampler.operators import Downsample

        settings["operator"] = Downsample(settings["operator"]["init_args"]["factor"])
    return cls(backbone=backbone, size=SIZE, nfe=3, **settings, **given)


@pytest.fixture(scope="module")
def backbones():
    from dreamsampler.backbones import Backbone

    return {name: Backbone.load(name) for name in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("app", ["edit", "inpaint", "svg-recon", "text-to-svg", "generate"])
def test_every_task_fits_and_predicts_on_every_family(app, family, backbones, tmp_path, one_torch_thread):
    cls, settings, fit_args, items = cases(shape_images(tmp_path))[app]
    task = make(cls, settings, family, **fit_args)
    task.backbone = backbones[family]
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path).fit(task)
    main = next(iter(task.result_images().values()))
    assert main.shape == (1, 3, SIZE, SIZE) and torch.isfinite(main).all()

    manifest = tmp_path / "items.jsonl"
    manifest.write_text("".join(json.dumps(it) + "\n" for it in items))
    template = make(cls, settings, family)
    template.backbone = backbones[family]
    writer = WritePredictions()
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, inference_mode=False,
                        enable_model_summary=False, default_root_dir=tmp_path / "run", callbacks=[writer])
    trainer.predict(template, datamodule=Manifest(manifest=str(manifest), batch_size=2), return_predictions=False)
    assert writer.failed == 0 and writer.done == 2
    written = sorted(p.name for p in (tmp_path / "run" / "predictions").glob("*.png"))
    names = [it.get("name") or os.path.splitext(os.path.basename(it["image"]))[0] for it in items]
    assert all(f"{n}.png" in written for n in names), written


def test_default_refine_range_without_steps_is_one_clear_error(backbones, tmp_path):
    task = TextToSVGTask(prompt="a red circle", backbone="tiny-flux", size=SIZE, nfe=3,
                         **{k: v for k, v in SVG.items() if k != "t_range"})
    task.backbone = backbones["tiny-flux"]
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    with pytest.raises(InputError, match=r"t_range \(0.0, 250.0\) keeps none of the 3 timesteps \(the refine range "
                                         r"init 'sample' uses by default; raise nfe, or set t_range"):
        trainer.fit(task)
