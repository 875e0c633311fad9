"""Native histogram samples in the embedded store: the same ordering rules as floats, the hints
the store gives back, and the WAL, checkpoint, block, merge and retention paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.store.test_tsdb import MINUTE, T0, _crash, _open
from watchkeeper.model import SeriesBatch, labels_from_dict
from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.model.histogram_notation import parse_histogram
from watchkeeper.promql import parse_series_selector
from watchkeeper.store import histograms

H = labels_from_dict({"__name__": "h", "job": "a"})


def _hist(count: int, hint: str = "") -> FloatHistogram:
    extra = f" counter_reset_hint:{hint}" if hint else ""
    return parse_histogram(f"{{{{count:{count} sum:{count * 2} buckets:[{count}]{extra}}}}}")


def _texts(db, selector: str = "h", start: int = T0 - 10 * MINUTE, end: int = T0 + 10**9):
    found = db.read_histograms("default", parse_series_selector(selector), start, end)
    return {
        dict(s.labels).get("job", ""): [
            (int(t) - T0, str(x)) for t, x in zip(s.timestamps, s.histograms, strict=True)
        ]
        for s in found
    }


def test_hints_are_what_a_read_gives_back(tmp_path: Path) -> None:
    db = _open(tmp_path)
    try:
        rows = [(H, T0 + k * MINUTE, _hist(c)) for k, c in enumerate([1, 2, 1])]
        rows.append((labels_from_dict({"__name__": "h", "job": "g"}), T0, _hist(5, "gauge")))
        rows.append(
            (labels_from_dict({"__name__": "h", "job": "g"}), T0 + MINUTE, _hist(1, "gauge"))
        )
        assert db.append("default", SeriesBatch.from_samples(rows)).appended == 5
        assert _texts(db) == {
            "a": [
                (0, "{{count:1 sum:2 buckets:[1]}}"),  # a series' first: as written
                (MINUTE, "{{count:2 sum:4 counter_reset_hint:not_reset buckets:[2]}}"),
                # a reset reads back `unknown`, as from Prometheus' TSDB (a new chunk)
                (2 * MINUTE, "{{count:1 sum:2 buckets:[1]}}"),
            ],
            "g": [
                (0, "{{count:5 sum:10 counter_reset_hint:gauge buckets:[5]}}"),
                (MINUTE, "{{count:1 sum:2 counter_reset_hint:gauge buckets:[1]}}"),
            ],
        }
    finally:
        db.close()


def test_ordering_rules_cover_floats_and_histograms_together(tmp_path: Path) -> None:
    db = _open(tmp_path)
    try:
        first = SeriesBatch.from_samples([(H, T0, 1.0), (H, T0 + MINUTE, _hist(1))])
        assert db.append("default", first).appended == 2
        again = db.append("default", SeriesBatch.from_samples([(H, T0 + MINUTE, _hist(1))]))
        assert (again.appended, again.resent, again.rejected) == (0, 1, {})
        # the same time with another histogram, or a float there: a duplicate
        clash = SeriesBatch.from_samples([(H, T0 + MINUTE, _hist(2))])
        assert list(db.append("default", clash).rejected) == ["duplicate sample for timestamp"]
        clash = SeriesBatch.from_samples([(H, T0 + MINUTE, 2.0)])
        assert list(db.append("default", clash).rejected) == ["duplicate sample for timestamp"]
        late = SeriesBatch.from_samples([(H, T0 + MINUTE // 2, _hist(1))])
        assert list(db.append("default", late).rejected) == ["out of order sample"]
        assert db.read("default", parse_series_selector("h"))[0].values.tolist() == [1.0]
    finally:
        db.close()


def test_the_out_of_order_window_admits_floats_only(tmp_path: Path) -> None:
    db = _open(tmp_path, out_of_order_window_ms=10 * MINUTE)
    try:
        db.append("default", SeriesBatch.from_samples([(H, T0 + 5 * MINUTE, _hist(3))]))
        late = SeriesBatch.from_samples([(H, T0, _hist(1)), (H, T0 + MINUTE, 4.0)])
        result = db.append("default", late)
        assert result.appended == 1 and list(result.rejected) == ["out of order sample"]
    finally:
        db.close()


def test_histograms_survive_a_crash_a_cut_a_merge_and_restarts(tmp_path: Path) -> None:
    db = _open(tmp_path)
    rows = [(H, T0 + k * MINUTE, _hist(k)) for k in range(60)]
    only = labels_from_dict({"__name__": "h", "job": "only"})
    rows += [(only, T0 + k * MINUTE, _hist(100 + k)) for k in range(0, 60, 10)]
    db.append("default", SeriesBatch.from_samples(rows))
    expected = _texts(db)
    assert len(expected["a"]) == 60 and len(expected["only"]) == 6
    _crash(db)  # the WAL alone
    db = _open(tmp_path)
    assert _texts(db) == expected
    written = db.compact()  # 10-minute blocks, then merged into 30-minute ones
    assert sum(b.histograms for b in written if not b.sources) > 0
    assert any(b.sources and b.histograms for b in written)
    assert _texts(db) == expected
    db.close()
    db = _open(tmp_path)  # blocks, checkpoint and WAL
    assert _texts(db) == expected
    # a histogram-only series keeps its id over checkpoints: new samples join it
    db.append("default", SeriesBatch.from_samples([(only, T0 + 60 * MINUTE, _hist(200))]))
    assert _texts(db)["only"][-1] == (
        60 * MINUTE,
        "{{count:200 sum:400 counter_reset_hint:not_reset buckets:[200]}}",
    )
    assert db.series_count("default") == 2
    db.compact(force=True)
    db.close()
    db = _open(tmp_path)
    try:
        assert len(_texts(db)["only"]) == 7
        window = _texts(db, start=T0 + 30 * MINUTE, end=T0 + 40 * MINUTE)["a"]
        assert window == [p for p in expected["a"] if 30 * MINUTE <= p[0] <= 40 * MINUTE]
        assert len(window) == 11
    finally:
        db.close()


def test_retention_removes_histogram_blocks(tmp_path: Path) -> None:
    db = _open(tmp_path, retention_ms=30 * MINUTE)
    try:
        rows = [(H, T0 + k * MINUTE, _hist(k)) for k in range(100)]
        db.append("default", SeriesBatch.from_samples(rows))
        db.compact()  # 10-minute blocks up to the newest hour
        assert db.apply_retention() > 0
        kept = _texts(db)["a"]
        assert kept[0][0] >= 100 * MINUTE - 30 * MINUTE - 10 * MINUTE
        assert kept[-1][0] == 99 * MINUTE
    finally:
        db.close()


def test_a_tenant_without_histograms_reads_none_at_no_cost(tmp_path: Path) -> None:
    db = _open(tmp_path)
    try:
        db.append("default", SeriesBatch.from_samples([(H, T0, 1.0)]))
        assert db.read_histograms("default", parse_series_selector("h")) == []
        assert db.read_histograms("nobody", parse_series_selector("h")) == []
        assert np.array_equal(db.read("default", parse_series_selector("h"))[0].values, [1.0])
    finally:
        db.close()


def test_read_histograms_are_decoded_when_first_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    written = [parse_histogram(f"{{{{count:{i} sum:{i} buckets:[{i}]}}}}") for i in range(6)]
    columns = histograms.HistogramColumns.of(
        np.zeros(6, dtype=np.int64), np.arange(6, dtype=np.int64), [h.encode() for h in written]
    )
    decoded: list[int] = []
    real = histograms.decode
    monkeypatch.setattr(histograms, "decode", lambda data: decoded.append(1) or real(data))
    lazy = columns.decoded(1, 5)  # rows 1..4
    assert len(lazy) == 4 and decoded == []
    assert lazy[0] == written[1] and lazy[-1] == written[4]
    assert lazy[0] == written[1]  # kept: not decoded again
    assert len(decoded) == 2
    assert lazy[1:3] == written[2:4]
    assert list(lazy) == written[1:5]
    assert len(decoded) == 4
    with pytest.raises(IndexError):
        lazy[4]
