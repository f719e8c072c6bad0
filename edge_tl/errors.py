"""Errors that edge-tl reports to users: one line naming the file or field and the problem.

`cli.py` prints `str(error)` and exits non-zero; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EdgeTLError",
    "BundleError",
    "DataError",
    "ExportError",
    "EngineBuildError",
    "BackendError",
    "SourceError",
    "MissingDependencyError",
    "validation_message",
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


def validation_message(exc: Any) -> str:
    """One line for a pydantic ValidationError: the first field at fault and what is wrong
    ("field 'streams.0.mode': ..."), with how many more problems there are."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        message = "unknown field (typo?)"
    else:
        message = first["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"field '{where}': {message}{more}"
