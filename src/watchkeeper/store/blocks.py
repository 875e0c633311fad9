"""Immutable on-disk blocks: one tenant's samples over a time range, as Parquet files.

A block directory holds `samples.parquet`, `series.parquet` and `meta.json`:
- `samples.parquet`: the samples grouped by series in storage order (metric name, then id;
  store/series_index.py), each series in time order. Timestamps are byte-split differences
  along the series; values are byte-split differences of exact decimal mantissas with a
  per-series exponent (kept in `series.parquet`), or of float bits where no decimal is exact
  (store/valuecodec.py); zstd.
  That is the smallest layout measured for this data (docs/architecture.md). Row groups of
  ROW_GROUP_ROWS rows are the unit a read decodes.
- `series.parquet`: one row per series in the same order: series_id, canonical key, first and
  last timestamp in the block, its number of sample rows (which locate its rows) and its
  decimal exponent.
- `meta.json`: time range, counts and the format version.

It is written under a temporary name, fsynced, and renamed into place, so a crash leaves either
a whole block or none. The files are plain Parquet, so DuckDB or any Parquet reader can query
them in place; the store itself reads them with pyarrow, row group by row group.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from watchkeeper.model.labels import labels_from_key, metric_name
from watchkeeper.store import histograms as histogram_files
from watchkeeper.store import valuecodec
from watchkeeper.store.histograms import HistogramColumns
from watchkeeper.store.read_cache import Decoded, ReadCache
from watchkeeper.store.series_index import SeriesIndex, plan_units, storage_sort
from watchkeeper.store.wal import fsync_dir

log = logging.getLogger(__name__)

INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)

SAMPLES_FILE = "samples.parquet"
SERIES_FILE = "series.parquet"
META_FILE = "meta.json"
TMP_PREFIX = ".tmp-"
# A read decodes whole row groups: at 32 Ki rows a few series cost well under a millisecond per
# block, and the block is 2% larger than at 256 Ki (measured, docs/architecture.md).
ROW_GROUP_ROWS = 32 * 1024
FORMAT_VERSION = 2
# zstd 15 vs 9: 6% smaller blocks for 2.3x the (background) compaction time; 19 gains <1% more
ZSTD_LEVEL = 15


@dataclass(frozen=True)
class BlockMeta:
    path: Path
    min_time: int
    max_time: int  # inclusive
    samples: int
    series: int
    version: int = FORMAT_VERSION
    # the blocks this one was merged from (block_merge.py), by name: any still on disk when
    # the store opens are left over from a merge interrupted before deleting them
    sources: tuple[str, ...] = ()
    histograms: int = 0  # native histogram samples (histograms.py)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class BlockSeries:
    """A block's series in storage order."""

    series: npt.NDArray[np.int64]
    keys: list[bytes]
    min_times: npt.NDArray[np.int64]
    max_times: npt.NDArray[np.int64]
    # the series with histogram samples (also listed above)
    histogram_series: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.empty(0, dtype=np.int64)
    )


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


_SAMPLES_SCHEMA = pa.schema(
    [
        ("tdelta", pa.int64()),
        ("mdelta", pa.int64()),
        ("fdelta", pa.int64()),
    ]
)

SortedPart = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]
# rows a read of each series' newest samples decodes at a time (newest_samples): 3 MiB of
# samples; reopening the query benchmark's data took as long as with 8 times as many
TAIL_BATCH_ROWS = 1 << 17
_SERIES_SCHEMA = pa.schema(
    [
        ("series_id", pa.int64()),
        ("key", pa.binary()),
        ("min_ts", pa.int64()),
        ("max_ts", pa.int64()),
        ("rows", pa.int64()),
        ("exp", pa.int8()),
    ]
)


