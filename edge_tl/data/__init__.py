"""Datasets: ImageFolder discovery, seeded stratified splits, fingerprints, the shipped sample."""

from edge_tl.data.folder import ImageFolder, Sample, scan_image_folder, stratified_split
from edge_tl.data.sample import sample_dataset_dir

__all__ = ["ImageFolder", "Sample", "scan_image_folder", "stratified_split", "sample_dataset_dir"]
