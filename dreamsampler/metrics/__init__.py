"""Evaluation metrics: per-sample functions of (B, 3, H, W) image tensors in [0, 1], feature models, intervals."""

from .features import load_clip, load_dino, save_tiny_clip, save_tiny_dino
from .image import fid, lpips, psnr, ssim
from .semantic import clip_accuracy, clip_similarity, dino_structure_distance
from .shapes_metrics import prompt_accuracy, structure_iou
from .stats import mean_ci

__all__ = [
    "clip_accuracy", "clip_similarity", "dino_structure_distance", "fid", "load_clip", "load_dino", "lpips",
    "mean_ci", "prompt_accuracy", "psnr", "save_tiny_clip", "save_tiny_dino", "ssim", "structure_iou",
]
