"""Native histogram samples in the metrics store: their columns, the head that holds the newest,
the stored counter-reset hints, and their file in a block.

Histogram samples share everything with float samples but the value: series ids, the ordering
rules (judged together, so a series' floats and histograms are one timeline), the WAL, the
head's time bounds, blocks and retention. Their values are kept encoded
(model.histogram.FloatHistogram.encode) in one buffer per column set, with offsets, so the head
costs 16 bytes per sample beyond the histogram's own bytes, and a block stores them as a
`histograms.parquet` beside the float samples.

The hint a sample is stored with is what Prometheus' TSDB gives back when it is read: gauge
histograms stay gauges, a sample after another of its series is `not_reset` unless the two
show a reset (then `unknown`, as Prometheus reads back the first sample of the chunk a reset
starts; readers detect the reset again), an explicit `reset` from the writer stands, and the
first sample of a series keeps the hint it was written with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.model.histogram import (
    GAUGE,
    HINT_BYTE,
    NOT_RESET,
    RESET,
    UNKNOWN,
    FloatHistogram,
    decode,
)

INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)
HISTOGRAMS_FILE = "histograms.parquet"
HISTOGRAM_SERIES_FILE = "histogram_series.parquet"
# A histogram sample's stand-in among float value bits (ordering checks, arrivals): a quiet NaN
# whose payload is a hash of the encoded histogram, so a resent sample is recognised as such,
# a different one at the same time is a duplicate, and as a float it is NaN (no comparison
# passes it).
_QUIET_NAN = 0x7FF8_0000_0000_0000
_PAYLOAD = 0x0007_FFFF_FFFF_FFFF


def histogram_bits(encoded: bytes) -> int:
    """The stand-in bits of an encoded histogram, whatever its counter-reset hint (the store
    may change that): a resent sample matches what replay computes from the stored one."""
    neutral = encoded[:HINT_BYTE] + b"\0" + encoded[HINT_BYTE + 1 :]
    digest = int.from_bytes(hashlib.blake2b(neutral, digest_size=8).digest(), "little")
    return _QUIET_NAN | (digest & _PAYLOAD)


def with_hint_byte(encoded: bytes, hint: int) -> bytes:
    """An encoded histogram with another counter-reset hint, without encoding it again."""
    if encoded[HINT_BYTE] == hint:
        return encoded
    return encoded[:HINT_BYTE] + bytes((hint,)) + encoded[HINT_BYTE + 1 :]


@dataclass(frozen=True)
class HistogramColumns:
    """Histogram samples as columns: sample i is series `sids[i]` at `timestamps[i]`, encoded in
    `data[offsets[i]:offsets[i + 1]]`."""

    sids: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]
    data: bytes

    def __len__(self) -> int:
        return len(self.sids)

    @classmethod
    def empty(cls) -> HistogramColumns:
        none = np.empty(0, dtype=np.int64)
        return cls(none, none.copy(), np.zeros(1, dtype=np.int64), b"")

    @classmethod
    def of(
        cls,
        sids: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.int64],
        encoded: Sequence[bytes],
    ) -> HistogramColumns:
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(
            np.asarray(sids, dtype=np.int64),
            np.asarray(timestamps, dtype=np.int64),
            offsets,
            b"".join(encoded),
        )

    @property
    def min_time(self) -> int:
        return int(self.timestamps.min()) if len(self) else INT64_MAX

    @property
    def max_time(self) -> int:
        return int(self.timestamps.max()) if len(self) else INT64_MIN

    def encoded(self, i: int) -> bytes:
        return self.data[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def histogram(self, i: int) -> FloatHistogram:
        return decode(memoryview(self.data)[int(self.offsets[i]) : int(self.offsets[i + 1])])

    def decoded(self, first: int, stop: int) -> Sequence[FloatHistogram]:
        """Rows [first, stop) as histograms, each decoded when first asked for."""
        return _Decoded(self, first, stop)

    def take(self, rows: npt.NDArray[np.int64]) -> HistogramColumns:
        return HistogramColumns.of(
            self.sids[rows], self.timestamps[rows], [self.encoded(int(i)) for i in rows]
        )

    def where(self, keep: npt.NDArray[np.bool_]) -> HistogramColumns:
        if keep.all():
            return self
        return self.take(np.flatnonzero(keep))


def concatenate(parts: Iterable[HistogramColumns]) -> HistogramColumns:
    parts = [p for p in parts if len(p)]
    if not parts:
        return HistogramColumns.empty()
    if len(parts) == 1:
        return parts[0]
    offsets = [parts[0].offsets]
    base = int(parts[0].offsets[-1])
    for part in parts[1:]:
        offsets.append(part.offsets[1:] + base)
        base += int(part.offsets[-1])
    return HistogramColumns(
        np.concatenate([p.sids for p in parts]),
        np.concatenate([p.timestamps for p in parts]),
        np.concatenate(offsets),
        b"".join(p.data for p in parts),
    )


def sorted_unique(columns: HistogramColumns) -> HistogramColumns:
    """By series, then time; of samples at the same (series, time), the first one."""
    if len(columns) == 0:
        return columns
    order = np.lexsort((np.arange(len(columns)), columns.timestamps, columns.sids))
    s, t = columns.sids[order], columns.timestamps[order]
    first = np.r_[True, (s[1:] != s[:-1]) | (t[1:] != t[:-1])]
    rows = order[first]
    if len(rows) == len(columns) and np.array_equal(rows, np.arange(len(columns))):
        return columns
    return columns.take(rows)


def stored_hints(
    histograms: list[FloatHistogram], previous: dict[int, FloatHistogram], sids: list[int]
) -> list[FloatHistogram]:
    """The histograms as stored (module doc), given in time order per series, with `previous`
    holding each series' newest stored histogram (and updated with these)."""
    out = []
    for sid, written in zip(sids, histograms, strict=True):
        before = previous.get(sid)
        stored = written
        if written.counter_reset_hint not in (GAUGE, RESET) and before is not None:
            # a detected reset starts a new chunk in Prometheus' TSDB, whose first sample
            # reads back `unknown` (prometheus/prometheus#15346): readers detect it again
            stored = written.with_hint(UNKNOWN if written.detect_reset(before) else NOT_RESET)
        previous[sid] = stored
        out.append(stored)
    return out


