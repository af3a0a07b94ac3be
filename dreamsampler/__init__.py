"""DreamSampler: diffusion sampling and score distillation as one regularized optimization (ECCV'24)."""

__version__ = "0.1.0"
