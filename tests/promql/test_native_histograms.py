"""The engine with native histogram samples: selectors pick the newest sample of either kind,
histogram_count/sum/avg read them, and everything that does not handle them yet refuses them
by name instead of reading a histogram as a number."""

from __future__ import annotations

import math

import numpy as np
import pytest

from watchkeeper.model import labels_from_dict
from watchkeeper.model.histogram import GAUGE
from watchkeeper.model.histogram_notation import parse_histogram
from watchkeeper.promql.engine import Engine
from watchkeeper.promql.querier import MemoryQuerier
from watchkeeper.promql.series_notation import STALE_NAN, expand_items
from watchkeeper.store.types import HistogramSamples, SeriesSamples

MINUTE = 60_000
A = labels_from_dict({"__name__": "h", "job": "a"})
B = labels_from_dict({"__name__": "h", "job": "b"})


def _querier() -> MemoryQuerier:
    """job a: histograms at 0..3m, a float at 4m, a histogram at 5m, a staleness marker at 6m;
    job b: floats only."""
    histograms = expand_items("{{count:1 sum:2 buckets:[1]}}+{{count:1 sum:2 buckets:[1]}}x3")
    histograms.append(expand_items("{{count:10 sum:1 buckets:[10]}}")[0])
    times = np.array([0, 1, 2, 3, 5], dtype=np.int64) * MINUTE
    return MemoryQuerier(
        [
            SeriesSamples(A, np.array([4 * MINUTE, 6 * MINUTE]), np.array([42.0, STALE_NAN])),
            SeriesSamples(B, np.arange(8) * MINUTE, np.arange(8, dtype=np.float64)),
        ],
        [HistogramSamples(A, times, histograms)],  # type: ignore[arg-type]
    )


def _vector(expr: str, at_ms: int) -> dict[str, object]:
    result = Engine().instant_query(_querier(), expr, at_ms)
    out: dict[str, object] = {}
    for s in result.series:
        job = dict(s.labels).get("job", "")
        out[job] = str(s.histograms[0][1]) if s.histograms else float(s.values[0])
    return out


def test_the_newest_sample_of_either_kind_is_picked() -> None:
    assert _vector("h", 3 * MINUTE) == {"a": "{{count:4 sum:8 buckets:[4]}}", "b": 3.0}
    assert _vector("h", 4 * MINUTE + 1) == {"a": 42.0, "b": 4.0}
    assert _vector("h", 5 * MINUTE) == {"a": "{{count:10 sum:1 buckets:[10]}}", "b": 5.0}
    assert _vector("h", 6 * MINUTE) == {"b": 6.0}  # the marker hides the histogram
    # lookback: a histogram 5 minutes old or more is gone
    only = MemoryQuerier(histograms=[HistogramSamples(A, np.array([0]), expand_items("{{}}"))])  # type: ignore[arg-type]
    assert len(Engine().instant_query(only, "h", 5 * MINUTE - 1).series) == 1
    assert Engine().instant_query(only, "h", 5 * MINUTE).series == []


def test_histogram_functions() -> None:
    assert _vector("histogram_count(h)", 3 * MINUTE) == {"a": 4.0}
    assert _vector("histogram_sum(h)", 3 * MINUTE) == {"a": 8.0}
    assert _vector("histogram_avg(h)", 5 * MINUTE) == {"a": 0.1}
    assert _vector("histogram_count(h)", 4 * MINUTE) == {}  # floats give nothing
    # one bucket (0.5, 1] of 4 observations, taken at its geometric mean, against a mean of 2
    spread = (math.sqrt(0.5) - 2) ** 2
    assert _vector("histogram_stdvar(h)", 3 * MINUTE) == {"a": pytest.approx(spread)}
    assert _vector("histogram_stddev(h)", 3 * MINUTE) == {"a": pytest.approx(math.sqrt(spread))}


