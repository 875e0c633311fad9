"""The embedded metrics store, with a real WAL and real Parquet blocks in a temp dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from watchkeeper.model import (
    MetricMetadata,
    SeriesBatch,
    labels_from_dict,
    labels_from_key,
    series_key,
)
from watchkeeper.promql import parse_series_selector
from watchkeeper.store import MetricsDB, StorageOptions, blocks, merge, valuecodec

MINUTE = 60_000
T0 = 1_700_000_000_000


def _options(**overrides: int) -> StorageOptions:
    values = {"retention_ms": 1000 * MINUTE, "block_duration_ms": 10 * MINUTE, **overrides}
    return StorageOptions(**values)  # type: ignore[arg-type]


def _open(path: Path, **overrides: int) -> MetricsDB:
    db = MetricsDB(path, _options(**overrides))
    db.open()
    return db


def _crash(db: MetricsDB) -> None:
    """The process dies: no compaction, no checkpoint; only the WAL's fsynced records remain."""
    db.wal.close()
    db._closing = True
    db._freeze_wanted.set()
    db._blocks.reader.close()


def _batch(rows: list[tuple[dict[str, str], int, float]]) -> SeriesBatch:
    return SeriesBatch.from_samples([(labels_from_dict(lbl), ts, v) for lbl, ts, v in rows])


def _grid(n_series: int, steps: int, start: int = T0, step: int = 15_000) -> SeriesBatch:
    rows = [
        ({"__name__": "m", "i": str(i)}, start + k * step, float(i * 1000 + k))
        for k in range(steps)
        for i in range(n_series)
    ]
    return _batch(rows)


def _all(db: MetricsDB, tenant: str = "default", selector: str = "{__name__=~'.+'}"):
    found = db.read(tenant, parse_series_selector(selector))
    return {
        dict(s.labels).get("i", str(s.labels)): (s.timestamps.tolist(), s.values.tolist())
        for s in found
    }


def test_append_read_and_reopen(tmp_path: Path) -> None:
    db = _open(tmp_path)
    result = db.append("default", _grid(3, 4))
    assert result.appended == 12 and not result.rejected
    before = _all(db)
    assert before["1"] == (
        [T0, T0 + 15_000, T0 + 30_000, T0 + 45_000],
        [1000.0, 1001.0, 1002.0, 1003.0],
    )
    db.close()
    db = _open(tmp_path)
    assert _all(db) == before
    db.close()


def test_reopen_without_close_replays_wal(tmp_path: Path) -> None:
    db = _open(tmp_path)
    db.append("default", _grid(2, 3))
    _crash(db)
    db2 = _open(tmp_path)
    assert len(_all(db2)) == 2
    db2.close()


def test_resend_is_idempotent_and_conflicts_are_reported(tmp_path: Path) -> None:
    db = _open(tmp_path)
    db.append("default", _grid(2, 3))
    again = db.append("default", _grid(2, 3))
    assert again.appended == 0 and again.resent == 6 and not again.rejected
    last = T0 + 30_000
    conflict = db.append("default", _batch([({"__name__": "m", "i": "0"}, last, 5.0)]))
    assert conflict.rejected["duplicate sample for timestamp"][0] == 1
    old = db.append("default", _batch([({"__name__": "m", "i": "0"}, T0 + 1, 5.0)]))
    assert old.rejected["out of order sample"][0] == 1
    assert _all(db)["0"][0] == [T0, T0 + 15_000, last]
    db.close()


def test_tenants_are_isolated(tmp_path: Path) -> None:
    db = _open(tmp_path)
    db.append("a", _batch([({"__name__": "only_a", "x": "1"}, T0, 1.0)]))
    db.append("b", _batch([({"__name__": "only_b", "y": "2"}, T0, 2.0)]))
    everything = parse_series_selector("{__name__=~'.+'}")
    assert db.series("a", everything) == [(("__name__", "only_a"), ("x", "1"))]
    assert db.label_names("b") == ["__name__", "y"]
    assert db.label_values("a", "__name__") == ["only_a"]
    assert db.read("c", everything) == []
    db.close()


def test_matchers_and_time_ranges(tmp_path: Path) -> None:
    db = _open(tmp_path)
    db.append(
        "default",
        _batch(
            [
                ({"__name__": "req", "code": "200", "job": "api"}, T0, 1.0),
                ({"__name__": "req", "code": "500", "job": "api"}, T0 + MINUTE, 1.0),
                ({"__name__": "req", "code": "200"}, T0 + 2 * MINUTE, 1.0),
            ]
        ),
    )
    sel = parse_series_selector
    assert len(db.series("default", sel('req{code=~"5.."}'))) == 1
    assert len(db.series("default", sel('req{job=""}'))) == 1  # no job label
    assert len(db.series("default", sel('req{job!="api"}'))) == 1
    assert len(db.series("default", sel('{code="200"}'), T0 + MINUTE, T0 + 3 * MINUTE)) == 1
    assert db.label_values("default", "code", None, T0 + MINUTE, T0 + MINUTE) == ["500"]
    assert db.label_names("default", sel('req{code="500"}')) == ["__name__", "code", "job"]
    db.close()


