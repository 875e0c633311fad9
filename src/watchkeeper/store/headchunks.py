"""The head's sample chunks: raw ones as appended, and frozen ones compressed in memory.

Every write adds a raw chunk (three arrays, 24 bytes per sample). Once enough raw samples pile
up, they are frozen: sorted by series and time, timestamps delta-encoded per series and values
byte-shuffled, both zstd-compressed. On the benchmark workload that is about 2.3 bytes per
sample instead of 24; decoding a frozen chunk costs a decompression and two array passes.
Both kinds answer `arrays()`, `after()`, `len()` and their time range, so the head treats them
alike.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import cramjam
import numpy as np
import numpy.typing as npt

from watchkeeper.store.read_cache import Decoded
from watchkeeper.store.series_index import (
    NameOf,
    SeriesIndex,
    gather_rows,
    plan_units,
    storage_sort,
)
from watchkeeper.store.valuecodec import sums_restarting

Arrays = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]
ZSTD_LEVEL = 1  # the gain from higher levels is small next to their cost on the write path
_NO_TIMES = np.empty(0, dtype=np.int64)
INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class HeadChunk:
    """Samples appended together, durable and visible; arrays are never modified in place."""

    series: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    # the time range: taken from the timestamps unless given (an empty chunk keeps these)
    min_time: int = INT64_MAX
    max_time: int = INT64_MIN
    # where each series' rows are, for a chunk that is a full raw segment (see SeriesRows)
    by_series: SeriesRows | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.min_time == INT64_MAX and len(self.timestamps):
            object.__setattr__(self, "min_time", int(self.timestamps.min()))
            object.__setattr__(self, "max_time", int(self.timestamps.max()))

    def __len__(self) -> int:
        return len(self.timestamps)

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


# Rows per compressed segment: a read decodes the segments holding its series, so smaller ones
# waste less on a few series (36 series of a 520 Ki-sample chunk: 0.55 ms at 16 Ki rows, 0.31 at
# 8 Ki, 0.22 at 4 Ki), while decoding a whole chunk gets dearer (21, 23, 27 ms).
SEGMENT_ROWS = 8 * 1024


@dataclass(frozen=True)
class FrozenChunk:
    """Samples grouped by series in storage order (series_index.py), each series in arrival
    order, compressed in segments of SEGMENT_ROWS rows, so some series decode without the rest."""

    index: SeriesIndex
    segments: tuple[tuple[bytes, bytes], ...]  # (zstd int64 time deltas, zstd value planes)
    min_time: int
    max_time: int

    def __len__(self) -> int:
        return self.index.rows

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        return self.index.ids

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        return self.index.counts

    @property
    def frozen(self) -> bool:
        return True

    @property
    def nbytes(self) -> int:
        packed = sum(len(t) + len(v) for t, v in self.segments)
        return self.index.ids.nbytes * 4 + packed

    @cached_property
    def segment_starts(self) -> npt.NDArray[np.int64]:
        """Each segment's first row, then the row count."""
        starts: npt.NDArray[np.int64] = np.r_[
            np.arange(0, len(self), SEGMENT_ROWS), len(self)
        ].astype(np.int64)
        return starts

    def arrays(
        self, wanted: npt.NDArray[np.int64] | None = None, cache: Decoded | None = None
    ) -> Arrays:
        """The samples, or those of the series `wanted` (ascending ids), series by series in
        storage order; decoded segments are taken from and kept in `cache` when given."""
        positions = self.index.positions(wanted)
        starts, lengths = self.index.ranges_of(positions)
        series = np.repeat(self.index.ids[positions], lengths)
        unit_starts = self.segment_starts
        plan = plan_units(unit_starts, starts, lengths)
        if not plan.units:
            return series, _NO_TIMES, np.empty(0, dtype=np.float64)
        # where each decoded unit's wanted rows begin among all wanted rows
        sizes = [int(unit_starts[u + 1] - unit_starts[u]) for u in plan.units]
        bounds = np.searchsorted(plan.within, np.cumsum([0, *sizes]))
        deltas, values = [], []
        offset = 0
        for k, unit in enumerate(plan.units):
            # only the wanted rows are summed up, not the whole segment
            rows = plan.within[bounds[k] : bounds[k + 1]] - offset
            offset += sizes[k]
            time_frame, value_frame = self.segments[unit]
            if cache is None:
                decoded, unit_values = _decode(time_frame, value_frame)
            else:
                decoded, unit_values = cache.get(
                    time_frame, None, functools.partial(_decode, time_frame, value_frame)
                )
            whole = len(rows) == sizes[k]
            deltas.append(decoded if whole else decoded[rows])
            values.append(unit_values if whole else unit_values[rows])
        delta = deltas[0] if len(deltas) == 1 else np.concatenate(deltas)
        # a delta is from the row before, except at a series start and at a segment start,
        # where it is the time itself: a cumulative sum restarted there
        at_restart = np.zeros(len(delta), dtype=bool)
        at_restart[np.cumsum(lengths[lengths > 0][:-1])] = True
        at_restart[0] = True
        at_restart[bounds[:-1]] = True
        timestamps = sums_restarting(delta, np.flatnonzero(at_restart))
        return series, timestamps, values[0] if len(values) == 1 else np.concatenate(values)

    def after(self, end: int) -> HeadChunk | FrozenChunk:
        """The samples at or after `end`: the chunk itself when all of them are (a cut leaves
        the newer chunks as they are), else those samples raw."""
        if self.min_time >= end:
            return self
        if self.max_time < end:
            return HeadChunk(_NO_TIMES, _NO_TIMES, np.empty(0, dtype=np.float64))
        series, timestamps, values = self.arrays()
        keep = timestamps >= end
        return HeadChunk(series[keep], timestamps[keep], values[keep])