def test_rate_of_histograms_extrapolates_as_prometheus() -> None:
    """At 3m the window (-2m, 3m] holds the histograms at 0..3m (counts 1..4): the increase
    is 3 over 180 s of samples, extended by half a sample interval (30 s) at the start (the
    zero point, 60 s before, is further) and nothing at the end: x (180 + 30) / 180 / 300."""
    got = parse_histogram(str(_vector('rate(h{job="a"}[5m])', 3 * MINUTE)["a"]))
    factor = (180 + 30) / 180 / 300
    assert (got.count, got.sum, *got.positive_buckets) == pytest.approx(
        (3 * factor, 6 * factor, 3 * factor), rel=1e-12
    )
    assert got.counter_reset_hint == GAUGE  # a rate is a gauge histogram
    # a float in the window as well: Prometheus' warning, and no sample
    result = Engine().instant_query(_querier(), 'rate(h{job="a"}[5m])', 5 * MINUTE)
    assert result.series == []
    assert result.annotations.warnings == [
        'PromQL warning: encountered a mix of histograms and floats for metric name "h" (1:6)'
    ]


def test_a_range_query_gives_points_of_both_kinds() -> None:
    result = Engine().range_query(_querier(), 'h{job="a"}', 2 * MINUTE, 6 * MINUTE, MINUTE)
    (series,) = result.series
    assert series.timestamps.tolist() == [4 * MINUTE]
    assert [(t, h.count) for t, h in series.histograms] == [
        (2 * MINUTE, 3.0),
        (3 * MINUTE, 4.0),
        (5 * MINUTE, 10.0),
    ]


def test_experimental_functions_over_histograms() -> None:
    """histogram_quantiles and sort_by_label(_desc), experimental functions in Prometheus,
    take native histograms as histogram_quantile and sort_by_label take anything."""
    at = 3 * MINUTE
    result = Engine().instant_query(_querier(), 'histogram_quantiles(h, "q", 0.5, 1)', at)
    assert {dict(s.labels)["q"]: float(s.values[0]) for s in result.series} == {
        "0.5": Engine()
        .instant_query(_querier(), "histogram_quantile(0.5, h)", at)
        .series[0]
        .values[0],
        "1.0": 1.0,  # the upper bound of the one bucket
    }
    ordered = Engine().instant_query(_querier(), 'sort_by_label_desc(h, "job")', at)
    assert [dict(s.labels)["job"] for s in ordered.series] == ["b", "a"]
    assert ordered.series[1].histograms[0][1].count == 4


def test_operators_and_aggregations_on_histograms() -> None:
    at = 3 * MINUTE
    assert _vector('h{job="a"} * 2', at) == {"a": "{{count:8 sum:16 buckets:[8]}}"}
    assert _vector('2 * h{job="a"}', at) == {"a": "{{count:8 sum:16 buckets:[8]}}"}
    assert _vector('h{job="a"} / 4', at) == {"a": "{{count:1 sum:2 buckets:[1]}}"}
    # negated (or times a negative number), a counter is no longer one: Prometheus' Mul
    assert _vector('-h{job="a"}', at) == {
        "a": "{{count:-4 sum:-8 counter_reset_hint:gauge buckets:[-4]}}"
    }
    assert _vector('h{job="a"} * -1', at) == _vector('-h{job="a"}', at)
    assert _vector('h{job="a"} - h{job="a"}', at) == {
        "a": "{{counter_reset_hint:gauge}}"  # the difference is a gauge histogram, and empty
    }
    assert _vector('sum(h{job="a"})', at) == {"": "{{count:4 sum:8 buckets:[4]}}"}
    assert _vector("count(h)", at) == {"": 2.0}
    # what does not work on histograms leaves them out, with Prometheus' annotation
    result = Engine().instant_query(_querier(), "h + 1", at)
    assert [dict(s.labels)["job"] for s in result.series] == ["b"]
    assert result.annotations.infos == [
        'PromQL info: incompatible sample types encountered for binary operator "+": '
        "histogram + float (1:1)"
    ]
    result = Engine().instant_query(_querier(), "sum(h)", at)  # a histogram and a float
    assert result.series == []
    assert result.annotations.warnings == [
        "PromQL warning: encountered a mix of histograms and floats for aggregation (1:5)"
    ]
    result = Engine().instant_query(_querier(), "max(h)", at)
    assert [float(s.values[0]) for s in result.series] == [3.0]
    assert result.annotations.infos == ["PromQL info: ignored histogram in max aggregation (1:1)"]
    # float-only functions skip histograms; timestamp() and absent() see them
    assert _vector("abs(h)", at) == {"b": 3.0}
    assert _vector("sort(h)", at) == {"b": 3.0}
    assert _vector('label_replace(h{job="a"}, "x", "y", "job", ".*")', at) == {
        "a": "{{count:4 sum:8 buckets:[4]}}"
    }
    result = Engine().instant_query(_querier(), 'count_values("v", h)', at)
    assert sorted(dict(s.labels)["v"] for s in result.series) == [
        "3",
        "{count:4, sum:8, (0.5,1]:4}",  # Prometheus' FloatHistogram.String()
    ]
    assert _vector("timestamp(h)", at) == {"a": 180.0, "b": 180.0}
    assert _vector('absent(h{job="a"})', at) == {}