def test_compaction_blocks_checkpoint_and_replay(tmp_path: Path) -> None:
    db = _open(tmp_path)
    # 10 series over 40 minutes at 15 s: the 10-minute head is cut into blocks
    for k in range(160):
        db.append("default", _grid(10, 1, start=T0 + k * 15_000))
    expected = _all(db)
    blocks = db.compact()
    assert blocks, "head spanning 4 block ranges must be cut"
    assert _all(db) == expected
    assert list(tmp_path.glob("checkpoint.*"))
    db.close()
    db = _open(tmp_path)
    assert _all(db) == expected
    # samples older than the newest block are now out of bounds
    late = db.append("default", _batch([({"__name__": "m", "i": "new"}, T0, 1.0)]))
    assert late.rejected["out of bounds"][0] == 1
    db.compact(force=True)
    db.close()
    db = _open(tmp_path)
    assert _all(db) == expected
    assert db.series_count() == 10
    db.close()


def test_crash_after_block_before_checkpoint_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _open(tmp_path)
    for k in range(100):
        db.append("default", _grid(3, 1, start=T0 + k * 15_000))
    expected = _all(db)
    monkeypatch.setattr(MetricsDB, "_checkpoint", lambda self: None)
    assert db.compact(force=True)
    _crash(db)  # dies before the checkpoint: the WAL still holds the compacted samples
    monkeypatch.undo()
    db = _open(tmp_path)
    assert _all(db) == expected
    db.close()


def test_retention_drops_old_blocks_and_their_series(tmp_path: Path) -> None:
    db = _open(tmp_path, retention_ms=30 * MINUTE)
    db.append("default", _batch([({"__name__": "old"}, T0, 1.0)]))
    db.compact(force=True)
    db.append("default", _batch([({"__name__": "new"}, T0 + 60 * MINUTE, 1.0)]))
    db.compact(force=True)
    assert db.apply_retention() == 1
    assert db.label_values("default", "__name__") == ["new"]
    db.close()
    db = _open(tmp_path, retention_ms=30 * MINUTE)
    assert db.label_values("default", "__name__") == ["new"]
    db.close()


def test_series_limit_keeps_existing_series(tmp_path: Path) -> None:
    db = _open(tmp_path, max_series_per_tenant=2)
    db.append("default", _grid(2, 1))
    result = db.append("default", _grid(3, 1, start=T0 + 15_000))
    assert result.appended == 2
    (reason,) = result.rejected
    assert reason == "limit limits.max_series_per_tenant (2) exceeded"
    db.close()


def test_out_of_order_window_accepts_late_samples_once(tmp_path: Path) -> None:
    db = _open(tmp_path, out_of_order_window_ms=10 * MINUTE)
    labels = {"__name__": "late"}
    db.append("default", _batch([(labels, T0 + 5 * MINUTE, 5.0)]))
    result = db.append("default", _batch([(labels, T0 + MINUTE, 1.0), (labels, T0 + MINUTE, 2.0)]))
    assert result.appended == 2  # duplicates inside the window are resolved on read
    far = db.append("default", _batch([(labels, T0 - 20 * MINUTE, 1.0)]))
    assert far.rejected["out of order sample"][0] == 1
    assert _all(db)["(('__name__', 'late'),)"] == ([T0 + MINUTE, T0 + 5 * MINUTE], [1.0, 5.0])
    db.close()


def test_metadata_persists(tmp_path: Path) -> None:
    db = _open(tmp_path)
    batch = _grid(1, 1)
    batch.metadata = [MetricMetadata("m", "counter", "Requests.", "")]
    db.append("default", batch)
    db.close()
    db = _open(tmp_path)
    assert db.metadata("default")["m"].type == "counter"
    db.close()


def test_staleness_marker_is_kept_bit_exact(tmp_path: Path) -> None:
    stale = np.array([0x7FF0000000000002], dtype=np.int64).view(np.float64)[0]
    db = _open(tmp_path)
    db.append("default", _batch([({"__name__": "s"}, T0, stale)]))
    db.compact(force=True)
    (series,) = db.read("default", parse_series_selector("s"))
    assert series.values.view(np.int64)[0] == 0x7FF0000000000002
    db.close()