def write_block(
    tenant_dir: Path,
    parts: Iterable[SortedPart],
    key_of: Callable[[int], bytes],
    sources: Sequence[str] = (),
    histograms: HistogramColumns | None = None,
) -> BlockMeta | None:
    """Write a new block from parts holding whole series, grouped by series in storage order
    (series_index.py) and sorted by time within each, and `histograms` (sorted by series and
    time). Parts are encoded and written one at a time, so memory stays bounded by the largest
    part. Returns None when they hold no samples. `sources` names the blocks a merged block
    replaces."""
    tenant_dir.mkdir(parents=True, exist_ok=True)
    tmp = tenant_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    min_time, max_time, samples = INT64_MAX, INT64_MIN, 0
    series_parts: list[pa.Table] = []
    writer = pq.ParquetWriter(
        tmp / SAMPLES_FILE,
        _SAMPLES_SCHEMA,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        use_dictionary=False,
        column_encoding={
            "tdelta": "BYTE_STREAM_SPLIT",
            "mdelta": "BYTE_STREAM_SPLIT",
            "fdelta": "BYTE_STREAM_SPLIT",
        },
        write_statistics=False,
    )
    try:
        for series, timestamps, values in parts:
            if len(series) == 0:
                continue
            exponents, differences, decimal, float_differences = valuecodec.encode(series, values)
            table = pa.table(
                {
                    "tdelta": valuecodec.chain(series, timestamps),
                    "mdelta": differences,
                    "fdelta": pa.array(float_differences, mask=decimal),
                },
                schema=_SAMPLES_SCHEMA,
            )
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
            ends = np.r_[starts[1:], len(series)] - 1
            ids = series[starts]
            series_parts.append(
                pa.table(
                    {
                        "series_id": ids,
                        "key": pa.array([key_of(int(sid)) for sid in ids], type=pa.binary()),
                        "min_ts": timestamps[starts],
                        "max_ts": timestamps[ends],
                        "rows": ends + 1 - starts,
                        # constant along a series: read back once per series, not per row
                        "exp": exponents[starts].astype(np.int8),
                    },
                    schema=_SERIES_SCHEMA,
                )
            )
            min_time = min(min_time, int(timestamps.min()))
            max_time = max(max_time, int(timestamps.max()))
            samples += len(series)
    finally:
        writer.close()
    histogram_count = 0 if histograms is None else len(histograms)
    if samples == 0 and histogram_count == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    files = [SAMPLES_FILE, SERIES_FILE, META_FILE]
    series_table = pa.concat_tables(series_parts) if series_parts else _SERIES_SCHEMA.empty_table()
    pq.write_table(series_table, tmp / SERIES_FILE, compression="zstd")
    meta: dict[str, object] = {
        "version": FORMAT_VERSION,
        "min_time": min_time,
        "max_time": max_time,
        "samples": samples,
        "series": series_table.num_rows,
    }
    if histograms is not None and histogram_count:
        histogram_files.write_block_file(tmp, histograms, key_of)
        files += [histogram_files.HISTOGRAMS_FILE, histogram_files.HISTOGRAM_SERIES_FILE]
        min_time = min(min_time, histograms.min_time)
        max_time = max(max_time, histograms.max_time)
        meta.update(min_time=min_time, max_time=max_time, histograms=histogram_count)
    if sources:
        meta["sources"] = list(sources)
    (tmp / META_FILE).write_text(json.dumps(meta))
    for file in files:
        _fsync_file(tmp / file)
    fsync_dir(tmp)
    name = f"{min_time:015d}-{max_time:015d}"
    final = tenant_dir / name
    suffix = 0
    while final.exists():
        suffix += 1
        final = tenant_dir / f"{name}-{suffix}"
    tmp.rename(final)
    fsync_dir(tenant_dir)
    return BlockMeta(
        final,
        min_time,
        max_time,
        samples,
        series_table.num_rows,
        sources=tuple(sources),
        histograms=histogram_count,
    )


def list_blocks(tenant_dir: Path) -> list[BlockMeta]:
    """Complete blocks of a tenant, oldest first. Leftovers of interrupted writes are removed,
    and so are blocks a merged block lists as its sources (a merge that stopped after writing
    its block, before deleting them). For opening a store: a running one may be writing or
    reading those."""
    if not tenant_dir.is_dir():
        return []
    blocks = []
    for path in sorted(tenant_dir.iterdir()):
        if path.name.startswith(TMP_PREFIX):
            shutil.rmtree(path, ignore_errors=True)
            continue
        meta_path = path / META_FILE
        if not meta_path.is_file():
            continue
        meta = json.loads(meta_path.read_text())
        blocks.append(
            BlockMeta(
                path,
                meta["min_time"],
                meta["max_time"],
                meta["samples"],
                meta["series"],
                meta.get("version", 1),
                tuple(meta.get("sources", ())),
                meta.get("histograms", 0),
            )
        )
    merged = {name for block in blocks for name in block.sources}
    for block in blocks:
        if block.name in merged:
            log.info("deleting block %s, merged into a newer block", block.path)
            delete_block(block)
    kept = [b for b in blocks if b.name not in merged]
    return sorted(kept, key=lambda b: (b.min_time, b.name))


def read_block_series(block: BlockMeta) -> BlockSeries:
    table = pq.read_table(
        block.path / SERIES_FILE, columns=["series_id", "key", "min_ts", "max_ts"]
    )
    found = BlockSeries(
        series=table.column("series_id").to_numpy(),
        keys=table.column("key").to_pylist(),
        min_times=table.column("min_ts").to_numpy(),
        max_times=table.column("max_ts").to_numpy(),
    )
    if not block.histograms:
        return found
    ids, keys, min_times, max_times = histogram_files.read_block_series(block.path)
    return BlockSeries(
        np.concatenate([found.series, ids]),
        found.keys + keys,
        np.concatenate([found.min_times, min_times]),
        np.concatenate([found.max_times, max_times]),
        ids,
    )


