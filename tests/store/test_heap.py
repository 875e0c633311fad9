"""Freed heap memory goes back to the operating system when asked."""

from __future__ import annotations

import os
import platform
import sys

import pytest

from watchkeeper.store import heap

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc's malloc"
)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_free_heap_pages_are_returned() -> None:
    # blocks under glibc's mmap threshold come from the heap; the last one, kept, pins the top
    # of the heap, so freeing the others leaves them resident until the heap is trimmed
    blocks = [bytearray(100_000) for _ in range(3000)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touch every page
    pinned = blocks[-1]
    del blocks
    before = _resident_bytes()
    assert heap.release_free_memory()
    after = _resident_bytes()
    assert before - after > 150 * 2**20, (before, after)
    assert pinned[0] == ord("x")