def test_compaction_in_many_parts_keeps_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "PART_SAMPLES", 7)
    db = _open(tmp_path)
    for k in range(30):
        db.append("default", _grid(9, 1, start=T0 + k * 15_000))
    expected = _all(db)
    (block,) = db.compact(force=True)
    assert block.samples == 270 and block.series == 9
    assert _all(db) == expected
    db.close()


def test_frozen_head_chunks_read_compact_and_replay_the_same(tmp_path: Path) -> None:
    db = _open(tmp_path, freeze_samples=50, out_of_order_window_ms=60 * MINUTE)
    for k in range(40):
        db.append("default", _grid(7, 1, start=T0 + k * 15_000))
    # an out-of-order duplicate after freezing must not win over the first value written
    late = _batch([({"__name__": "m", "i": "0"}, T0 + 15_000, -1.0)])
    assert db.append("default", late).appended == 1
    expected = _all(db)
    assert expected["0"][1][1] == 0.0  # the first write, not the late -1.0
    state = db._tenants["default"]
    db._freeze(state)
    assert any(c.frozen for c in state.chunks)
    assert _all(db) == expected
    # a retried request of frozen samples is still recognised as stored
    assert db.append("default", _grid(7, 1, start=T0)).resent == 7
    _crash(db)
    db = _open(tmp_path, freeze_samples=50, out_of_order_window_ms=60 * MINUTE)
    assert _all(db) == expected
    db.compact(force=True)
    assert _all(db) == expected
    db.close()


def test_series_without_samples_are_forgotten_at_checkpoint_and_can_return(
    tmp_path: Path,
) -> None:
    db = _open(tmp_path)
    db.append("default", _grid(2, 40))
    ghost = {"__name__": "ghost"}
    refused = db.append("default", _batch([(ghost, T0, 1.0)]))  # far behind: out of bounds
    assert refused.rejected["out of bounds"][0] == 1
    db.compact(force=True)
    assert "ghost" not in db.label_values("default", "__name__")
    assert db._tenants["default"].keys.get(b"__name__\xffghost") is None
    later = T0 + 41 * 15_000
    assert db.append("default", _batch([(ghost, later, 2.0)])).appended == 1
    _crash(db)
    db = _open(tmp_path)
    assert _all(db)["(('__name__', 'ghost'),)"] == ([later], [2.0])
    db.close()


def _interleaved(targets: int, steps: int) -> SeriesBatch:
    """Three metrics per target, created target by target, so ids interleave the names."""
    rows = [
        ({"__name__": name, "i": str(i)}, T0 + k * 15_000, float(i * 100 + k))
        for k in range(steps)
        for i in range(targets)
        for name in ("c_metric", "b_metric", "a_metric")
    ]
    return _batch(rows)


def test_blocks_keep_a_metrics_series_together_and_reads_decode_only_their_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocks, "ROW_GROUP_ROWS", 16)
    monkeypatch.setattr(merge, "PART_SAMPLES", 40)
    db = _open(tmp_path)
    db.append("default", _interleaved(6, 20))
    expected = _all(db, selector="b_metric")
    (block,) = db.compact(force=True)
    # storage order: by metric name, then id (creation order)
    names = [labels_from_key(k)[0][1] for k in blocks.read_block_series(block).keys]
    assert names == ["a_metric"] * 6 + ["b_metric"] * 6 + ["c_metric"] * 6
    read_groups: list[list[int]] = []
    original = pq.ParquetFile.read_row_groups

    def spy(self: pq.ParquetFile, row_groups: list[int], *args: object, **kwargs: object):
        read_groups.append(list(row_groups))
        return original(self, row_groups, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    assert _all(db, selector="b_metric") == expected
    metadata = pq.read_metadata(block.path / blocks.SAMPLES_FILE)
    sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    ends = np.cumsum(sizes).tolist()
    # b_metric's rows are the middle third of 360: only the row groups overlapping them
    holding_b = [g for g in range(len(sizes)) if ends[g] > 120 and ends[g] - sizes[g] < 240]
    assert read_groups == [holding_b] and len(holding_b) < metadata.num_row_groups / 2
    db.close()


def _write_version_1_block(tenant_dir: Path, rows: list[tuple[int, bytes, int, float]]) -> Path:
    """A block as format version 1 wrote it: id order, a series_id column, no row counts."""
    rows = sorted(rows)
    series = np.array([r[0] for r in rows], dtype=np.int64)
    timestamps = np.array([r[2] for r in rows], dtype=np.int64)
    values = np.array([r[3] for r in rows])
    exponents, differences, decimal, float_differences = valuecodec.encode(series, values)
    path = tenant_dir / f"{timestamps.min():015d}-{timestamps.max():015d}"
    path.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "series_id": series,
                "tdelta": valuecodec.chain(series, timestamps),
                "exp": exponents,
                "mdelta": differences,
                "fdelta": pa.array(float_differences, mask=decimal),
            }
        ),
        path / blocks.SAMPLES_FILE,
    )
    keys = {r[0]: r[1] for r in rows}
    ids = sorted(keys)
    pq.write_table(
        pa.table(
            {
                "series_id": pa.array(ids, type=pa.int64()),
                "key": pa.array([keys[i] for i in ids], type=pa.binary()),
                "min_ts": [int(timestamps[series == i].min()) for i in ids],
                "max_ts": [int(timestamps[series == i].max()) for i in ids],
            }
        ),
        path / blocks.SERIES_FILE,
    )
    meta = {"version": 1, "min_time": int(timestamps.min()), "max_time": int(timestamps.max())}
    meta |= {"samples": len(rows), "series": len(ids)}
    (path / blocks.META_FILE).write_text(json.dumps(meta))
    return path


