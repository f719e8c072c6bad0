"""The device side: inference backends, frame sources, stream processing and the daemon.

Runs on the lean device install (numpy, OpenCV, ONNX Runtime). Must not import torch, timm,
`edge_tl.models`, `edge_tl.train` or `edge_tl.export` (import-linter enforces it): backends
that need them (the PyTorch one) live on the torch side and register themselves by name.
"""

from edge_tl.runtime.backends import available_backends, create_backend
from edge_tl.runtime.classify import Classifier, Prediction

__all__ = ["Classifier", "Prediction", "available_backends", "create_backend"]
