"""Datasets for dataset-scale runs (``dreamsampler predict``)."""

from .manifest import EditManifest, read_manifest

__all__ = ["EditManifest", "read_manifest"]
