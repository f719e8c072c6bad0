"""Errors that edge-tl reports to users: one line naming the file or field and the problem.

`cli.py` prints `str(error)` and exits non-zero; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

__all__ = [
    "EdgeTLError",
    "BundleError",
    "DataError",
    "ExportError",
    "EngineBuildError",
    "BackendError",
    "SourceError",
    "MissingDependencyError",
]


class EdgeTLError(Exception):
    """Base class of every error meant for the user."""


class BundleError(EdgeTLError):
    """A bundle folder or its manifest.json is missing, malformed or inconsistent."""


class DataError(EdgeTLError):
    """A dataset folder or an image in it cannot be used."""


class ExportError(EdgeTLError):
    """Exporting or converting a model failed."""


class EngineBuildError(EdgeTLError):
    """A TensorRT engine could not be built."""


class BackendError(EdgeTLError):
    """An inference backend could not be opened or run."""


class SourceError(EdgeTLError):
    """A video/image source could not be opened or read."""


class MissingDependencyError(EdgeTLError):
    """An optional dependency is not installed; the message names the pip extra."""
