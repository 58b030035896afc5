"""Giving freed memory back to the system between the big steps of a batch run.

Three allocators share an ingest: Polars' (jemalloc, which returns freed pages within a second by
itself), Arrow's pool (mimalloc: pyarrow's Parquet writer) and the C library's malloc, which holds
the compiled core's output (the parsers' and the correlator's columns arrive as Python bytes) and
keeps what they free for its own reuse: 100 to 250 MB of an Exchange run's resident memory that
the next step, allocating through Polars or Arrow, cannot use. Releasing it costs a few
milliseconds (malloc_trim walks its free lists), so it is done a few times a flush, not more.

malloc_trim gives back every free page, and the next batch's output faults the same pages in
again (a fault a 4 KiB page, zeroed by the kernel): trimming at every call cost a 2 M-line Postfix
run ~490,000 faults and 1.2 s of system time. So the C library's free memory is trimmed only
once it is large (TRIM_FREE_BYTES): the few pages it keeps are reused by the next batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable

# Free memory the C library may keep for reuse (a few batches' output) before it is trimmed.
# 2 M Postfix lines, interleaved pairs: 265,000-277,000 faults instead of 452,000-483,000, system
# time 1.0 instead of 1.5-1.75 s, peak RSS +40 MB; 10 M lines, with the compactions' full trims:
# 888-898 MB peak (965-971 MB with this threshold alone). Exchange 2 M: 3.5-5.7 instead of 8.6-9.7 s
# of system time.
TRIM_FREE_BYTES = 150 * 1024 * 1024


class _MallInfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (glibc >= 2.33): every field a size_t."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
        )
    ]  # fmt: skip


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (another C library, another system)."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)  # musl has no malloc_trim
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


@functools.cache
def _free_bytes() -> Callable[[], int] | None:
    """The C library's free bytes held for reuse (mallinfo2's fordblks), or None (glibc < 2.33)."""
    info = getattr(_libc(), "mallinfo2", None)
    if info is None:
        return None
    info.argtypes, info.restype = [], _MallInfo2
    return lambda: int(info().fordblks)


def release_unused(everything: bool = False) -> None:
    """Return the memory Arrow's pool holds free to the system, and the C library's once it
    holds more than TRIM_FREE_BYTES free (always, where its free memory cannot be read).
    `everything`: the C library's too, however little (before a compaction, a run's peak: it
    reads and writes a whole day while the next flush is parsed)."""
    trim = _malloc_trim()
    if trim is not None:
        free = _free_bytes()
        if everything or free is None or free() >= TRIM_FREE_BYTES:
            trim(0)
    if "pyarrow" in sys.modules:  # never imported for it
        sys.modules["pyarrow"].default_memory_pool().release_unused()
