"""Trimming a native histogram at a value, as the PromQL operators `</` (keep what lies below)
and `>/` (keep what lies above) do: Prometheus' FloatHistogram.TrimBuckets.

A bucket the value falls in keeps the share of its count on the kept side, interpolated
linearly in custom buckets and the zero bucket and on a log scale in exponential ones. The sum
is estimated again from what is kept, each bucket's count at the (geometric, or for custom
buckets arithmetic) middle of its kept part, but only where something was trimmed.
"""

from __future__ import annotations

import dataclasses
import math

from watchkeeper.model.histogram import FloatHistogram, bucket_edges, spans_from_map


def trimmed(h: FloatHistogram, bound: float, *, upper: bool) -> FloatHistogram:
    """`h </ bound` (`upper`) or `h >/ bound`."""
    linear = h.uses_custom_buckets
    count = total = 0.0
    changed = False
    seen = {True: False, False: False}  # positive, negative buckets with a count
    sides = {True: dict(h.positive()), False: dict(h.negative())}
    for positive in (True, False):
        side = sides[positive]
        for index in sorted(side):  # from the zero bucket outwards, as Prometheus sums
            bucket = side[index]
            if bucket == 0:
                continue
            seen[positive] = True
            _, lower, top = bucket_edges(
                h.schema, h.custom_values, h.zero_threshold, 1 if positive else -1, index, False
            )
            if (top <= bound) if upper else (lower >= bound):  # all of it kept
                count += bucket
                total += _midpoint(lower, top, positive, linear) * bucket
            elif (lower < bound) if upper else (top > bound):  # the bound falls inside
                kept, middle = _bucket_trim(lower, top, bucket, bound, upper, positive, linear)
                count += kept
                total += middle * kept
                if kept != bucket:
                    side[index] = kept
                    changed = True
            else:
                side[index] = 0.0
                changed = True
    zero_count = h.zero_count
    if zero_count > 0:
        kept, middle = _zero_trim(h, bound, seen[False], seen[True], upper)
        if kept != zero_count:
            zero_count = kept
            changed = True
        total += middle * kept
        count += kept
    if not changed:
        return h
    positive_spans, positive_buckets = spans_from_map({i: c for i, c in sides[True].items() if c})
    negative_spans, negative_buckets = spans_from_map({i: c for i, c in sides[False].items() if c})
    return dataclasses.replace(
        h,
        count=count,
        sum=total,
        zero_count=zero_count,
        positive_spans=positive_spans,
        positive_buckets=positive_buckets,
        negative_spans=negative_spans,
        negative_buckets=negative_buckets,
    )


def _bucket_trim(
    lower: float,
    top: float,
    count: float,
    bound: float,
    upper: bool,
    positive: bool,
    linear: bool,
) -> tuple[float, float]:
    """What a bucket holding the bound keeps, and the middle of its kept part."""
    if math.isinf(lower) or math.isinf(top):
        return _infinite_bucket_trim(lower, top, count, bound, upper)
    if bound <= lower:
        below = 0.0
    elif bound >= top:
        below = count
    else:
        below = count * _fraction_below(lower, top, bound, linear)
    if upper:
        return below, _midpoint(lower, bound, positive, linear)
    return count - below, _midpoint(bound, top, positive, linear)


def _fraction_below(lower: float, top: float, value: float, linear: bool) -> float:
    """The share of a bucket below `value` (Prometheus' Bucket.FractionBelow): linear, or
    linear in log2 of the bounds' magnitudes (negative buckets mirrored)."""
    if linear:
        return (value - lower) / (top - lower)
    log_lower, log_top, log_value = _log2(abs(lower)), _log2(abs(top)), _log2(abs(value))
    if value > 0:
        return (log_value - log_lower) / (log_top - log_lower)
    return 1 - (log_value - log_top) / (log_lower - log_top)


def _log2(x: float) -> float:
    return math.log2(x) if x > 0 else -math.inf


def _midpoint(lower: float, top: float, positive: bool, linear: bool) -> float:
    """Where the count of a bucket's kept part [lower, top] is taken to lie."""
    if math.isinf(lower):
        if math.isinf(top):
            return 0.0
        return top / 2 if top > 0 else top
    if math.isinf(top):
        return lower
    if linear:
        return (lower + top) / 2
    middle = math.sqrt(abs(lower * top))
    return middle if positive else -middle


def _infinite_bucket_trim(
    lower: float, top: float, count: float, bound: float, upper: bool
) -> tuple[float, float]:
    """A bucket reaching to -Inf or +Inf holding the bound: how its observations spread is
    unknown, so it is kept or dropped whole, except that a custom bucket (-Inf, top] with a
    positive top is taken to start at 0 (Prometheus' handleInfinityBuckets)."""
    finite_top = 0.0 if math.isinf(top) else top
    if math.isinf(lower) and lower < 0:
        if upper:
            if bound >= top:
                return count, 0.0
            if bound > 0 and top > 0 and not math.isinf(top):
                return count * bound / top, bound / 2
            if top <= 0:
                return count, bound
            return 0.0, finite_top
        if bound <= lower:
            return count, 0.0
        if bound >= 0 and top > bound and not math.isinf(top):
            return count * (1 - bound / top), (bound + top) / 2
        return 0.0, finite_top
    finite_lower = 0.0 if math.isinf(lower) else lower
    if upper:
        return 0.0, finite_lower
    if bound >= lower:
        return count, bound
    return 0.0, finite_lower


def _zero_trim(
    h: FloatHistogram, bound: float, negative: bool, positive: bool, upper: bool
) -> tuple[float, float]:
    """What the zero bucket keeps, and the middle of its kept part: it is taken to hold only
    one side of zero when only that side has buckets."""
    lower, top = -h.zero_threshold, h.zero_threshold
    if negative and not positive:
        top = 0.0
    if positive and not negative:
        lower = 0.0
    if upper:
        if bound <= lower:
            return 0.0, 0.0
        if bound >= top:
            return h.zero_count, (lower + top) / 2
        return h.zero_count * (bound - lower) / (top - lower), (lower + bound) / 2
    if bound <= lower:
        return h.zero_count, (lower + top) / 2
    if bound >= top:
        return 0.0, 0.0
    return h.zero_count * (top - bound) / (top - lower), (bound + top) / 2
