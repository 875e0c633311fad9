"""Merging aged blocks into longer ones: same samples, fewer blocks, sources gone only when no
read needs them, and a merge interrupted before deleting its sources finished at open."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np

from watchkeeper.model import SeriesBatch, labels_from_dict, series_key
from watchkeeper.store import MetricsDB, StorageOptions
from watchkeeper.store.block_merge import merge_ranges, merged_parts, plan_merge
from watchkeeper.store.blocks import BlockMeta, BlockReader, list_blocks, write_block
from watchkeeper.store.series_index import name_of

MINUTE = 60_000
HOUR = 60 * MINUTE
T0 = 1_700_006_400_000  # a multiple of 6 h (and of 2 h)


def _options(merge: bool) -> StorageOptions:
    return StorageOptions(
        retention_ms=100 * 24 * HOUR,
        block_duration_ms=2 * HOUR,
        max_block_duration_ms=None if merge else 2 * HOUR,
    )


def _load(db: MetricsDB, hours: int, seed: int) -> None:
    """Eight series of three metrics, sampled about every 2 minutes with jitter, values both
    decimal and not, one series starting late and one stopping early."""
    rng = random.Random(seed)
    rows = []
    for step in range(hours * 30):
        at = T0 + step * 2 * MINUTE
        for i in range(8):
            if (i == 6 and step < 200) or (i == 7 and step > 300):
                continue
            name = ("up", "b_total", "a_bytes")[i % 3]
            value = round(rng.uniform(0, 1e6), 2) if i % 2 else rng.random() * 10 ** (i - 3)
            rows.append((labels_from_dict({"__name__": name, "i": str(i)}), at + i * 7, value))
    for k in range(0, len(rows), 500):
        db.append("t", SeriesBatch.from_samples(rows[k : k + 500]))


def _everything(db: MetricsDB) -> list[tuple[object, list[int], list[int]]]:
    columns = db.read_columns("t", [], 0, 2**62)
    return [
        (
            labels,
            columns.timestamps[columns.bounds[i] : columns.bounds[i + 1]].tolist(),
            columns.values[columns.bounds[i] : columns.bounds[i + 1]].view(np.int64).tolist(),
        )
        for i, labels in enumerate(columns.labels)
    ]


def _block_dirs(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "blocks" / "t").iterdir())


def test_merge_ranges_follow_prometheus_exponential_block_ranges() -> None:
    assert merge_ranges(2 * HOUR, 15 * 24 * HOUR) == [6 * HOUR, 18 * HOUR]
    assert merge_ranges(2 * HOUR, 30 * 24 * HOUR) == [6 * HOUR, 18 * HOUR, 54 * HOUR]
    assert merge_ranges(2 * HOUR, 10 * 365 * 24 * HOUR)[-1] <= 31 * 24 * HOUR
    assert merge_ranges(2 * HOUR, 20 * HOUR) == []  # a tenth of it is the block duration


def _meta(start_h: float, end_h: float, base: int = T0) -> BlockMeta:
    start, end = base + int(start_h * HOUR), base + int(end_h * HOUR) - 1
    return BlockMeta(Path(f"b{start}"), start, end, 1, 1)


def test_plan_merges_whole_windows_older_than_the_newest_block() -> None:
    ranges = [6 * HOUR, 18 * HOUR]
    two_hours = [_meta(h, h + 2) for h in range(0, 12, 2)]  # 0-12 h
    assert plan_merge(two_hours, ranges) == two_hours[:3]
    # the window 6-12 h holds the newest block: not yet
    assert plan_merge([*two_hours[3:]], ranges) is None
    # 6 h blocks merge into 18 h ones once no 2 h group is left
    at_18h = -(-T0 // (18 * HOUR)) * 18 * HOUR  # windows are aligned to their length
    six_hours = [_meta(h, h + 6, at_18h) for h in range(0, 24, 6)]
    assert plan_merge(six_hours, ranges) == six_hours[:3]
    # a block straddling two windows (15-21 h) stays out of both
    shifted = [_meta(h, h + 6, at_18h) for h in (3, 9, 15, 21, 27)]
    assert plan_merge(shifted, [18 * HOUR]) == shifted[:2]
    assert plan_merge(shifted[2:], [18 * HOUR]) is None


def test_merged_blocks_hold_the_same_samples(tmp_path: Path) -> None:
    merged_db = MetricsDB(tmp_path / "merged", _options(merge=True))
    plain_db = MetricsDB(tmp_path / "plain", _options(merge=False))
    for db in (merged_db, plain_db):
        db.open()
        _load(db, 30, seed=5)
        db.compact()
    try:
        plain = _block_dirs(tmp_path / "plain")
        merged = _block_dirs(tmp_path / "merged")
        assert len(plain) >= 13  # 2 h blocks of 30 h, the last hours still in the head
        assert len(merged) <= len(plain) - 8  # 6 h and 18 h blocks instead
        assert _everything(merged_db) == _everything(plain_db)
        # a 6 h query across a merged block's edge
        for db in (merged_db, plain_db):
            columns = db.read_columns("t", [], T0 + 5 * HOUR, T0 + 11 * HOUR)
            assert len(columns.timestamps) > 0
        a = merged_db.read_columns("t", [], T0 + 5 * HOUR, T0 + 11 * HOUR)
        b = plain_db.read_columns("t", [], T0 + 5 * HOUR, T0 + 11 * HOUR)
        assert a.labels == b.labels
        assert a.timestamps.tolist() == b.timestamps.tolist()
    finally:
        merged_db.close()
        plain_db.close()
    # and after a restart
    reopened = MetricsDB(tmp_path / "merged", _options(merge=True))
    reopened.open()
    again = MetricsDB(tmp_path / "plain", _options(merge=False))
    again.open()
    try:
        assert _everything(reopened) == _everything(again)
    finally:
        reopened.close()
        again.close()


def _unmerged(path: Path, seed: int) -> tuple[list[tuple[object, list[int], list[int]]], dict]:
    """A store of 30 h in 2 h blocks, closed: everything it holds, and its series' labels."""
    db = MetricsDB(path, _options(merge=False))
    db.open()
    _load(db, 30, seed=seed)
    db.compact()
    expected = _everything(db)
    labels = dict(db._tenants["t"].labels)
    db.close()
    return expected, labels


