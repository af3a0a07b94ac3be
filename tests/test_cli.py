"""Every shipped config parses and instantiates; the demo runs end to end through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO, run_cli
from dreamsampler import shapes
from dreamsampler.cli import DreamSamplerCLI
from dreamsampler.compare import SHARED_KEYS, with_root, read_config
from dreamsampler.tasks import DreamSamplerTask

CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def run_configs(config: Path, tmp_path: Path) -> list[Path]:
    """The LightningCLI configs of a config file: itself, or for a ``dreamsampler compare`` config one per method
    (with the shared keys; ``{root}`` paths pointed at folders that exist)."""
    cfg = yaml.safe_load(config.read_text())
    if "methods" not in cfg:
        return [config]
    read_config(config)
    out = []
    for name, model in cfg["methods"].items():
        (tmp_path / name / "predictions").mkdir(parents=True)
        one = {k: cfg[k] for k in SHARED_KEYS if k in cfg}
        one["model"] = with_root(model, tmp_path)
        out.append(tmp_path / f"{name}.yaml")
        out[-1].write_text(yaml.safe_dump(one))
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c.relative_to(REPO)) for c in CONFIGS])
def test_config_instantiates(config, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    for one in run_configs(config, tmp_path):
        cli = DreamSamplerCLI(args=["-c", str(one), f"--trainer.default_root_dir={tmp_path}"], run=False)
        assert isinstance(cli.model, DreamSamplerTask)
        assert cli.model.nfe > 0
        if cli.datamodule is None:
            assert cli.model.fit_batch.names          # the samples `fit` will optimize were read and validated
        assert list(cli.model.parameters()) == []      # psi is created in setup, from the backbone's latent shape


def test_demo_runs_and_writes_outputs(tmp_path):
    run = tmp_path / "demo"
    proc = run_cli("fit", "-c", "configs/edit/demo.yaml", f"--trainer.default_root_dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for noise in ("accelerate", "Tip:", "Loading weights", "LeafSpec", "ModelCheckpoint", "Seed set"):
        assert noise not in proc.stdout + proc.stderr, f"start-up noise: {noise!r}"
    for name in ("edited.png", "comparison.png", "config.yaml", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    edited = Image.open(run / "edited.png").convert("RGB")
    assert edited.size == (64, 64)
    source = Image.open(REPO / "dreamsampler/assets/demo/red_circle.png").convert("RGB")
    assert shapes.dominant_color(source) == "red" and shapes.dominant_color(edited) == "blue"   # the demo's promise
    assert shapes.mask_iou(shapes.shape_mask(source), shapes.shape_mask(edited)) >= 0.7
    assert Image.open(run / "comparison.png").size == (128, 64)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    assert "z0_hat" in events.Tags()["images"] and "train/prox" in events.Tags()["scalars"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert set(ckpt["state_dict"]) == {"generator.psi", "eps_tilde", "initialized"}   # no frozen weights
