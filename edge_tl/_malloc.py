"""glibc malloc tuning for the CPU training and benchmark entry points.

glibc returns large activation buffers to the OS (munmap) after every step, so the next step
page-faults them back in: batch-32 Lite0 inference ran at 26 img/s in a fresh process and
84 img/s with mmap disabled and a high trim threshold (performance-notes.md). Without this,
numbers depend on process history.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = False

log = logging.getLogger(__name__)


def tune_malloc() -> bool:
    """Apply `mallopt(M_MMAP_MAX, 0)` and a 1 GiB trim threshold once; False off glibc."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(libc_name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        log.debug("mallopt unavailable in %s; malloc left as is", libc_name)
        return False
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    _applied = ok
    return ok
