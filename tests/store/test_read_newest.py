"""read_newest: an instant selector at one time answered from each series' newest sample in
memory, the same as a full read gives, or None where only a read can tell."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.store.test_tsdb import MINUTE, T0, _open
from watchkeeper.model import Matcher, SeriesBatch, labels_from_dict
from watchkeeper.model.histogram_notation import parse_histogram
from watchkeeper.promql import StoreQuerier, parse_series_selector
from watchkeeper.promql.engine import Engine
from watchkeeper.promql.series_notation import STALE_NAN
from watchkeeper.store import MetricsDB
from watchkeeper.store.types import SeriesColumns

LOOKBACK = 5 * MINUTE


class ReadingQuerier(StoreQuerier):
    """The same store, always read: what read_newest must agree with."""

    def select_newest(
        self, matchers: Sequence[Matcher], at_ms: int, lookback_ms: int
    ) -> SeriesColumns | None:
        return None


def _fill(db: MetricsDB) -> None:
    rows: list[tuple[object, int, object]] = []

    def series(job: str, times: list[int], values: list[float]) -> None:
        labels = labels_from_dict({"__name__": "m", "job": job})
        rows.extend((labels, T0 + t, v) for t, v in zip(times, values, strict=True))

    steps = [k * 15_000 for k in range(41)]  # 0 .. 10m
    series("steady", steps, [float(k) for k in range(41)])
    series("stale", [*steps[:20], 20 * 15_000], [*[1.0] * 20, STALE_NAN])
    series("gone", steps[:4], [3.0] * 4)  # last at 45 s
    series("nan", steps[:10], [float("nan")] * 10)
    series("late", [12 * MINUTE], [9.0])  # only after most query times
    db.append("default", SeriesBatch.from_samples(rows))  # type: ignore[arg-type]


QUERIES = ["m", 'm{job=~"s.*"}', "m offset 2m", "sum(m)", "count(m)", "m @ 100", "timestamp(m)"]
TIMES = [
    *(k * 15_000 for k in range(0, 40, 3)),
    10 * MINUTE,
    11 * MINUTE,
    12 * MINUTE,
    13 * MINUTE,
    15 * MINUTE - 1,
    15 * MINUTE,
    20 * MINUTE,
]


class CountingQuerier(StoreQuerier):
    answered = 0

    def select_newest(
        self, matchers: Sequence[Matcher], at_ms: int, lookback_ms: int
    ) -> SeriesColumns | None:
        found = super().select_newest(matchers, at_ms, lookback_ms)
        CountingQuerier.answered += found is not None
        return found


def _same(db: MetricsDB) -> int:
    """Every query at every time gives the same answer with and without read_newest; returns
    how many selections read_newest answered."""
    engine = Engine()
    CountingQuerier.answered = 0
    for query in QUERIES:
        for at in TIMES:
            fast = engine.instant_query(CountingQuerier(db, "default"), query, T0 + at)
            read = engine.instant_query(ReadingQuerier(db, "default"), query, T0 + at)
            got = [(s.labels, s.values.tobytes()) for s in fast.series]
            want = [(s.labels, s.values.tobytes()) for s in read.series]
            assert got == want, (query, at)
    return CountingQuerier.answered


def test_newest_samples_answer_as_a_read_does(tmp_path: Path) -> None:
    db = _open(tmp_path)
    try:
        _fill(db)
        assert _same(db) >= 20  # of 7 queries at 22 times: the rest go to the read
        newest = db.read_newest("default", parse_series_selector("m"), T0 + 13 * MINUTE, LOOKBACK)
        assert newest is not None
        jobs = [dict(labels)["job"] for labels in newest.labels]
        assert jobs == ["late", "steady"]  # label order; the rest are older than the lookback
        assert newest.timestamps.tolist() == [T0 + 12 * MINUTE, T0 + 10 * MINUTE]
        assert newest.values.tolist() == [9.0, 40.0]
    finally:
        db.close()


def test_what_needs_a_read_is_left_to_it(tmp_path: Path) -> None:
    db = _open(tmp_path)
    try:
        _fill(db)
        m = parse_series_selector("m")
        # a query of the past: a series has newer samples than the query time
        assert db.read_newest("default", m, T0 + 11 * MINUTE, LOOKBACK) is None
        assert (
            db.read_newest(
                "default", parse_series_selector('m{job="steady"}'), T0 + 11 * MINUTE, LOOKBACK
            )
            is not None
        )
        # native histograms are read in full
        h = labels_from_dict({"__name__": "m", "job": "hist"})
        db.append(
            "default",
            SeriesBatch.from_samples([(h, T0 + 13 * MINUTE, parse_histogram("{{count:1}}"))]),
        )
        assert db.read_newest("default", m, T0 + 14 * MINUTE, LOOKBACK) is None
    finally:
        db.close()


@pytest.mark.parametrize("force", [False, True])
def test_after_a_restart_newest_samples_in_blocks_are_read(tmp_path: Path, force: bool) -> None:
    db = _open(tmp_path)
    _fill(db)
    db.compact(force=force)
    db.close()
    db = _open(tmp_path)
    try:
        _same(db)
        if force:  # everything is in a block: the store cannot tell the values without a read
            m = parse_series_selector('m{job="late"}')
            assert db.read_newest("default", m, T0 + 13 * MINUTE, LOOKBACK) is None
    finally:
        db.close()


def test_no_match_is_an_empty_answer(tmp_path: Path) -> None:
    db = _open(tmp_path)
    try:
        _fill(db)
        none = db.read_newest("default", parse_series_selector("nothing"), T0, LOOKBACK)
        assert none is not None and len(none) == 0
        nobody = db.read_newest("nobody", parse_series_selector("m"), T0, LOOKBACK)
        assert nobody is not None and len(nobody) == 0
        assert np.array_equal(
            db.read_newest(
                "default", parse_series_selector('m{job="nan"}'), T0 + 3 * MINUTE, LOOKBACK
            ).timestamps,  # type: ignore[union-attr]
            [T0 + 9 * 15_000],
        )
    finally:
        db.close()
