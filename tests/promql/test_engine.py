"""The engine's own rules beyond the conformance files: limits, result shapes, duration
expressions, annotation positions, and reading from the real store."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from watchkeeper.model import Labels, SeriesBatch, labels_from_dict
from watchkeeper.promql import aggregations
from watchkeeper.promql.duration_expressions import rewrite
from watchkeeper.promql.engine import Engine, EngineOptions
from watchkeeper.promql.errors import QueryError, QueryParseError, QueryTimeoutError
from watchkeeper.promql.positions import (
    call_argument,
    call_start,
    go_quote_bytes,
    go_string_bytes,
    go_string_is_utf8,
)
from watchkeeper.promql.querier import MemoryQuerier, StoreQuerier
from watchkeeper.promql.result import QueryResult
from watchkeeper.promql.values import STALE_NAN_BITS, InstantSteps
from watchkeeper.store import MetricsDB, StorageOptions
from watchkeeper.store.types import SeriesSamples

MINUTE = 60_000


def _series(labels: dict[str, str], times: list[int], values: list[float]) -> SeriesSamples:
    return SeriesSamples(
        labels_from_dict(labels),
        np.array(times, dtype=np.int64),
        np.array(values, dtype=np.float64),
    )


def _querier(n: int = 3, points: int = 11) -> MemoryQuerier:
    times = [k * MINUTE for k in range(points)]
    return MemoryQuerier(
        [
            _series({"__name__": "up", "job": "api", "i": str(i)}, times, [float(i)] * points)
            for i in range(n)
        ]
    )


def test_instant_and_range_result_shapes() -> None:
    engine = Engine()
    querier = _querier()
    vector = engine.instant_query(querier, "up", 5 * MINUTE)
    assert vector.result_type == "vector"
    assert [s.values.tolist() for s in vector.series] == [[0.0], [1.0], [2.0]]
    assert all(s.timestamps.tolist() == [5 * MINUTE] for s in vector.series)
    matrix = engine.instant_query(querier, "up[2m]", 5 * MINUTE)
    assert matrix.result_type == "matrix"
    assert matrix.series[0].timestamps.tolist() == [4 * MINUTE, 5 * MINUTE]  # left-open window
    scalar = engine.instant_query(querier, "1 + 2", 0)
    assert (scalar.result_type, scalar.scalar) == ("scalar", 3.0)
    string = engine.instant_query(querier, '"hello"', 0)
    assert (string.result_type, string.string) == ("string", "hello")
    ranged = engine.range_query(querier, "sum(up)", 0, 10 * MINUTE, 2 * MINUTE)
    assert ranged.result_type == "matrix"
    assert ranged.series[0].timestamps.tolist() == [
        0,
        2 * MINUTE,
        4 * MINUTE,
        6 * MINUTE,
        8 * MINUTE,
        10 * MINUTE,
    ]
    assert ranged.series[0].values.tolist() == [3.0] * 6


def test_range_query_rejects_range_vectors_and_bad_steps() -> None:
    engine = Engine()
    with pytest.raises(QueryParseError, match='invalid expression type "range vector"'):
        engine.range_query(_querier(), "up[5m]", 0, MINUTE, 1000)
    with pytest.raises(QueryParseError, match="zero or negative query resolution"):
        engine.range_query(_querier(), "up", 0, MINUTE, 0)
    with pytest.raises(QueryParseError, match="end timestamp must not be before start"):
        engine.range_query(_querier(), "up", MINUTE, 0, 1000)


def test_parse_errors_are_bad_data() -> None:
    engine = Engine()
    with pytest.raises(QueryParseError, match="parse error") as caught:
        engine.instant_query(_querier(), "sum(", 0)
    assert caught.value.kind == "bad_data"
    with pytest.raises(QueryParseError, match="at least one non-empty matcher"):
        engine.instant_query(_querier(), '{job=~".*"}', 0)


def test_an_engine_parses_a_query_text_once_and_the_tree_serves_every_evaluation() -> None:
    engine = Engine()
    querier = _querier()
    first = engine.instant_query(querier, "sum by (job) (up) * 2", 5 * MINUTE)
    again = engine.instant_query(querier, "sum by (job) (up) * 2", 5 * MINUTE)
    ranged = engine.range_query(querier, "sum by (job) (up) * 2", 0, 10 * MINUTE, 5 * MINUTE)
    assert engine.parse.cache_info().hits == 2 and engine.parse.cache_info().misses == 1
    assert first.series[0].values.tolist() == again.series[0].values.tolist() == [6.0]
    assert ranged.series[0].values.tolist() == [6.0, 6.0, 6.0]
    for _ in range(2):  # a parse error is never remembered as a tree
        with pytest.raises(QueryParseError, match="parse error"):
            engine.instant_query(querier, "sum(up", 0)
    assert Engine().parse.cache_info().currsize == 0  # each engine has its own


@pytest.mark.parametrize("batch_samples", [0, 5])
def test_max_samples_limit_names_itself(batch_samples: int) -> None:
    # read in batches of 5 samples, a selector still counts all it holds
    engine = Engine(EngineOptions(max_samples=20, batch_samples=batch_samples))
    assert len(engine.instant_query(_querier(3, 5), "up", 4 * MINUTE).series) == 3
    with pytest.raises(QueryError, match=r"too many samples.*query.max_samples=20") as caught:
        engine.instant_query(_querier(3, 11), "sum_over_time(up[10m])", 10 * MINUTE)
    assert caught.value.kind == "execution"


@pytest.mark.parametrize("batch_samples", [0, 5])
def test_max_series_per_selector_limit_names_itself(batch_samples: int) -> None:
    engine = Engine(EngineOptions(max_series_per_selector=2, batch_samples=batch_samples))
    with pytest.raises(QueryError, match=r"query\.max_series_per_selector"):
        engine.instant_query(_querier(3), "up", 0)
    assert len(engine.instant_query(_querier(3), 'up{i!="0"}', 0).series) == 2


def test_selectors_read_in_batches_answer_as_read_whole() -> None:
    times = [k * MINUTE for k in range(11)]
    querier = MemoryQuerier(
        [
            _series(
                {"__name__": "up", "job": job, "i": str(i)},
                times,
                [float(i * k) for k in range(11)],
            )
            for job in ("web", "api", "db")
            for i in (3, 1, 2)
        ]
    )
    whole = Engine(EngineOptions(batch_samples=0))
    batched = Engine(EngineOptions(batch_samples=12))  # about one series a batch, last first

    def answer(result: QueryResult) -> list[tuple[Labels, list[float]]]:
        return [(s.labels, s.values.tolist()) for s in result.series]

    for query in ("up", "rate(up[5m])", "max_over_time(up[3m])", "timestamp(up)", "up[2m]"):
        got = batched.instant_query(querier, query, 10 * MINUTE)
        assert answer(got) == answer(whole.instant_query(querier, query, 10 * MINUTE))
        # in label order: i, then job
        assert [dict(s.labels)["i"] + dict(s.labels)["job"] for s in got.series][:3] == [
            "1api",
            "1db",
            "1web",
        ]
    for query in ("up", "rate(up[5m])", "max_over_time(up[3m])", "timestamp(up)"):
        got = batched.range_query(querier, query, 0, 10 * MINUTE, MINUTE)
        assert answer(got) == answer(whole.range_query(querier, query, 0, 10 * MINUTE, MINUTE))


@pytest.mark.parametrize("fold_cells", [0, 13, 1 << 16])  # 13: two batches held, then folded
def test_aggregations_of_range_functions_read_in_batches_are_the_same(
    fold_cells: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sum, avg, count, group, min and max of a range function read batch by batch fold each
    batch's result into their groups (aggregations.FOLDED) once the batches held pass
    FOLD_CELLS: the same values and the same order of groups as of the whole result, with
    batches coming last first."""
    monkeypatch.setattr(aggregations, "FOLD_CELLS", fold_cells)
    times = [k * MINUTE for k in range(11)]
    huge = [1e100, 1.0, -1e100]  # cancels only when compensated across batches
    series = [
        _series(
            {"__name__": "c", "job": job, "i": str(i), "dc": dc},
            times,
            [float((i + 1) * k) + (7 if k > 6 and job == "db" else 0) for k in range(11)],
        )
        for job in ("web", "api", "db")
        for i in (3, 1, 2)
        for dc in ("b", "a")
    ]
    series += [_series({"__name__": "g", "i": str(i)}, times, [v] * 11) for i, v in enumerate(huge)]
    series.append(_series({"__name__": "g", "i": "nan"}, times, [float("nan")] * 11))
    querier = MemoryQuerier(series)
    whole = Engine(EngineOptions(batch_samples=0))
    batched = Engine(EngineOptions(batch_samples=12))  # about one series a batch, last first

    queries = [
        f"{op} {grouping} ({function}(c[5m]))"
        for op in ("sum", "avg", "count", "group", "min", "max")
        for grouping in ("", "by (job)", "by (dc)", "without (i)", "by (i, job)")
        for function in ("rate", "max_over_time", "resets", "last_over_time")
    ]
    queries += ["sum(last_over_time(g[5m]))", "min(last_over_time(g[5m]))", "max by (i) (g)"]

    def same(got: QueryResult, want: QueryResult, query: str) -> None:
        assert [s.labels for s in got.series] == [s.labels for s in want.series], query
        for mine, theirs in zip(got.series, want.series, strict=True):
            assert mine.timestamps.tolist() == theirs.timestamps.tolist(), query
            folded = fold_cells < 1 << 16
            if folded and query.startswith(("sum", "avg")):  # sums of sums: rounded differently
                np.testing.assert_allclose(mine.values, theirs.values, rtol=1e-12, err_msg=query)
            else:
                assert mine.values.tobytes() == theirs.values.tobytes(), query

    for query in queries:
        for at in (4 * MINUTE, 10 * MINUTE):
            same(
                batched.instant_query(querier, query, at),
                whole.instant_query(querier, query, at),
                query,
            )
        same(
            batched.range_query(querier, query, 0, 10 * MINUTE, MINUTE),
            whole.range_query(querier, query, 0, 10 * MINUTE, MINUTE),
            query,
        )
    # groups in the order of their first series as read: by dc, then i, then job
    got = batched.instant_query(querier, "sum by (dc, job) (rate(c[5m]))", 10 * MINUTE)
    assert [dict(s.labels)["job"] + dict(s.labels)["dc"] for s in got.series][:4] == [
        "apia",
        "dba",
        "weba",
        "apib",
    ]
    # the parts' sums cancel (batches of two series: 1e100 + 1 is 1e100, then -1e100 leaves 0):
    # summed term by term from the whole value, as Prometheus does
    pairs = Engine(EngineOptions(batch_samples=20))
    for engine in (whole, pairs):
        for op, want in (("sum", 1.0), ("avg", 1 / 3)):
            query = f'{op}(last_over_time(g{{i!="nan"}}[5m]))'
            got = engine.range_query(querier, query, 5 * MINUTE, 10 * MINUTE, MINUTE)
            assert got.series[0].values.tolist() == [want] * 6, (op, engine)


