"""Callbacks that write outputs (PNGs, TensorBoard images, predictions, checkpoints)."""

from .outputs import ExportResults, LogTrajectory, RunCheckpoint, WritePredictions, run_dir

__all__ = ["ExportResults", "LogTrajectory", "RunCheckpoint", "WritePredictions", "run_dir"]
