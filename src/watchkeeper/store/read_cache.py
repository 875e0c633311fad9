"""Decoded samples that reads come back to: head segments and block reads, kept up to a budget.

Decoding is most of a small query's time in the store: a frozen head segment is two zstd
frames of 8 Ki rows (50-65 us each on the development machine, about a third of a small
instant query in the engine), and a block read decodes whole row groups of 32 Ki rows (about
1 ms a block for a few series). Dashboards read the same series over the same recent hours on
every refresh, and what they read does not change: a frozen chunk stays as it is until a cut
takes it, a block until a merge or retention replaces it. So reads keep what they decoded, up
to `storage.read_cache_bytes`, the least recently used going first; an entry over an eighth of
the budget is not kept, so one big read does not push out everything else. Nor is anything a
scan decodes: a read of more samples than the whole budget holds (a 24 h query over a
thousand series) pushes out its own first pieces before it ends, so the next run of it finds
none of them, and meanwhile it has pushed out what the dashboards re-read (the 24 h sum of
rate() over 1,666 series, 110 MiB of samples, kept 40 MiB and took as long the second time).
0 keeps nothing.

Only reads for queries pass through here. Cuts, checkpoints and merges decode whole chunks
and blocks once, and never push out what the queries use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol, TypeVar

Arrays = TypeVar("Arrays", bound=tuple[Any, ...])  # of numpy arrays
LARGEST_SHARE = 8  # an entry may take at most 1/LARGEST_SHARE of the budget
# a decoded sample as entries hold it: its series id, timestamp and value
SAMPLE_BYTES = 24


class Decoded(Protocol):
    """Where reads take decoded arrays from: a ReadCache, or a scan's view of one."""

    def get(self, owner: object, key: Hashable, load: Callable[[], Arrays]) -> Arrays: ...


class ReadCache:
    """Least-recently-used decoded arrays, at most `max_bytes` of them, shared by the query
    threads. An entry belongs to an owner object (a head segment's compressed time frame, a
    block's index) and a key within it; it holds the owner, so the owner's id is never taken
    by another object while the entry lives."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, Hashable], tuple[object, Any, int]]
        self._entries = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, owner: object, key: Hashable, load: Callable[[], Arrays], *, keep: bool = True
    ) -> Arrays:
        """The arrays for (`owner`, `key`), made by `load` (outside the lock) unless held, and
        then kept if `keep`. They are read-only: every reader shares them."""
        slot = (id(owner), key)
        with self._lock:
            entry = self._entries.get(slot)
            if entry is not None and entry[0] is owner:
                self._entries.move_to_end(slot)
                self.hits += 1
                held: Arrays = entry[1]
                return held
            self.misses += 1
        arrays = load()
        for array in arrays:
            array.flags.writeable = False
        size = sum(a.nbytes for a in arrays)
        if not keep or size * LARGEST_SHARE > self.max_bytes:
            return arrays
        with self._lock:
            old = self._entries.pop(slot, None)
            if old is not None:
                self._bytes -= old[2]
            self._entries[slot] = (owner, arrays, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
        return arrays

    def is_scan(self, samples: int) -> bool:
        """Whether a read of `samples` decoded samples keeps nothing (`for_scan`)."""
        return samples * SAMPLE_BYTES > self.max_bytes

    def for_scan(self) -> Decoded:
        """The cache as a scan sees it: what it holds, taken, and nothing kept."""
        return _ScanView(self)

    def drop(self, owner: object) -> None:
        """Forget every entry of `owner` (a block that is gone)."""
        with self._lock:
            for slot in [s for s, e in self._entries.items() if e[0] is owner]:
                self._bytes -= self._entries.pop(slot)[2]


class _ScanView:
    """A ReadCache as a scan sees it (ReadCache.for_scan)."""

    def __init__(self, cache: ReadCache) -> None:
        self._cache = cache

    def get(self, owner: object, key: Hashable, load: Callable[[], Arrays]) -> Arrays:
        return self._cache.get(owner, key, load, keep=False)
