"""Range functions over windows holding native histogram samples (Prometheus' histogramRate and
extrapolatedRate for rate/increase/delta, irate/idelta, sum/avg/count/present/last/first over
time, changes and resets), one window at a time, over the series that hold them; the float
samples of the same windows go through range_functions.py's arrays."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from watchkeeper.model.histogram import GAUGE, FloatHistogram
from watchkeeper.promql.native_histograms import (
    COUNTER_RESET_COLLISION,
    IGNORED_IN_RANGE,
    MIXED_FLOATS,
    MIXED_SCHEMAS,
    NOT_COUNTER,
    NOT_GAUGE,
    RECONCILED,
    Notes,
    average,
    kahan_sum,
    note_all,
    reconciled,
)
from watchkeeper.promql.values import Bools, Floats, HistogramRange

if TYPE_CHECKING:
    from watchkeeper.promql.evaluator import Evaluator

_EXTRAPOLATED = {"rate": (True, True), "increase": (True, False), "delta": (False, False)}
_INSTANT = {"irate": True, "idelta": False}
_SUMMING = {"sum_over_time", "avg_over_time"}
_COUNTING = {"count_over_time", "present_over_time"}
_PICKING = {"last_over_time": -1, "first_over_time": 0}
_SEQUENCE = {"changes", "resets"}
# Range functions that read both kinds; every other one reads floats only (histograms ignored).
HANDLED = {*_EXTRAPOLATED, *_INSTANT, *_SUMMING, *_COUNTING, *_PICKING, *_SEQUENCE}

Point = tuple[int, float | FloatHistogram]


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
    """irate/idelta of the last two samples when both are histograms (Prometheus'
    instantValue)."""
    (t0, before), (t1, last) = points[-2], points[-1]
    if t1 == t0:
        return None
    if not isinstance(before, FloatHistogram) or not isinstance(last, FloatHistogram):
        notes.append(("warn", MIXED_FLOATS))
        return None
    hints = (before.counter_reset_hint, last.counter_reset_hint)
    if per_second and GAUGE in hints:
        notes.append(("warn", NOT_COUNTER))
    if not per_second and hints != (GAUGE, GAUGE):
        notes.append(("warn", NOT_GAUGE))
    result = last
    # after a reset (irate), the last value is the increase since, whatever came before it
    if not (per_second and last.detect_reset(before)):
        if last.uses_custom_buckets != before.uses_custom_buckets:
            notes.append(("warn", MIXED_SCHEMAS))
            return None
        if reconciled([last, before]):
            notes.append(("info-plain", f"{RECONCILED} subtraction"))
        result = last.add(before, negate=True)
    result = result.with_hint(GAUGE).compacted()
    return result.divided((t1 - t0) / 1000) if per_second else result


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


def over_windows(
    ev: Evaluator,
    name: str,
    hr: HistogramRange,
    values: Floats,
    present: Bools,
    position: str,
) -> list[dict[int, FloatHistogram]]:
    """Function `name` over every window holding a histogram, given its results over the
    float samples (`values`, `present`, changed in place where a window's answer is another):
    the histogram results by series and step. Functions that read floats only keep their
    float results, with Prometheus' info where a window holds both kinds."""
    maps: list[dict[int, FloatHistogram]] = [{} for _ in hr.labels]
    floats = hr.floats
    handled = name in HANDLED
    for i, times in enumerate(hr.times):
        if len(times) == 0:
            continue
        notes: Notes = []
        for j in range(len(floats.ends)):
            first, last = hr.window(i, j)
            if first == last:
                continue
            lo, hi = int(floats.lo[i, j]), int(floats.hi[i, j])
            if not handled:
                if hi > lo:
                    notes.append(("info", IGNORED_IN_RANGE))
                continue
            end = int(floats.ends[j])
            value = window_value(
                name,
                list(zip(floats.t[lo:hi].tolist(), floats.v[lo:hi].tolist(), strict=True)),
                list(zip(times[first:last].tolist(), hr.histograms[i][first:last], strict=True)),
                end - floats.range_ms,
                end,
                floats.range_ms,
                notes,
            )
            present[i, j] = False
            if isinstance(value, FloatHistogram):
                maps[i][j] = value
            elif value is not None:
                values[i, j] = value
                present[i, j] = True
        note_all(ev, notes, hr.labels[i], position)
    return maps
