"""Exemplars: kept per tenant in a bounded ring, repeats skipped, found by series selector and
time, and durable like samples (the WAL, checkpoints, a crash)."""

from __future__ import annotations

from pathlib import Path

from watchkeeper.model import SeriesBatch, labels_from_dict
from watchkeeper.promql import parse_series_selector
from watchkeeper.store import MetricsDB, StorageOptions
from watchkeeper.store.exemplars import Exemplar, ExemplarRing

from .test_tsdb import T0, _crash, _open

TRACE = (("trace_id", "abc"),)


def _batch(value: float, at: int, exemplars: list[tuple[int, float, int]]) -> SeriesBatch:
    batch = SeriesBatch.from_samples(
        [
            (labels_from_dict({"__name__": "req_total", "path": "/a"}), at, value),
            (labels_from_dict({"__name__": "req_total", "path": "/b"}), at, value),
        ]
    )
    batch.exemplars = [(i, TRACE, v, t) for i, v, t in exemplars]
    return batch


def _found(db: MetricsDB, selector: str = 'req_total{path="/a"}') -> list[tuple[float, int]]:
    return [
        (e.value, e.timestamp_ms)
        for _, kept in db.exemplars("default", parse_series_selector(selector))
        for e in kept
    ]


def test_ring_skips_repeats_and_keeps_the_newest() -> None:
    ring = ExemplarRing(3)
    first = Exemplar(1, TRACE, 1.0, 100)
    assert ring.add([first, first]) == [first]
    assert ring.add([Exemplar(1, TRACE, 0.5, 50)]) == []  # older than the series' newest
    for at in (200, 300, 400):
        ring.add([Exemplar(2, TRACE, 1.0, at)])
    assert [e.timestamp_ms for e in ring.all()] == [200, 300, 400]
    assert [e.timestamp_ms for e in ring.select({2}, 250, 450)] == [300, 400]
    ring.forget({2})
    assert ring.all() == []
    assert ExemplarRing(0).add([first]) == []


def test_found_by_selector_and_time(tmp_path: Path) -> None:
    db = _open(tmp_path)
    db.append("default", _batch(1, T0, [(0, 0.7, T0 - 5), (1, 0.9, T0)]))
    db.append("default", _batch(2, T0 + 1000, [(0, 0.7, T0 - 5)]))  # exposed again: a repeat
    db.append("default", _batch(3, T0 + 2000, [(0, 1.2, T0 + 1500)]))
    assert _found(db) == [(0.7, T0 - 5), (1.2, T0 + 1500)]
    (series, _), (other, _) = db.exemplars("default", parse_series_selector("req_total"))
    assert dict(series)["path"] == "/a" and dict(other)["path"] == "/b"
    assert db.exemplars("default", parse_series_selector("req_total"), T0, T0 + 10)[0][0] == (other)
    assert db.exemplars("someone-else", parse_series_selector("req_total")) == []
    db.close()


def test_they_survive_a_crash_a_restart_and_a_checkpoint(tmp_path: Path) -> None:
    db = _open(tmp_path)
    db.append("default", _batch(1, T0, [(0, 0.7, T0)]))
    _crash(db)
    db = _open(tmp_path)
    assert _found(db) == [(0.7, T0)]
    # far enough on that the head is cut into a block and the WAL checkpointed
    db.append("default", _batch(2, T0 + 3 * 600_000, [(0, 0.8, T0 + 3 * 600_000)]))
    db.compact(force=True)
    db.close()
    db = _open(tmp_path)
    assert _found(db) == [(0.7, T0), (0.8, T0 + 3 * 600_000)]
    db.close()


def test_max_exemplars_bounds_each_tenant(tmp_path: Path) -> None:
    db = MetricsDB(
        tmp_path, StorageOptions(retention_ms=10**9, block_duration_ms=600_000, max_exemplars=2)
    )
    db.open()
    for step in range(4):
        db.append("default", _batch(step, T0 + step, [(0, float(step), T0 + step)]))
    assert [v for v, _ in _found(db)] == [2.0, 3.0]
    db.close()
