"""The trim operators `</` and `>/`: parsed with `<` and `>` in their place and found again by
their order among the comparisons; what they do to histograms is checked by Prometheus' own
cases (native_histograms.test), what they do elsewhere here."""

from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.model import labels_from_dict
from watchkeeper.model.histogram_notation import parse_histogram
from watchkeeper.promql.ast_json import format_query, parse_query
from watchkeeper.promql.duration_expressions import rewrite as rewrite_durations
from watchkeeper.promql.engine import Engine, parse
from watchkeeper.promql.errors import QueryError
from watchkeeper.promql.querier import MemoryQuerier
from watchkeeper.promql.trim_operators import trim_nodes, without_trims
from watchkeeper.store.types import HistogramSamples, SeriesSamples


def test_the_stand_ins_keep_every_position_and_leave_strings_and_matchers_alone() -> None:
    text = 'h{a!="</", b=~">/"} </ 2 # a </ comment\n>/ on(a) x{c="<"}'
    rewritten = without_trims(text)
    assert rewritten == 'h{a!="</", b=~">/"} <  2 # a </ comment\n>  on(a) x{c="<"}'
    assert len(rewritten) == len(text)
    assert without_trims("a </ b") == "a <  b"
    assert without_trims("a < b") == "a < b"


def test_each_trim_is_found_among_the_comparisons_in_text_order() -> None:
    text = 'a > bool b </ c and d{x!="y"} != e >/ on(z) f < g'
    tree = parse(text)
    found = trim_nodes(text, tree)
    # (((a > bool b) </ c) and (((d != e) >/ on(z) f) < g))
    upper = tree.lhs
    lower = tree.rhs.lhs
    assert found == {id(upper): "</", id(lower): ">/"}
    assert str(upper.op) == "<" and str(lower.op) == ">"
    assert trim_nodes("a < b", parse("a < b")) == {}


def _querier() -> MemoryQuerier:
    h = parse_histogram("{{schema:0 count:4 sum:6 buckets:[1 3]}}")
    labels = labels_from_dict({"__name__": "h", "job": "a"})
    floats = labels_from_dict({"__name__": "f", "job": "a"})
    at = np.array([0], dtype=np.int64)
    return MemoryQuerier(
        [SeriesSamples(floats, at, np.array([1.0]))], [HistogramSamples(labels, at, [h])]
    )


def test_trims_take_histograms_and_keep_the_metric_name() -> None:
    result = Engine().instant_query(_querier(), "h </ 1", 0)
    ((labels, histogram),) = [(s.labels, s.histograms[0][1]) for s in result.series]
    assert dict(labels) == {"__name__": "h", "job": "a"}
    assert (histogram.count, histogram.positive()) == (1, {0: 1.0})  # (0.5, 1] kept
    # with a float vector on the right, matched as any binary operator matches
    matched = Engine().instant_query(_querier(), "h </ on(job) f", 0)
    assert [s.histograms[0][1].count for s in matched.series] == [1]


@pytest.mark.parametrize("query", ["f </ 1", "1 </ h", "h >/ h"])
def test_what_is_not_a_histogram_trimmed_at_a_float_is_left_out_with_prometheus_info(
    query: str,
) -> None:
    result = Engine().instant_query(_querier(), query, 0)
    assert result.series == []
    (info,) = result.annotations.infos
    assert info.startswith("PromQL info: incompatible sample types encountered for binary")


def test_bool_is_refused_on_a_trim() -> None:
    with pytest.raises(QueryError, match="bool modifier can only be used on comparison"):
        Engine().instant_query(_querier(), "h </ bool 1", 0)


def test_format_query_and_parse_query_keep_the_trims() -> None:
    text = 'sum by (job) (rate(h[5m])) </ on(job) group_left f{a="</"} > bool 2'
    assert format_query(text) == (
        'sum by (job) (rate(h[5m])) </ on (job) group_left () f{a="</"} > bool 2'
    )
    tree = parse_query("h >/ 2 > 1")
    assert (tree["op"], tree["lhs"]["op"]) == (">", ">/")


def test_every_conformance_query_places_its_trims() -> None:
    """Over the upstream test files' queries (the comparison operators among strings, regexes,
    matchers, subqueries and aggregation parameters of real queries): each parses, and each
    `</` and `>/` written is found at a node, none elsewhere."""
    from tests.promql import conformance  # noqa: PLC0415

    names = conformance.testdata_files()
    if not names:
        pytest.skip(f"conformance testdata not found at {conformance.TESTDATA}")
    placed = 0
    for name in names:
        for case in conformance.load_file(name):
            try:
                tree = parse(rewrite_durations(case.expr, 0, 0))
            except QueryError:
                continue  # syntax promql-parser lacks (experimental-flag cases)
            written = case.expr.count("</") + case.expr.count(">/")
            found = trim_nodes(case.expr, tree)
            if '"' not in case.expr and "`" not in case.expr:
                assert len(found) == written, case.id
            placed += len(found)
    assert placed >= 100