def test_aggregations_fold_batches_past_fold_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past FOLD_CELLS, an aggregation reduces each batch into its groups as it comes; below,
    it aggregates the whole value."""
    times = [k * MINUTE for k in range(11)]
    querier = MemoryQuerier(
        [
            _series({"__name__": "c", "job": job}, times, [float(k) for k in range(11)])
            for job in ("a", "b", "c")
        ]
    )
    engine = Engine(EngineOptions(batch_samples=12))
    reduced = []
    add = aggregations._Groups.add

    def spy(groups: aggregations._Groups, part: InstantSteps, gid: npt.NDArray[np.int64]) -> None:
        reduced.append(len(part.labels))
        add(groups, part, gid)

    monkeypatch.setattr(aggregations._Groups, "add", spy)
    # (each batch's result is one series at 6 steps: 7 cells hold two batches before folding)
    for fold_cells, want in ((1 << 16, []), (0, [1, 1, 1]), (7, [1, 1, 1])):
        monkeypatch.setattr(aggregations, "FOLD_CELLS", fold_cells)
        reduced.clear()
        got = engine.range_query(querier, "sum(rate(c[5m]))", 5 * MINUTE, 10 * MINUTE, MINUTE)
        assert reduced == want
        assert got.series[0].values.tolist() == [3 / 60] * 6


@pytest.mark.parametrize("fold_cells", [0, 1 << 16])
def test_batched_aggregations_refuse_label_sets_repeated_across_batches(
    fold_cells: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two series that differ only by name are one label set once rate() drops it: refused
    where both have a value at a step, as from the whole result; merged where they never do."""
    monkeypatch.setattr(aggregations, "FOLD_CELLS", fold_cells)
    times = [k * MINUTE for k in range(11)]
    querier = MemoryQuerier(
        [
            _series({"__name__": "a", "job": "x"}, times, [float(k) for k in range(11)]),
            _series({"__name__": "b", "job": "x"}, times, [float(k) for k in range(11)]),
            _series({"__name__": "d", "job": "y"}, times[:4], [1.0, 2.0, 3.0, 4.0]),
            _series({"__name__": "e", "job": "y"}, times[7:], [1.0, 2.0, 3.0, 4.0]),
        ]
    )
    for batch_samples in (0, 12):
        engine = Engine(EngineOptions(batch_samples=batch_samples))
        with pytest.raises(QueryError, match="same labelset"):
            engine.instant_query(querier, 'sum(rate({__name__=~"a|b"}[5m]))', 10 * MINUTE)
        got = engine.range_query(
            querier, 'sum by (job) (rate({__name__=~"d|e"}[2m]))', 0, 10 * MINUTE, MINUTE
        )
        assert [len(s.values) for s in got.series] == [6]