@dataclass
class HistogramHead:
    """A tenant's histogram samples not yet in a block, in arrival order."""

    parts: list[HistogramColumns] = field(default_factory=list)
    samples: int = 0
    min_time: int = INT64_MAX
    max_time: int = INT64_MIN
    # each series' newest histogram, for the hint of its next sample
    newest: dict[int, FloatHistogram] = field(default_factory=dict)

    def add(self, columns: HistogramColumns) -> None:
        if len(columns) == 0:
            return
        self.parts.append(columns)
        self.samples += len(columns)
        self.min_time = min(self.min_time, columns.min_time)
        self.max_time = max(self.max_time, columns.max_time)

    def series(self) -> set[int]:
        return {int(s) for part in self.parts for s in np.unique(part.sids).tolist()}

    def all(self) -> HistogramColumns:
        return concatenate(self.parts)

    def split(self, end: int) -> tuple[HistogramColumns, HistogramHead]:
        """The samples before `end`, and a head of the rest (the same `newest`)."""
        everything = self.all()
        before = everything.where(everything.timestamps < end)
        rest = HistogramHead(newest=self.newest)
        rest.add(everything.where(everything.timestamps >= end))
        return before, rest

    def select(self, sids: npt.NDArray[np.int64], start: int, end: int) -> HistogramColumns:
        found = []
        for part in self.parts:
            if part.max_time < start or part.min_time > end:
                continue
            keep = np.isin(part.sids, sids) & (part.timestamps >= start) & (part.timestamps <= end)
            if keep.any():
                found.append(part.where(keep))
        return concatenate(found)

    def forget(self, sids: set[int]) -> None:
        for sid in sids:
            self.newest.pop(sid, None)


# --- blocks ----------------------------------------------------------------------------------

_SCHEMA = pa.schema(
    [("series_id", pa.int64()), ("timestamp", pa.int64()), ("histogram", pa.large_binary())]
)
ROW_GROUP_ROWS = 32 * 1024
_SERIES_SCHEMA = pa.schema(
    [
        ("series_id", pa.int64()),
        ("key", pa.binary()),
        ("min_ts", pa.int64()),
        ("max_ts", pa.int64()),
    ]
)


