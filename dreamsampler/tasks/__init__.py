"""Thin LightningModules, one per application, on the step contract of ``DreamSamplerTask``."""

from .base import DreamSamplerTask, Targets, proximal_sgd
from .edit import EditSample, EditTask, Region
from .generate import GenerateSample, GenerateTask

__all__ = ["DreamSamplerTask", "EditSample", "EditTask", "GenerateSample", "GenerateTask", "Region", "Targets",
           "proximal_sgd"]
