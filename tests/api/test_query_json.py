"""Query answers written as Prometheus writes them (json_codec.go, util/jsonutil)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from watchkeeper.api.query_json import (
    go_json,
    go_string,
    histograms_json,
    labels_object,
    result_json,
    sample_timestamp,
    sample_value,
    sample_values,
    success_body,
)
from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.promql.result import QueryResult, Series


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-0.0, "-0"),
        (0.5, "0.5"),
        (1e-6, "0.000001"),
        (9.9e-7, "9.9e-07"),
        (1e-7, "1e-07"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.2345e22, "1.2345e+22"),
        (123456789.123, "123456789.123"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
    ],
)
def test_sample_values_as_jsonutil_marshalfloat(value: float, text: str) -> None:
    assert sample_value(value) == text


def test_values_written_in_bulk_as_one_by_one() -> None:
    rng = np.random.default_rng(5)
    magnitudes = 10.0 ** rng.integers(-12, 25, 5000) * rng.choice([-1.0, 1.0], 5000)
    values = np.concatenate(
        [
            rng.random(5000) * magnitudes,
            np.round(rng.random(1000) * 1e6, 2),
            np.arange(-50, 50, dtype=np.float64),
            [
                0.0,
                -0.0,
                1e16,
                9999999999999998.0,
                1e-4,
                9.99e-5,
                1e21,
                5e-324,
                1.7976931348623157e308,
            ],
            [math.nan, math.inf, -math.inf, 0.1 + 0.2, 100.0, 1e15, 123.0e-4],
        ]
    )
    assert sample_values(values) == [sample_value(v) for v in values.tolist()]
    assert sample_values(values[::7]) == [sample_value(v) for v in values[::7].tolist()]
    assert sample_values(np.empty(0)) == []


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (1_700_000_000_000, "1700000000"),
        (1_700_000_000_120, "1700000000.120"),
        (1_700_000_000_005, "1700000000.005"),
        (0, "0"),
        (-1500, "-1.500"),
    ],
)
def test_timestamps_as_jsonutil_marshaltimestamp(ms: int, text: str) -> None:
    assert sample_timestamp(ms) == text


def test_strings_are_escaped_as_go_does() -> None:
    assert (
        go_string('a<b>&"\\\n\x01é\u2028') == '"a\\u003cb\\u003e\\u0026\\"\\\\\\n\\u0001é\\u2028"'
    )
    assert json.loads(go_string('a<b>&"\\\n\x01é')) == 'a<b>&"\\\n\x01é'
    assert go_json({"b": [1, None], "a": "<"}) == '{"a":"\\u003c","b":[1,null]}'


def _series(labels: dict[str, str], points: list[tuple[int, float]]) -> Series:
    return Series(
        tuple(sorted(labels.items())),
        np.array([t for t, _ in points], dtype=np.int64),
        np.array([v for _, v in points], dtype=np.float64),
    )


def test_result_shapes() -> None:
    vector = QueryResult("vector", [_series({"__name__": "up", "job": "a"}, [(1500, 1.0)])])
    assert result_json(vector, vector.series) == (
        '"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},'
        '"value":[1.500,"1"]}]'
    )
    matrix = QueryResult("matrix", [_series({}, [(1000, 0.25), (2000, math.nan)])])
    assert result_json(matrix, matrix.series) == (
        '"resultType":"matrix","result":[{"metric":{},"values":[[1,"0.25"],[2,"NaN"]]}]'
    )
    # a scalar's timestamp is a Go float and its value never has an exponent
    scalar = QueryResult("scalar", scalar=1e-7, time_ms=1_700_000_000_500)
    assert result_json(scalar, []) == '"resultType":"scalar","result":[1700000000.5,"0.0000001"]'
    string = QueryResult("string", string="a<b", time_ms=2000)
    assert result_json(string, []) == '"resultType":"string","result":[2,"a\\u003cb"]'


def test_success_body_keeps_ten_annotations_of_each_kind() -> None:
    body = json.loads(success_body('"x"', [f"w{i}" for i in range(12)], ["i"]))
    assert body["status"] == "success" and body["data"] == "x"
    assert body["warnings"] == [*(f"w{i}" for i in range(10)), "2 more warning annotations omitted"]
    assert body["infos"] == ["i"]
    assert json.loads(success_body("[]")) == {"status": "success", "data": []}


def test_matrices_are_written_point_by_point_as_prometheus_does() -> None:
    # series with steps of their own, an empty one, and every kind of value text
    rng = np.random.default_rng(5)
    odd = [0.0, -0.0, 1.0, -3.0, 1e-7, 2.5e-5, 1e21, 1e16, 123456.789, math.nan, math.inf]
    series = []
    for k in range(40):
        count = int(rng.integers(0, 30))
        stamps = np.sort(rng.choice(np.arange(-5_000, 50_000, 250), count, replace=False))
        values = [
            float(rng.choice(odd)) if rng.random() < 0.5 else float(rng.normal()) for _ in stamps
        ]
        labels = {"__name__": "m", "k": str(k), "v": "<&>" if k % 3 else "x"}
        series.append(_series(labels, list(zip(stamps.tolist(), values, strict=True))))
    matrix = QueryResult("matrix", series)
    expected = []
    for s in series:
        head = "{" + f'"metric":{labels_object(s.labels)}'
        points = [
            f'[{sample_timestamp(int(t))},"{sample_value(float(v))}"]'
            for t, v in zip(s.timestamps, s.values, strict=True)
        ]
        expected.append(head + ("}" if not points else ',"values":[' + ",".join(points) + "]}"))
    assert result_json(matrix, series) == (
        '"resultType":"matrix","result":[' + ",".join(expected) + "]"
    )


def _one_by_one(h: FloatHistogram) -> str:
    """jsonutil.MarshalHistogram written number by number from `FloatHistogram.buckets()`."""
    text = f'{{"count":"{sample_value(h.count)}","sum":"{sample_value(h.sum)}"'
    buckets = [
        f'[{rule},"{sample_value(lower)}","{sample_value(upper)}","{sample_value(count)}"]'
        for rule, lower, upper, count in h.buckets()
    ]
    return text + (',"buckets":[' + ",".join(buckets) + "]" if buckets else "") + "}"


def test_histograms_written_in_bulk_as_one_by_one() -> None:
    """Layouts shared and not, empty buckets (left out), a zero bucket or none, bounds inside
    the zero bucket (shown at its edge), custom buckets, NaN and huge counts."""
    rng = np.random.default_rng(7)
    histograms = []
    for k in range(300):
        custom = k % 5 == 0
        schema = -53 if custom else int(rng.integers(-4, 9))

        def counts(n: int) -> tuple[float, ...]:
            drawn = rng.integers(0, 4, n).astype(float)  # zeros among them
            drawn[rng.random(n) < 0.05] = math.nan
            drawn[rng.random(n) < 0.05] = 1e300
            return tuple(drawn.tolist())

        positive = ((int(rng.integers(-3, 3)), 3), (int(rng.integers(0, 3)), 2))
        negative = () if custom or k % 3 else ((int(rng.integers(-2, 2)), 4),)
        histograms.append(
            FloatHistogram(
                schema=schema,
                count=float(k),
                sum=k / 3,
                zero_threshold=0.0 if custom else float(rng.choice([0.0, 0.001, 0.3])),
                zero_count=0.0 if custom else float(rng.integers(0, 2)),
                positive_spans=((0, 5),) if custom else positive,
                positive_buckets=counts(5),
                negative_spans=negative,
                negative_buckets=counts(4) if negative else (),
                custom_values=(0.1, 0.5, 1.0, 10.0) if custom else (),
            )
        )
    assert histograms_json(histograms) == [_one_by_one(h) for h in histograms]
    assert histograms_json([]) == []
