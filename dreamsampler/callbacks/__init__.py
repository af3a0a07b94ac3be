"""Callbacks that write outputs (PNGs, TensorBoard images)."""

from .outputs import ExportResults, LogTrajectory, WritePredictions, run_dir

__all__ = ["ExportResults", "LogTrajectory", "WritePredictions", "run_dir"]
