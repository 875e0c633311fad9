"""Handing the memory the store's bursts of work freed back to the operating system.

glibc keeps what Python and numpy free in its heaps for reuse and returns to the system only
free space at the very top of a heap. After a burst of large temporary arrays (replaying the
WAL, cutting a block from the head, merging blocks) the process therefore keeps hundreds of
MiB resident that it no longer uses: reopening the PromQL benchmark's data left 409 MiB
resident, 162 MiB once trimmed; after loading it, 1.1 GiB against 262 MiB. `malloc_trim(0)`
returns the free pages of every heap. It walks the heaps while holding their locks, so it runs
after those rare bursts, not on a timer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


def release_free_memory() -> bool:
    """Return the free pages of the C heaps to the operating system; False where the C
    library cannot (then nothing happens)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
