"""Functions over range vectors (rate, increase, *_over_time, deriv, ...), for every series and
step at once.

Windows index into one flat sample array, so a function reads its first and last samples with
fancy indexing, counts resets and changes with cumulative sums, and reduces whole windows by
gathering their samples into one array and reducing segments (chunked to bound memory).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from watchkeeper.promql import regression
from watchkeeper.promql.aggregations import quantile_columns
from watchkeeper.promql.summation import sum_segments, variance_segments
from watchkeeper.promql.values import Bools, Floats, Ints, RangeSteps

Result = tuple[Floats, Bools]
# samples gathered per chunk of windows, to bound the memory a long range query takes: each
# chunk's samples, their indexes and a reducer's sort are alive at once (512 KiB each)
GATHER_CHUNK = 65_536


def _first_last(rs: RangeSteps, need: int) -> tuple[Bools, Ints, Ints]:
    counts = rs.counts
    ok = counts >= need
    first = np.where(ok, rs.lo, 0)
    last = np.where(ok, rs.hi - 1, 0)
    return ok, first, last


def extrapolated(rs: RangeSteps, *, counter: bool, per_second: bool) -> Result:
    """rate, increase and delta: the change over the window, extrapolated to the window's edges
    unless a series starts or ends inside it (Prometheus' extrapolatedRate). Computed in place
    where it can be, in the order Prometheus computes it: fewer temporaries, the same bits."""
    ok, first, last = _first_last(rs, 2)
    if not ok.any():
        return np.zeros(ok.shape), ok
    t, v = rs.t, rs.v
    with np.errstate(all="ignore"):
        first_v = v[first]
        result = v[last]
        result -= first_v
        if counter:
            corrections = _reset_corrections(rs)
            result += corrections[last]
            result -= corrections[first]
            del corrections
        t_first, t_last = t[first], t[last]
        del first, last
        sampled = (t_last - t_first) / 1000.0
        to_start = (t_first - (rs.ends - rs.range_ms)[None, :]) / 1000.0
        to_end = (rs.ends[None, :] - t_last) / 1000.0
        del t_first, t_last
        average = sampled / (rs.counts - 1)
        threshold = average * 1.1
        half = np.divide(average, 2, out=average)
        np.copyto(to_start, half, where=to_start >= threshold)
        if counter:
            to_zero = first_v / result
            to_zero *= sampled
            use_zero = (result > 0) & (first_v >= 0) & (to_zero < to_start)
            np.copyto(to_start, to_zero, where=use_zero)
            del to_zero, use_zero
        np.copyto(to_end, half, where=to_end >= threshold)
        del half, threshold, first_v
        factor = sampled + to_start
        factor += to_end
        factor /= sampled
        if per_second:
            factor /= rs.range_ms / 1000.0
        result *= factor
    return result, ok


def _reset_corrections(rs: RangeSteps) -> Floats:
    """Running sum, within each series, of the value before every counter reset."""
    v = rs.v
    add = np.where(v[1:] < v[:-1], v[:-1], 0.0)
    add[_boundaries(rs, len(add))] = 0.0  # never across two series
    return np.concatenate(([0.0], np.cumsum(add)))


def _boundaries(rs: RangeSteps, size: int) -> Ints:
    """Positions in a pairwise-difference array (`x[k]` compares samples k and k+1) that pair
    two different series (or the last series and the unused sample after it)."""
    positions: Ints = rs.bounds[1:] - 1
    return positions[(positions >= 0) & (positions < size)]


def _running_count(rs: RangeSteps, changed: Bools) -> Floats:
    """Running count within each series of the positions (after the first) where `changed`."""
    flags = changed.astype(np.float64)
    flags[_boundaries(rs, len(flags))] = 0.0
    return np.concatenate(([0.0], np.cumsum(flags)))


def resets(rs: RangeSteps) -> Result:
    ok, first, last = _first_last(rs, 1)
    v = rs.v
    running = _running_count(rs, v[1:] < v[:-1])
    return running[last] - running[first], ok


def changes(rs: RangeSteps) -> Result:
    ok, first, last = _first_last(rs, 1)
    v = rs.v
    same = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
    running = _running_count(rs, ~same)
    return running[last] - running[first], ok


def instant_change(rs: RangeSteps, *, per_second: bool) -> Result:
    """irate and idelta: from the last two samples of the window."""
    ok, _, last = _first_last(rs, 2)
    prev = np.where(ok, last - 1, 0)
    t, v = rs.t, rs.v
    with np.errstate(all="ignore"):
        result = v[last] - v[prev]
        interval = t[last] - t[prev]
        if per_second:
            result = np.where(v[last] < v[prev], v[last], result)
            result = result / (interval / 1000.0)
    return result, ok & (interval != 0)


def first_over_time(rs: RangeSteps) -> Result:
    ok, first, _ = _first_last(rs, 1)
    return rs.v[first], ok


def last_over_time(rs: RangeSteps) -> Result:
    ok, _, last = _first_last(rs, 1)
    return rs.v[last], ok


def count_over_time(rs: RangeSteps) -> Result:
    counts = rs.counts
    return counts.astype(np.float64), counts > 0


def present_over_time(rs: RangeSteps) -> Result:
    counts = rs.counts
    return np.ones(counts.shape), counts > 0


Reducer = Callable[[Floats, Ints, Ints, Ints, Ints], Floats]

# A range function's temporaries are (series x steps) arrays, a dozen of them for rate(): they
# are computed for this many cells at a time, 64 KiB per array (the 1 h histogram queries have
# 600 Ki cells; chunks eight times larger were no faster and held 8 MiB more; chunks half
# this size were 9 % slower on the 1 h sum of rate() over 1,666 series, for 0.5 MiB less).
FUNCTION_CELLS = 1 << 13


def by_rows(compute: Callable[..., Result], rs: RangeSteps, *args: object) -> Result:
    """`compute(rs, *args)` over the series of `rs` a few at a time (FUNCTION_CELLS): every
    range function answers each series on its own."""
    series, steps = rs.lo.shape
    per = max(1, FUNCTION_CELLS // max(steps, 1))
    if series <= per:
        return compute(rs, *args)
    values = np.empty((series, steps))
    present = np.empty((series, steps), dtype=bool)
    for first in range(0, series, per):
        last = min(first + per, series)
        values[first:last], present[first:last] = compute(rs.rows(first, last), *args)
    return values, present


def reduce_windows(
    rs: RangeSteps, reducer: Reducer, min_count: int = 1, only: Bools | None = None
) -> Result:
    """Applies `reducer(samples, segment_starts, counts, window_index, sample_times)` to the
    windows holding at least `min_count` samples (of those, only to the windows marked in
    `only`, leaving 0 at the others), gathering their samples chunk by chunk."""
    counts = rs.counts.ravel()
    out = np.zeros(counts.shape)
    ok = counts >= max(min_count, 1)
    windows = np.flatnonzero(ok if only is None else ok & only.ravel())
    lo = rs.lo.ravel()
    position = 0
    while position < len(windows):
        cumulative = np.cumsum(counts[windows[position:]])
        take = max(1, int(np.searchsorted(cumulative, GATHER_CHUNK, side="right")))
        chunk = windows[position : position + take]
        position += take
        c = counts[chunk]
        seg = np.concatenate(([0], np.cumsum(c)[:-1]))
        idx = np.repeat(lo[chunk] - seg, c) + np.arange(int(c.sum()))
        with np.errstate(all="ignore"):
            out[chunk] = reducer(rs.v[idx], seg, c, chunk, rs.t[idx])
    return out.reshape(rs.lo.shape), ok.reshape(rs.lo.shape)


def _sum(g: Floats, seg: Ints, c: Ints, _w: Ints, _t: Ints) -> Floats:
    return sum_segments(g, seg)


def _avg(g: Floats, seg: Ints, c: Ints, _w: Ints, _t: Ints) -> Floats:
    total = sum_segments(g, seg)
    mean = total / c
    overflow = np.isinf(total) & ~np.logical_or.reduceat(np.isinf(g), seg)
    if overflow.any():
        scaled = np.add.reduceat(g / np.repeat(c, c), seg)
        mean = np.where(overflow, scaled, mean)
    return mean


def _variance(g: Floats, seg: Ints, c: Ints) -> Floats:
    column = g[:, None]
    return variance_segments(column, np.ones_like(column, dtype=bool), seg, compensated=True)[:, 0]


def _stdvar(g: Floats, seg: Ints, c: Ints, _w: Ints, _t: Ints) -> Floats:
    return _variance(g, seg, c)


def _stddev(g: Floats, seg: Ints, c: Ints, _w: Ints, _t: Ints) -> Floats:
    return np.sqrt(_variance(g, seg, c))


SIMPLE_OVER_TIME: dict[str, Reducer] = {
    "sum_over_time": _sum,
    "avg_over_time": _avg,
    "stddev_over_time": _stddev,
    "stdvar_over_time": _stdvar,
}

# min/max_over_time use a table of extremes when the windows hold each sample at least this
# many times on average (a range query's overlapping windows) and more often than the table has
# levels; the table is built for series holding about TABLE_SAMPLES samples at a time
TABLE_OVERLAP = 4
TABLE_SAMPLES = 1 << 20


def extreme_over_time(rs: RangeSteps, which: str) -> Result:
    """min_over_time and max_over_time (NaN only where every sample is NaN): from a table of
    extremes (table_extremes) when the windows overlap enough for it to pay, else window by
    window."""
    pick = np.fmin if which == "min" else np.fmax
    longest = int(rs.counts.max()) if rs.counts.size else 0
    if rs.overlap >= max(TABLE_OVERLAP, longest.bit_length()):
        return table_extremes(rs, pick)

    def reducer(g: Floats, seg: Ints, c: Ints, _w: Ints, _t: Ints) -> Floats:
        result: Floats = pick.reduceat(g, seg)
        return result

    return reduce_windows(rs, reducer)


def table_extremes(rs: RangeSteps, pick: np.ufunc) -> Result:
    """Every window's extreme (`pick`: np.fmin or np.fmax) from a sparse table: level k holds
    the extreme of every run of 2**k samples, built from level k - 1 in one pass, and a
    window's extreme is that of the two runs of the largest such length that cover it from
    both ends. That is samples x log2(longest window) work instead of the windows' samples one
    by one (a 1 h window at a 30 s step holds each sample 120 times)."""
    counts = rs.counts
    ok = counts >= 1
    out = np.zeros(counts.shape)
    # the run length used per window: the largest power of two not over its count (frexp's
    # exponent is exact, where a rounded log2 could land a count just under a power too high)
    level = np.where(ok, np.frexp(counts.astype(np.float64))[1] - 1, -1)
    bounds = rs.bounds
    first = 0
    while first < len(bounds) - 1:
        # the series from `first` holding about TABLE_SAMPLES samples (at least one series)
        after = int(np.searchsorted(bounds, bounds[first] + TABLE_SAMPLES, side="right")) - 1
        last = min(max(after, first + 1), len(bounds) - 1)
        base = int(bounds[first])
        table = rs.v[base : bounds[last]]
        levels, lo, hi = level[first:last], rs.lo[first:last] - base, rs.hi[first:last] - base
        group = out[first:last]
        for k in range(int(levels.max()) + 1 if levels.size else 0):
            if k:
                span = 1 << (k - 1)
                table = pick(table[:-span], table[span:])
            here = levels == k
            if here.any():
                group[here] = pick(table[lo[here]], table[hi[here] - (1 << k)])
        first = last
    return out, ok


def _padded(g: Floats, seg: Ints, c: Ints) -> tuple[Floats, Bools]:
    """Windows as columns of a (longest window x windows) array, with a mask of real samples."""
    width = int(c.max())
    offsets = np.arange(len(g)) - np.repeat(seg, c)
    column = np.repeat(np.arange(len(c)), c)
    padded = np.zeros((width, len(c)))
    mask = np.zeros((width, len(c)), dtype=bool)
    padded[offsets, column] = g
    mask[offsets, column] = True
    return padded, mask


def quantile_over_time(rs: RangeSteps, q: Floats) -> Result:
    steps = rs.lo.shape[1]

    def reducer(g: Floats, seg: Ints, c: Ints, w: Ints, _t: Ints) -> Floats:
        padded, mask = _padded(g, seg, c)
        return quantile_columns(q[w % steps], padded, mask)

    return reduce_windows(rs, reducer)


def mad_over_time(rs: RangeSteps) -> Result:
    def reducer(g: Floats, seg: Ints, c: Ints, _w: Ints, _t: Ints) -> Floats:
        padded, mask = _padded(g, seg, c)
        half = np.full(len(c), 0.5)
        median = quantile_columns(half, padded, mask)
        mad = quantile_columns(half, np.abs(padded - median[None, :]), mask)
        # a NaN sample makes the deviation unknown rather than being sorted away
        return np.where(np.logical_or.reduceat(np.isnan(g), seg), np.nan, mad)

    return reduce_windows(rs, reducer)


def ts_of(rs: RangeSteps, which: str) -> Result:
    """ts_of_{first,last,min,max}_over_time: the time (seconds) of that sample; for min and
    max the last one reaching it, NaN only when every sample is NaN."""
    if which in ("first", "last"):
        ok, first, last = _first_last(rs, 1)
        chosen = first if which == "first" else last
        return rs.t[chosen] / 1000.0, ok

    def reducer(g: Floats, seg: Ints, c: Ints, _w: Ints, t: Ints) -> Floats:
        extreme = (np.fmin if which == "min" else np.fmax).reduceat(g, seg)
        target = np.repeat(extreme, c)
        hit = (g == target) | (np.isnan(target) & np.isnan(g))
        index = np.where(hit, np.arange(len(g)), -1)
        result: Floats = t[np.maximum.reduceat(index, seg)] / 1000.0
        return result

    return reduce_windows(rs, reducer)


def deriv(rs: RangeSteps) -> Result:
    """The slope of each window's least-squares line (x from the window's first sample)."""

    def reducer(g: Floats, seg: Ints, c: Ints, _w: Ints, t: Ints) -> Floats:
        x = (t - np.repeat(t[seg], c)) / 1000.0
        return regression.window_lines(g, seg, c, x)[0]

    if not regression.windows_overlap(rs):
        return reduce_windows(rs, reducer, min_count=2)
    # (an empty window at the very end has its bounds one past the last sample)
    lines = regression.running_lines(rs, rs.t[np.minimum(rs.lo, len(rs.t) - 1)])
    answer = lines.slope
    kept = lines.usable & regression.trusted(answer, lines.slope_error)
    return _refit(rs, answer, kept, reducer)


def predict_linear(rs: RangeSteps, seconds: Floats, eval_ts: Ints) -> Result:
    """Each window's least-squares line, `seconds` after the evaluation time."""
    steps = rs.lo.shape[1]

    def reducer(g: Floats, seg: Ints, c: Ints, w: Ints, t: Ints) -> Floats:
        at = eval_ts[w % steps]
        x = (t - np.repeat(at, c)) / 1000.0
        slope, intercept = regression.window_lines(g, seg, c, x)
        predicted: Floats = slope * seconds[w % steps] + intercept
        return predicted

    if not regression.windows_overlap(rs):
        return reduce_windows(rs, reducer, min_count=2)
    reference = np.broadcast_to(eval_ts[None, :], rs.lo.shape)
    lines = regression.running_lines(rs, reference)
    ahead = seconds[None, :]
    with np.errstate(all="ignore"):
        answer = lines.slope * ahead + lines.intercept
        error = (
            lines.intercept_error
            + lines.slope_error * np.abs(ahead)
            + regression.ROUNDING_SLACK
            * regression.EPS
            * (np.abs(lines.intercept) + np.abs(lines.slope * ahead))
        )
    kept = lines.usable & np.isfinite(answer) & regression.trusted(answer, error)
    return _refit(rs, answer, kept, reducer)


