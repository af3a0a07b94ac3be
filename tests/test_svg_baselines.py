"""The SVG baselines: PDS SVG editing from a given SVG, the Fig. 5 pipeline's start from another method's raster, and
their input errors (tiny random backbone: mechanics, not quality; quality is tests/test_compare.py's SVG table)."""

from __future__ import annotations

import pytest
import torch

from dreamsampler.errors import InputError
from dreamsampler.io.images import save_image
from dreamsampler.tasks import PDSSVGTask, SDSTextToSVGTask

COMMON = dict(backbone="tiny", size=16, paths=4, segments=2, prompt_suffix="", raster_samples=1, seed=1)


@pytest.fixture()
def source_svg(tmp_path, tiny_backbone):
    task = SDSTextToSVGTask(nfe=1, init="circles", **COMMON)
    task.backbone = tiny_backbone
    task.prepare_batch(task.load_batch([{"prompt": "a red circle", "name": "src"}]))
    return task.generator.save_svg(0, tmp_path / "src.svg")


def test_pds_svg_edits_from_the_given_svg(tiny_backbone, source_svg, one_torch_thread):
    item = {"prompt": "a blue circle", "source_prompt": "a red circle", "init_svg": str(source_svg), "name": "e"}
    task = PDSSVGTask(nfe=5, guidance_scale=7.5, grad_scale=1.0, **COMMON)
    task.backbone = tiny_backbone
    task.prepare_batch(task.load_batch([item]))
    with torch.no_grad():
        start = task.generator().clone()
        z0 = task.encode_generated(start)
    assert torch.equal(task.z_source, z0)          # the source branch is the given SVG's render
    assert task.src_prompts == ["a red circle"] and task.target_prompts() == ["a blue circle"]
    assert "z_source" in task.state_dict()          # persisted: a resumed run keeps its source
    out = task.predict_samples([item])
    assert "error" not in out[0], out
    assert (out[0]["final"] - start[0]).abs().max() > 1e-3 and out[0]["texts"]["final.svg"].startswith("<?xml")


def test_pipeline_starts_from_the_raster_of_another_method(tiny_backbone, tmp_path, one_torch_thread):
    raster = torch.ones(1, 3, 16, 16)
    raster[:, :2, 4:12, 4:12] = 0.0                       # a blue square on white
    folder = tmp_path / "rasters"
    folder.mkdir()
    save_image(raster, folder / "sq.png")
    task = SDSTextToSVGTask(nfe=2, raster_dir=str(folder), vectorize_iterations=60, **COMMON)
    task.backbone = tiny_backbone
    task.prepare_batch(task.load_batch([{"prompt": "a blue square", "name": "sq"}]))
    circles = SDSTextToSVGTask(nfe=2, init="circles", **COMMON)
    circles.backbone = tiny_backbone
    circles.prepare_batch(circles.load_batch([{"prompt": "a blue square", "name": "sq"}]))
    with torch.no_grad():
        fit = float(((task.generator() - raster) ** 2).mean())
        unfit = float(((circles.generator() - raster) ** 2).mean())
    print(f"vectorized raster: mse {fit:.4f}; the same seed's circles: {unfit:.4f}")
    assert torch.equal(task.raster_sample.cpu(), raster)
    assert fit < 0.8 * unfit                                   # the start is the raster, vectorized
    with pytest.raises(InputError, match="no raster for"):
        task.prepare_batch(task.load_batch([{"prompt": "a blue square", "name": "other"}]))


def test_svg_baseline_input_errors(tmp_path):
    with pytest.raises(InputError, match="raster_dir"):
        SDSTextToSVGTask(raster_dir=str(tmp_path / "nowhere"), **COMMON)
    with pytest.raises(InputError, match="t_range"):
        PDSSVGTask(t_range=(900, 100), **COMMON)
    task = PDSSVGTask(**COMMON)
    assert any("unknown" in p.lower() for p in task.check_item({"prompt": "a", "regions": []}))
