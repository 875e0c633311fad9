"""Decoded frozen head segments kept for later reads: the same samples, bounded memory, and
nothing but reads pass through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from watchkeeper.model import SeriesBatch, labels_from_dict
from watchkeeper.promql import parse_series_selector
from watchkeeper.store import MetricsDB, StorageOptions, headchunks
from watchkeeper.store.headchunks import HeadChunk, freeze
from watchkeeper.store.segment_cache import SegmentCache

MINUTE = 60_000
T0 = 1_700_000_000_000


def _segment(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1000, rows), rng.integers(0, 255, 8 * rows).astype(np.uint8)


def test_the_least_recently_used_segments_go_once_the_budget_is_reached() -> None:
    size = 100 * 8 + 800  # bytes of one decoded segment of 100 rows
    cache = SegmentCache(3 * size)
    frames = [f"frame {k}".encode() for k in range(5)]
    decodes: list[int] = []

    def get(k: int) -> tuple[np.ndarray, np.ndarray]:
        def decode() -> tuple[np.ndarray, np.ndarray]:
            decodes.append(k)
            return _segment(100, k)

        return cache.decoded(frames[k], decode)

    first = get(0)
    get(1)
    get(2)
    again = get(0)  # held: the very same arrays, not decoded again
    assert again[0] is first[0] and again[1] is first[1]
    get(3)  # over budget: 1, the least recently used, goes
    assert (len(cache), cache.nbytes) == (3, 3 * size)
    get(1)
    assert decodes == [0, 1, 2, 3, 1]
    assert (cache.hits, cache.misses) == (1, 5)
    deltas, planes = first
    with pytest.raises(ValueError):  # shared by every reader: nobody may write to them
        deltas[0] = 1
    with pytest.raises(ValueError):
        planes[0] = 1


def test_a_frame_equal_to_a_held_one_is_its_own_entry_and_zero_bytes_keep_none() -> None:
    cache = SegmentCache(1 << 20)
    a = cache.decoded(bytes(bytearray(b"same bytes")), lambda: _segment(10, 1))
    b = cache.decoded(bytes(bytearray(b"same bytes")), lambda: _segment(10, 2))
    assert not np.array_equal(a[0], b[0])  # found by the frame object, never by its content
    off = SegmentCache(0)
    off.decoded(b"x", lambda: _segment(10, 3))
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
    cache = SegmentCache(1 << 20)
    for wanted in ([3], [0, 5, 6, 24], list(range(25)), [3], [7, 30]):
        ids = np.array(wanted, dtype=np.int64)
        expected = chunk.arrays(ids)
        for _ in range(2):
            got = chunk.arrays(ids, cache)
            for a, b in zip(got, expected, strict=True):
                assert a.view(np.int64).tolist() == b.view(np.int64).tolist()
    assert cache.hits > 0 and len(cache) == len(chunk.segments)


def test_reads_fill_the_cache_and_cuts_leave_it_alone(tmp_path: Path) -> None:
    db = MetricsDB(
        tmp_path,
        StorageOptions(
            retention_ms=1000 * MINUTE, block_duration_ms=10 * MINUTE, freeze_samples=100
        ),
    )
    db.open()
    state = db._tenant("default")
    for k in range(80):
        rows = [
            (labels_from_dict({"__name__": "m", "i": str(i)}), T0 + k * 15_000, float(i + k))
            for i in range(10)
        ]
        db.append("default", SeriesBatch.from_samples(rows))
    db._freeze(state)
    assert all(c.frozen for c in state.chunks)
    cache = db.segment_cache
    assert (cache.hits, cache.misses) == (0, 0)

    def read() -> list[tuple[list[int], list[float]]]:
        found = db.read("default", parse_series_selector("m{i=~'3|7'}"))
        return [(s.timestamps.tolist(), s.values.tolist()) for s in found]

    first = read()
    misses = cache.misses
    assert misses > 0 and cache.hits == 0
    assert read() == first
    assert cache.misses == misses and cache.hits == misses
    db.compact()  # cuts the first 10 minutes into a block, decoding their chunks whole
    assert cache.misses == misses and cache.hits == misses
    assert read() == first
    db.close()
