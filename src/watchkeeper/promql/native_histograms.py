"""PromQL over native histogram samples: histogram_quantile and histogram_fraction of one
histogram (Prometheus' HistogramQuantile and HistogramFraction: interpolation on a logarithmic
scale inside exponential buckets, linear inside custom buckets and the zero bucket), and the
split of a vector into its native histograms and its classic buckets that both functions use.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from watchkeeper.model import Labels
from watchkeeper.model.histogram import (
    GAUGE,
    NOT_RESET,
    RESET,
    UNKNOWN,
    FloatHistogram,
    intersect_bounds,
    spans_from_map,
)
from watchkeeper.promql.errors import QueryError
from watchkeeper.promql.summation import kahan_step
from watchkeeper.promql.values import Bools, Floats, HistogramSteps, InstantSteps, Value
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


# --- range vectors ---------------------------------------------------------------------------

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

_EXTRAPOLATED = {"rate": (True, True), "increase": (True, False), "delta": (False, False)}
_INSTANT = {"irate": True, "idelta": False}
_SUMMING = {"sum_over_time", "avg_over_time"}
_COUNTING = {"count_over_time", "present_over_time"}
_PICKING = {"last_over_time": -1, "first_over_time": 0}
_SEQUENCE = {"changes", "resets"}
# Range functions that read both kinds; every other one reads floats only (histograms ignored).
HANDLED = {*_EXTRAPOLATED, *_INSTANT, *_SUMMING, *_COUNTING, *_PICKING, *_SEQUENCE}

Point = tuple[int, float | FloatHistogram]
Notes = list[tuple[str, str]]  # (kind, text) of annotations, without name and position


def _merged(
    floats: list[tuple[int, float]], hists: list[tuple[int, FloatHistogram]]
) -> list[Point]:
    points: list[Point] = [*floats, *hists]
    return sorted(points, key=lambda p: p[0])


def histogram_rate(
    points: list[tuple[int, FloatHistogram]], counter: bool, notes: Notes
) -> FloatHistogram | None:
    """Prometheus' histogramRate: the last histogram minus the first, counter resets added
    back; None (with a warning) where the histograms cannot be combined."""
    prev, last = points[0][1], points[-1][1]
    custom = prev.uses_custom_buckets
    if counter and GAUGE in (prev.counter_reset_hint, last.counter_reset_hint):
        notes.append(("warn", NOT_COUNTER))
    if counter and points[1][1].detect_reset(prev):
        # a reset between the first two: the first one's layout does not matter
        second = points[1][1]
        prev = FloatHistogram(schema=second.schema, custom_values=second.custom_values)
        custom = second.uses_custom_buckets
    if last.uses_custom_buckets != custom:
        notes.append(("warn", MIXED_SCHEMAS))
        return None
    schema = min(last.schema, prev.schema)
    for _, current in points[1:-1]:
        if not counter:
            continue
        if current.counter_reset_hint == GAUGE:
            notes.append(("warn", NOT_COUNTER))
        schema = min(schema, current.schema)
        if current.uses_custom_buckets != custom:
            notes.append(("warn", MIXED_SCHEMAS))
            return None
    try:
        if reconciled([last, prev]):
            notes.append(("info-plain", f"{RECONCILED} subtraction"))
        result = last.reduced(schema).add(prev, negate=True)
        if counter:
            before = prev
            for _, current in points[1:]:
                if current.detect_reset(before):
                    if reconciled([result, before]):
                        notes.append(("info-plain", f"{RECONCILED} addition"))
                    result = result.add(before)
                before = current
    except ValueError:
        notes.append(("warn", MIXED_SCHEMAS))
        return None
    hints = (points[0][1].counter_reset_hint, points[-1][1].counter_reset_hint)
    if not counter and hints != (GAUGE, GAUGE):
        notes.append(("warn", NOT_GAUGE))
    return result.with_hint(GAUGE).compacted()


def _extrapolated(
    points: list[tuple[int, FloatHistogram]],
    range_start: int,
    range_end: int,
    range_ms: int,
    counter: bool,
    per_second: bool,
    notes: Notes,
) -> FloatHistogram | None:
    """Prometheus' extrapolatedRate for histogram samples."""
    if len(points) < 2:
        return None
    result = histogram_rate(points, counter, notes)
    if result is None:
        return None
    first_t, last_t = points[0][0], points[-1][0]
    to_start = (first_t - range_start) / 1000
    to_end = (range_end - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    average = sampled / (len(points) - 1)
    threshold = average * 1.1
    if to_start >= threshold:
        to_start = average / 2
    if counter:
        to_zero = to_start
        first_count = points[0][1].count
        if result.count > 0 and first_count >= 0:
            to_zero = sampled * (first_count / result.count)
        to_start = min(to_start, to_zero)
    if to_end >= threshold:
        to_end = average / 2
    factor = (sampled + to_start + to_end) / sampled
    if per_second:
        factor /= range_ms / 1000
    return result.scaled(factor)


def _instant(points: list[Point], per_second: bool, notes: Notes) -> FloatHistogram | None:
    """irate/idelta of the last two samples when both are histograms."""
    (t0, before), (t1, last) = points[-2], points[-1]
    if not isinstance(before, FloatHistogram) or not isinstance(last, FloatHistogram):
        notes.append(("warn", MIXED_FLOATS))
        return None
    if last.uses_custom_buckets != before.uses_custom_buckets:
        notes.append(("warn", MIXED_SCHEMAS))
        return None
    if per_second and GAUGE in (before.counter_reset_hint, last.counter_reset_hint):
        notes.append(("warn", NOT_COUNTER))
    try:
        # after a reset (irate), the last value is the increase since
        reset = per_second and last.detect_reset(before)
        result = last if reset else last.add(before, negate=True)
    except ValueError:
        notes.append(("warn", MIXED_SCHEMAS))
        return None
    if per_second:
        result = result.scaled(1000 / (t1 - t0))
    return result.with_hint(GAUGE).compacted()


def _sequence_count(name: str, points: list[Point]) -> float:
    """changes() or resets() over samples of either kind (a change of kind counts as both)."""
    count = 0
    for (_, before), (_, current) in itertools.pairwise(points):
        if isinstance(before, FloatHistogram) and isinstance(current, FloatHistogram):
            changed = (
                not current.same_as(before) if name == "changes" else current.detect_reset(before)
            )
        elif isinstance(before, FloatHistogram) or isinstance(current, FloatHistogram):
            changed = True
        elif name == "changes":
            changed = current != before and not (math.isnan(before) and math.isnan(current))
        else:
            changed = current < before
        count += changed
    return float(count)


def window_value(
    name: str,
    floats: list[tuple[int, float]],
    hists: list[tuple[int, FloatHistogram]],
    range_start: int,
    range_end: int,
    range_ms: int,
    notes: Notes,
) -> float | FloatHistogram | None:
    """A HANDLED function of one window holding at least one histogram; None: no sample."""
    if name in _EXTRAPOLATED:
        if floats:
            notes.append(("warn", MIXED_FLOATS))
            return None
        counter, per_second = _EXTRAPOLATED[name]
        return _extrapolated(hists, range_start, range_end, range_ms, counter, per_second, notes)
    points = _merged(floats, hists)
    if name in _INSTANT:
        return _instant(points, _INSTANT[name], notes) if len(points) >= 2 else None
    if name in _SUMMING:
        if floats:
            notes.append(("warn", MIXED_FLOATS))
            return None
        try:
            total, collision = kahan_sum([h for _, h in hists])
        except ValueError:
            notes.append(("warn", MIXED_SCHEMAS))
            return None
        if collision:
            notes.append(("warn-plain", f"{COUNTER_RESET_COLLISION} aggregation"))
        if reconciled([h for _, h in hists]):
            notes.append(("info-plain", f"{RECONCILED} aggregation"))
        if name == "avg_over_time":
            total = average(total, [h for _, h in hists])
        return total.compacted()
    if name in _COUNTING:
        return float(len(points)) if name == "count_over_time" else 1.0
    if name in _PICKING:
        return points[_PICKING[name]][1]
    return _sequence_count(name, points)


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


# --- binary operators ------------------------------------------------------------------------

_TOKEN_TAG = 0x7FF4_0000_0000_0000  # a signalling NaN no arithmetic here produces
_TOKEN_MASK = 0xFFFC_0000_0000_0000
_DROP = 0  # token 0: an element an operator leaves out
_ABSENT = 1  # token 1: no sample there (so no annotation for what meets it)


class Tokens:
    """Native histogram samples passed through the float operator machinery as NaN tokens
    (an index into `table` in the payload), so matching, grouping and filtering work as for
    floats, and `apply` works on each element where a histogram meets an operator (Prometheus'
    vectorElemBinop)."""

    def __init__(self, ev: Evaluator, base: Callable[..., tuple[Floats, Bools | None]]) -> None:
        self.ev = ev
        self.base = base
        self.table: list[FloatHistogram | None] = [None, None]
        self.absent = self.token(None, _ABSENT)

    def token(self, histogram: FloatHistogram | None, index: int = _DROP) -> float:
        if histogram is not None:
            index = len(self.table)
            self.table.append(histogram)
        return float(np.array([_TOKEN_TAG | index], dtype=np.uint64).view(np.float64)[0])

    def tokens_in(self, values: Floats) -> Bools:
        found: Bools = (values.view(np.uint64) & np.uint64(_TOKEN_MASK)) == np.uint64(_TOKEN_TAG)
        return found

    def encode(self, value: Value) -> Value:
        """An operand with its histograms, and the places without a sample, as tokens."""
        if isinstance(value, HistogramSteps):
            floats = value.floats
        elif isinstance(value, InstantSteps):
            floats = value
        else:
            return value
        if self.tokens_in(floats.values[floats.present]).any():
            raise QueryError("a float sample has the bits the engine marks histograms with")
        values, present = floats.values.copy(), floats.present.copy()
        if isinstance(value, HistogramSteps):
            for i, found in enumerate(value.histograms):
                for j, histogram in found.items():
                    values[i, j] = self.token(histogram)
                    present[i, j] = True
        values[~present] = self.absent
        return InstantSteps(floats.labels, values, present, floats.sample_ts)

    def _value(self, x: float) -> float | FloatHistogram:
        if not self.tokens_in(np.array([x]))[0]:
            return x
        found = self.table[int(np.array([x]).view(np.uint64)[0] & ~np.uint64(_TOKEN_MASK))]
        assert found is not None
        return found

    def apply(
        self, op: str, lhs: Floats, rhs: Floats, return_bool: bool
    ) -> tuple[Floats, Bools | None]:
        lhs, rhs = np.broadcast_arrays(np.asarray(lhs), np.asarray(rhs))
        absent = (lhs.view(np.uint64) == np.float64(self.absent).view(np.uint64)) | (
            rhs.view(np.uint64) == np.float64(self.absent).view(np.uint64)
        )
        special = (self.tokens_in(lhs) | self.tokens_in(rhs)) & ~absent
        values, keep = self.base(op, lhs, rhs, return_bool)
        if not special.any():
            return values, keep
        values = np.array(values, dtype=np.float64)
        keep = None if keep is None else np.array(keep, dtype=bool)
        for index in zip(*np.nonzero(special), strict=True):
            a, b = self._value(float(lhs[index])), self._value(float(rhs[index]))
            result, passes = self._element(op, a, b)
            if keep is not None:  # a filter: the left side's own sample, if it passes
                keep[index] = passes
            elif return_bool and op in _COMPARISONS:
                values[index] = float(passes) if result is not None else self.token(None)
            else:
                values[index] = result if isinstance(result, float) else self.token(result)
        return values, keep

    def _element(
        self, op: str, a: float | FloatHistogram, b: float | FloatHistogram
    ) -> tuple[float | FloatHistogram | None, bool]:
        """The result of one element (None: left out) and whether a comparison passes."""
        left, right = isinstance(a, FloatHistogram), isinstance(b, FloatHistogram)
        try:
            if left and right:
                assert isinstance(a, FloatHistogram) and isinstance(b, FloatHistogram)
                if op in ("+", "-") and reconciled([a, b]):
                    kind = "addition" if op == "+" else "subtraction"
                    self.ev.ctx.annotations.info(f"PromQL info: {RECONCILED} {kind} (1:1)")
                if op == "+":
                    return a.add(b).compacted(), True
                if op == "-":
                    return a.add(b, negate=True).with_hint(GAUGE).compacted(), True
                if op in ("==", "!="):
                    same = a.compacted().same_as(b.compacted()) and a.sum == b.sum
                    return a, same if op == "==" else not same
            elif left and isinstance(b, float):
                assert isinstance(a, FloatHistogram)
                if op == "*":
                    return a.scaled(b).compacted(), True
                if op == "/":
                    return a.divided(b).compacted(), True
            elif right and isinstance(a, float) and op == "*":
                assert isinstance(b, FloatHistogram)
                return b.scaled(a).compacted(), True
        except ValueError:
            self.ev.ctx.annotations.warn(
                f"PromQL warning: {MIXED_SCHEMAS.rsplit(' for ', 1)[0]} (1:1)"
            )
            return None, False
        kinds = ["histogram" if x else "float" for x in (left, right)]
        self.ev.ctx.annotations.info(
            "PromQL info: incompatible sample types encountered for binary operator "
            f'"{op}": {kinds[0]} {op} {kinds[1]} (1:1)'
        )
        return None, False

    def decode(self, value: Value) -> Value:
        """The operator's result with its tokens made histograms again (or left out)."""
        if not isinstance(value, InstantSteps):
            return value
        marked = self.tokens_in(value.values) & value.present
        if not marked.any():
            return value
        values, present = value.values.copy(), value.present.copy()
        maps: list[dict[int, FloatHistogram]] = [{} for _ in value.labels]
        for i, j in zip(*np.nonzero(marked), strict=True):
            index = int(values[i : i + 1, j].view(np.uint64)[0] & ~np.uint64(_TOKEN_MASK))
            found = self.table[index]  # None: left out
            values[i, j] = np.nan
            present[i, j] = False
            if isinstance(found, FloatHistogram):
                maps[int(i)][int(j)] = found
        return steps_of(value.labels, values, present, maps)


_COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}


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


