"""Thin LightningModules, one per application, on the step contract of ``DreamSamplerTask``."""

from .base import DreamSamplerTask, Targets, proximal_sgd
from .edit import EditSample, EditTask, Region
from .generate import GenerateSample, GenerateTask
from .inpaint import Hole, InpaintSample, InpaintTask
from .svg import SVGSample, TextToSVGTask
from .svg_reconstruct import SVGReconstructTask
from .validated import ValidatedTask

__all__ = ["DreamSamplerTask", "EditSample", "EditTask", "GenerateSample", "GenerateTask", "Hole", "InpaintSample",
           "InpaintTask", "Region",
           "SVGReconstructTask", "SVGSample", "Targets", "TextToSVGTask", "ValidatedTask", "proximal_sgd"]
