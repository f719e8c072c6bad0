"""Import optional heavy dependencies on first use, with an error that names the pip extra.

Never installs anything: a missing module is the user's choice of extras, not ours to change.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edge_tl.errors import MissingDependencyError

__all__ = ["require", "is_available"]


def require(module: str, extra: str) -> ModuleType:
    """Import `module` or raise MissingDependencyError telling which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"'{module}' is needed for this and is not importable ({exc}); "
            f"install it with: pip install 'edge-tl[{extra}]'"
        ) from exc


def is_available(module: str) -> bool:
    """True when `module` imports; used for backend selection, never for installing."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
