"""Frozen diffusion backbones: presets built in code, the shipped shapes prior, SD from id/folder/.safetensors."""

from .backbone import SHAPES_PRIOR_DIR, Backbone, BackboneError

__all__ = ["SHAPES_PRIOR_DIR", "Backbone", "BackboneError"]
