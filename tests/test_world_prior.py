"""The shipped scenes-and-faces prior: its own figures (VAE reconstruction, text-to-image accuracy per part) and the
paper's protocols in miniature — two holes of a face each with its own prompt (Fig. 8 / Table 2), two regions of a
scene each with its own prompt (eq. 19) — each as one batched run of the shipped evaluation set's group, shared by
its tests. Thresholds sit below the measured values (printed) with a margin; figures in the prior's README."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import fit_task
from dreamsampler import worlds
from dreamsampler.backbones import WORLD_PRIOR_DIR
from dreamsampler.metrics import world_metrics as w
from dreamsampler.tasks import EditTask, InpaintTask

EVAL = WORLD_PRIOR_DIR.parent / "eval_world"


def group(task: str, name: str) -> list[dict]:
    rows = [json.loads(line) for line in (EVAL / f"{task}.jsonl").read_text().splitlines()]
    picked = [{**r, "image": str(EVAL / r["image"])} for r in rows if r["group"] == name]
    assert picked, f"no group {name!r} in {task}.jsonl"
    return picked


@pytest.fixture(scope="module")
def text_to_image():
    """Per-part accuracy of DDIM-50, CFG-3 samples of the world's 36 check prompts, 2 seeds (72 images)."""
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(2)
    pipe = StableDiffusionPipeline.from_pretrained(str(WORLD_PRIOR_DIR), safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    world = worlds.world("scenes-faces")
    prompts, hits = world.eval_prompts(), {}
    for seed in (0, 1):
        gens = [torch.Generator().manual_seed(seed * 1000 + i) for i in range(len(prompts))]
        images = pipe(prompts, num_inference_steps=50, guidance_scale=3.0, generator=gens, output_type="np").images
        for prompt, img in zip(prompts, images):
            kind = "face" if "face" in prompt else "scene"
            for part, ok in world.read(prompt, img).items():
                hits.setdefault(f"{kind}:{part}", []).append(ok)
    acc = {k: sum(v) / len(v) for k, v in hits.items()}
    print(f"\n[world prior text-to-image] {json.dumps({k: round(v, 3) for k, v in acc.items()})}")
    return acc


def test_vae_reconstructs_held_out_world_images():
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(WORLD_PRIOR_DIR), subfolder="vae", low_cpu_mem_usage=False).eval()
    x, _ = worlds.world("scenes-faces").sample(128, torch.Generator().manual_seed(99))
    with torch.no_grad():
        rec = ((vae.decode(vae.encode(x * 2 - 1).latent_dist.mode()).sample + 1) / 2).clamp(0, 1)
    psnr = float((10 * torch.log10(1 / ((rec - x) ** 2).flatten(1).mean(1))).mean())
    print(f"\n[world prior VAE] {psnr:.2f} dB on 128 held-out images")     # measured 33.0 dB
    assert psnr >= 30.0


def test_text_to_image_shows_every_part_of_the_prompt(text_to_image):
    """Measured 2026-12-03: glasses, smile, face color 100 %; scene object count and objects in order 95.8 %."""
    assert text_to_image["face:glasses"] >= 0.8, text_to_image
    assert text_to_image["face:smile"] >= 0.8, text_to_image
    assert text_to_image["face:color"] >= 0.8, text_to_image
    assert text_to_image["scene:objects"] >= 0.6, text_to_image


@pytest.fixture(scope="module")
def two_holes(world_backbone, tmp_path_factory):
    """Table 2's two-hole case: glasses in the eyes box, a smile in the mouth box, 12 faces, one batched run."""
    torch.set_num_threads(2)
    samples = group("inpaint", "two holes: glasses + smile, DreamSampler")
    task = InpaintTask(samples=samples, null_prompt="", size=64, backbone="scenes-faces", nfe=60, trajectory_every=0)
    out = fit_task(task, world_backbone, tmp_path_factory.mktemp("two_holes"))
    holes = task.inpaint_batch.holes.cpu()
    per_hole = {"glasses": [], "smile": []}
    for k, (b, prompt) in enumerate(zip(task.inpaint_batch.owner.tolist(), task.inpaint_batch.prompts)):
        parts = w.region_parts(prompt, out[b], holes[k, 0] > 0.5)
        for part, ok in parts.items():
            per_hole[part].append(ok)
    known = task.known.cpu()
    truth = (task.inpaint_batch.x + 1) / 2
    mse = ((known * (out - truth)) ** 2).flatten(1).sum(1) / (3 * known.flatten(1).sum(1))
    table = {k: sum(v) / len(v) for k, v in per_hole.items()}
    table["known_psnr_min"] = float((10 * torch.log10(1 / mse)).min())
    print(f"\n[world two holes] {table}")
    return table


