"""The head's sample chunks: raw ones as appended, and frozen ones compressed in memory.

Every write adds a raw chunk (three arrays, 24 bytes per sample). Once enough raw samples pile
up, they are frozen: sorted by series and time, timestamps delta-encoded per series and values
byte-shuffled, both zstd-compressed. On the benchmark workload that is about 2.3 bytes per
sample instead of 24; decoding a frozen chunk costs a decompression and two array passes.
Both kinds answer `arrays()`, `after()`, `len()` and their time range, so the head treats them
alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import cramjam
import numpy as np
import numpy.typing as npt

Arrays = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]
ZSTD_LEVEL = 1  # the gain from higher levels is small next to their cost on the write path


@dataclass(frozen=True)
class HeadChunk:
    """Samples appended together, durable and visible; arrays are never modified in place."""

    series: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def min_time(self) -> int:
        return int(self.timestamps.min())

    @property
    def max_time(self) -> int:
        return int(self.timestamps.max())

    @property
    def frozen(self) -> bool:
        return False

    def arrays(self) -> Arrays:
        return self.series, self.timestamps, self.values

    def after(self, end: int) -> HeadChunk:
        """The samples at or after `end`."""
        keep = self.timestamps >= end
        if np.all(keep):
            return self
        return HeadChunk(self.series[keep], self.timestamps[keep], self.values[keep])


@dataclass(frozen=True)
class FrozenChunk:
    """Samples grouped by series in arrival order, compressed."""

    ids: npt.NDArray[np.int64]  # distinct series, ascending
    counts: npt.NDArray[np.int64]  # samples per series
    timestamp_deltas: bytes  # zstd of int64 deltas; each series' first value is absolute
    shuffled_values: bytes  # zstd of the float64 bytes, byte-plane by byte-plane
    size: int
    min_time: int
    max_time: int

    def __len__(self) -> int:
        return self.size

    @property
    def frozen(self) -> bool:
        return True

    @property
    def nbytes(self) -> int:
        return (
            self.ids.nbytes
            + self.counts.nbytes
            + len(self.timestamp_deltas)
            + len(self.shuffled_values)
        )

    def arrays(self) -> Arrays:
        series = np.repeat(self.ids, self.counts)
        deltas = np.frombuffer(
            bytes(cramjam.zstd.decompress(self.timestamp_deltas)), dtype=np.int64
        )
        running = np.cumsum(deltas)
        starts = np.r_[0, np.cumsum(self.counts)[:-1]]
        base = running[starts] - deltas[starts]
        timestamps = running - np.repeat(base, self.counts)
        planes = np.frombuffer(bytes(cramjam.zstd.decompress(self.shuffled_values)), np.uint8)
        values = planes.reshape(8, self.size).T.copy().view(np.float64).reshape(self.size)
        return series, timestamps, values

    def after(self, end: int) -> HeadChunk:
        series, timestamps, values = self.arrays()
        keep = timestamps >= end
        return HeadChunk(series[keep], timestamps[keep], values[keep])


def freeze(chunks: list[HeadChunk | FrozenChunk]) -> FrozenChunk:
    """One frozen chunk holding every sample of `chunks` (given in arrival order)."""
    parts = [c.arrays() for c in chunks]
    series = np.concatenate([p[0] for p in parts])
    timestamps = np.concatenate([p[1] for p in parts])
    values = np.concatenate([p[2] for p in parts])
    # Grouped by series in arrival order, which is time order except for out-of-order samples;
    # readers sort by (series, time) anyway. A stable radix sort on one key is the cheap part.
    order = np.argsort(series, kind="stable")
    series, timestamps, values = series[order], timestamps[order], values[order]
    first = np.empty(len(series), dtype=bool)
    first[:1] = True
    np.not_equal(series[1:], series[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    deltas = np.empty_like(timestamps)
    deltas[1:] = timestamps[1:] - timestamps[:-1]
    deltas[starts] = timestamps[starts]
    planes = values.view(np.uint8).reshape(len(values), 8).T.tobytes()
    return FrozenChunk(
        ids=series[starts],
        counts=np.diff(np.r_[starts, len(series)]),
        timestamp_deltas=bytes(cramjam.zstd.compress(deltas.tobytes(), level=ZSTD_LEVEL)),
        shuffled_values=bytes(cramjam.zstd.compress(planes, level=ZSTD_LEVEL)),
        size=len(series),
        min_time=int(timestamps.min()),
        max_time=int(timestamps.max()),
    )