def _decode(time_frame: bytes, value_frame: bytes) -> tuple[npt.NDArray[Any], ...]:
    """A segment's time deltas and values (its byte planes put back together: picking the
    wanted rows from eight planes costs eight gathers, from the values one)."""
    deltas = np.frombuffer(memoryview(cramjam.zstd.decompress(time_frame)), np.int64)
    planes = np.frombuffer(memoryview(cramjam.zstd.decompress(value_frame)), np.uint8)
    values = planes.reshape(8, len(deltas)).T.copy().view(np.float64).reshape(len(deltas))
    return deltas, values


RAW_SEGMENT_ROWS = 64 * 1024


class SeriesRows:
    """The rows of a full raw segment grouped by series, each series in arrival order.

    Without it every read filters every raw row: with the head's raw samples at their usual
    few hundred thousand, that was about 2 ms of a 3 ms instant query over HTTP. Segments
    only fill, so a full one is indexed once, by the first read that needs it (a radix sort:
    0.5 ms for 64 Ki rows of up to 65,536 distinct ids), and later reads binary-search it."""

    def __init__(self, series: npt.NDArray[np.int64]) -> None:
        self._series = series

    @cached_property
    def _index(self) -> tuple[SeriesIndex, npt.NDArray[np.int64]]:
        series = self._series
        order = _order_by_series(series)
        grouped = series[order]
        firsts = np.flatnonzero(np.diff(grouped)) + 1
        ids = grouped[np.r_[0, firsts]] if len(grouped) else grouped
        counts = np.diff(np.r_[0, firsts, len(grouped)]) if len(grouped) else grouped
        return SeriesIndex.of(ids, counts.astype(np.int64)), order.astype(np.int64)

    def rows(self, wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The rows of the `wanted` series (sorted ids), grouped by series."""
        index, order = self._index
        starts, lengths = index.ranges_of(index.positions(wanted))
        return order[gather_rows(starts, lengths)]


def _order_by_series(series: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """The stable order grouping rows by series id. numpy sorts 16-bit keys stably by radix,
    so ids spanning less than 2**16 take one pass and those spanning less than 2**32 two
    (low half, then high half), each several times faster than a stable sort of int64."""
    if len(series) == 0:
        return np.empty(0, dtype=np.intp)
    low = int(series.min())
    span = int(series.max()) - low
    if span >= 1 << 32:
        return np.argsort(series, kind="stable")
    offsets = series - low
    order = np.argsort(offsets.astype(np.uint16), kind="stable")
    if span >= 1 << 16:
        high = (offsets[order] >> 16).astype(np.uint16)
        order = order[np.argsort(high, kind="stable")]
    return order


class RawRun:
    """The head's raw samples, copied as they arrive into segments of up to RAW_SEGMENT_ROWS
    rows. The raw chunks the head lists are views into the segments, so the samples are held
    once, and a read filters a few segments instead of one small chunk per write request (a few
    hundred of them before a freeze), skipping the segments older than its range. A segment's
    rows are written once, so a view never changes."""

    def __init__(self, reached: int = 512) -> None:
        self._segments: list[_RawSegment] = []
        # the size segments have reached: each new one is twice the last, up to
        # RAW_SEGMENT_ROWS (the first of a new run twice `reached`, so 1 Ki by default)
        self._reached = reached

    @property
    def reached(self) -> int:
        """The size segments have reached. The run that replaces this one after a freeze or a
        cut starts from it, so a busy tenant's newest minutes lie in one or two segments, not
        in a ladder of small ones that every read of them visits one by one."""
        return self._reached

    def append(self, chunk: HeadChunk) -> HeadChunk:
        """Copy `chunk` in; the same samples as a view into the segment that holds them."""
        last = self._segments[-1] if self._segments else None
        if last is None or last.free < len(chunk):
            # small tenants get small segments; a chunk bigger than a segment gets its own
            self._reached = min(RAW_SEGMENT_ROWS, 2 * self._reached)
            last = _RawSegment(max(len(chunk), self._reached))
            self._segments.append(last)
        return last.append(chunk)

    def views(self, since: int = INT64_MIN) -> list[HeadChunk]:
        """Each segment's samples so far as one chunk, leaving out segments older than
        `since`."""
        last = len(self._segments) - 1
        return [
            seg.view(sealed=k < last)
            for k, seg in enumerate(self._segments)
            if seg.size and seg.max_time >= since
        ]


class _RawSegment:
    def __init__(self, capacity: int) -> None:
        self.series = np.empty(capacity, dtype=np.int64)
        self.timestamps = np.empty(capacity, dtype=np.int64)
        self.values = np.empty(capacity, dtype=np.float64)
        self.size = 0
        self.min_time = INT64_MAX
        self.max_time = INT64_MIN
        self._by_series: SeriesRows | None = None

    @property
    def capacity(self) -> int:
        return len(self.series)

    @property
    def free(self) -> int:
        return self.capacity - self.size

    def append(self, chunk: HeadChunk) -> HeadChunk:
        start, end = self.size, self.size + len(chunk)
        self.series[start:end] = chunk.series
        self.timestamps[start:end] = chunk.timestamps
        self.values[start:end] = chunk.values
        self.size = end
        self.min_time = min(self.min_time, chunk.min_time)
        self.max_time = max(self.max_time, chunk.max_time)
        return HeadChunk(
            self.series[start:end],
            self.timestamps[start:end],
            self.values[start:end],
            chunk.min_time,
            chunk.max_time,
        )

    def view(self, sealed: bool) -> HeadChunk:
        """The rows so far as one chunk; a `sealed` segment (one a newer segment follows, so
        it takes no more rows) comes with its series index."""
        size = self.size
        if sealed and self._by_series is None:
            self._by_series = SeriesRows(self.series[:size])
        return HeadChunk(
            self.series[:size],
            self.timestamps[:size],
            self.values[:size],
            self.min_time,
            self.max_time,
            self._by_series if sealed else None,
        )


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
    chunks: Sequence[HeadChunk | FrozenChunk], slice_samples: int, name_of: NameOf | None = None
) -> list[FrozenChunk]:
    """`chunks` (in arrival order) frozen in slices of about `slice_samples` samples each.

    Arrival order is time order, so each slice covers its own stretch of time and a query of
    the last minutes decodes one slice, not the hours the head holds."""
    series, timestamps, values = concatenated(chunks)
    size = len(series)
    # slices of equal size, as many as come nearest to `slice_samples` each: the samples that
    # arrived while a freeze was wanted join the slice instead of making a tiny chunk of their
    # own, which every read of that time would decode at a chunk's fixed cost
    count = max(1, round(size / max(1, slice_samples)))
    bounds = [size * k // count for k in range(count + 1)]
    return [
        freeze([HeadChunk(series[a:b], timestamps[a:b], values[a:b])], name_of)
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]


def after_cut(
    chunks: Sequence[HeadChunk | FrozenChunk], end: int, slice_samples: int, name_of: NameOf
) -> list[HeadChunk | FrozenChunk]:
    """What stays of the head's `chunks` once the samples before `end` are in a block, in the
    same order (the first of two samples at one time must stay first). Frozen chunks wholly
    after `end` stay as they are; the newer samples of one the cut goes through are frozen
    again, so the head stays compressed and its frozen chunks stay before its raw ones."""
    kept: list[HeadChunk | FrozenChunk] = []
    for chunk in chunks:
        rest = chunk.after(end)
        if chunk.frozen and not rest.frozen and len(rest):
            kept += freeze_slices([rest], slice_samples, name_of)
        else:
            kept.append(rest)
    return kept


def freeze(chunks: Sequence[HeadChunk | FrozenChunk], name_of: NameOf | None = None) -> FrozenChunk:
    """One frozen chunk holding every sample of `chunks` (given in arrival order), its series
    in storage order by the metric names `name_of` gives (id order without it)."""
    series, timestamps, values = concatenated(chunks)
    # Grouped by series in arrival order, which is time order except for out-of-order samples;
    # readers sort by (series, time) anyway. A stable radix sort on one key is the cheap part.
    order = storage_sort(series, name_of)
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
        index=SeriesIndex.of(series[starts], np.diff(np.r_[starts, size])),
        segments=tuple(segments),
        min_time=int(timestamps.min()),
        max_time=int(timestamps.max()),
    )
