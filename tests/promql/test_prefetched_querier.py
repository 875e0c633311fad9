"""PrefetchedQuerier: selections answered from one read give what the store gives."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from watchkeeper.model import Matcher, MatchOp, SeriesBatch
from watchkeeper.promql import Engine, StoreQuerier
from watchkeeper.promql.querier import PrefetchedQuerier
from watchkeeper.rules.alerting import vector_of
from watchkeeper.store import MetricsDB, StorageOptions
from watchkeeper.store.types import SeriesColumns

NOW = 1_800_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> MetricsDB:
    db = MetricsDB(tmp_path, StorageOptions(retention_ms=86_400_000, block_duration_ms=7_200_000))
    db.open()
    rows = []
    for i, job in itertools.product(range(6), ("api", "db")):
        labels = (("__name__", "temp"), ("job", job), ("room", str(i)))
        rows += [(labels, NOW - 400_000 + k * 60_000, float(i + k)) for k in range(8)]
    rows.sort(key=lambda r: r[1])
    db.append("t", SeriesBatch.from_samples(rows))
    return db


def _same(a: SeriesColumns, b: SeriesColumns) -> None:
    assert a.labels == b.labels
    assert np.array_equal(a.bounds, b.bounds)
    assert np.array_equal(a.timestamps, b.timestamps)
    assert np.array_equal(a.values, b.values)


SETS = [
    [Matcher("__name__", MatchOp.EQUAL, "temp"), Matcher("room", MatchOp.EQUAL, "3")],
    [Matcher("__name__", MatchOp.EQUAL, "temp"), Matcher("job", MatchOp.REGEX, "a.*")],
    [Matcher("__name__", MatchOp.EQUAL, "temp"), Matcher("room", MatchOp.NOT_EQUAL, "1")],
    [Matcher("__name__", MatchOp.EQUAL, "temp"), Matcher("room", MatchOp.EQUAL, "9")],
]


def test_covered_selections_equal_the_stores(store: MetricsDB) -> None:
    base = StoreQuerier(store, "t")
    start, end = NOW - 300_000 + 1, NOW
    union = store.read_columns("t", SETS, start, end)
    pre = PrefetchedQuerier(base, union, SETS, start, end)
    for matchers in SETS:
        for lo, hi in ((start, end), (start + 120_000, end - 60_000)):  # whole, and trimmed
            _same(pre.select(matchers, lo, hi), base.select(matchers, lo, hi))
            batches = list(pre.select_batches(matchers, lo, hi, 0))
            got = batches[0] if batches else SeriesColumns.empty()
            _same(got, base.select(matchers, lo, hi))


def test_other_selections_go_to_the_store(store: MetricsDB) -> None:
    base = StoreQuerier(store, "t")
    start, end = NOW - 300_000 + 1, NOW
    pre = PrefetchedQuerier(base, SeriesColumns.empty(), SETS[:1], start, end)
    # not a prefetched matcher set, and a wider time range: both read from the store
    _same(pre.select(SETS[1], start, end), base.select(SETS[1], start, end))
    _same(pre.select(SETS[0], start - 60_000, end), base.select(SETS[0], start - 60_000, end))


def test_queries_through_it_equal_queries_on_the_store(store: MetricsDB) -> None:
    engine = Engine()
    base = StoreQuerier(store, "t")
    queries = [
        'temp{room="3"} > 4',
        'sum by (job) (temp{job=~"a.*"})',
        'absent(temp{room="9"})',
        'temp{room!="1"} * 2',
    ]
    start, end = NOW - 300_000 + 1, NOW
    union = store.read_columns("t", SETS, start, end)
    pre = PrefetchedQuerier(base, union, SETS, start, end)
    for query in queries:
        ours = vector_of(engine.instant_query(pre, query, NOW))
        theirs = vector_of(engine.instant_query(base, query, NOW))
        assert ours == theirs and theirs, query
