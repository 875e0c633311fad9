"""Native histograms in the model: Prometheus' `{{...}}` notation and its printed form, bucket
bounds, arithmetic, reset detection and the binary form the store keeps."""

from __future__ import annotations

import math

import pytest

from watchkeeper.model.histogram import (
    GAUGE,
    NOT_RESET,
    RESET,
    FloatHistogram,
    bucket_bound,
    decode,
)
from watchkeeper.model.histogram_notation import parse_histogram
from watchkeeper.promql.series_notation import expand_items


def h(text: str) -> FloatHistogram:
    return parse_histogram(text)


@pytest.mark.parametrize(
    ("written", "printed"),
    [
        # Prometheus' TestExpression order, zero fields left out
        (
            "{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] "
            "offset:-3 n_buckets:[4.1 5] n_offset:-5}}",
            "{{schema:1 count:32.1 sum:-0.3 z_bucket:7.1 z_bucket_w:0.05 offset:-3 "
            "buckets:[5.1 10 7] n_offset:-5 n_buckets:[4.1 5]}}",
        ),
        ("{{}}", "{{}}"),
        # one span from the first to the last non-empty bucket; empty ones inside stay
        ("{{buckets:[0 1 0 2 0] offset:2}}", "{{offset:3 buckets:[1 0 2]}}"),
        (
            "{{count:2 counter_reset_hint:gauge buckets:[2]}}",
            "{{count:2 counter_reset_hint:gauge buckets:[2]}}",
        ),
        (
            "{{schema:-53 count:3 custom_values:[0.1 1] buckets:[1 2]}}",
            "{{schema:-53 count:3 custom_values:[0.1 1] buckets:[1 2]}}",
        ),
        ("{{sum: 1e-7 count: Inf}}", "{{count:+Inf sum:1e-07}}"),
    ],
)
def test_notation_prints_as_prometheus_prints_it(written: str, printed: str) -> None:
    assert h(written).test_expression() == printed
    assert h(printed).test_expression() == printed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{count:1 count:2}}", "count given twice"),
        ("{{counts:1}}", "unknown field counts"),
        ("{{counter_reset_hint:maybe}}", "counter_reset_hint 'maybe'"),
        ("{{schema:9}}", "schema 9 is not in -4..8"),
        ("{{schema:-53 custom_values:[1 0.5] buckets:[1]}}", "strictly increasing"),
        ("{{schema:-53 custom_values:[1] buckets:[1 1 1]}}", "outside its 2 custom buckets"),
        ("{{custom_values:[1]}}", "only histograms of schema -53"),
        ("{{offset:1.5 buckets:[1]}}", "offset must be an integer"),
        ("{{buckets:1}}", "must be a [list]"),
        ("count:1", "written {{...}}"),
    ],
)
def test_bad_notation_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(".", r"\.")):
        h(text)


def test_encoding_round_trips_exactly() -> None:
    for text in (
        "{{schema:-4 count:3 sum:NaN z_bucket:1 z_bucket_w:0.5 buckets:[1 0 2] offset:-7 "
        "n_buckets:[3] n_offset:4 counter_reset_hint:reset}}",
        "{{schema:-53 count:2 custom_values:[0.1 0.2 10] buckets:[1 1] offset:1}}",
        "{{}}",
    ):
        histogram = h(text)
        back = decode(histogram.encode())
        assert back.test_expression() == histogram.test_expression()
        assert back.positive_spans == histogram.positive_spans
        assert math.isnan(back.sum) == math.isnan(histogram.sum)
    with pytest.raises(ValueError, match="truncated"):
        decode(h("{{buckets:[1 2]}}").encode()[:-3])


def test_bucket_bounds_are_prometheus_ones() -> None:
    assert bucket_bound(1, 0) == 2.0 and bucket_bound(0, 0) == 1.0 and bucket_bound(-1, 0) == 0.5
    assert bucket_bound(1, -1) == 4.0 and bucket_bound(-2, -2) == 2.0**-8
    assert bucket_bound(8, 3) == 2.0 and bucket_bound(1, 1) == math.sqrt(2)
    # the last finite bucket ends at the largest float, the next one at +Inf
    assert bucket_bound(1024, 0) == 1.7976931348623157e308
    assert bucket_bound(1025, 0) == math.inf
    assert bucket_bound(0, -53, (0.1, 1.0)) == 0.1 and bucket_bound(2, -53, (0.1, 1.0)) == math.inf