def test_version_1_blocks_are_rewritten_on_open(tmp_path: Path) -> None:
    key = {
        sid: series_key(labels_from_dict({"__name__": name, "i": str(sid)}))
        for sid, name in ((1, "z_metric"), (2, "a_metric"), (3, "z_metric"))
    }
    rows = [(sid, key[sid], T0 + k * 15_000, sid * 1.5 + k) for sid in key for k in range(10)]
    rows.append((2, key[2], T0 + 10 * 15_000, float("nan")))
    old = _write_version_1_block(tmp_path / "blocks" / "default", rows)
    db = _open(tmp_path)
    (block,) = db._tenants["default"].blocks
    assert block.version == blocks.FORMAT_VERSION and not old.exists()
    assert json.loads((block.path / blocks.META_FILE).read_text())["version"] == 2
    assert blocks.read_block_series(block).series.tolist() == [2, 1, 3]  # a_metric first
    found = _all(db)
    assert found["1"] == ([T0 + k * 15_000 for k in range(10)], [1.5 + k for k in range(10)])
    assert found["2"][1][:10] == [3.0 + k for k in range(10)] and np.isnan(found["2"][1][10])
    # ids keep counting above the block's series
    db.append("default", _batch([({"__name__": "new"}, T0 + 20 * 15_000, 1.0)]))
    assert max(db._tenants["default"].labels) == 4
    db.close()


def test_an_upgrade_interrupted_before_deleting_the_old_block_is_finished_at_open(
    tmp_path: Path,
) -> None:
    key = {sid: series_key(labels_from_dict({"__name__": "m", "i": str(sid)})) for sid in (1, 2)}
    rows = [(sid, key[sid], T0 + k * 15_000, sid + k / 4) for sid in key for k in range(10)]
    _write_version_1_block(tmp_path / "blocks" / "default", rows)
    db = _open(tmp_path)
    expected = _all(db)
    db.close()
    # the old block is back, as if the process died before deleting it
    old = _write_version_1_block(tmp_path / "blocks" / "default", rows)
    db = _open(tmp_path)
    assert not old.exists()
    assert [b.version for b in db._tenants["default"].blocks] == [blocks.FORMAT_VERSION]
    assert _all(db) == expected
    db.close()


def test_a_block_stored_twice_is_read_once(tmp_path: Path) -> None:
    """A block copied in beside itself (an interrupted upgrade or merge no longer leaves one:
    the store finishes those when it opens) holds the same samples twice; reads fall back to
    sorting and keep each sample once."""
    db = _open(tmp_path)
    db.append("default", _interleaved(4, 10))
    db.compact(force=True)
    expected = _all(db)
    (block,) = db._tenants["default"].blocks
    db.close()
    shutil.copytree(block.path, block.path.with_name(block.path.name + "-1"))
    db = _open(tmp_path)
    assert len(db._tenants["default"].blocks) == 2
    assert _all(db) == expected
    db.close()