def test_timeout_is_a_timeout_error() -> None:
    engine = Engine(EngineOptions(timeout_s=0.0))
    time.sleep(0.001)
    with pytest.raises(QueryTimeoutError, match="timed out") as caught:
        engine.instant_query(_querier(), "up", 0)
    assert caught.value.kind == "timeout"


def test_stale_marker_ends_a_series() -> None:
    stale = float(np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0])
    querier = MemoryQuerier([_series({"__name__": "m"}, [0, MINUTE], [1.0, stale])])
    engine = Engine()
    assert len(engine.instant_query(querier, "m", 30_000).series) == 1
    assert engine.instant_query(querier, "m", 2 * MINUTE).series == []
    # a range selector drops the marker itself
    window = engine.instant_query(querier, "m[5m]", 2 * MINUTE).series[0]
    assert window.values.tolist() == [1.0]


def test_duration_expressions_become_literals() -> None:
    assert rewrite("rate(x[5m+1m])", 0, 0) == "rate(x[360000ms])"
    assert rewrite("x[30s:step()*2]", 15_000, 0) == "x[30s:30000ms]"
    assert rewrite("x offset (2*2)", 0, 0) == "x offset 4000ms"
    assert rewrite("x offset 100 + 2", 0, 0) == "x offset 100 + 2"
    assert rewrite("x offset -min_of(step(), 1s)+8000", 5000, 0) == "x offset -1000ms+8000"
    assert rewrite("x offset range()", 0, 0).strip() == "x"
    assert rewrite('x{a="[1+1]"}[1h]', 0, 0) == 'x{a="[1+1]"}[1h]'


