"""Frozen diffusion backbones of every family behind one interface: presets built in code, the shipped shapes prior,
SD 1.x/2.x, SDXL, SD 3/3.5 and Flux from a hub id, a diffusers folder or a single ``.safetensors`` file."""

from .backbone import SHAPES_PRIOR_DIR, SHIPPED_PRIORS, WORLD_PRIOR_DIR, Backbone, BackboneError, BackboneOptions, DType
from .cond import Cond
from .flow import FluxBackbone, SD3Backbone
from .unet import SDBackbone, SDXLBackbone

__all__ = ["SHAPES_PRIOR_DIR", "SHIPPED_PRIORS", "WORLD_PRIOR_DIR", "Backbone", "BackboneError", "BackboneOptions", "Cond", "DType", "FluxBackbone",
           "SD3Backbone", "SDBackbone", "SDXLBackbone"]
