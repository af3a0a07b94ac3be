"""Callbacks that write outputs: result PNGs, TensorBoard images, dataset predictions, the run's checkpoints."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from ..io.files import write_text
from ..io.images import save_image


def run_dir(trainer: L.Trainer) -> Path:
    """The run directory: the logger's directory, else ``trainer.default_root_dir``."""
    return Path(trainer.log_dir or trainer.default_root_dir)


def sample_files(name: str | None, images: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """File names of one sample's images: ``<key>.png`` for a lone sample (``name`` None), else ``<name>.png``
    for the first (main) image and ``<name>_<key>.png`` for the others."""
    if name is None:
        return [(f"{key}.png", img) for key, img in images.items()]
    return [(f"{name}.png" if i == 0 else f"{name}_{key}.png", img) for i, (key, img) in enumerate(images.items())]


class ExportResults(L.Callback):
    """At the end of ``fit``, write ``pl_module.result_images()`` (and ``result_texts()``, e.g. SVG files):
    ``<run dir>/<key>.png`` for one sample, or ``<run dir>/samples/<name>[_<key>].png`` for each of several."""

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            images, texts = pl_module.result_images(), pl_module.result_texts()
        names = pl_module.sample_names
        single = len(names) == 1
        folder = run_dir(trainer) if single else run_dir(trainer) / "samples"
        for b, name in enumerate(names):
            one = {key: img[b] for key, img in images.items()}
            for file, img in sample_files(None if single else name, one):
                print(f"dreamsampler: wrote {save_image(img, folder / file)}")
            for key, per_sample in texts.items():
                path = write_text(per_sample[b], folder / (key if single else f"{name}_{key}"))
                print(f"dreamsampler: wrote {path}")


class LogTrajectory(L.Callback):
    """Log the decoded z0_hat that the task stored (every ``trajectory_every`` steps) to TensorBoard, the B
    samples side by side, and for image generators (SVG) the raster g(psi) too."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        z = getattr(pl_module, "last_z0_hat", None)
        if z is None or not trainer.is_global_zero:
            return
        pl_module.last_z0_hat = None
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                with torch.no_grad():
                    img = torch.cat(list(pl_module.decode_latent(z).float().cpu()), dim=2)
                    raster = None if getattr(pl_module.generator, "outputs_latent", True) else \
                        torch.cat(list(pl_module.generator().float().cpu()), dim=2)
                logger.experiment.add_image("z0_hat", img, global_step=int(batch["step"]))
                if raster is not None:
                    logger.experiment.add_image("raster", raster, global_step=int(batch["step"]))


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:       # a line cut by a kill: that sample is simply not done
            pass
    return rows


def _append_line(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class WritePredictions(BasePredictionWriter):
    """Write each predicted sample as its batch finishes: ``<run dir>/predictions/<name>.png`` (+ other images as
    ``<name>_<key>.png``, text files such as SVGs as ``<name>_<key>``), atomically, from whichever rank computed
    it. Each rank appends one line per finished sample to ``predictions/done.rank<r>.jsonl`` (name, rank, seconds
    since the run started) and one per failed sample to ``errors.rank<r>.jsonl`` (name, rank, error); at the end
    rank 0 merges this run's failures into ``predictions/errors.jsonl`` and prints the summary. Rank 0 prints the
    progress of all ranks (samples done / total, failures, rate, ETA) after each of its batches."""

    def __init__(self) -> None:
        super().__init__(write_interval="batch")
        self._t0 = time.time()
        self.failed = self.done = self.total = 0

    def folder(self, trainer) -> Path:
        return Path(trainer.default_root_dir) / "predictions"

    def on_predict_start(self, trainer, pl_module) -> None:
        self._t0 = time.time()
        out = self.folder(trainer)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"errors.rank{trainer.global_rank}.jsonl").write_text("")     # this run's failures only
        pending = getattr(trainer.datamodule, "pending", None)
        self._pending = {it["name"] for it in pending} if pending is not None else None
        self.total = len(self._pending) if pending is not None else sum(len(dl.dataset) for dl in
                                                                          trainer.predict_dataloaders or [])

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        out, rank = self.folder(trainer), trainer.global_rank
        for sample in prediction or []:
            name = sample["name"]
            if "error" in sample:
                print(f"dreamsampler: sample {name!r} failed: {sample['error']}", file=sys.stderr, flush=True)
                _append_line(out / f"errors.rank{rank}.jsonl", {"name": name, "rank": rank, "error": sample["error"]})
                continue
            files = sample_files(name, {k: v for k, v in sample.items() if k not in ("name", "texts")})
            for file, img in files[1:]:
                save_image(img, out / file)
            for key, text in sample.get("texts", {}).items():
                write_text(text, out / f"{name}_{key}")
            save_image(files[0][1], out / files[0][0])      # last: its presence marks the sample done
            _append_line(out / f"done.rank{rank}.jsonl",
                         {"name": name, "rank": rank, "seconds": round(time.time() - self._t0, 3)})
        if trainer.is_global_zero:
            print(f"dreamsampler: {self.progress(trainer)}", flush=True)

    def count(self, trainer) -> tuple[int, int]:
        """Samples of this run done and failed so far, over all ranks (from the ranks' files)."""
        out = self.folder(trainer)
        done = {r.get("name") for f in out.glob("done.rank*.jsonl") for r in _jsonl(f)}
        failed = {r.get("name") for f in out.glob("errors.rank*.jsonl") for r in _jsonl(f)}
        if self._pending is not None:
            done, failed = done & self._pending, failed & self._pending
        return len(done), len(failed - done)

    def progress(self, trainer) -> str:
        done, failed = self.count(trainer)
        elapsed = time.time() - self._t0
        rate = (done + failed) / elapsed if elapsed > 0 else 0.0
        left = self.total - done - failed
        eta = f", ETA {_duration(left / rate)}" if rate > 0 and left > 0 else ""
        return f"predict {done + failed}/{self.total} samples ({failed} failed), {rate:.2f} samples/s{eta}"

    def on_predict_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier()
        if not trainer.is_global_zero:
            return
        out = self.folder(trainer)
        errors = [r for f in sorted(out.glob("errors.rank*.jsonl")) for r in _jsonl(f)]
        write_text("".join(json.dumps(r) + "\n" for r in errors), out / "errors.jsonl")
        self.done, self.failed = self.count(trainer)
        note = f"; see {out / 'errors.jsonl'}" if self.failed else ""
        print(f"dreamsampler: predict finished: {self.done} of {self.total} samples written, {self.failed} failed "
              f"in {_duration(time.time() - self._t0)}{note}", flush=True)


class RunCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt`` every N optimizer steps and, whatever N, once more when the run ends (Lightning's
    own ``save_last`` skips the end when the last periodic save was earlier). A ``ModelCheckpoint``, so
    ``--ckpt_path last`` finds its files."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._saved_step: int | None = None

    def on_train_batch_end(self, *args, **kwargs) -> None:
        # Lightning warns that under manual optimization a checkpoint holds the state *after* the step: that is
        # exactly the state to resume from (the step's state advance happens inside training_step).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
            super().on_train_batch_end(*args, **kwargs)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._saved_step = int(checkpoint.get("global_step", trainer.global_step))
        super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved_step != trainer.global_step and self.dirpath:
            path = str(Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}")
            trainer.save_checkpoint(path, weights_only=False)   # the full state: resuming needs the optimizer
            self.last_model_path = path