def test_batched_reads_hand_over_every_series_once_in_storage_order(tmp_path: Path) -> None:
    # the head's and blocks' batches: no rings, which answer in parts of their own (test_recent)
    db = _open(tmp_path, recent_samples_per_series=0)
    db.append("default", _interleaved(6, 20))
    db.compact(force=True)
    matchers = parse_series_selector("{__name__=~'.+'}")
    whole = db.read_columns("default", matchers)
    batches = list(db.read_column_batches("default", matchers, T0, T0 + 3_600_000, 50))
    # 18 series of 20 samples, whole, a batch ending where the running count passes 50k
    assert [len(b) for b in batches] == [2, 3, 2, 3, 2, 3, 2, 1]
    names = [labels[0][1] for b in batches for labels in b.labels]
    assert names == ["a_metric"] * 6 + ["b_metric"] * 6 + ["c_metric"] * 6
    got = {
        ls: (b.timestamps[b.bounds[i] : b.bounds[i + 1]].tolist())
        for b in batches
        for i, ls in enumerate(b.labels)
    }
    assert got == {s.labels: s.timestamps.tolist() for s in whole.series()}
    assert list(db.read_column_batches("default", matchers, T0, T0 + 3_600_000, 0)) != []
    db.close()


def test_a_cut_leaves_newer_frozen_chunks_as_they_are_and_refreezes_the_one_it_splits(
    tmp_path: Path,
) -> None:
    db = _open(tmp_path, freeze_samples=70, out_of_order_window_ms=5 * MINUTE)
    state = db._tenant("default")
    # 20 minutes of 7 series, frozen 70 samples (2.5 minutes) at a time
    late_at = T0 + 27 * 15_000
    for k in range(80):
        db.append("default", _grid(7, 1, start=T0 + k * 15_000))
        if k == 30:  # a late duplicate: the first value written must stay, across the cut
            late = _batch([({"__name__": "m", "i": "3"}, late_at, -1.0)])
            assert db.append("default", late).appended == 1
        if k % 10 == 9:
            db._freeze(state)
    db._freeze(state)
    expected = _all(db)
    before = list(state.chunks)
    assert all(c.frozen for c in before)
    cut_at = T0 - T0 % (10 * MINUTE) + 10 * MINUTE
    assert before[2].min_time < cut_at <= late_at <= before[2].max_time  # the chunk it splits
    (block,) = db.compact()
    assert block.max_time < cut_at
    after = state.chunks
    # chunks wholly after the cut are the very same objects, in the same order after the
    # split chunk's newer samples, which are frozen again
    assert len(after) == len(before) - 2
    assert all(a is b for a, b in zip(after[1:], before[3:], strict=True))
    assert after[0].frozen and after[0].min_time >= cut_at and after[0] is not before[2]
    assert _all(db) == expected
    times, values = expected["3"]
    assert values[times.index(late_at)] == 3000.0  # not the late -1.0
    db.close()
    db = _open(tmp_path, freeze_samples=70, out_of_order_window_ms=5 * MINUTE)
    assert _all(db) == expected
    db.close()


@pytest.mark.parametrize("group_rows", [0, 1000, 2500])
def test_big_block_reads_decode_a_few_row_groups_at_a_time_to_the_same_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group_rows: int
) -> None:
    monkeypatch.setattr(blocks, "ROW_GROUP_ROWS", 450)  # 6,000 samples in 14 row groups
    db = _open(tmp_path)
    db.append("default", _grid(30, 200))
    db.compact(force=True)
    selectors = ["{__name__='m', i=~'1.*|7'}", "{__name__='m', i=~'2|29'}", "{__name__='m'}"]
    # one call for every row group a read touches
    monkeypatch.setattr(blocks, "GROUP_ROWS", 10**9)
    expected = [_all(db, selector=s) for s in selectors]
    assert [len(e) for e in expected] == [12, 2, 30]
    # one row group at a time (0), or a few, keeping each group's wanted rows
    monkeypatch.setattr(blocks, "GROUP_ROWS", group_rows)
    db._blocks.reader.close()
    assert [_all(db, selector=s) for s in selectors] == expected
    db.close()


def test_a_series_hint_skips_the_lookup_and_is_ignored_when_stale(tmp_path: Path) -> None:
    db = _open(tmp_path)
    first = db.append("default", _grid(3, 1))
    assert first.series_ids is not None and len(first.series_ids) == 3
    again = _grid(3, 1, start=T0 + 15_000)
    again.series_hint = (first.generation, first.series_ids)
    result = db.append("default", again)
    assert result.appended == 3 and list(result.series_ids) == list(first.series_ids)
    assert _all(db)["2"][0] == [T0, T0 + 15_000]
    # a hint from before a series was forgotten is not trusted: the keys are looked up
    state = db._tenants["default"]
    state.dropped += 1
    wrong = _grid(3, 1, start=T0 + 30_000)
    wrong.series_hint = (first.generation, first.series_ids[::-1].copy())
    assert db.append("default", wrong).appended == 3
    assert _all(db)["0"][1][-1] == 0.0  # series 0 got its own value, not series 2's
    db.close()