def test_float_only_queries_are_untouched() -> None:
    assert _vector('sum(h{job="b"})', 3 * MINUTE) == {"": 3.0}
    assert _vector('h{job="a"} * 2', 4 * MINUTE + 1) == {"a": 84.0}


def test_histogram_stats_are_read_with_reset_hints_as_prometheus_reads_them() -> None:
    """Under histogram_count, histogram_sum or histogram_avg, Prometheus reads histograms
    with its HistogramStatsIterator, which tells a stored unknown hint (the sample after a
    reset) from the sample before: a reset meeting not_resets in sum_over_time conflicts.
    Not through a subquery (whose samples' hints mean nothing), nor without those functions."""
    counts = (0, 2, 3, 2)  # stored hints: unknown, not_reset, not_reset, unknown (a reset)
    hints = ("unknown", "not_reset", "not_reset", "unknown")
    stored = [
        parse_histogram(f"{{{{count:{c} sum:1 buckets:[1 1 1] counter_reset_hint:{hint}}}}}")
        for c, hint in zip(counts, hints, strict=True)
    ]
    querier = MemoryQuerier(
        histograms=[HistogramSamples(A, np.arange(4) * MINUTE, stored)]  # type: ignore[arg-type]
    )
    conflict = "PromQL warning: conflicting counter resets during histogram aggregation"

    def warnings(expr: str) -> list[str]:
        return Engine().instant_query(querier, expr, 5 * MINUTE).annotations.warnings

    assert warnings("histogram_count(sum_over_time(h[5m]))") == [f"{conflict} (1:31)"]
    assert warnings("histogram_sum(sum_over_time(h[5m]))") == [f"{conflict} (1:29)"]
    assert warnings("sum_over_time(h[5m])") == []
    assert warnings("histogram_count(sum_over_time(h[5m:1m]))") == []
    assert warnings("max_over_time(histogram_count(sum_over_time(h[5m]))[1m:1m])") == []


def test_limitk_and_limit_ratio_choose_series_of_either_kind() -> None:
    """They choose series by their order or label hash, not by value: a histogram sample
    is kept as it is (Prometheus' limit.test, an experimental-flag file)."""
    at = 3 * MINUTE
    assert _vector("limitk(2, h)", at) == {"a": "{{count:4 sum:8 buckets:[4]}}", "b": 3.0}
    assert _vector("limitk(1, h)", at) == {"a": "{{count:4 sum:8 buckets:[4]}}"}
    assert _vector("limit_ratio(1, h)", at) == _vector("h", at)
    assert _vector("limit_ratio(-1, h)", at) == _vector("h", at)
    ranged = Engine().range_query(_querier(), "limitk(1, h)", 0, 5 * MINUTE, MINUTE)
    (series,) = ranged.series
    assert [t for t, _ in series.histograms] == [0, MINUTE, 2 * MINUTE, 3 * MINUTE, 5 * MINUTE]
    assert series.timestamps.tolist() == [4 * MINUTE]  # the float at 4m


@pytest.mark.parametrize(
    ("expr", "where"),
    [
        ("abs(quantile(2, h))", "1:14"),  # an aggregation's parameter, inside a call
        ("abs(quantile_over_time(2, h[1m]))", "1:24"),
        ("count(limit_ratio(1.5, h))", "1:19"),
    ],
)
def test_parameter_warnings_point_at_the_parameter(expr: str, where: str) -> None:
    result = Engine().instant_query(_querier(), expr, 4 * MINUTE)
    (warning,) = result.annotations.warnings
    assert warning.endswith(f"({where})")
