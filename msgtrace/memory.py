"""Giving freed memory back to the system between the big steps of a batch run.

Three allocators share an ingest: Polars' (jemalloc, which returns freed pages within a second by
itself), Arrow's pool (mimalloc: pyarrow's Parquet writer) and the C library's malloc, which holds
the compiled core's output (the parsers' and the correlator's columns arrive as Python bytes) and
keeps what they free for its own reuse: 100 to 250 MB of an Exchange run's resident memory that
the next step, allocating through Polars or Arrow, cannot use. Releasing it costs a few
milliseconds (malloc_trim walks its free lists), so it is done a few times a flush, not more.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl has no malloc_trim
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_unused() -> None:
    """Return the memory the C library's malloc and Arrow's pool hold free to the system."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    if "pyarrow" in sys.modules:  # never imported for it
        sys.modules["pyarrow"].default_memory_pool().release_unused()
