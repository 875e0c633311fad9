"""Decoded segments of frozen head chunks, kept for the reads that come back to them.

A frozen chunk's segment is two zstd frames of 8 Ki rows; a read of a few series decodes the
segments holding them whole, 50-65 us a frame on the development machine, about a third of a
small instant query's time in the engine. Dashboards read the same recent minutes on every
refresh, and a frozen chunk stays as it is until a block cut takes it (about half an hour of
a busy head), so its decoded segments are worth keeping. The least recently used segment goes
first once `storage.head_cache_bytes` is reached; 0 keeps none.

Reads only: cutting, checkpointing and compaction decode whole chunks once and do not pass
through here, so they never push out what the queries use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Decoded = tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]  # time deltas, value planes


class SegmentCache:
    """Least-recently-used decoded segments, at most `max_bytes` of them, shared by the query
    threads. Entries are found by the identity of the segment's compressed time frame and hold
    that frame, so an id is never taken by another frame while its entry lives."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, tuple[bytes, Decoded]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def decoded(self, time_frame: bytes, decode: Callable[[], Decoded]) -> Decoded:
        """The segment whose compressed times are `time_frame`, decoded by `decode` (outside
        the lock) unless it is held. The arrays are read-only: every reader shares them."""
        key = id(time_frame)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is time_frame:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            self.misses += 1
        deltas, planes = decode()
        deltas.flags.writeable = False
        planes.flags.writeable = False
        size = deltas.nbytes + planes.nbytes
        if size > self.max_bytes:
            return deltas, planes
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1][0].nbytes + old[1][1].nbytes
            self._entries[key] = (time_frame, (deltas, planes))
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, (old_deltas, old_planes)) = self._entries.popitem(last=False)
                self._bytes -= old_deltas.nbytes + old_planes.nbytes
        return deltas, planes
