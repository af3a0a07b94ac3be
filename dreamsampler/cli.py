"""The ``dreamsampler`` command: a LightningCLI (fit / validate / predict) over the task classes.

Every run lives in ``trainer.default_root_dir`` (the run directory): TensorBoard logs, ``config.yaml``,
``checkpoints/last.ckpt`` (so ``--ckpt_path last`` resumes), and the result PNGs.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from .callbacks import ExportResults, LogTrajectory, RunCheckpoint, WritePredictions
from .errors import InputError
from .evaluate import EvalConfig, evaluate_run
from .tasks import DreamSamplerTask


class _DropTips(logging.Filter):
    """Lightning's advertising tip is not something a user of this command needs to read on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("💡 Tip")


def quiet_startup() -> None:
    """Keep the start of a run readable: no cloud tip, no per-file weight-loading bars, no library deprecations."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # the tasks keep schedule scalars on the host on purpose (DreamSamplerTask.transfer_batch_to_device)
    warnings.filterwarnings("ignore", message="You have overridden `transfer_batch_to_device`")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()      # "Loading pipeline components..." of every backbone load


def check_checkpoint(path: Path) -> None:
    """Refuse a checkpoint that is not a readable Lightning checkpoint, before anything runs."""
    if not path.is_file():
        raise InputError(f"--ckpt_path {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds for truncated/garbage files
        raise InputError(f"--ckpt_path {str(path)!r} is not a readable checkpoint: corrupt, truncated or not "
                         f"written by dreamsampler (safe torch.load(weights_only=True) failed with "
                         f"{type(err).__name__}); nothing was overwritten") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InputError(f"--ckpt_path {str(path)!r} is not a Lightning checkpoint (no 'state_dict' key)")


class DreamSamplerCLI(LightningCLI):
    """LightningCLI with the run-directory conventions (logger, checkpoints, exports) filled in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})   # resuming re-runs in the same directory
        kwargs.setdefault("trainer_defaults", {"max_epochs": 1, "log_every_n_steps": 5,
                                               "default_root_dir": "runs/default",
                                               "inference_mode": False,      # predict runs whole optimizations
                                               "enable_model_summary": False,
                                               "num_sanity_val_steps": 0})
        kwargs.setdefault("seed_everything_default", False)   # all noise comes from (seed, step, sample) generators
        super().__init__(DreamSamplerTask, *args, subclass_mode_model=True, auto_configure_optimizers=False,
                         **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--checkpoint_every", type=int, default=10,
                            help="write <run dir>/checkpoints/last.ckpt every this many reverse steps, and at the "
                                 "end (0: only at the end; psi is small)")
        parser.add_class_arguments(EvalConfig, "evaluate")
        parser.add_argument("--threads", type=Optional[int], default=None,
                            help="torch intra-op CPU threads (default: torch's); 1 is fastest for the tiny shapes "
                                 "demos, whose small ops only wait on each other with more")

    def before_instantiate_classes(self) -> None:
        threads = self.config[self.subcommand].get("threads") if self.subcommand else None
        if threads is not None:
            if threads < 1:
                raise InputError(f"--threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)

    def before_predict(self) -> None:
        """Check ``--ckpt_path last``; results are written as they finish, so keeping them all in memory (Lightning's
        ``return_predictions`` default) would only grow it."""
        self.before_fit()
        if self.config_init["predict"].get("return_predictions") is None:
            self.config_init["predict"]["return_predictions"] = False

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer with the run-directory conventions: a TensorBoard logger writing into the run directory,
        ``checkpoints/last.ckpt`` every ``--checkpoint_every`` reverse steps, and the output callbacks."""
        config = self.config_init[self.subcommand]["trainer"] if self.subcommand else self.config_init["trainer"]
        root = Path(config.get("default_root_dir") or "runs/default")
        if config.get("logger") in (None, True):
            kwargs["logger"] = TensorBoardLogger(save_dir=str(root), name="", version="")
        every = self.config[self.subcommand].get("checkpoint_every", 10) if self.subcommand else 10
        if not isinstance(every, int) or every < 0:
            raise InputError(f"--checkpoint_every must be an integer >= 0 (0: only at the end), got {every!r}")
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_checkpointing", True) is not False and not any(
                isinstance(c, ModelCheckpoint) for c in callbacks):
            # one reverse step = inner_steps optimizer steps (Lightning's global_step counts the latter)
            steps = every * int(getattr(self.model, "inner_steps", 1))
            callbacks.append(RunCheckpoint(dirpath=root / "checkpoints", save_last=True, save_top_k=0,
                                           every_n_train_steps=steps, save_on_train_epoch_end=True))
        kwargs["callbacks"] = callbacks + [ExportResults(), LogTrajectory(), WritePredictions()]
        return super().instantiate_trainer(**kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then validate an explicit ``--ckpt_path`` file before LightningCLI reads hyperparameters from it."""
        super().parse_arguments(parser, args)
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else None
        if ckpt not in (None, "last", "best", "hpc", "registry"):
            check_checkpoint(Path(ckpt))

    def before_fit(self) -> None:
        """Validate ``--ckpt_path last`` (resolved from the checkpoint directory) before anything runs."""
        ckpt = self.config[self.subcommand].get("ckpt_path")
        if ckpt == "last":
            for cb in self.trainer.checkpoint_callbacks:
                last = Path(cb.dirpath or "") / "last.ckpt"
                if last.exists():
                    check_checkpoint(last)

    before_validate = before_fit

    def after_predict(self) -> None:
        """Score the dataset from the written files (rank 0, after every rank finished) when asked to."""
        given = self.config["predict"].get("evaluate") or {}
        cfg = EvalConfig(**(given.as_dict() if hasattr(given, "as_dict") else dict(given)))
        if cfg.metrics and self.trainer.is_global_zero:
            run = Path(self.trainer.default_root_dir)
            table = evaluate_run(run, self.model, [dict(it) for it in self.datamodule.items], cfg)
            print(f"dreamsampler: wrote {run / 'metrics.md'}\n{table}", flush=True)


def evaluate_command(argv: list[str]) -> None:
    """``dreamsampler evaluate <run dir>``: recompute the metrics of a ``predict`` run from its files."""
    import argparse

    import yaml
    from lightning.pytorch import LightningDataModule

    ap = argparse.ArgumentParser(prog="dreamsampler evaluate", description=evaluate_command.__doc__)
    ap.add_argument("run_dir", type=Path, help="the predict run's directory (holds config.yaml, predictions/)")
    ap.add_argument("--metrics", nargs="+", help="metric names, or auto (default: the run's evaluate.metrics)")
    for key in ("clip", "dino", "device"):
        ap.add_argument(f"--{key}")
    ap.add_argument("--fid_features", type=lambda v: int(v) if v.isdigit() else v,
                    help="InceptionV3 width (64, 192, 768, 2048) or vae (the backbone's own VAE encoder)")
    ap.add_argument("--lpips", action="store_true", default=None)
    args = ap.parse_args(argv)
    config_file = args.run_dir / "config.yaml"
    if not config_file.is_file():
        raise InputError(f"{str(args.run_dir)!r} is not a predict run directory: {str(config_file)!r} is missing")
    saved = yaml.safe_load(config_file.read_text()) or {}
    if not isinstance(saved.get("data"), dict):
        raise InputError(f"{str(config_file)!r} has no `data` manifest: evaluate scores `dreamsampler predict` runs")
    parser = LightningArgumentParser()
    parser.add_lightning_class_args(DreamSamplerTask, "model", subclass_mode=True)
    parser.add_lightning_class_args(LightningDataModule, "data", subclass_mode=True)
    parser.add_class_arguments(EvalConfig, "evaluate")
    objects = parser.instantiate_classes(parser.parse_object(
        {k: saved[k] for k in ("model", "data", "evaluate") if k in saved}))
    given = {k: v for k, v in vars(args).items() if k != "run_dir" and v is not None}
    saved_eval = objects["evaluate"]
    cfg = EvalConfig(**{**(saved_eval if isinstance(saved_eval, dict) else vars(saved_eval)), **given})
    if not cfg.metrics:
        cfg.metrics = ["auto"]
    data = objects["data"]
    if not hasattr(data, "check"):
        raise InputError(f"{str(config_file)!r}: evaluate reads a dreamsampler.data.Manifest, got {type(data).__name__}")
    table = evaluate_run(args.run_dir, objects["model"], data.check(objects["model"]), cfg)
    print(f"dreamsampler: wrote {args.run_dir / 'metrics.md'}\n{table}")


def input_error(err: BaseException) -> InputError | None:
    """The InputError behind ``err`` (jsonargparse wraps errors raised while instantiating classes), if any."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, InputError):
        cause = cause.__cause__ or cause.__context__
    return cause


def main(args: list[str] | None = None) -> None:
    """Console entry point: ``dreamsampler fit -c configs/edit/demo.yaml``; ``dreamsampler evaluate <run dir>``;
    ``dreamsampler compare -c configs/compare/demo_edit.yaml`` (several methods over one manifest).

    ``predict`` exits with status 0 when every sample succeeded, else the number of failed samples (at most
    100); they are listed in ``<run dir>/predictions/errors.jsonl``."""
    quiet_startup()
    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv[:1] == ["evaluate"]:
            evaluate_command(argv[1:])
            return
        if argv[:1] == ["compare"]:
            from .compare import compare_command

            failed = compare_command(argv[1:])
            if failed:
                sys.exit(min(failed, 100))
            return
        cli = DreamSamplerCLI(args=args)
    except Exception as err:  # jsonargparse wraps errors raised while instantiating classes: find ours
        cause = input_error(err)
        if cause is None:
            raise
        sys.exit(f"dreamsampler: error: {cause}")
    failed = sum(getattr(cb, "failed", 0) for cb in cli.trainer.callbacks if isinstance(cb, WritePredictions))
    if failed:
        sys.exit(min(failed, 100))


if __name__ == "__main__":
    main()
