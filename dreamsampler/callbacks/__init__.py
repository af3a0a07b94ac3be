"""Callbacks that write outputs (PNGs, TensorBoard images)."""

from .outputs import ExportResults, LogTrajectory, run_dir

__all__ = ["ExportResults", "LogTrajectory", "run_dir"]