def delete_block(block: BlockMeta) -> None:
    trash = block.path.with_name(f"{TMP_PREFIX}{block.path.name}")
    block.path.rename(trash)  # atomic: a crash leaves a .tmp- leftover that startup removes
    shutil.rmtree(trash, ignore_errors=True)


def disk_bytes(block: BlockMeta) -> int:
    return sum(p.stat().st_size for p in block.path.iterdir() if p.is_file())


@dataclass(frozen=True)
class _BlockIndex:
    series: SeriesIndex
    exponents: npt.NDArray[np.int8]  # per series, in storage order
    row_group_starts: npt.NDArray[np.int64]  # first row of each row group, then the row count
    metadata: pq.FileMetaData


_COLUMNS = ["tdelta", "mdelta", "fdelta"]
# Reads decoding more rows than this decode them a few row groups at a time, keeping the wanted
# rows of each before the next: a read holds its own samples plus one group decoded, not every
# row of every row group it touches. That matters where the wanted series are spread among
# others: 36 of a metric's 288 series over 24 h touched every row group of the metric, 5.5 M
# rows decoded for 104 K wanted, a 105 MiB peak. (Small reads keep one call, whose fixed cost
# is most of their time.)
GROUP_ROWS = 128 * 1024


class BlockReader:
    """Reads some series' samples out of blocks. A block's series index (which rows hold which
    series) is loaded on its first read and kept; a read decodes only the row groups holding
    the wanted series' rows."""

    def __init__(self) -> None:
        self._indexes: dict[Path, _BlockIndex] = {}
        self._lock = threading.Lock()

    def parts(
        self,
        blocks: list[BlockMeta],
        series: npt.NDArray[np.int64],
        start: int,
        end: int,
        cache: Decoded | None = None,
    ) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        """The samples of `series` (ascending ids) in [start, end], one part per block in the
        order given, each holding its series in storage order, each series time-sorted; each
        block's read of `series` taken from and kept in `cache` when given."""
        for block in blocks:
            if cache is None:
                got_s, got_t, got_v = self._read_block(block, series)
            else:
                index = self._index(block)
                got_s, got_t, got_v = cache.get(
                    index, series.tobytes(), functools.partial(self._read_block, block, series)
                )
            keep = (got_t >= start) & (got_t <= end)
            if not keep.all():
                got_s, got_t, got_v = got_s[keep], got_t[keep], got_v[keep]
            if len(got_s):
                yield got_s, got_t, got_v

    def newest_samples(
        self, block: BlockMeta, depth: int, after: int, most_series: int
    ) -> Iterator[SortedPart]:
        """Each series' newest `depth` samples in the block later than `after`, for its first
        `most_series` series in storage order: a part per batch of series read together
        (about TAIL_BATCH_ROWS rows), each series' samples in time order."""
        index = self._index(block)
        ids = index.series.ids[:most_series]
        rows = np.diff(index.series.starts)[: len(ids)]
        batch = np.cumsum(rows) // TAIL_BATCH_ROWS
        cuts = np.flatnonzero(np.diff(batch)) + 1
        for members, lengths in zip(np.split(ids, cuts), np.split(rows, cuts), strict=True):
            # read back series by series in storage order, `lengths` rows each
            series, times, values = self._read_block(block, np.sort(members))
            ends = np.cumsum(lengths)
            # 1 for each series' newest sample, 2 for the one before, ...
            from_end = np.repeat(ends, lengths) - np.arange(len(series))
            keep = (from_end <= depth) & (times > after)
            yield series[keep], times[keep], values[keep]
            del series, times, values

    def series_ids(self, block: BlockMeta) -> npt.NDArray[np.int64]:
        """The block's series, in storage order."""
        return self._index(block).series.ids

    def row_counts(self, block: BlockMeta, series: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The samples each of `series` (ascending ids) has in the block."""
        return self._index(block).series.row_counts(series)

    def forget(self, block: BlockMeta, cache: ReadCache | None = None) -> None:
        """Drop a deleted block's index, and what `cache` holds of it."""
        with self._lock:
            index = self._indexes.pop(block.path, None)
        if index is not None and cache is not None:
            cache.drop(index)

    def _index(self, block: BlockMeta) -> _BlockIndex:
        with self._lock:
            found = self._indexes.get(block.path)
        if found is not None:
            return found
        table = pq.read_table(block.path / SERIES_FILE, columns=["series_id", "rows", "exp"])
        metadata = pq.read_metadata(block.path / SAMPLES_FILE)
        sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        starts = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        index = _BlockIndex(
            SeriesIndex.of(table.column("series_id").to_numpy(), table.column("rows").to_numpy()),
            np.asarray(table.column("exp").to_numpy(), dtype=np.int8),
            starts,
            metadata,
        )
        with self._lock:
            self._indexes[block.path] = index
        return index

    def _read_block(
        self, block: BlockMeta, wanted: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Every sample of the wanted series in one block, series by series: timestamps and
        values are differences along each series, so a series is read whole and its time range
        is cut afterwards."""
        index = self._index(block)
        positions = index.series.positions(wanted)
        starts, lengths = index.series.ranges_of(positions)
        series = np.repeat(index.series.ids[positions], lengths)
        exponents = np.repeat(index.exponents[positions], lengths)
        plan = plan_units(index.row_group_starts, starts, lengths)
        if not plan.units:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), np.empty(0, dtype=np.float64)
        units = np.asarray(plan.units, dtype=np.int64)
        sizes = index.row_group_starts[units + 1] - index.row_group_starts[units]
        # where each unit's wanted rows begin among plan.within, and its first decoded row
        decoded_at = np.zeros(len(units) + 1, dtype=np.int64)
        np.cumsum(sizes, out=decoded_at[1:])
        wanted_at = np.searchsorted(plan.within, decoded_at)
        pieces: list[list[npt.NDArray[Any]]] = [[], [], [], []]
        with pq.ParquetFile(block.path / SAMPLES_FILE, metadata=index.metadata) as file:
            for first, last in _groups(sizes, GROUP_ROWS):
                rows = plan.within[wanted_at[first] : wanted_at[last]] - decoded_at[first]
                whole = len(rows) == decoded_at[last] - decoded_at[first]
                table = file.read_row_groups(
                    plan.units[first:last], columns=_COLUMNS, use_threads=False
                )
                decoded = _decoded_columns(table)
                del table
                for piece, array in zip(pieces, decoded, strict=True):
                    piece.append(array if whole else array[rows])
                del decoded
        tdelta, mdelta, decimal, fdelta = (
            p[0] if len(p) == 1 else np.concatenate(p) for p in pieces
        )
        del pieces
        values = valuecodec.decode(series, exponents, mdelta, decimal, fdelta)
        return series, valuecodec.unchain(series, tdelta), values

    def close(self) -> None:
        with self._lock:
            self._indexes.clear()


def _groups(sizes: npt.NDArray[np.int64], most: int) -> list[tuple[int, int]]:
    """Consecutive units [first, last) of at most `most` rows together (a bigger unit alone)."""
    groups = []
    first = 0
    total = 0
    for k, size in enumerate(sizes.tolist()):
        if k > first and total + size > most:
            groups.append((first, k))
            first, total = k, 0
        total += size
    groups.append((first, len(sizes)))
    return groups


def _decoded_columns(table: pa.Table) -> list[npt.NDArray[Any]]:
    """The samples columns as reads use them: time differences, mantissa differences,
    is-decimal (a null `fdelta` marks a decimal row) and float differences."""
    fdelta = table.column("fdelta")
    return [
        np.asarray(table.column("tdelta").to_numpy(), dtype=np.int64),
        np.asarray(table.column("mdelta").to_numpy(), dtype=np.int64),
        np.asarray(fdelta.is_null().to_numpy(), dtype=bool),
        np.asarray(pc.fill_null(fdelta, 0).to_numpy(), dtype=np.int64),
    ]


def upgrade(block: BlockMeta) -> BlockMeta:
    """Rewrite a version-1 block (series in id order, series_id and exponent columns per row,
    no row counts) in the current format, then delete it. The new block names the old one as
    its source, so a crash in between is finished by list_blocks at the next start."""
    table = pq.read_table(block.path / SAMPLES_FILE)
    series = np.asarray(table.column("series_id").to_numpy(), dtype=np.int64)
    exponents = np.asarray(table.column("exp").to_numpy(), dtype=np.int8)
    tdelta, mdelta, decimal, fdelta = _decoded_columns(table)
    del table
    values = valuecodec.decode(series, exponents, mdelta, decimal, fdelta)
    timestamps = valuecodec.unchain(series, tdelta)
    old = pq.read_table(block.path / SERIES_FILE, columns=["series_id", "key"])
    key_of = dict(
        zip(old.column("series_id").to_pylist(), old.column("key").to_pylist(), strict=True)
    )
    order = storage_sort(series, lambda sid: metric_name(labels_from_key(key_of[sid])))
    rewritten = write_block(
        block.path.parent,
        [(series[order], timestamps[order], values[order])],
        key_of.__getitem__,
        sources=[block.name],
    )
    delete_block(block)
    if rewritten is None:
        raise ValueError(f"block {block.path} holds no samples")
    return rewritten
