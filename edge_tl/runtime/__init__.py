"""Inference runtime: preprocessing, backends, sources and stream processing.

Runs on the lean device install (numpy, OpenCV, ONNX Runtime): nothing here imports torch at
module level; the torch backend imports it when opened.
"""

from edge_tl.runtime.backends import available_backends, create_backend
from edge_tl.runtime.classify import Classifier, Prediction
from edge_tl.runtime.preprocess import load_image, preprocess

__all__ = [
    "Classifier",
    "Prediction",
    "available_backends",
    "create_backend",
    "load_image",
    "preprocess",
]