def test_buckets_as_the_query_api_lists_them() -> None:
    found = list(
        h("{{z_bucket:2 z_bucket_w:0.1 buckets:[1 0 3] n_buckets:[4 5] n_offset:1}}").buckets()
    )
    assert found == [
        (1, -4.0, -2.0, 5.0),  # negative buckets from -Inf up, closed on the left
        (1, -2.0, -1.0, 4.0),
        (3, -0.1, 0.1, 2.0),  # the zero bucket, closed
        (0, 0.5, 1.0, 1.0),  # positive ones closed on the right; empty ones left out
        (0, 2.0, 4.0, 3.0),
    ]
    # the first custom bucket is closed (it takes -Inf too)
    custom = h("{{schema:-53 custom_values:[0.1 1] buckets:[1 0 2]}}")
    assert list(custom.buckets()) == [(3, -math.inf, 0.1, 1.0), (0, 1.0, math.inf, 2.0)]
    # bounds inside the zero bucket show at its edge, even past the bucket's other bound
    overlap = h("{{z_bucket:1 z_bucket_w:0.3 buckets:[1 1] offset:-2 n_buckets:[1] n_offset:-1}}")
    assert list(overlap.buckets()) == [
        (1, -0.5, -0.3, 1.0),
        (3, -0.3, 0.3, 1.0),
        (0, 0.3, 0.25, 1.0),
        (0, 0.3, 0.5, 1.0),
    ]


def test_addition_reduces_to_the_coarser_schema_and_the_wider_zero_bucket() -> None:
    fine = h("{{schema:1 count:4 sum:2 buckets:[1 1 1 1] offset:1}}")
    coarse = h("{{schema:0 count:1 sum:1 buckets:[1]}}")
    # schema 1 buckets 1, 2 fall into schema 0 bucket 1; 3, 4 into bucket 2
    assert fine.add(coarse).test_expression() == "{{count:5 sum:3 buckets:[1 2 2]}}"
    assert fine.add(coarse, negate=True).test_expression() == ("{{count:3 sum:1 buckets:[-1 2 2]}}")
    narrow = h("{{count:3 z_bucket:1 z_bucket_w:0.001 buckets:[1 1] offset:-2}}")
    wide = h("{{count:1 z_bucket:1 z_bucket_w:0.3}}")
    # bucket -2 (0.125, 0.25] lies inside the wider zero bucket; bucket -1 (0.25, 0.5] holds
    # 0.3, so the zero bucket widens to its upper bound and takes it too
    assert narrow.add(wide).test_expression() == "{{count:4 z_bucket:4 z_bucket_w:0.5}}"
    # custom buckets with other bounds meet on the bounds they share (Prometheus 3.14)
    added = h("{{schema:-53 count:3 custom_values:[1 2 5] buckets:[1 1 1]}}").add(
        h("{{schema:-53 count:2 custom_values:[2 10] buckets:[1 1]}}")
    )
    assert added.test_expression() == (
        "{{schema:-53 count:5 custom_values:[2] buckets:[3 2]}}"  # (-Inf, 2] and (2, +Inf]
    )
    with pytest.raises(ValueError, match="exponential and custom"):
        h("{{schema:-53 custom_values:[1] buckets:[1]}}").add(h("{{count:1 buckets:[1]}}"))


def test_sums_keep_hints_as_prometheus_adds_them() -> None:
    gauge, reset, not_reset, unknown = (
        h("{{counter_reset_hint:gauge}}"),
        h("{{counter_reset_hint:reset}}"),
        h("{{counter_reset_hint:not_reset}}"),
        h("{{}}"),
    )
    assert not_reset.add(not_reset).counter_reset_hint == NOT_RESET
    assert reset.add(gauge).counter_reset_hint == GAUGE
    assert reset.add(not_reset).counter_reset_hint == 0
    assert not_reset.add(unknown).counter_reset_hint == 0


