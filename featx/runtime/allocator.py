"""Keep the feature core's large work arrays in the heap between files.

The analysis of one clip allocates a dozen arrays of 5-10 MB (spectra, masks,
filtered copies). With glibc's default settings each of them is mapped from the
kernel when it is allocated and returned to it when it is freed, so every clip
pays for about 8,000 fresh pages: measured here, 20 ms of system time on top of
about 75 ms of analysis per 30-second clip. :func:`keep_work_arrays` raises
glibc's mapping threshold to 32 MiB (arrays below it come from the heap and are
reused) and lets up to 64 MiB of free memory at the top of the heap stay with
the process instead of being trimmed after each clip.

The trim threshold bounds only the free memory at the top of the heap: freed
arrays below a live allocation stay with the process too, and setting the mapping
threshold ends glibc's own adaptive one for the rest of the process. That suits a
process that does nothing but extract features, so featx applies it only there:
in ``featx extract`` and in featx's own worker processes (which its pool marks with
``FEATX_KEEP_WORK_ARRAYS=1``), not when a program calls the library in its own
process. Such a program may call :func:`keep_work_arrays` itself.

It changes nothing on other C libraries, nor when the user has set glibc's own
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_TOP_PAD_``
environment variables or malloc tunables in ``GLIBC_TUNABLES`` (their choice
stands), nor when ``FEATX_MALLOC=0``.
"""
from __future__ import annotations

import ctypes
import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "WORKER_VAR", "keep_work_arrays"]

#: Set to "1" in the environment of a process that only extracts features.
WORKER_VAR = "FEATX_KEEP_WORK_ARRAYS"

#: Allocations below this size come from the heap (glibc's ``M_MMAP_THRESHOLD``).
MMAP_THRESHOLD = 32 << 20
#: Freed memory at the top of the heap kept up to this size (``M_TRIM_THRESHOLD``).
TRIM_THRESHOLD = 64 << 20

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def keep_work_arrays() -> bool:
    """Set the two glibc thresholds once per process; True if they are (now) set by featx."""
    global _done
    if _done:
        return _done is True
    _done = "skipped"
    if os.environ.get("FEATX_MALLOC", "1") == "0":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")):
        return False
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
    except (ValueError, OSError, AttributeError):
        return False  # not glibc

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        _done = True
    return _done is True
