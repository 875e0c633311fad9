"""Decoded head segments and block reads kept for later reads: the same samples, bounded memory,
entries that go with their block, and nothing but query reads pass through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from watchkeeper.model import SeriesBatch, labels_from_dict
from watchkeeper.promql import parse_series_selector
from watchkeeper.store import MetricsDB, StorageOptions, headchunks
from watchkeeper.store.headchunks import HeadChunk, freeze
from watchkeeper.store.read_cache import ReadCache

MINUTE = 60_000
T0 = 1_700_000_000_000


def _arrays(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1000, rows), rng.integers(0, 255, 8 * rows).astype(np.uint8)


def test_the_least_recently_used_entries_go_once_the_budget_is_reached() -> None:
    size = 100 * 8 + 800  # bytes of one entry of 100 rows
    cache = ReadCache(8 * size)  # an eighth of the budget: the largest entry kept
    owners = [f"frame {k}".encode() for k in range(5)]
    loads: list[int] = []

    def get(k: int, key: object = None) -> tuple[np.ndarray, np.ndarray]:
        def load() -> tuple[np.ndarray, np.ndarray]:
            loads.append(k)
            return _arrays(100, k)

        return cache.get(owners[k], key, load)

    first = get(0)
    for k in range(1, 5):
        get(k)
    again = get(0)  # held: the very same arrays, not decoded again
    assert again[0] is first[0] and again[1] is first[1]
    for k in range(1, 5):
        get(k, "other key")  # one owner, several keys
    assert (len(cache), cache.nbytes) == (8, 8 * size)
    get(0, "third")  # over budget: owner 1's first entry, the least recently used, goes
    get(1)
    assert loads == [0, 1, 2, 3, 4, 1, 2, 3, 4, 0, 1]
    assert (cache.hits, cache.misses) == (1, 11)
    deltas, planes = first
    with pytest.raises(ValueError):  # shared by every reader: nobody may write to them
        deltas[0] = 1
    with pytest.raises(ValueError):
        planes[0] = 1


def test_entries_are_found_by_owner_object_and_big_ones_or_a_zero_budget_keep_none() -> None:
    cache = ReadCache(1 << 20)
    a = cache.get(bytes(bytearray(b"same bytes")), None, lambda: _arrays(10, 1))
    b = cache.get(bytes(bytearray(b"same bytes")), None, lambda: _arrays(10, 2))
    assert not np.array_equal(a[0], b[0])  # found by the owner object, never by its content
    big = cache.get(b"big", None, lambda: _arrays(20_000, 3))  # 320 KB: over 1 MiB / 8
    assert big[0].nbytes * 8 > cache.max_bytes and len(cache) == 2
    owner = object()
    cache.get(owner, 1, lambda: _arrays(10, 4))
    cache.get(owner, 2, lambda: _arrays(10, 5))
    cache.drop(owner)  # a block that is gone takes its entries along
    assert len(cache) == 2 and cache.nbytes == 2 * 160
    off = ReadCache(0)
    off.get(b"x", None, lambda: _arrays(10, 3))
    assert (len(off), off.nbytes, off.misses) == (0, 0, 1)


def test_frozen_chunks_read_through_the_cache_give_the_same_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(headchunks, "SEGMENT_ROWS", 16)
    rng = np.random.default_rng(3)
    series = rng.integers(0, 25, 600)
    times = np.sort(rng.integers(0, 10**6, 600))
    values = rng.normal(size=600)
    values[::37] = np.nan
    chunk = freeze([HeadChunk(series, times, values)])
    cache = ReadCache(1 << 20)
    for wanted in ([3], [0, 5, 6, 24], list(range(25)), [3], [7, 30]):
        ids = np.array(wanted, dtype=np.int64)
        expected = chunk.arrays(ids)
        for _ in range(2):
            got = chunk.arrays(ids, cache)
            for a, b in zip(got, expected, strict=True):
                assert a.view(np.int64).tolist() == b.view(np.int64).tolist()
    assert cache.hits > 0 and len(cache) == len(chunk.segments)


def _store(path: Path, **options: int) -> MetricsDB:
    db = MetricsDB(
        path,
        StorageOptions(
            retention_ms=1000 * MINUTE,
            block_duration_ms=10 * MINUTE,
            freeze_samples=100,
            **options,  # type: ignore[arg-type]
        ),
    )
    db.open()
    # one append: the background freezer and a test's own freeze then find the same raw run,
    # and neither leaves a remainder under freeze_samples unfrozen (appends racing the
    # freezer could, and did under load)
    rows = [
        (labels_from_dict({"__name__": "m", "i": str(i)}), T0 + k * 15_000, float(i + k))
        for k in range(80)
        for i in range(10)
    ]
    db.append("default", SeriesBatch.from_samples(rows))
    return db


def _read(db: MetricsDB, selector: str = "m{i=~'3|7'}") -> list[tuple[list[int], list[float]]]:
    found = db.read("default", parse_series_selector(selector))
    return [(s.timestamps.tolist(), s.values.tolist()) for s in found]


def test_head_reads_fill_the_cache_and_cuts_leave_it_alone(tmp_path: Path) -> None:
    db = _store(tmp_path)
    state = db._tenant("default")
    db._freeze(state)
    assert all(c.frozen for c in state.chunks)
    cache = db.read_cache
    assert (cache.hits, cache.misses) == (0, 0)
    first = _read(db)
    misses = cache.misses
    assert misses > 0 and cache.hits == 0
    assert _read(db) == first
    assert cache.misses == misses and cache.hits == misses
    db.compact()  # cuts the first 10 minutes into a block, decoding their chunks whole
    assert cache.misses == misses and cache.hits == misses
    assert _read(db) == first
    db.close()


def test_block_reads_are_kept_per_block_and_series_and_go_with_their_block(
    tmp_path: Path,
) -> None:
    db = _store(tmp_path)
    db.compact(force=True)  # everything in blocks
    cache = db.read_cache
    first = _read(db)
    some = _read(db, "m{i='7'}")
    entries = len(cache)
    assert entries >= 2 and cache.hits == 0
    assert _read(db) == first and _read(db, "m{i='7'}") == some
    assert cache.hits == entries and len(cache) == entries
    (block,) = db._tenant("default").blocks
    db._blocks.reader.forget(block, cache)
    assert len(cache) == 0 and cache.nbytes == 0
    assert _read(db) == first
    db.close()


def test_a_scan_takes_what_the_cache_holds_and_keeps_nothing(tmp_path: Path) -> None:
    """A read of more samples than the budget holds keeps none of what it decodes, though
    each of its pieces would fit: it would push out what smaller reads come back to."""
    # 10 series of 80 samples in a block, read a series at a time: pieces of 80 samples
    # (1,920 bytes, under an eighth of the budget); all 10 are 800 samples, 19,200 bytes
    db = _store(tmp_path, read_cache_bytes=16_000, recent_samples_per_series=0)
    db.compact(force=True)
    cache = db.read_cache
    assert cache.is_scan(800) and not cache.is_scan(160)

    def read(selector: str) -> list[list[float]]:
        batches = db.read_column_batches(
            "default", parse_series_selector(selector), T0, T0 + 100 * MINUTE, 1
        )
        return [s.values.tolist() for b in batches for s in b.series()]

    everything = read("m")
    assert len(everything) == 10 and len(cache) == 0 and cache.misses == 10
    some = read("m{i=~'3|7'}")  # 160 samples: kept
    assert len(cache) == 2 and cache.nbytes == 2 * 1920
    assert read("m") == everything  # takes the two series the cache holds, keeps nothing
    assert (cache.hits, cache.misses, len(cache)) == (2, 20, 2)
    assert read("m{i=~'3|7'}") == some and cache.hits == 4
    db.close()
