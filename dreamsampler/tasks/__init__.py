"""Thin LightningModules, one per application, on the step contract of ``DreamSamplerTask``; and the baselines."""

from .base import DreamSamplerTask, Targets, proximal_sgd
from .distill import DDS, PDS, SDS, DDSEditTask, DistillEditTask, PDSEditTask, ScoreDistillation, SDSEditTask
from .dps import LatentDPSTask
from .edit import EditSample, EditTask, Region
from .generate import GenerateSample, GenerateTask
from .inpaint import Hole, InpaintSample, InpaintTask, TRegInpaintTask
from .svg import SVGSample, TextToSVGTask
from .svg_distill import DistillSVGTask, PDSSVGTask, SDSTextToSVGTask
from .svg_reconstruct import SVGReconstructTask
from .swap import SDEditTask, WordSwapEditTask
from .validated import ValidatedTask

__all__ = ["DDS", "DDSEditTask", "DistillEditTask", "DistillSVGTask", "DreamSamplerTask", "EditSample", "EditTask",
           "GenerateSample", "GenerateTask", "Hole", "InpaintSample", "InpaintTask", "LatentDPSTask", "PDS",
           "PDSEditTask", "PDSSVGTask", "Region", "SDEditTask", "SDS", "SDSEditTask", "SDSTextToSVGTask",
           "SVGReconstructTask", "SVGSample", "ScoreDistillation", "TRegInpaintTask", "Targets", "TextToSVGTask",
           "ValidatedTask", "WordSwapEditTask", "proximal_sgd"]
