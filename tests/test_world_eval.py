"""The miniature-table machinery without the prior: world metrics on rendered ground truth, grouped metrics tables,
per-sample TReg omega (a mixed batch equals the two separate runs), the shipped world evaluation sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from conftest import fit_task
from dreamsampler import faces, scenes
from dreamsampler.evaluate import metric_table
from dreamsampler.io.images import save_image
from dreamsampler.metrics import world_metrics as w
from dreamsampler.tasks import InpaintTask

ASSETS = Path(__file__).resolve().parents[1] / "dreamsampler" / "assets" / "eval_world"


def box_mask(box, res=64):
    m = np.zeros((res, res), bool)
    t, l, b, r = box
    m[t:b, l:r] = True
    return m


def preset(name, res=64):
    return box_mask([round(v * res / 512) for v in {"eyes": [180, 100, 290, 400], "mouth": [330, 170, 430, 340]}[name]])


def test_region_parts_read_the_attribute_a_hole_names_in_its_own_box():
    both = faces.render_face("blue", glasses=True, smile=True)
    plain = faces.render_face("blue", glasses=False, smile=False)
    glasses, smile = "a face wearing glasses", "a face with a smile"
    assert w.region_parts(glasses, both, preset("eyes")) == {"glasses": True}
    assert w.region_parts(smile, both, preset("mouth")) == {"smile": True}
    assert w.region_parts(glasses, plain, preset("eyes")) == {"glasses": False}
    assert w.region_parts(smile, plain, preset("mouth")) == {"smile": False}
    # a smile prompt over the eyes box names nothing there: only "is there a face" is asked
    assert w.region_parts(smile, plain, preset("eyes")) == {"face": True}
    # whole-image reading: every part the prompt names, the unnamed ones absent
    assert w.prompt_parts(glasses, both) == {"glasses": True, "smile": False}
    assert w.all_true(w.prompt_parts("a face wearing glasses with a smile", both)) == 1.0


def test_region_parts_of_a_scene_read_the_object_in_the_region():
    img = scenes.render_scene([scenes.SceneObject("red", "circle", (0.25, 0.5), 0.35),
                               scenes.SceneObject("blue", "square", (0.75, 0.4), 0.35)])
    left, right = (box_mask(scenes.slot_box(i, 2)) for i in range(2))
    assert w.region_parts("a red circle", img, left) == {"object": True}
    assert w.region_parts("a blue square", img, right) == {"object": True}
    assert w.region_parts("a blue square", img, left) == {"object": False}
    assert w.prompt_parts("a red circle and a blue square", img) == {"count": True, "objects": True}


def test_structure_iou_and_kept_iou():
    a = scenes.render_scene([scenes.SceneObject("red", "circle", (0.25, 0.5), 0.35),
                             scenes.SceneObject("blue", "square", (0.75, 0.4), 0.35)])
    b = scenes.render_scene([scenes.SceneObject("red", "circle", (0.25, 0.5), 0.35),
                             scenes.SceneObject("blue", "triangle", (0.75, 0.4), 0.35)])
    right = box_mask(scenes.slot_box(1, 2))
    assert w.structure_iou(a, a) == 1.0
    assert 0.5 < w.structure_iou(a, b) < 0.95
    assert w.structure_iou(a, b, outside=right) == 1.0      # the left object is the same
    face = faces.render_face("green", False, False)
    assert w.structure_iou(face, faces.render_face("green", True, True)) > 0.95   # features keep the face disc


def test_vae_features_shape_and_fid_of_identical_sets_is_small():
    from diffusers import AutoencoderKL

    from dreamsampler.metrics import fid

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4).eval()
    feat = w.VAEFeatures(vae)
    x = torch.rand(10, 3, 32, 32)
    assert feat(x).shape == (10, 64) and feat.num_features == 64
    assert torch.allclose(feat((x * 255).round().to(torch.uint8)), feat((x * 255).round() / 255), atol=1e-5)
    same = fid(x, x.clone(), feature=feat)
    other = fid(x, (x * 0.2).clamp(0, 1), feature=feat)
    print(f"\n[vae fid] same {same:.4g} other {other:.4g}")
    assert abs(same) < 1e-3 < other


def test_metrics_table_has_one_row_per_group():
    rows = [{"name": "a", "group": "g1", "attr_acc": 1.0}, {"name": "b", "group": "g1", "attr_acc": 0.0},
            {"name": "c", "group": "g2", "attr_acc": 1.0, "kept_iou": 0.5}]
    table = metric_table(rows, {"fid": 2.0, "fid [g1]": 3.0}, "t")
    assert "| group | n | attr_acc | kept_iou | fid |" in table
    assert "| g1 | 2 | 0.5000 | – | 3.0000 |" in table
    assert "| g2 | 1 | 1.0000 | 0.5000 | – |" in table
    assert "| fid (set) | 2.0000 | – | 3 |" in table


def test_treg_omega_per_sample_is_checked_and_a_mixed_batch_equals_separate_runs(tmp_path, shapes_backbone):
    torch.set_num_threads(1)
    task = InpaintTask(size=64, backbone="shapes")
    img = tmp_path / "face.png"
    save_image(torch.from_numpy(faces.render_face("yellow", False, False)).permute(2, 0, 1), img)
    hole = {"prompt": "a blue circle", "box": [20, 20, 44, 44]}
    assert task.check_item({"image": str(img), "holes": [hole], "treg_omega": 3}) == []
    assert "`treg_omega` must be a number >= 0" in task.check_item({"image": str(img), "holes": [hole],
                                                                     "treg_omega": "big"})[-1]

    def run(samples, omega=None):
        return fit_task(InpaintTask(samples=samples, null_prompt="", size=64, backbone="shapes", nfe=9,
                                    treg_omega=omega, trajectory_every=0), shapes_backbone, tmp_path)

    ds = {"image": str(img), "holes": [hole], "name": "ds"}
    treg = {"image": str(img), "holes": [hole], "name": "treg", "treg_omega": 3.0}
    mixed = run([ds, treg])
    alone_ds, alone_treg = run([ds]), run([{**treg, "treg_omega": None}], omega=3.0)
    print(f"\n[mixed omega] |ds| {float((mixed[0] - alone_ds[0]).abs().max()):.2e} "
          f"|treg| {float((mixed[1] - alone_treg[0]).abs().max()):.2e} |ds-treg| {float((mixed[0] - mixed[1]).abs().max()):.3f}")
    assert torch.allclose(mixed[0], alone_ds[0], atol=1e-4)
    assert torch.allclose(mixed[1], alone_treg[0], atol=1e-4)
    assert float((mixed[0] - mixed[1]).abs().max()) > 0.01      # the two initializations do differ


def test_shipped_world_sets_are_what_the_tool_writes(tmp_path):
    """The committed eval_world files equal a fresh run of tools/make_eval_sets.py (the tool is the source)."""
    import subprocess
    import sys

    tool = Path(__file__).resolve().parents[1] / "tools" / "make_eval_sets.py"
    subprocess.run([sys.executable, str(tool), "--world", "scenes-faces", "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("edit.jsonl", "inpaint.jsonl"):
        assert (tmp_path / name).read_text() == (ASSETS / name).read_text(), name
    shipped = sorted(p.name for p in (ASSETS / "images").iterdir())
    assert shipped == sorted(p.name for p in (tmp_path / "images").iterdir())
    for name in shipped:
        assert (tmp_path / "images" / name).read_bytes() == (ASSETS / "images" / name).read_bytes(), name
    edits = [json.loads(line) for line in (ASSETS / "edit.jsonl").read_text().splitlines()]
    holes = [json.loads(line) for line in (ASSETS / "inpaint.jsonl").read_text().splitlines()]
    assert len(edits) >= 32 and len(holes) >= 32
    # every edit source reads as its source prompt (the checker agrees with the data)
    from dreamsampler.io.images import load_image
    for e in edits:
        img = load_image(ASSETS / e["image"])[0]
        assert w.all_true(w.prompt_parts(e["source_prompt"], img)) == 1.0, e


def test_world_grammar_decides_which_world_metrics_apply():
    from dreamsampler.evaluate import EvalConfig, Evaluator
    from dreamsampler.worlds import ScenesFacesWorld

    world = ScenesFacesWorld()
    for ok in ("a face", "a blue face wearing glasses with a smile", "a red circle",
               "a red circle and a blue square", "a red circle, a blue square and a green triangle"):
        assert world.parses(ok), ok
    for bad in ("a photo of a face", "a pink face", "a red circle and", "a dog", "a red circle a blue square", ""):
        assert not world.parses(bad), bad
    ev = Evaluator(EvalConfig(metrics=["auto"]), world="scenes-faces")
    src = torch.zeros(1, 3, 8, 8)
    assert "attr_acc" in ev.available({"prompt": "a face with a smile", "source": src})
    assert "attr_acc" not in ev.available({"prompt": "a photo of a dog", "source": src})   # off-grammar: skipped
