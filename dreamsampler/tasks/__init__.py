"""Thin LightningModules, one per application."""

from .base import DreamSamplerTask, Prediction
from .edit import EditTask, Region

__all__ = ["DreamSamplerTask", "EditTask", "Prediction", "Region"]
