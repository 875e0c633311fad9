"""Immutable on-disk blocks: one tenant's samples over a time range, as Parquet files.

A block directory holds `samples.parquet` (sorted by series and time: series_id; timestamps as
byte-split differences along the series; values as byte-split differences of exact decimal
mantissas with a per-series exponent, or of float bits where no decimal is exact
(store/valuecodec.py); zstd: the smallest layout measured for this data, see
docs/architecture.md), `series.parquet` (series_id, canonical key, first and last timestamp of
the series in the block) and `meta.json`. It is written under a temporary name, fsynced, and
renamed into place, so a crash leaves either a whole block or none. DuckDB scans the Parquet
files in place for reads.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.store import valuecodec
from watchkeeper.store.wal import fsync_dir

INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)

SAMPLES_FILE = "samples.parquet"
SERIES_FILE = "series.parquet"
META_FILE = "meta.json"
TMP_PREFIX = ".tmp-"
ROW_GROUP_ROWS = 256 * 1024
# zstd 15 vs 9: 6% smaller blocks for 2.3x the (background) compaction time; 19 gains <1% more
ZSTD_LEVEL = 15


@dataclass(frozen=True)
class BlockMeta:
    path: Path
    min_time: int
    max_time: int  # inclusive
    samples: int
    series: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class BlockSeries:
    series: npt.NDArray[np.int64]
    keys: list[bytes]
    min_times: npt.NDArray[np.int64]
    max_times: npt.NDArray[np.int64]


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


_SAMPLES_SCHEMA = pa.schema(
    [
        ("series_id", pa.int64()),
        ("tdelta", pa.int64()),
        ("exp", pa.int8()),
        ("mdelta", pa.int64()),
        ("fdelta", pa.int64()),
    ]
)

SortedPart = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]


def write_block(
    tenant_dir: Path, parts: Iterable[SortedPart], key_of: Callable[[int], bytes]
) -> BlockMeta | None:
    """Write a new block from parts sorted by (series, time), each holding series ids above
    those of the part before. Parts are encoded and written one at a time, so memory stays
    bounded by the largest part. Returns None when the parts hold no samples."""
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
        use_dictionary=["exp"],
        column_encoding={
            "series_id": "DELTA_BINARY_PACKED",
            "tdelta": "BYTE_STREAM_SPLIT",
            "mdelta": "BYTE_STREAM_SPLIT",
            "fdelta": "BYTE_STREAM_SPLIT",
        },
        write_statistics=["series_id"],
    )
    try:
        for series, timestamps, values in parts:
            if len(series) == 0:
                continue
            exponents, differences, decimal, float_differences = valuecodec.encode(series, values)
            table = pa.table(
                {
                    "series_id": series,
                    "tdelta": valuecodec.chain(series, timestamps),
                    "exp": exponents,
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
                    }
                )
            )
            min_time = min(min_time, int(timestamps.min()))
            max_time = max(max_time, int(timestamps.max()))
            samples += len(series)
    finally:
        writer.close()
    if samples == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    series_table = pa.concat_tables(series_parts)
    pq.write_table(series_table, tmp / SERIES_FILE, compression="zstd")
    meta = {
        "version": 1,
        "min_time": min_time,
        "max_time": max_time,
        "samples": samples,
        "series": series_table.num_rows,
    }
    (tmp / META_FILE).write_text(json.dumps(meta))
    for file in (SAMPLES_FILE, SERIES_FILE, META_FILE):
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
    return BlockMeta(final, min_time, max_time, samples, series_table.num_rows)


def list_blocks(tenant_dir: Path) -> list[BlockMeta]:
    """Complete blocks of a tenant, oldest first; leftovers of interrupted writes are removed."""
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
            BlockMeta(path, meta["min_time"], meta["max_time"], meta["samples"], meta["series"])
        )
    return sorted(blocks, key=lambda b: (b.min_time, b.name))


def read_block_series(block: BlockMeta) -> BlockSeries:
    table = pq.read_table(block.path / SERIES_FILE)
    return BlockSeries(
        series=table.column("series_id").to_numpy(),
        keys=table.column("key").to_pylist(),
        min_times=table.column("min_ts").to_numpy(),
        max_times=table.column("max_ts").to_numpy(),
    )


def delete_block(block: BlockMeta) -> None:
    trash = block.path.with_name(f"{TMP_PREFIX}{block.path.name}")
    block.path.rename(trash)  # atomic: a crash leaves a .tmp- leftover that startup removes
    shutil.rmtree(trash, ignore_errors=True)


def disk_bytes(block: BlockMeta) -> int:
    return sum(p.stat().st_size for p in block.path.iterdir() if p.is_file())


class BlockReader:
    """Reads samples out of blocks with DuckDB; one connection, a cursor per query."""

    def __init__(self) -> None:
        self._connection = duckdb.connect(":memory:")
        self._lock = threading.Lock()

    def read(
        self,
        blocks: list[BlockMeta],
        series: npt.NDArray[np.int64],
        start: int,
        end: int,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        if not blocks or len(series) == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), np.empty(0, dtype=np.float64)
        ids = pa.table({"series_id": pa.array(series, type=pa.int64())})
        # each block's samples are cut to [start, end] as they come, so a long read never
        # holds the blocks' whole contents and their filtered copy at once
        parts_s, parts_t, parts_v = [], [], []
        for block in blocks:
            got_s, got_t, got_v = self._read_block(block, ids)
            keep = (got_t >= start) & (got_t <= end)
            if not keep.all():
                got_s, got_t, got_v = got_s[keep], got_t[keep], got_v[keep]
            parts_s.append(got_s)
            parts_t.append(got_t)
            parts_v.append(got_v)
        return np.concatenate(parts_s), np.concatenate(parts_t), np.concatenate(parts_v)

    def _read_block(
        self, block: BlockMeta, ids: pa.Table
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Every sample of the wanted series in one block, in file order: timestamps and values
        are differences along each series, so a series is read whole and filtered afterwards."""
        with self._lock:
            cursor = self._connection.cursor()
        try:
            cursor.register("wanted_series", ids)
            result = cursor.execute(
                "SELECT s.series_id, s.tdelta, s.exp, s.mdelta, s.fdelta IS NULL AS decimal, "
                "coalesce(s.fdelta, 0) AS fdelta "
                "FROM read_parquet($file, file_row_number = true) AS s "
                "SEMI JOIN wanted_series AS w ON s.series_id = w.series_id "
                "ORDER BY s.file_row_number",
                {"file": str(block.path / SAMPLES_FILE)},
            ).fetchnumpy()
        finally:
            cursor.close()
        series = np.asarray(result["series_id"], dtype=np.int64)
        values = valuecodec.decode(
            series,
            np.asarray(result["exp"], dtype=np.int8),
            np.asarray(result["mdelta"], dtype=np.int64),
            np.asarray(result["decimal"], dtype=bool),
            np.asarray(result["fdelta"], dtype=np.int64),
        )
        timestamps = valuecodec.unchain(series, np.asarray(result["tdelta"], dtype=np.int64))
        return series, timestamps, values

    def close(self) -> None:
        self._connection.close()
