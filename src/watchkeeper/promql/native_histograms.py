"""PromQL over native histogram samples: histogram_quantile and histogram_fraction of one
histogram (Prometheus' HistogramQuantile and HistogramFraction: interpolation on a logarithmic
scale inside exponential buckets, linear inside custom buckets and the zero bucket), and the
split of a vector into its native histograms and its classic buckets that both functions use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from watchkeeper.model import Labels
from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.promql.values import HistogramSteps, InstantSteps
from watchkeeper.promql.vectors import drop_name, merge_same_labels

if TYPE_CHECKING:
    from watchkeeper.promql.evaluator import Evaluator

# An info a computation raises, by its Prometheus text (without the metric name and position).
QUANTILE_NAN_RESULT = "input to histogram_quantile has NaN observations, result is NaN"
QUANTILE_NAN_SKEW = "input to histogram_quantile has NaN observations, result is skewed higher"
FRACTION_NANS = (
    "input to histogram_fraction has NaN observations, which are excluded from all fractions"
)


def _bucket_list(h: FloatHistogram) -> list[list[float]]:
    """[lower, upper, count] of every bucket with a count, lowest first (model.buckets)."""
    return [[lower, upper, count] for _, lower, upper, count in h.buckets()]


def _only_one_side(h: FloatHistogram, bucket: list[float]) -> None:
    """In the zero bucket of a histogram with buckets on one side only, 0 is the other bound."""
    if len(h.negative_buckets) == 0 and len(h.positive_buckets) > 0:
        bucket[0] = 0.0
    elif len(h.positive_buckets) == 0 and len(h.negative_buckets) > 0:
        bucket[1] = 0.0


def histogram_quantile(q: float, h: FloatHistogram) -> tuple[float, str | None]:
    """The q-quantile of the observations, and an info to report, if any."""
    if q < 0:
        return -math.inf, None
    if q > 1:
        return math.inf, None
    if h.count == 0 or math.isnan(q):
        return math.nan, None
    buckets = _bucket_list(h)
    forward = math.isnan(h.sum) or q < 0.5
    order = buckets if forward else buckets[::-1]
    rank = q * h.count if forward else (1 - q) * h.count
    count = 0.0
    at = -1
    for index, (_, _, c) in enumerate(order):
        at = index
        count += c
        if count >= rank:
            break
    if at < 0:
        return math.nan, None  # no bucket holds anything (a count with no buckets)
    bucket = list(order[at])
    if not h.uses_custom_buckets and bucket[0] < 0 < bucket[1]:
        _only_one_side(h, bucket)
    elif h.uses_custom_buckets:
        if bucket[0] == -math.inf:
            if bucket[1] <= 0:
                return bucket[1], None
            bucket[0] = 0.0
        elif bucket[1] == math.inf:
            return bucket[0], None
    count = min(count, h.count)
    info = None
    if count < rank:
        if math.isnan(h.sum):
            return math.nan, QUANTILE_NAN_RESULT
        return bucket[1], None
    rank = rank - (count - bucket[2]) if forward else count - rank
    if math.isnan(h.sum):
        total = count + sum(c for _, _, c in order[at + 1 :])
        if total < h.count:
            info = QUANTILE_NAN_SKEW
    lower, upper, bucket_count = bucket
    fraction = rank / bucket_count
    if h.uses_custom_buckets or (lower <= 0 <= upper):
        return lower + (upper - lower) * fraction, info
    log_lower, log_upper = math.log2(abs(lower)), math.log2(abs(upper))
    if lower > 0:
        return 2.0 ** (log_lower + (log_upper - log_lower) * fraction), info
    return -(2.0 ** (log_upper + (log_lower - log_upper) * (1 - fraction))), info


def _fraction_below(lower: float, upper: float, v: float, linear: bool) -> float:
    if linear:
        return (v - lower) / (upper - lower)
    log_lower, log_upper, log_v = math.log2(abs(lower)), math.log2(abs(upper)), math.log2(abs(v))
    if v > 0:
        return (log_v - log_lower) / (log_upper - log_lower)
    return 1 - ((log_v - log_upper) / (log_lower - log_upper))


def _rank_at(rank: float, bucket: list[float], v: float, linear: bool) -> float:
    """The rank of `v` inside a bucket: linearly (custom buckets, the zero bucket) or on a
    logarithmic scale; a bucket reaching down to -Inf counts whole."""
    lower, upper, count = bucket
    if linear and lower == -math.inf:
        return count
    return rank + count * _fraction_below(lower, upper, v, linear)


def histogram_fraction(low: float, high: float, h: FloatHistogram) -> tuple[float, str | None]:
    """The share of observations between `low` and `high`, and an info to report, if any."""
    if h.count == 0 or math.isnan(low) or math.isnan(high):
        return math.nan, None
    if low >= high:
        return 0.0, None
    buckets = _bucket_list(h)
    count = rank = low_rank = high_rank = 0.0
    low_set = high_set = False
    seen = 0
    for bucket in buckets:
        seen += 1
        count += bucket[2]
        zero_bucket = bucket[0] <= 0 <= bucket[1]
        if zero_bucket:
            _only_one_side(h, bucket)
        lower, upper = bucket[0], bucket[1]
        linear = h.uses_custom_buckets or zero_bucket
        if not low_set and lower >= low:
            low_rank, low_set = rank, True
        if not high_set and lower >= high:
            high_rank, high_set = rank, True
        if low_set and high_set:
            break
        if not low_set and lower < low < upper:
            low_rank, low_set = _rank_at(rank, bucket, low, linear), True
        if not high_set and lower < high < upper:
            high_rank, high_set = _rank_at(rank, bucket, high, linear), True
        if low_set and high_set:
            break
        rank += bucket[2]
    info = None
    if math.isnan(h.sum):
        count += sum(c for _, _, c in buckets[seen:])
        if count < h.count:
            info = FRACTION_NANS
    else:
        count = h.count
    if not low_set or low_rank > count:
        low_rank = count
    if not high_set or high_rank > count:
        high_rank = count
    return (high_rank - low_rank) / h.count, info


def split_classic(
    ev: Evaluator, vector: InstantSteps | HistogramSteps, position: str
) -> tuple[InstantSteps, list[tuple[Labels, int, FloatHistogram]]]:
    """The classic bucket samples (floats) of a vector, and its native histograms as (labels,
    step, histogram). A native histogram with exactly the labels of a classic histogram's
    buckets (without `le`) at one step is a conflict: both are left out there, with
    Prometheus' warning."""
    if isinstance(vector, InstantSteps):
        return vector, []
    floats = vector.floats
    natives = [
        (floats.labels[i], j, h)
        for i, found in enumerate(vector.histograms)
        for j, h in found.items()
    ]
    if not natives:
        return floats, natives
    rows_by_key: dict[Labels, list[int]] = {}
    for i, labels in enumerate(floats.labels):
        if any(name == "le" for name, _ in labels):
            key = tuple(pair for pair in labels if pair[0] != "le")
            rows_by_key.setdefault(key, []).append(i)
    present = floats.present
    kept = []
    for labels, j, h in natives:
        rows = rows_by_key.get(labels)
        if rows and present[rows, j].any():
            if present is floats.present:
                present = present.copy()
            present[rows, j] = False
            ev.ctx.annotations.warn(
                "PromQL warning: vector contains a mix of classic and native histograms "
                f"({position})"
            )
            continue
        kept.append((labels, j, h))
    if present is not floats.present:
        floats = InstantSteps(floats.labels, floats.values, present, floats.sample_ts)
    return floats, kept


def per_histogram(
    ev: Evaluator,
    natives: list[tuple[Labels, int, FloatHistogram]],
    compute: Callable[[int, FloatHistogram], tuple[float, str | None]],
    position: str,
) -> InstantSteps:
    """`compute(step, histogram)` of each native histogram sample, named without the metric
    name; the infos it raises reported with the metric's name, as Prometheus does."""
    steps = len(ev.ts)
    rows: dict[Labels, int] = {}
    labels: list[Labels] = []
    for sample_labels, _, _ in natives:
        if sample_labels not in rows:
            rows[sample_labels] = len(labels)
            labels.append(sample_labels)
    values = np.full((len(labels), steps), np.nan)
    present = np.zeros((len(labels), steps), dtype=bool)
    for sample_labels, j, h in natives:
        value, info = compute(j, h)
        i = rows[sample_labels]
        values[i, j] = value
        present[i, j] = True
        if info is not None:
            name = dict(sample_labels).get("__name__", "")
            named = f' for metric name "{name}"' if name else ""
            ev.ctx.annotations.info(f"PromQL info: {info}{named} ({position})")
    return merge_same_labels([drop_name(ls) for ls in labels], values, present)