@pytest.mark.parametrize(
    ("before", "after", "reset"),
    [
        ("{{count:2 buckets:[2]}}", "{{count:3 buckets:[3]}}", False),
        ("{{count:2 buckets:[2]}}", "{{count:1 buckets:[1]}}", True),  # count went down
        ("{{count:2 buckets:[1 1]}}", "{{count:2 buckets:[2 0]}}", True),  # a bucket went down
        ("{{count:2 buckets:[2]}}", "{{count:3 buckets:[3] counter_reset_hint:reset}}", True),
        ("{{count:2 buckets:[2]}}", "{{count:1 counter_reset_hint:not_reset}}", False),
        ("{{schema:0 count:1 buckets:[1]}}", "{{schema:1 count:2 buckets:[2]}}", True),
        (
            "{{schema:1 count:2 buckets:[1 1] offset:1}}",
            "{{schema:0 count:3 buckets:[3] offset:1}}",
            False,
        ),
        ("{{count:1 z_bucket_w:0.5 z_bucket:1}}", "{{count:2 z_bucket_w:0.1 z_bucket:2}}", True),
        # custom bounds that changed: compared on the bounds both have (Prometheus 3.x)
        (
            "{{schema:-53 count:3 custom_values:[1] buckets:[3]}}",
            "{{schema:-53 count:3 custom_values:[5 10] buckets:[3]}}",
            False,
        ),
        (
            "{{schema:-53 count:4 custom_values:[1 5] buckets:[1 3]}}",
            "{{schema:-53 count:4 custom_values:[5] buckets:[4]}}",
            False,
        ),
        (
            "{{schema:-53 count:4 custom_values:[1 5] buckets:[1 3]}}",
            "{{schema:-53 count:4 custom_values:[5] buckets:[3 1]}}",  # (-Inf, 5] went down
            True,
        ),
        ("{{count:3 buckets:[3]}}", "{{schema:-53 count:3 custom_values:[1] buckets:[3]}}", True),
    ],
)
def test_reset_detection(before: str, after: str, reset: bool) -> None:
    assert h(after).detect_reset(h(before)) is reset


def test_multiplying_and_dividing_as_prometheus_does() -> None:
    base = h(
        "{{schema:0 count:4 sum:6 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] "
        "counter_reset_hint:not_reset}}"
    )
    assert base.scaled(2).counter_reset_hint == NOT_RESET
    assert base.scaled(-1).counter_reset_hint == GAUGE  # negative: no longer a counter
    assert base.divided(-2).counter_reset_hint == GAUGE
    halved = base.divided(2)
    assert (halved.count, halved.sum, halved.positive()) == (2, 3, {0: 0.5, 1: 1.0})
    # by zero: count, sum and zero bucket as IEEE, and no buckets at all
    for zero in (0.0, -0.0):
        by_zero = base.divided(zero)
        assert (by_zero.positive(), by_zero.negative()) == ({}, {})
        assert math.isinf(by_zero.count) and math.isinf(by_zero.zero_count)
    assert base.divided(-0.0).count == -math.inf


def test_series_notation_expands_histograms_by_repeated_addition() -> None:
    items = expand_items(
        "{{count:2 sum:3 buckets:[2]}}+{{count:1 sum:1.3 buckets:[1]}}x2 _ 5 {{}}x1"
    )
    texts = [str(i) if isinstance(i, FloatHistogram) else i for i in items]
    assert texts == [
        "{{count:2 sum:3 buckets:[2]}}",
        "{{count:3 sum:4.3 buckets:[3]}}",
        "{{count:4 sum:5.6 buckets:[4]}}",
        None,
        5.0,
        "{{}}",
        "{{}}",
    ]
    # as Prometheus: the start's schema must not be finer than the increment's
    with pytest.raises(ValueError, match="cannot merge from schema 0 to 1"):
        expand_items("{{schema:1 count:1}}+{{schema:0 count:1}}x2")
    with pytest.raises(ValueError, match="unterminated"):
        expand_items("{{count:1")
    assert expand_items("{{schema:0 count:1}}-{{schema:1 count:1}}x1")[1].count == 0.0  # type: ignore[union-attr]
    assert RESET == 1