def _refit(rs: RangeSteps, answer: Floats, kept: Bools, reducer: Reducer) -> Result:
    """Running-sum answers where `kept`; the other windows of two or more samples fitted one by
    one as Prometheus does (regression.py)."""
    refit, ok = reduce_windows(rs, reducer, min_count=2, only=~kept)
    return np.where(kept, answer, refit), ok


def double_exponential_smoothing(rs: RangeSteps, sf: Floats, tf: Floats) -> Result:
    """Holt's linear smoothing, all windows advanced together one sample position at a time."""
    steps = rs.lo.shape[1]

    def reducer(g: Floats, seg: Ints, c: Ints, w: Ints, _t: Ints) -> Floats:
        padded, _ = _padded(g, seg, c)
        s_f, t_f = sf[w % steps], tf[w % steps]
        s0 = np.zeros(len(c))
        s1 = padded[0].copy()
        trend = padded[1] - padded[0]
        for i in range(1, padded.shape[0]):
            live = c > i
            new_trend = t_f * (s1 - s0) + (1 - t_f) * trend if i > 1 else trend
            new_s1 = s_f * padded[i] + (1 - s_f) * (s1 + new_trend)
            s0 = np.where(live, s1, s0)
            s1 = np.where(live, new_s1, s1)
            trend = np.where(live, new_trend, trend)
        smoothed: Floats = s1
        return smoothed

    return reduce_windows(rs, reducer, min_count=2)
