"""edge-tl: image classifiers from labelled photos to a low-latency service on a camera.

Importing the package must stay cheap and torch-free: heavy modules are imported where used.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
