"""PromQL over native histogram samples, the parts shared by functions, aggregations and
operators: histogram_quantile, histogram_fraction and histogram_stdvar of one histogram
(Prometheus' HistogramQuantile and HistogramFraction: interpolation on a logarithmic scale inside
exponential buckets, linear inside custom buckets and the zero bucket), the split of a vector into
native and classic histograms, compensated sums and means of histograms, Prometheus' annotation
texts, and results that hold histograms. Range functions over them are in histogram_windows.py,
operators in histogram_operators.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from watchkeeper.model import Labels
from watchkeeper.model.histogram import (
    NOT_RESET,
    RESET,
    UNKNOWN,
    FloatHistogram,
    combined_hint,
    intersect_bounds,
    spans_from_map,
)
from watchkeeper.promql.errors import QueryError
from watchkeeper.promql.summation import kahan_step
from watchkeeper.promql.values import Bools, Floats, HistogramSteps, InstantSteps
from watchkeeper.promql.vectors import drop_name, merge_same_labels
from watchkeeper.store.types import HistogramSamples

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
    if at < 0:  # a count, but no bucket holds anything: NaN observations, or Prometheus' 0
        return (math.nan, QUANTILE_NAN_RESULT) if math.isnan(h.sum) else (0.0, None)
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
            name = dict(labels).get("__name__", "")
            named = f' for metric name "{name}"' if name else ""
            ev.ctx.annotations.warn(
                "PromQL warning: vector contains a mix of classic and native histograms"
                f"{named} ({position})"
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


# --- annotations, and results with histograms in them ------------------------------------------

MIXED_FLOATS = "encountered a mix of histograms and floats for metric name"
NOT_COUNTER = "this native histogram metric is not a counter:"
NOT_GAUGE = "this native histogram metric is not a gauge:"
MIXED_SCHEMAS = (
    "vector contains a mix of histograms with exponential and custom buckets schemas for "
    "metric name"
)
IGNORED_IN_RANGE = (
    "ignored histograms in a range containing both floats and histograms for metric name"
)
Notes = list[tuple[str, str]]  # (kind, text) of annotations, without name and position


def note_all(ev: Evaluator, notes: Notes, labels: Labels, position: str) -> None:
    """Report annotations gathered for one series, named by its metric name."""
    name = dict(labels).get("__name__", "")
    for kind, text in notes:
        line = f'{text} "{name}" ({position})'
        if kind == "warn-plain":  # an annotation that names no metric
            ev.ctx.annotations.warn(f"PromQL warning: {text} ({position})")
        elif kind == "info-plain":
            ev.ctx.annotations.info(f"PromQL info: {text} ({position})")
        elif kind == "warn":
            ev.ctx.annotations.warn(f"PromQL warning: {line}")
        else:
            ev.ctx.annotations.info(f"PromQL info: {line}")


def steps_of(
    labels: list[Labels], values: Floats, present: Bools, maps: list[dict[int, FloatHistogram]]
) -> InstantSteps | HistogramSteps:
    """A function's result with histogram samples among its floats: one row per label set
    (rows that share one are combined, and two samples at one step are Prometheus' error)."""
    if not any(maps):
        return merge_same_labels(labels, values, present)
    if len(set(labels)) == len(labels):
        return HistogramSteps(InstantSteps(labels, values, present), maps)
    has = present | np.array([[j in m for j in range(values.shape[1])] for m in maps], dtype=bool)
    rows: dict[Labels, list[int]] = {}
    for i, ls in enumerate(labels):
        rows.setdefault(ls, []).append(i)
    out_labels = list(rows)
    out_values = np.full((len(out_labels), values.shape[1]), np.nan)
    out_present = np.zeros(out_values.shape, dtype=bool)
    out_maps: list[dict[int, FloatHistogram]] = []
    for k, members in enumerate(rows.values()):
        if (has[members].sum(axis=0) > 1).any():
            raise QueryError("vector cannot contain metrics with the same labelset")
        found: dict[int, FloatHistogram] = {}
        for i in members:
            out_values[k, present[i]] = values[i, present[i]]
            out_present[k] |= present[i]
            found.update(maps[i])
        out_maps.append(found)
    return HistogramSteps(InstantSteps(out_labels, out_values, out_present), out_maps)


def histogram_variance(h: FloatHistogram) -> float:
    """The estimated variance of the observations (histogram_stdvar): each bucket's count at
    its geometric mean (arithmetic for custom buckets, 0 in the zero bucket)."""
    mean = h.sum / h.count if h.count else math.nan
    variance = c = 0.0
    for _, lower, upper, count in h.buckets():
        if h.uses_custom_buckets:
            value = (upper + lower) / 2.0
        elif lower <= 0 <= upper:
            value = 0.0
        else:
            value = math.sqrt(upper * lower)
            if upper < 0:
                value = -value
        delta = value - mean
        variance, c = kahan_step(count * delta * delta, variance, c)
    variance += c
    return variance / h.count if h.count else math.nan


COUNTER_RESET_COLLISION = "conflicting counter resets during histogram"
RECONCILED = "mismatched custom buckets were reconciled during"


def reconciled(histograms: list[FloatHistogram]) -> bool:
    """Whether custom-bucket histograms with different bounds meet (Prometheus' info)."""
    bounds = {h.custom_values for h in histograms if h.uses_custom_buckets}
    return len(bounds) > 1


def _on_one_layout(histograms: list[FloatHistogram]) -> list[FloatHistogram]:
    """The histograms on the layout their sum has: custom buckets on the bounds they all
    have, exponential ones at the coarsest schema with the widest zero bucket. ValueError
    when exponential and custom buckets meet."""
    first = histograms[0]
    if any(h.uses_custom_buckets != first.uses_custom_buckets for h in histograms):
        raise ValueError("histograms with exponential and custom buckets cannot be added")
    if first.uses_custom_buckets:
        common = first.custom_values
        for h in histograms[1:]:
            common = intersect_bounds(common, h.custom_values)
        return [h.on_bounds(common) for h in histograms]
    schema = min(h.schema for h in histograms)
    reduced = [h.reduced(schema) for h in histograms]
    threshold = max(h.zero_threshold for h in reduced)
    while True:  # widening one may widen the zero bucket past a bucket of another
        reduced = [h.widened(threshold) for h in reduced]
        widest = max(h.zero_threshold for h in reduced)
        if widest == threshold:
            return reduced
        threshold = widest


def kahan_sum(histograms: list[FloatHistogram]) -> tuple[FloatHistogram, bool]:
    """The sum of histograms with compensated (Neumaier) summation of every field, at the
    coarsest schema and the widest zero bucket among them (Prometheus' KahanAdd, which keeps
    sums like 1 + 1e100 + 1 - 1e100 exact); and whether their hints conflict (a reset and a
    not_reset among them). ValueError when exponential and custom buckets meet."""
    reduced = _on_one_layout(histograms)
    layout = reduced[0]
    fields = [[0.0, 0.0] for _ in range(3)]  # count, sum, zero count: (total, compensation)
    sides: list[dict[int, list[float]]] = [{}, {}]
    for h in reduced:
        for slot, value in zip(fields, (h.count, h.sum, h.zero_count), strict=True):
            slot[0], slot[1] = kahan_step(value, slot[0], slot[1])
        for side, found in zip(sides, (h.positive(), h.negative()), strict=True):
            for index, value in found.items():
                slot = side.setdefault(index, [0.0, 0.0])
                slot[0], slot[1] = kahan_step(value, slot[0], slot[1])
    pos_spans, pos_buckets = spans_from_map({i: t + c for i, (t, c) in sides[0].items()})
    neg_spans, neg_buckets = spans_from_map({i: t + c for i, (t, c) in sides[1].items()})
    # the sum's hint is Prometheus' adjustCounterReset, one addition after another: a gauge
    # absorbs the rest, unknown stays unknown; but the aggregations and sum_over_time warn of
    # a conflict wherever a reset and a not_reset are among the histograms
    hint = histograms[0].counter_reset_hint
    for h in histograms[1:]:
        hint = combined_hint(hint, h.counter_reset_hint)
    hints = {h.counter_reset_hint for h in histograms}
    collision = RESET in hints and NOT_RESET in hints
    total = FloatHistogram(
        schema=layout.schema,
        count=fields[0][0] + fields[0][1],
        sum=fields[1][0] + fields[1][1],
        zero_threshold=layout.zero_threshold,
        zero_count=fields[2][0] + fields[2][1],
        positive_spans=pos_spans,
        positive_buckets=pos_buckets,
        negative_spans=neg_spans,
        negative_buckets=neg_buckets,
        custom_values=layout.custom_values,
        counter_reset_hint=hint,
    )
    return total, collision


def average(total: FloatHistogram, histograms: list[FloatHistogram]) -> FloatHistogram:
    """The mean of histograms as Prometheus takes it (avg, avg_over_time): their compensated
    sum divided by their number, or, from the first one whose addition would overflow the
    sum, an incremental mean (compensated too). `total` is their sum (its layout and hint)."""
    laid = _on_one_layout(histograms)
    positive = sorted({i for h in laid for i in h.positive()})
    negative = sorted({i for h in laid for i in h.negative()})
    rows = np.array(
        [
            [
                h.count,
                h.sum,
                h.zero_count,
                *(h.positive().get(i, 0.0) for i in positive),
                *(h.negative().get(i, 0.0) for i in negative),
            ]
            for h in laid
        ],
        dtype=np.float64,
    )
    mean = _kahan_mean(rows).tolist()
    split = 3 + len(positive)
    return total._with_buckets(
        dict(zip(positive, mean[3:split], strict=True)),
        dict(zip(negative, mean[split:], strict=True)),
        count=mean[0],
        sum=mean[1],
        zero_count=mean[2],
    )


def _kahan_mean(rows: Floats) -> Floats:
    """The mean of the rows, field by field, in Prometheus' order of operations: a Kahan sum
    while no field of it overflows, then (all fields at once) an incremental mean."""
    n = len(rows)
    with np.errstate(all="ignore"):
        total, compensation = rows[0].copy(), np.zeros(rows.shape[1])
        mean: Floats | None = None
        for k in range(1, n):
            count = k + 1.0
            if mean is None:
                summed, kept = _kahan_steps(rows[k], total, compensation)
                if not np.isinf(summed).any():
                    total, compensation = summed, kept
                    continue
                mean, compensation = total / (count - 1), compensation / (count - 1)
            q = (count - 1) / count
            mean, compensation = _kahan_steps(rows[k] / count, mean * q, compensation * q)
        result: Floats = total / n + compensation / n if mean is None else mean + compensation
        return result


def _kahan_steps(value: Floats, total: Floats, compensation: Floats) -> tuple[Floats, Floats]:
    """`summation.kahan_step` on arrays."""
    summed = total + value
    lost = np.where(
        np.abs(total) >= np.abs(value), (total - summed) + value, (value - summed) + total
    )
    return summed, np.where(np.isinf(summed), 0.0, compensation + lost)


def hints_as_read(series: HistogramSamples) -> HistogramSamples:
    """The samples as Prometheus' HistogramStatsIterator gives them: each one stored with an
    unknown reset hint (the first of a chunk cut at a reset) after the first one read is told
    reset or not_reset from the sample before it. Only annotations can show it: a reset
    meeting a not_reset in sum or sum_over_time is a conflict."""
    hists = list(series.histograms)
    for i in range(1, len(hists)):
        if hists[i].counter_reset_hint == UNKNOWN:
            reset = hists[i].detect_reset(hists[i - 1])
            hists[i] = hists[i].with_hint(RESET if reset else NOT_RESET)
    return HistogramSamples(series.labels, series.timestamps, hists)