def kahan_sum(histograms: list[FloatHistogram]) -> tuple[FloatHistogram, bool]:
    """The sum of histograms with compensated (Neumaier) summation of every field, at the
    coarsest schema and the widest zero bucket among them (Prometheus' KahanAdd, which keeps
    sums like 1 + 1e100 + 1 - 1e100 exact); and whether their hints collide (a reset and a
    not_reset among them). ValueError when custom bucket bounds differ."""
    first = histograms[0]
    if any(h.uses_custom_buckets != first.uses_custom_buckets for h in histograms):
        raise ValueError("histograms with exponential and custom buckets cannot be added")
    if first.uses_custom_buckets:
        common = first.custom_values
        for h in histograms[1:]:
            common = intersect_bounds(common, h.custom_values)
        histograms = [h.on_bounds(common) for h in histograms]
        first = histograms[0]
    schema = min(h.schema for h in histograms)
    reduced = [h.reduced(schema) for h in histograms]
    threshold = max(h.zero_threshold for h in reduced)
    while True:  # widening one may widen the zero bucket past a bucket of another
        reduced = [h.widened(threshold) for h in reduced]
        widest = max(h.zero_threshold for h in reduced)
        if widest == threshold:
            break
        threshold = widest
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
    # Prometheus' adjustCounterReset, one addition after another: a gauge absorbs the rest,
    # unknown stays unknown, and only reset meeting not_reset head on collides
    hint = first.counter_reset_hint
    collision = False
    for h in histograms[1:]:
        theirs = h.counter_reset_hint
        if {hint, theirs} == {RESET, NOT_RESET}:
            collision = True
        hint = _combined(hint, theirs)
    total = FloatHistogram(
        schema=schema,
        count=fields[0][0] + fields[0][1],
        sum=fields[1][0] + fields[1][1],
        zero_threshold=threshold,
        zero_count=fields[2][0] + fields[2][1],
        positive_spans=pos_spans,
        positive_buckets=pos_buckets,
        negative_spans=neg_spans,
        negative_buckets=neg_buckets,
        custom_values=first.custom_values,
        counter_reset_hint=hint,
    )
    return total, collision


def average(total: FloatHistogram, histograms: list[FloatHistogram]) -> FloatHistogram:
    """The mean of histograms from their sum, or, where the sum overflowed what the inputs
    did not, by incremental mean, as Prometheus switches to it."""
    fields = (total.count, total.sum, total.zero_count, *total.positive_buckets)
    if not any(math.isinf(v) for v in (*fields, *total.negative_buckets)) or any(
        math.isinf(h.count) or math.isinf(h.sum) for h in histograms
    ):
        return total.divided(len(histograms))
    mean = histograms[0]
    for k, h in enumerate(histograms[1:], start=2):
        mean = mean.add(h.divided(k).add(mean.divided(k), negate=True))
    return mean.with_hint(total.counter_reset_hint)


def _combined(mine: int, theirs: int) -> int:
    if mine == theirs:
        return mine
    if GAUGE in (mine, theirs):
        return GAUGE
    return UNKNOWN