def test_annotation_positions() -> None:
    text = "sum(histogram_quantile(0.9, rate(x[5m]))) / histogram_quantile(0.5, y)"
    assert call_argument(text, "histogram_quantile", 0, 1) == "1:29"
    assert call_argument(text, "histogram_quantile", 1, 1) == "1:69"
    assert call_start(text, "histogram_quantile", 1) == "1:45"
    assert call_argument('f("a,b", c)', "f", 0, 1) == "1:10"
    # an aggregation's arguments after its grouping
    assert call_argument('count_values by (a, "b)") ("v", x)', "count_values", 0, 1) == "1:33"
    assert call_argument("sum without(a) (x)", "sum", 0, 0) == "1:17"
    assert call_argument("sum by(x)", "sum", 0, 0) == "1:1"  # `by` is no call of sum here


def test_go_string_utf8_check() -> None:
    assert go_string_is_utf8('"abc"')
    assert go_string_is_utf8('"\\u00ff"')
    assert not go_string_is_utf8('"\\xff"')
    assert go_string_is_utf8('"\\xc3\\xbf"')
    assert go_string_bytes('"a\\xc5\\tz\\""') == b'a\xc5\tz"'
    assert go_quote_bytes(b'a\xc5\tz"\xc3\xbf') == '"a\\xc5\\tz\\"\xff"'


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ('"a\\xc5z"', 'invalid label name "a\\xc5z"'),  # not UTF-8: as Go quotes it
        ('""', 'invalid label name ""'),
    ],
)
def test_count_values_refuses_invalid_label_names(label: str, message: str) -> None:
    querier = MemoryQuerier([_series({"__name__": "x"}, [0], [1.0])])
    for query in (f"count_values({label}, x)", f"count_values by (job) ({label}, x)"):
        with pytest.raises(QueryError) as err:
            Engine().instant_query(querier, query, 0)
        assert err.value.message == message
    ok = Engine().instant_query(querier, 'count_values("\\u00c5", x)', 0)
    assert [dict(s.labels) for s in ok.series] == [{"Å": "1"}]