def write_block_file(
    directory: Path, columns: HistogramColumns, key_of: Callable[[int], bytes]
) -> None:
    """A block's histogram samples (sorted by series and time) and their series, with keys and
    time ranges; the caller fsyncs both files with the rest of the block."""
    offsets = pa.array(columns.offsets, type=pa.int64())
    values = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(columns), [None, offsets.buffers()[1], pa.py_buffer(columns.data)]
    )
    table = pa.table(
        {"series_id": columns.sids, "timestamp": columns.timestamps, "histogram": values},
        schema=_SCHEMA,
    )
    pq.write_table(
        table, directory / HISTOGRAMS_FILE, compression="zstd", row_group_size=ROW_GROUP_ROWS
    )
    starts = np.flatnonzero(np.r_[True, columns.sids[1:] != columns.sids[:-1]])
    ends = np.r_[starts[1:], len(columns)] - 1
    ids = columns.sids[starts]
    series = pa.table(
        {
            "series_id": ids,
            "key": pa.array([key_of(int(sid)) for sid in ids], type=pa.binary()),
            "min_ts": columns.timestamps[starts],
            "max_ts": columns.timestamps[ends],
        },
        schema=_SERIES_SCHEMA,
    )
    pq.write_table(series, directory / HISTOGRAM_SERIES_FILE, compression="zstd")


def read_block_file(directory: Path, sids: npt.NDArray[np.int64] | None = None) -> HistogramColumns:
    """A block's histogram samples (of `sids` only, if given), by series and time."""
    filters = None if sids is None else [("series_id", "in", sids.tolist())]
    table = pq.read_table(directory / HISTOGRAMS_FILE, filters=filters)
    if table.num_rows == 0:
        return HistogramColumns.empty()
    values = table.column("histogram").combine_chunks()
    buffers = values.buffers()
    offsets = np.frombuffer(
        buffers[1], dtype=np.int64, count=len(values) + 1, offset=8 * values.offset
    )
    data = buffers[2].to_pybytes() if buffers[2] is not None else b""
    base = int(offsets[0])
    return HistogramColumns(
        np.asarray(table.column("series_id").to_numpy(), dtype=np.int64),
        np.asarray(table.column("timestamp").to_numpy(), dtype=np.int64),
        offsets - base,
        data[base : int(offsets[-1])],
    )


def read_block_series(
    directory: Path,
) -> tuple[npt.NDArray[np.int64], list[bytes], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The series a block holds histogram samples of: ids, keys, first and last timestamps."""
    table = pq.read_table(directory / HISTOGRAM_SERIES_FILE)
    return (
        np.asarray(table.column("series_id").to_numpy(), dtype=np.int64),
        table.column("key").to_pylist(),
        np.asarray(table.column("min_ts").to_numpy(), dtype=np.int64),
        np.asarray(table.column("max_ts").to_numpy(), dtype=np.int64),
    )


class _Decoded(Sequence[FloatHistogram]):
    """Some rows' histograms, each decoded when first asked for and kept: an instant
    selector takes one sample of each series' lookback (about ten), a range query's selector
    one a step, so most of a series' rows are never decoded (2.6 us each)."""

    __slots__ = ("_columns", "_first", "_found")

    def __init__(self, columns: HistogramColumns, first: int, stop: int) -> None:
        self._columns = columns
        self._first = first
        self._found: list[FloatHistogram | None] = [None] * (stop - first)

    def __len__(self) -> int:
        return len(self._found)

    def __iter__(self) -> Iterator[FloatHistogram]:
        for index in range(len(self._found)):
            yield self[index]

    @overload
    def __getitem__(self, index: int) -> FloatHistogram: ...

    @overload
    def __getitem__(self, index: slice) -> list[FloatHistogram]: ...

    def __getitem__(self, index: int | slice) -> FloatHistogram | list[FloatHistogram]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._found)))]
        index = range(len(self._found))[index]  # negative indexes, and IndexError
        found = self._found[index]
        if found is None:
            found = self._found[index] = self._columns.histogram(self._first + index)
        return found