def test_a_read_in_progress_keeps_the_merged_blocks_until_it_ends(tmp_path: Path) -> None:
    expected, _ = _unmerged(tmp_path / "d", seed=6)
    db = MetricsDB(tmp_path / "d", _options(merge=True))
    db.open()
    try:
        before = _block_dirs(tmp_path / "d")
        reading = db.read_column_batches("t", [], 0, 2**62, batch_samples=100)
        first = next(reading)  # the read has taken its blocks
        db.compact()  # merges: the sources are retired, not deleted
        assert set(before) <= set(_block_dirs(tmp_path / "d"))
        rest = list(reading)  # reads the retired blocks' files
        assert sum(len(c.timestamps) for c in [first, *rest]) == sum(
            len(ts) for _, ts, _ in expected
        )
        db.compact()  # nothing reads them now
        after = list_blocks(tmp_path / "d" / "blocks" / "t")
        replaced = {name for block in after for name in block.sources}
        assert replaced  # something was merged, and none of what it replaced is left
        assert not replaced & {block.name for block in after}
        assert len(after) < len(before)
        assert _everything(db) == expected
    finally:
        db.close()


def test_sources_left_by_an_interrupted_merge_are_deleted_at_open(tmp_path: Path) -> None:
    expected, labels = _unmerged(tmp_path / "d", seed=7)
    tenant_dir = tmp_path / "d" / "blocks" / "t"
    sources = list_blocks(tenant_dir)[:3]
    kept = {b.name for b in sources}
    # the merged block is written, then the process dies before deleting its sources
    merged = write_block(
        tenant_dir,
        merged_parts(BlockReader(), sources, name_of(labels)),
        lambda sid: series_key(labels[sid]),
        sources=[b.name for b in sources],
    )
    assert merged is not None
    assert kept <= set(_block_dirs(tmp_path / "d"))
    db = MetricsDB(tmp_path / "d", _options(merge=False))
    db.open()
    try:
        names = set(_block_dirs(tmp_path / "d"))
        assert not kept & names
        assert merged.name in names
        assert _everything(db) == expected
    finally:
        db.close()


def test_reads_running_during_merges_see_every_sample(tmp_path: Path) -> None:
    expected, _ = _unmerged(tmp_path / "d", seed=8)
    total = sum(len(ts) for _, ts, _ in expected)
    db = MetricsDB(tmp_path / "d", _options(merge=True))
    db.open()
    seen: list[int] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def read_until_done() -> None:
        try:
            while not done.is_set() or len(seen) < 3:
                batches = db.read_column_batches("t", [], 0, 2**62, batch_samples=500)
                seen.append(sum(len(c.timestamps) for c in batches))
        except BaseException as err:  # reported below
            failures.append(err)

    readers = [threading.Thread(target=read_until_done) for _ in range(2)]
    try:
        for reader in readers:
            reader.start()
        db.compact()  # merges while the readers run
        done.set()
        for reader in readers:
            reader.join(timeout=60)
        assert not failures
        assert seen and set(seen) == {total}
        db.compact()  # the retired blocks go once the readers are done
        after = list_blocks(tmp_path / "d" / "blocks" / "t")
        assert not {name for b in after for name in b.sources} & {b.name for b in after}
        assert _everything(db) == expected
    finally:
        done.set()
        db.close()
