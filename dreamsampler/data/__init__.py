"""Datasets for dataset-scale runs (``dreamsampler predict``)."""

from .manifest import EditManifest, Manifest, folder_items, read_manifest

__all__ = ["EditManifest", "Manifest", "folder_items", "read_manifest"]