def test_queries_read_the_real_store(tmp_path: Path) -> None:
    db = MetricsDB(tmp_path, StorageOptions(retention_ms=10**12, block_duration_ms=10 * MINUTE))
    db.open()
    try:
        rows = [
            (labels_from_dict({"__name__": "req_total", "code": code}), k * 15_000, float(k * n))
            for k in range(80)
            for code, n in (("200", 2), ("500", 1))
        ]
        db.append("t1", SeriesBatch.from_samples(rows))
        db.compact(force=True)  # some samples from blocks, the rest from the head
        engine = Engine()
        result = engine.instant_query(
            StoreQuerier(db, "t1"), "sum by (code) (rate(req_total[5m]))", 79 * 15_000
        )
        rates = {dict(s.labels)["code"]: float(s.values[0]) for s in result.series}
        assert rates == pytest.approx({"200": 2 / 15, "500": 1 / 15})
        assert engine.instant_query(StoreQuerier(db, "other"), "req_total", 0).series == []
    finally:
        db.close()


@pytest.mark.parametrize("with_ts", [True, False])
def test_parts_join_in_label_order_whatever_order_they_come_in(with_ts: bool) -> None:
    """Parts one after the other in label order (as the rings answer) are joined as they are;
    in any other order, placed by their labels: the same vector either way."""

    def part(names: str) -> InstantSteps:
        n = len(names)
        codes = np.array([[ord(name)] * 2 for name in names], dtype=np.int64).reshape(n, 2)
        return InstantSteps(
            [(("s", name),) for name in names],
            (codes * 10 + np.arange(2)).astype(np.float64),
            codes % 2 == 0,
            codes if with_ts else None,
        )

    def as_lists(vector: InstantSteps) -> tuple[object, ...]:
        ts = None if vector.sample_ts is None else vector.sample_ts.tolist()
        return vector.labels, vector.values.tolist(), vector.present.tolist(), ts

    in_order = [part("ab"), part(""), part("c"), part("de")]
    want = as_lists(InstantSteps.concat_in_label_order(list(reversed(in_order)), 2))
    assert want[0] == [(("s", name),) for name in "abcde"]
    parts = list(in_order)
    assert as_lists(InstantSteps.concat_in_label_order(parts, 2)) == want
    assert parts == []  # emptied, as the parts are let go
