"""Delta temporality to cumulative, per stream, for OTLP sums and histograms.

Prometheus counters and histograms are cumulative: `rate()` expects a running total that only a
restart resets. An OTLP stream with delta temporality sends what happened since its previous
point, so each stream (tenant and series) keeps its running total here, and every delta point
is stored as the total so far. A point no later than the stream's previous one is refused (it
would count twice). A histogram whose bucket bounds change starts a new total, as a restart
would. Streams not seen for `idle_ms` are forgotten (their next point starts again from itself,
which rate() reads as a counter reset), and at most `max_streams` are kept. Totals live in
memory: after a restart they begin again, again as a counter reset.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass
class _Stream:
    last_ns: int
    shape: tuple[float, ...]  # histogram bounds (or () for a sum): a new shape starts afresh
    totals: npt.NDArray[np.float64]
    seen_ms: float


class DeltaStreams:
    def __init__(self, max_streams: int, idle_ms: int) -> None:
        self.max_streams = max_streams
        self.idle_ms = idle_ms
        self._streams: OrderedDict[tuple[str, bytes], _Stream] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._streams)

    def accumulate(
        self,
        tenant: str,
        key: bytes,
        time_ns: int,
        values: npt.NDArray[np.float64],
        now_ms: float,
        shape: tuple[float, ...] = (),
    ) -> npt.NDArray[np.float64] | None:
        """The running totals after adding `values` (a delta point at `time_ns`); None when the
        point is not after the stream's last one."""
        stream_id = (tenant, key)
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is not None and now_ms - stream.seen_ms > self.idle_ms:
                stream = None
            if stream is None or stream.shape != shape or len(stream.totals) != len(values):
                stream = _Stream(time_ns, shape, np.zeros(len(values)), now_ms)
                self._streams[stream_id] = stream
            elif time_ns <= stream.last_ns:
                return None
            stream.totals = stream.totals + values
            stream.last_ns = time_ns
            stream.seen_ms = now_ms
            self._streams.move_to_end(stream_id)
            while len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)  # the least recently seen
            return stream.totals.copy()

    def forget_idle(self, now_ms: float) -> int:
        """Drop streams idle for longer than idle_ms; returns how many."""
        dropped = 0
        with self._lock:
            while self._streams:
                stream_id, stream = next(iter(self._streams.items()))
                if now_ms - stream.seen_ms <= self.idle_ms:
                    break
                del self._streams[stream_id]
                dropped += 1
        return dropped
