"""Bad input: one clear error naming the problem, no traceback; odd-but-valid images are converted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from dreamsampler.cli import main
from dreamsampler.io.images import load_image


def cli_error(tmp_path, red_circle, *overrides: str) -> str:
    base = ["fit", "--model", "dreamsampler.tasks.EditTask", f"--model.image={red_circle}",
            "--model.prompt=a blue circle", "--model.size=16", "--model.backbone=tiny", "--model.nfe=2",
            f"--trainer.default_root_dir={tmp_path / 'run'}", "--trainer.enable_progress_bar=false"]
    with pytest.raises(SystemExit) as exc:
        main(base + list(overrides))
    msg = str(exc.value.code)
    assert msg.startswith("dreamsampler: error: "), msg
    return msg


def test_missing_image(tmp_path, red_circle):
    assert "image file '/no/such/img.png' does not exist" in cli_error(tmp_path, red_circle,
                                                                      "--model.image=/no/such/img.png")


def test_non_image_file(tmp_path, red_circle):
    bad = tmp_path / "notes.png"
    bad.write_text("this is text, not a picture")
    msg = cli_error(tmp_path, red_circle, f"--model.image={bad}")
    assert str(bad) in msg and "not a readable image" in msg


def test_mask_of_wrong_size(tmp_path, red_circle):
    mask = tmp_path / "mask.png"
    Image.new("L", (17, 9), 255).save(mask)
    msg = cli_error(tmp_path, red_circle, "--model.prompt=null",
                    f'--model.regions=[{{"prompt": "a blue circle", "mask": "{mask}"}}]')
    assert "mask file" in msg and "17x9" in msg and "40x40" in msg


def test_empty_target_prompt(tmp_path, red_circle):
    assert "target prompt must be a non-empty string" in cli_error(tmp_path, red_circle, "--model.prompt=  ")


@pytest.mark.parametrize("nfe", ["0", "-3"])
def test_nfe_not_positive(tmp_path, red_circle, nfe):
    assert f"nfe must be a positive integer, got {nfe}" in cli_error(tmp_path, red_circle, f"--model.nfe={nfe}")


def test_backbone_path_missing(tmp_path, red_circle):
    msg = cli_error(tmp_path, red_circle, "--model.backbone=./models/missing-sd15")
    assert "backbone path './models/missing-sd15' does not exist" in msg


def test_corrupt_checkpoint_keeps_existing_files(tmp_path, red_circle):
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    bad = run / "last.ckpt"
    bad.write_bytes(b"\x80\x02 truncated checkpoint")
    msg = cli_error(tmp_path, red_circle, f"--ckpt_path={bad}")
    assert "is not a readable checkpoint" in msg and str(bad) in msg
    msg = cli_error(tmp_path, red_circle, "--ckpt_path=last")
    assert "is not a readable checkpoint" in msg
    assert bad.read_bytes() == b"\x80\x02 truncated checkpoint"      # nothing overwritten


def test_error_is_one_line_without_traceback(tmp_path, red_circle):
    proc = run_cli("fit", "--model", "dreamsampler.tasks.EditTask", "--model.image=/no/such.png",
                   "--model.prompt=x", f"--trainer.default_root_dir={tmp_path}")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "dreamsampler: error: image file '/no/such.png' does not exist"


# ---------------------------------------------------------------- converted, not refused
def _expected_gray(v: float) -> torch.Tensor:
    return torch.full((1, 3, 4, 4), v)


def test_grayscale_rgba_and_16bit_are_converted(tmp_path):
    Image.new("L", (4, 4), 51).save(tmp_path / "gray.png")
    torch.testing.assert_close(load_image(tmp_path / "gray.png"), _expected_gray(51 / 255))
    # half-transparent black over white = mid gray
    Image.new("RGBA", (4, 4), (0, 0, 0, 128)).save(tmp_path / "rgba.png")
    torch.testing.assert_close(load_image(tmp_path / "rgba.png"), _expected_gray(1 - 128 / 255))
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    torch.testing.assert_close(load_image(tmp_path / "deep.png"), _expected_gray(40000 / 65535))
    x = load_image(tmp_path / "deep.png", size=8)
    assert x.shape == (1, 3, 8, 8) and x.dtype == torch.float32


def test_overlong_prompt_is_truncated_with_warning(tiny_backbone):
    long = " ".join(["red circle"] * 40)
    with pytest.warns(UserWarning, match="truncated to the text encoder's 16"):
        emb = tiny_backbone.encode_text([long])
    assert emb.tensors["hidden"].shape == (1, 16, 32)


def test_validate_without_result(tmp_path, red_circle):
    with pytest.raises(SystemExit) as exc:
        main(["validate", "--model", "dreamsampler.tasks.EditTask", f"--model.image={red_circle}",
              "--model.prompt=a blue circle", "--model.size=16", "--model.backbone=tiny", "--model.nfe=2",
              f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false"])
    assert "nothing to validate" in str(exc.value.code)


def test_half_precision_for_psi_refused(tmp_path, red_circle):
    msg = cli_error(tmp_path, red_circle, "--trainer.precision=bf16-true")
    assert "trainer.precision='bf16-true' is not supported" in msg and "bf16-mixed" in msg


def test_max_epochs_other_than_one_refused(tmp_path, red_circle):
    msg = cli_error(tmp_path, red_circle, "--trainer.max_epochs=2")
    assert "trainer.max_epochs must be 1" in msg and "got 2" in msg


def test_negative_checkpoint_every_refused(tmp_path, red_circle):
    assert "--checkpoint_every must be an integer >= 0" in cli_error(tmp_path, red_circle, "--checkpoint_every=-1")


def test_fit_on_several_processes_refused(red_circle):
    from types import SimpleNamespace

    from dreamsampler.errors import InputError
    from dreamsampler.tasks import EditTask

    task = EditTask(image=str(red_circle), prompt="a blue circle", size=16, backbone="tiny", nfe=2)
    task._trainer = SimpleNamespace(precision="32-true", max_epochs=1, world_size=2,      # as a DDP trainer
                                    strategy=SimpleNamespace(root_device=torch.device("cpu")))
    with pytest.raises(InputError, match="fit optimizes one batch of samples in one process"):
        task.setup("fit")


@pytest.mark.parametrize("every, nfe", [("0", 3), ("2", 3)])
def test_last_checkpoint_written_at_the_end(tmp_path, red_circle, every, nfe):
    main(["fit", "--model", "dreamsampler.tasks.EditTask", f"--model.image={red_circle}",
          "--model.prompt=a blue circle", "--model.size=16", "--model.backbone=tiny", f"--model.nfe={nfe}",
          f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false", f"--checkpoint_every={every}"])
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == nfe                       # the finished state, whatever the cadence


def test_tiny_source_image_refused(tmp_path):
    from dreamsampler.tasks import EditTask
    import lightning as L

    Image.new("RGB", (1, 1), "red").save(tmp_path / "dot.png")
    task = EditTask(image=str(tmp_path / "dot.png"), prompt="a blue circle", size=16, backbone="tiny", nfe=2)
    with pytest.raises(Exception, match="smaller than one latent cell"):
        L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False).fit(task)


def test_threads_must_be_positive(tmp_path, red_circle):
    assert "--threads must be >= 1, got 0" in cli_error(tmp_path, red_circle, "--threads=0")


def test_predict_over_an_empty_manifest_is_one_clear_error(tmp_path):
    """Regression (review of Core v2): an empty manifest exited 0 after Lightning's 'Total length of DataLoader
    across ranks is zero' warning."""
    (tmp_path / "empty.jsonl").write_text("\n")
    proc = run_cli("predict", "--model", "dreamsampler.tasks.EditTask", "--model.backbone=tiny", "--data",
                   "dreamsampler.data.Manifest", f"--data.manifest={tmp_path / 'empty.jsonl'}",
                   f"--trainer.default_root_dir={tmp_path / 'run'}")
    assert proc.returncode != 0
    assert f"manifest '{tmp_path / 'empty.jsonl'}' holds no samples" in proc.stderr
    assert "Traceback" not in proc.stderr