def test_two_holes_each_take_their_own_attribute(two_holes):
    """Fig. 8 (bottom) / Table 2 in miniature: each hole shows its own prompt's attribute on >= 70 % (the issue's
    goal). Measured 2026-12-03: glasses 10/12 (the two green faces miss), smile 12/12, known PSNR >= 30.2 dB."""
    assert two_holes["glasses"] >= 0.7, two_holes
    assert two_holes["smile"] >= 0.7, two_holes
    assert two_holes["known_psnr_min"] >= 28, two_holes


@pytest.fixture(scope="module")
def regions(world_backbone, tmp_path_factory):
    """Eq. 19 on two-object scenes: both regions with their own prompt (8) and the left one alone (8), one run."""
    torch.set_num_threads(2)
    both, left = group("edit", "two regions (eq. 19)"), group("edit", "left region, right kept (eq. 19)")
    task = EditTask(samples=both + left, null_prompt="", size=64, backbone="scenes-faces", nfe=50, gamma=0.6,
                    trajectory_every=0)
    out = fit_task(task, world_backbone, tmp_path_factory.mktemp("regions"))
    two_hits, left_hits, kept = [], [], []
    for b, item in enumerate(both + left):
        inputs = task.eval_inputs(item)
        hits = [w.all_true(w.region_parts(p, out[b], m)) for m, p in inputs["regions"]]
        (two_hits if len(hits) == 2 else left_hits).extend(hits)
        if len(hits) == 1:
            kept.append(w.structure_iou(inputs["source"][0], out[b], outside=inputs["regions"][0][0]))
    table = {"two_regions_acc": sum(two_hits) / len(two_hits), "left_region_acc": sum(left_hits) / len(left_hits),
             "kept_iou_mean": sum(kept) / len(kept), "kept_iou_median": sorted(kept)[len(kept) // 2]}
    print(f"\n[world two regions] {table}")
    return table


def test_each_region_takes_its_own_prompt(regions):
    """Two objects, two regions, two prompts: measured 13/16 regions (0.81) at gamma 0.6 (2026-12-03)."""
    assert regions["two_regions_acc"] >= 0.68, regions
    assert regions["left_region_acc"] >= 0.5, regions


def test_the_object_outside_the_region_is_unchanged(regions):
    """Foreground IoU outside the one edited region. Measured at gamma 0.6 (2026-12-03): 0.83 0.00 0.98 0.00 0.94
    0.97 0.15 0.71 (mean 0.57, median 0.83). The prior's DDIM inversion loses the two zeros even at gamma 0 (pure
    inversion + reconstruction: mean 0.73, both ~0); the 0.15 is the edit itself (0.98 at gamma 0). Short of the
    issue's goal: these bars keep today's level."""
    assert regions["kept_iou_median"] >= 0.7, regions
    assert regions["kept_iou_mean"] >= 0.45, regions


@pytest.mark.parametrize("table, task", [("table1_edit", "edit"), ("table2_inpaint", "inpaint")])
def test_mini_table_config_writes_one_row_per_group(table, task, tmp_path):
    """The shipped config, through the real CLI, on the first sample of every group at NFE 8 (the full tables are the
    configs' own command, a few minutes each): metrics.md gets the overall table and one row per group."""
    from conftest import run_cli

    rows = [json.loads(line) for line in (EVAL / f"{task}.jsonl").read_text().splitlines()]
    firsts = list({r["group"]: {**r, "image": str(EVAL / r["image"])} for r in reversed(rows)}.values())[::-1]
    manifest = tmp_path / "subset.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in firsts))
    run = tmp_path / "run"
    proc = run_cli("predict", "-c", f"configs/mini/{table}.yaml", f"--data.manifest={manifest}", "--model.nfe=8",
                   f"--trainer.default_root_dir={run}", "--threads=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (run / "metrics.md").read_text()
    assert "## By group" in md and "fid (set)" in md
    for r in firsts:
        assert f"| {r['group']} | 1 |" in md, (r["group"], md)
    wanted = {"edit": ("attr_acc", "region_acc", "structure_iou", "kept_iou", "dino_structure"),
              "inpaint": ("known_psnr", "psnr", "hole_attr_acc")}[task]
    for metric in wanted:
        assert f"| {metric} |" in md, (metric, md)
