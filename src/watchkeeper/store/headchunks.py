"""The head's sample chunks: raw ones as appended, and frozen ones compressed in memory.

Every write adds a raw chunk (three arrays, 24 bytes per sample). Once enough raw samples pile
up, they are frozen: sorted by series and time, timestamps delta-encoded per series and values
byte-shuffled, both zstd-compressed. On the benchmark workload that is about 2.3 bytes per
sample instead of 24; decoding a frozen chunk costs a decompression and two array passes.
Both kinds answer `arrays()`, `after()`, `len()` and their time range, so the head treats them
alike.
"""

from __future__ import annotations

from collections.abc import Sequence
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


SEGMENT_ROWS = 64 * 1024


@dataclass(frozen=True)
class FrozenChunk:
    """Samples grouped by series (ascending) in arrival order, compressed in segments of
    SEGMENT_ROWS rows, so a range of series decodes without the rest."""

    ids: npt.NDArray[np.int64]  # distinct series, ascending
    counts: npt.NDArray[np.int64]  # samples per series
    segments: tuple[tuple[bytes, bytes], ...]  # (zstd int64 time deltas, zstd value planes)
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
        packed = sum(len(t) + len(v) for t, v in self.segments)
        return self.ids.nbytes + self.counts.nbytes + packed

    def arrays(self, low: int | None = None, high: int | None = None) -> Arrays:
        """The samples, or those of series in [low, high]."""
        series_starts = np.r_[0, np.cumsum(self.counts)]
        first = 0 if low is None else int(np.searchsorted(self.ids, low, "left"))
        last = len(self.ids) if high is None else int(np.searchsorted(self.ids, high, "right"))
        row_from, row_to = int(series_starts[first]), int(series_starts[last])
        if row_to <= row_from:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), np.empty(0, dtype=np.float64)
        seg_from, seg_to = row_from // SEGMENT_ROWS, (row_to - 1) // SEGMENT_ROWS + 1
        decoded_t, decoded_v = [], []
        for index in range(seg_from, seg_to):
            deltas_blob, planes_blob = self.segments[index]
            deltas = np.frombuffer(bytes(cramjam.zstd.decompress(deltas_blob)), dtype=np.int64)
            rows = len(deltas)
            planes = np.frombuffer(bytes(cramjam.zstd.decompress(planes_blob)), np.uint8)
            decoded_v.append(planes.reshape(8, rows).T.copy().view(np.float64).reshape(rows))
            # deltas restart (hold an absolute time) at each series start and segment start
            seg_start = index * SEGMENT_ROWS
            inner = series_starts[(series_starts > seg_start) & (series_starts < seg_start + rows)]
            resets = np.r_[0, inner - seg_start]
            running = np.cumsum(deltas)
            base = running[resets] - deltas[resets]
            decoded_t.append(running - np.repeat(base, np.diff(np.r_[resets, rows])))
        offset = seg_from * SEGMENT_ROWS
        timestamps = np.concatenate(decoded_t)[row_from - offset : row_to - offset]
        values = np.concatenate(decoded_v)[row_from - offset : row_to - offset]
        series = np.repeat(self.ids[first:last], self.counts[first:last])
        return series, timestamps, values

    def after(self, end: int) -> HeadChunk:
        series, timestamps, values = self.arrays()
        keep = timestamps >= end
        return HeadChunk(series[keep], timestamps[keep], values[keep])


def concatenated(chunks: Sequence[HeadChunk | FrozenChunk]) -> Arrays:
    """Every sample of `chunks`, frozen ones decoded, in chunk order."""
    parts = [c.arrays() for c in chunks]
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), np.empty(0, dtype=np.float64)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def freeze_slices(
    chunks: Sequence[HeadChunk | FrozenChunk], slice_samples: int
) -> list[FrozenChunk]:
    """`chunks` (in arrival order) frozen in slices of about `slice_samples` samples each.

    Arrival order is time order, so each slice covers its own stretch of time and a query of
    the last minutes decodes one slice, not the hours a compaction may have left in the head
    (its cut turns the chunks it keeps back into raw ones)."""
    series, timestamps, values = concatenated(chunks)
    size = len(series)
    step = max(1, slice_samples)
    return [
        freeze([HeadChunk(series[a : a + step], timestamps[a : a + step], values[a : a + step])])
        for a in range(0, size, step)
    ]


def freeze(chunks: Sequence[HeadChunk | FrozenChunk]) -> FrozenChunk:
    """One frozen chunk holding every sample of `chunks` (given in arrival order)."""
    series, timestamps, values = concatenated(chunks)
    # Grouped by series in arrival order, which is time order except for out-of-order samples;
    # readers sort by (series, time) anyway. A stable radix sort on one key is the cheap part.
    order = np.argsort(series, kind="stable")
    series, timestamps, values = series[order], timestamps[order], values[order]
    size = len(series)
    first = np.empty(size, dtype=bool)
    first[:1] = True
    np.not_equal(series[1:], series[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    deltas = np.empty_like(timestamps)
    deltas[1:] = timestamps[1:] - timestamps[:-1]
    restart = first.copy()
    restart[::SEGMENT_ROWS] = True
    deltas[restart] = timestamps[restart]
    segments = []
    for row in range(0, size, SEGMENT_ROWS):
        block = values[row : row + SEGMENT_ROWS]
        planes = block.view(np.uint8).reshape(len(block), 8).T.tobytes()
        segments.append(
            (
                bytes(
                    cramjam.zstd.compress(deltas[row : row + SEGMENT_ROWS].tobytes(), ZSTD_LEVEL)
                ),
                bytes(cramjam.zstd.compress(planes, ZSTD_LEVEL)),
            )
        )
    return FrozenChunk(
        ids=series[starts],
        counts=np.diff(np.r_[starts, size]),
        segments=tuple(segments),
        size=size,
        min_time=int(timestamps.min()),
        max_time=int(timestamps.max()),
    )
