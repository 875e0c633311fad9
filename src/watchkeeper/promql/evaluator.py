"""Evaluates a parsed PromQL expression at every step of a query at once.

Each node becomes one value over all steps (see values.py): a selector reads its series once for
the whole query and finds each step's sample with one vectorised search; operators, functions
and aggregations then work on whole (series x steps) arrays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import promql_parser as pp

from watchkeeper.model import Labels
from watchkeeper.model.histogram import NOT_RESET, RESET, UNKNOWN, FloatHistogram
from watchkeeper.promql import aggregations, binops, functions, native_histograms, range_calls
from watchkeeper.promql.ast import at_modifier, duration_ms, offset_ms, selector_matcher_sets
from watchkeeper.promql.errors import QueryError, QueryTimeoutError, refuse_histograms
from watchkeeper.promql.positions import (
    call_argument,
    call_argument_text,
    call_start,
    go_string_is_utf8,
)
from watchkeeper.promql.querier import Querier
from watchkeeper.promql.result import Annotations
from watchkeeper.promql.values import (
    HistogramRange,
    HistogramSteps,
    InstantSteps,
    Ints,
    RangeSteps,
    ScalarSteps,
    StringValue,
    Value,
    is_stale,
)
from watchkeeper.store.types import HistogramSamples, SeriesColumns, SeriesSamples

INT64_MIN = int(np.iinfo(np.int64).min)
# functions reading only a native histogram's count and sum, and those needing its buckets
_STATS_FUNCTIONS = {"histogram_count", "histogram_sum", "histogram_avg"}
_BUCKET_FUNCTIONS = {"histogram_quantile", "histogram_quantiles", "histogram_fraction"}


@dataclass
class EvalContext:
    """What every node of one query shares: where data comes from, the query's own start and
    end (for `@ start()`/`@ end()`), settings, limits and the annotations collected."""

    querier: Querier
    query: str
    start_ms: int
    end_ms: int
    lookback_ms: int
    subquery_step_ms: int
    max_samples: int
    max_series_per_selector: int
    deadline: float
    batch_samples: int = 0
    range_query: bool = False
    step_ms: int = 0
    annotations: Annotations = field(default_factory=Annotations)
    samples_loaded: int = 0
    # function calls seen so far by name, and the calls being evaluated, for positions
    _call_counts: dict[str, int] = field(default_factory=dict)
    _calls: list[tuple[str, int]] = field(default_factory=list)
    # subqueries being evaluated (their inner expressions)
    subqueries: int = 0
    # the trim operators (`</`, `>/`) by the id of the comparison node parsed in their place
    trims: dict[int, str] = field(default_factory=dict)

    def reads_histogram_stats(self) -> bool:
        """Whether a selector evaluated now feeds only histogram_count, histogram_sum or
        histogram_avg, with no subquery or function needing buckets between: Prometheus then
        reads it with its HistogramStatsIterator (detectHistogramStatsDecoding)."""
        if self.subqueries:
            return False
        stats = False
        for name, _ in reversed(self._calls):
            if name in _STATS_FUNCTIONS:
                stats = True
            elif name in _BUCKET_FUNCTIONS:
                return False
        return stats

    def enter_call(self, name: str) -> tuple[str, int]:
        ordinal = self._call_counts.get(name, 0)
        self._call_counts[name] = ordinal + 1
        self._calls.append((name, ordinal))
        return name, ordinal

    def current_call(self) -> tuple[str, int]:
        return self._calls[-1]

    def resume_call(self, call: tuple[str, int]) -> None:
        """Back into a call entered before (a function evaluated in parts), as the same call."""
        self._calls.append(call)

    def exit_call(self) -> None:
        self._calls.pop()

    def call_position(self) -> str:
        """`line:column` where the function call being evaluated starts."""
        if not self._calls:
            return "1:1"
        name, ordinal = self._calls[-1]
        return call_start(self.query, name, ordinal)

    def argument_is_utf8(self, argument: int) -> bool:
        """Whether a string argument of the call being evaluated is valid UTF-8 as written."""
        if not self._calls:
            return True
        name, ordinal = self._calls[-1]
        return go_string_is_utf8(call_argument_text(self.query, name, ordinal, argument))

    def argument_position(self, argument: int) -> str:
        """`line:column` of an argument of the function call being evaluated."""
        if not self._calls:
            return "1:1"
        name, ordinal = self._calls[-1]
        return call_argument(self.query, name, ordinal, argument)

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise QueryTimeoutError("query timed out in expression evaluation")

    def count_samples(self, n: int, held: int | None = None) -> None:
        """Prometheus' query.max-samples: how many samples one step of evaluation may hold
        (`held`, when more than the `n` just loaded: a selector read in batches)."""
        self.samples_loaded += n
        if max(n, held or 0) > self.max_samples:
            raise QueryError(
                "query processing would load too many samples into memory in query execution "
                f"(query.max_samples={self.max_samples})"
            )


class Evaluator:
    """Evaluates nodes at the step timestamps `ts` (milliseconds)."""

    def __init__(self, ctx: EvalContext, ts: Ints) -> None:
        self.ctx = ctx
        self.ts = ts

    @property
    def steps(self) -> int:
        return len(self.ts)

    def eval(self, node: Any) -> Value:
        self.ctx.check_deadline()
        if isinstance(node, pp.NumberLiteral):
            return ScalarSteps(np.full(self.steps, float(node.val)))
        if isinstance(node, pp.StringLiteral):
            return StringValue(node.val)
        if isinstance(node, pp.ParenExpr):
            return self.eval(node.expr)
        if isinstance(node, pp.UnaryExpr):
            return binops.negate(self.eval(node.expr))
        if isinstance(node, pp.VectorSelector):
            return self.instant_selector(node)
        if isinstance(node, pp.MatrixSelector):
            return self.range_selector(node)
        if isinstance(node, pp.SubqueryExpr):
            return self.subquery(node)
        if isinstance(node, pp.BinaryExpr):
            return binops.evaluate(self, node)
        if isinstance(node, pp.AggregateExpr):
            return aggregations.evaluate(self, node)
        if isinstance(node, pp.Call):
            return functions.evaluate(self, node)
        raise QueryError(f"unsupported expression {type(node).__name__}")

    def eval_parts(self, node: Any) -> range_calls.InParts | None:
        """`node` evaluated batch by batch as its range selector is read, where it is a range
        function of a range selector alone (range_calls.parts); None otherwise."""
        self.ctx.check_deadline()
        return range_calls.parts(self, node)

    def eval_vector(self, node: Any, where: str = "") -> InstantSteps:
        """An instant vector of floats: one holding native histograms is refused (`where`
        names what takes it, for the error; the function being evaluated by default)."""
        value = self.eval(node)
        if isinstance(value, HistogramSteps):
            calls = self.ctx._calls
            if not where and calls and calls[-1][0] in functions.FLOATS_ONLY:
                return value.floats  # as in Prometheus, these skip histogram samples
            if not where and calls and calls[-1][0] in functions.PRESENCE_ONLY:
                return value.present_anyhow()
            raise refuse_histograms(where or self._consumer())
        if not isinstance(value, InstantSteps):
            raise QueryError(f"expected instant vector, got {type(value).__name__}")
        return value

    def eval_histograms(self, node: Any) -> HistogramSteps | InstantSteps:
        """An instant vector that may hold native histograms, for what handles them."""
        value = self.eval(node)
        if not isinstance(value, (InstantSteps, HistogramSteps)):
            raise QueryError(f"expected instant vector, got {type(value).__name__}")
        return value

    def _consumer(self) -> str:
        """What is taking a vector now, for errors: the function being evaluated, if any."""
        calls = self.ctx._calls
        return f"{calls[-1][0]}()" if calls else "this expression"

    def eval_scalar(self, node: Any) -> ScalarSteps:
        value = self.eval(node)
        if not isinstance(value, ScalarSteps):
            raise QueryError(f"expected scalar, got {type(value).__name__}")
        return value

    def eval_range(self, node: Any, where: str = "") -> RangeSteps:
        """A range vector of floats: one holding native histograms is refused."""
        value = self.eval(node)
        if isinstance(value, HistogramRange):
            raise refuse_histograms(where or self._consumer())
        return self._range_of(value)

    def _range_of(self, value: Value) -> RangeSteps:
        if not isinstance(value, RangeSteps):
            raise QueryError(f"expected range vector, got {type(value).__name__}")
        return value

    # -- time

    def effective_times(self, node: Any) -> Ints:
        """The time each step reads at: the step's time or the node's `@` time, minus its
        offset."""
        at = at_modifier(node)
        if at is None:
            base = self.ts
        else:
            kind, when = at
            fixed = {"start": self.ctx.start_ms, "end": self.ctx.end_ms}.get(kind, when)
            base = np.full(self.steps, fixed, dtype=np.int64)
        result: Ints = base - offset_ms(node)
        return result

    # -- selectors

    def select(self, node: Any, start: int, end: int) -> SeriesColumns:
        """Every series of a selector at once, in label order."""
        sets = selector_matcher_sets(node)
        found = self.ctx.querier.select(sets[0], start, end)
        if len(sets) > 1:
            # `or` between matcher sets: each series once, in label order
            seen: dict[Labels, SeriesSamples] = {}
            for matchers in sets:
                for series in self.ctx.querier.select(matchers, start, end).series():
                    seen.setdefault(series.labels, series)
            found = SeriesColumns.of(sorted(seen.values(), key=lambda s: s.labels))
        self._check_series(node, len(found))
        self.ctx.count_samples(len(found.timestamps))
        return found

    def select_batches(self, node: Any, start: int, end: int) -> Iterator[SeriesColumns]:
        """A selector's series in batches of about `batch_samples` samples (in label order
        within a batch only), so that work done series by series never holds them all."""
        sets = selector_matcher_sets(node)
        if len(sets) > 1 or not self.ctx.batch_samples:
            yield self.select(node, start, end)
            return
        series = samples = 0
        for batch in self.ctx.querier.select_batches(sets[0], start, end, self.ctx.batch_samples):
            series += len(batch)
            samples += len(batch.timestamps)
            self._check_series(node, series)
            self.ctx.count_samples(len(batch.timestamps), held=samples)
            yield batch
            del batch  # not held while the next batch is read

    def _check_series(self, node: Any, count: int) -> None:
        limit = self.ctx.max_series_per_selector
        if limit and count > limit:
            raise QueryError(
                f"the selector {node.prettify()} selects more than {limit} series "
                "(query.max_series_per_selector)"
            )

    def select_histograms(self, node: Any, start: int, end: int) -> list[HistogramSamples]:
        """A selector's native histogram series in the range, in label order (none, at no
        cost, where the tenant has never stored one)."""
        sets = selector_matcher_sets(node)
        found = self.ctx.querier.select_histograms(sets[0], start, end)
        if len(sets) > 1:
            seen: dict[Labels, HistogramSamples] = {}
            for matchers in sets:
                for series in self.ctx.querier.select_histograms(matchers, start, end):
                    seen.setdefault(series.labels, series)
            found = sorted(seen.values(), key=lambda s: s.labels)
        if found:
            self.ctx.count_samples(sum(len(s.timestamps) for s in found))
            if self.ctx.reads_histogram_stats():
                found = [native_histograms.hints_as_read(series) for series in found]
        return found

    def instant_selector(self, node: Any) -> InstantSteps | HistogramSteps:
        eff = self.effective_times(node)
        lookback = self.ctx.lookback_ms
        if self.steps == 1:
            newest = self._newest(node, int(eff[0]), lookback)
            if newest is not None:
                return newest
        start, end = int(eff.min()) - lookback + 1, int(eff.max())
        histograms = self.select_histograms(node, start, end)
        if histograms:
            return lookup_with_histograms(self.select(node, start, end), histograms, eff, lookback)
        batches = self.select_batches(node, start, end)
        parts = [lookup_instant(series, eff, lookback) for series in batches]
        return InstantSteps.concat_in_label_order(parts, self.steps)

    def _newest(self, node: Any, at: int, lookback: int) -> InstantSteps | None:
        """An instant selector at one time from each series' newest sample, where the querier
        has those in memory (most dashboards and rules read at the newest data): no samples
        are read or searched."""
        sets = selector_matcher_sets(node)
        if len(sets) > 1:
            return None
        found = self.ctx.querier.select_newest(sets[0], at, lookback)
        if found is None:
            return None
        self._check_series(node, len(found))
        self.ctx.count_samples(len(found.timestamps))
        values = found.values[:, None]
        return InstantSteps(found.labels, values, ~is_stale(values), found.timestamps[:, None])

    def range_batches(self, node: Any) -> Iterator[RangeSteps | HistogramRange]:
        """A range vector in batches of series where it is read from storage (a range
        selector), whole where it is computed (a subquery)."""
        while isinstance(node, pp.ParenExpr):
            node = node.expr
        if not isinstance(node, pp.MatrixSelector):
            value = self.eval(node)
            yield value if isinstance(value, HistogramRange) else self._range_of(value)
            return
        yield from self._range_windows(node, batched=True)

    def range_selector(self, node: Any) -> RangeSteps | HistogramRange:
        (whole,) = self._range_windows(node, batched=False)
        return whole

    def _range_windows(self, node: Any, batched: bool) -> Iterator[RangeSteps | HistogramRange]:
        """A range selector's windows, for its series in batches or all at once."""
        vs = node.vector_selector
        range_ms = duration_ms(node.range)
        ends = self.effective_times(vs)
        start, end = int(ends.min()) - range_ms + 1, int(ends.max())
        histograms = self.select_histograms(vs, start, end)
        if histograms:
            yield _with_histograms(self.select(vs, start, end), histograms, ends, range_ms)
            return
        batches = self.select_batches(vs, start, end) if batched else [self.select(vs, start, end)]
        for series in batches:
            yield windows(_without_stale(series), ends, range_ms)
            del series  # not held while the next batch is read

    def subquery(self, node: Any) -> RangeSteps | HistogramRange:
        range_ms = duration_ms(node.range)
        step_ms = duration_ms(node.step) or self.ctx.subquery_step_ms
        ends = self.effective_times(node)
        # inner steps are multiples of the step, from the earliest window's start on
        window_start = int(ends.min()) - range_ms
        first = _trunc_div(window_start, step_ms) * step_ms
        if first < window_start:
            first += step_ms
        inner_ts = np.arange(first, int(ends.max()) + 1, step_ms, dtype=np.int64)
        if len(inner_ts) == 0:
            return windows(SeriesColumns.empty(), ends, range_ms)
        self.ctx.subqueries += 1
        try:
            value = Evaluator(self.ctx, inner_ts).eval_histograms(node.expr)
        finally:
            self.ctx.subqueries -= 1
        inner = value.floats if isinstance(value, HistogramSteps) else value
        # each series' points at the inner steps where it has one, row after row
        rows, cols = np.nonzero(inner.present)
        counts = np.bincount(rows, minlength=len(inner.labels))
        columns = SeriesColumns(
            inner.labels,
            np.r_[0, np.cumsum(counts)].astype(np.int64),
            inner_ts[cols],
            inner.values[rows, cols],
        )
        found = windows(columns, ends, range_ms)
        if not isinstance(value, HistogramSteps) or not any(value.histograms):
            return found
        times = [inner_ts[sorted(steps)] for steps in value.histograms]
        # as Prometheus: a subquery may skip the sample of a reset or return it several
        # times, so the samples' reset hints mean nothing here (gauges stay gauges)
        hists = [
            [_without_reset_hint(steps[j]) for j in sorted(steps)] for steps in value.histograms
        ]
        return HistogramRange(found, times, hists)


def _with_histograms(
    floats: SeriesColumns, histograms: list[HistogramSamples], ends: Ints, range_ms: int
) -> HistogramRange:
    """The windows of a range selector some of whose series hold native histograms: every
    series (those with histograms only too) in label order, floats as RangeSteps."""
    by_labels = {s.labels: s for s in _without_stale(floats).series()}
    by_hist = {h.labels: h for h in histograms}
    labels = sorted(set(by_labels) | set(by_hist))
    empty = np.empty(0, dtype=np.int64)
    series = [
        by_labels.get(ls) or SeriesSamples(ls, empty, np.empty(0, dtype=np.float64))
        for ls in labels
    ]
    times = [by_hist[ls].timestamps if ls in by_hist else empty for ls in labels]
    hists = [list(by_hist[ls].histograms) if ls in by_hist else [] for ls in labels]
    return HistogramRange(windows(SeriesColumns.of(series), ends, range_ms), times, hists)


def _without_reset_hint(histogram: FloatHistogram) -> FloatHistogram:
    if histogram.counter_reset_hint in (RESET, NOT_RESET):
        return histogram.with_hint(UNKNOWN)
    return histogram


def _without_stale(series: SeriesColumns) -> SeriesColumns:
    """The samples without staleness markers, which range selectors drop."""
    if len(series.values) == 0:
        return series
    fresh = ~is_stale(series.values)
    if fresh.all():
        return series
    kept = np.r_[0, np.cumsum(fresh)]
    return SeriesColumns(
        series.labels,
        kept[series.bounds].astype(np.int64),
        series.timestamps[fresh],
        series.values[fresh],
    )


def _trunc_div(a: int, b: int) -> int:
    # Prometheus aligns with Go's division, truncating toward zero (matters before 1970)
    q = abs(a) // b
    return q if a >= 0 else -q


def lookup_instant(series: SeriesColumns, eff: Ints, lookback: int) -> InstantSteps:
    """Each series' latest sample at or before each effective time and newer than the lookback
    delta, unless that sample is a staleness marker."""
    n, steps = len(series), len(eff)
    if n == 0 or len(series.timestamps) == 0:
        return InstantSteps.empty(steps)
    t_all, v_all, bounds = series.timestamps, series.values, series.bounds
    if steps == 1:
        # one step (an instant query, a rule): each series' last sample at or before it is
        # found from the bounds alone, no search
        at = int(eff[0])
        ends = bounds[1:]
        newest = int(t_all[-1]) if n == 1 else int(t_all.max())  # one series: sorted
        if newest <= at:  # the usual case: the read ended at the step
            idx = ends - 1
        elif n == 1:
            idx = np.array([int(np.searchsorted(t_all, at, side="right")) - 1])
        else:  # samples after the step: search each series instead
            return _lookup_by_search(series, eff, lookback)
        valid = idx >= bounds[:-1]
        idx = np.where(valid, idx, 0)
        sample_ts = t_all[idx]
        values = v_all[idx]
        present = valid & (sample_ts > at - lookback) & ~is_stale(values)
        return InstantSteps(series.labels, values[:, None], present[:, None], sample_ts[:, None])
    return _lookup_by_search(series, eff, lookback)


def lookup_with_histograms(
    floats: SeriesColumns, histograms: list[HistogramSamples], eff: Ints, lookback: int
) -> InstantSteps | HistogramSteps:
    """`lookup_instant` over series holding native histograms too: at each step, a series'
    newest sample of either kind decides (a newer staleness marker hides a histogram, a newer
    histogram a float)."""
    found = lookup_instant(floats, eff, lookback)
    steps = len(eff)
    labels = sorted(set(found.labels) | {h.labels for h in histograms})
    row = {ls: i for i, ls in enumerate(labels)}
    values = np.full((len(labels), steps), np.nan)
    present = np.zeros((len(labels), steps), dtype=bool)
    sample_ts = np.zeros((len(labels), steps), dtype=np.int64)
    for i, ls in enumerate(found.labels):
        values[row[ls]] = found.values[i]
        present[row[ls]] = found.present[i]
        if found.sample_ts is not None:
            sample_ts[row[ls]] = found.sample_ts[i]
    wanted = {h.labels for h in histograms}
    bounds = floats.bounds
    float_times = {
        ls: floats.timestamps[bounds[k] : bounds[k + 1]]
        for k, ls in enumerate(floats.labels)
        if ls in wanted
    }
    maps: list[dict[int, Any]] = [{} for _ in labels]
    for series in histograms:
        i = row[series.labels]
        idx = np.searchsorted(series.timestamps, eff, side="right") - 1
        newest = np.where(idx >= 0, series.timestamps[np.maximum(idx, 0)], INT64_MIN)
        times = float_times.get(series.labels)
        newest_float = np.full(steps, INT64_MIN, dtype=np.int64)
        if times is not None and len(times):
            fidx = np.searchsorted(times, eff, side="right") - 1
            newest_float = np.where(fidx >= 0, times[np.maximum(fidx, 0)], INT64_MIN)
        for j in np.flatnonzero(newest > newest_float).tolist():
            present[i, j] = False
            if newest[j] > eff[j] - lookback:
                maps[i][j] = series.histograms[int(idx[j])]
                sample_ts[i, j] = newest[j]
    if not any(maps):
        return InstantSteps(labels, values, present, sample_ts)
    return HistogramSteps(InstantSteps(labels, values, present, sample_ts), maps)


def _lookup_by_search(series: SeriesColumns, eff: Ints, lookback: int) -> InstantSteps:
    n, steps = len(series), len(eff)
    t_all, v_all = series.timestamps, series.values
    values = np.full((n, steps), np.nan)
    present = np.zeros((n, steps), dtype=bool)
    sample_ts = np.zeros((n, steps), dtype=np.int64)
    low, high = int(eff.min()), int(eff.max())
    for rows, offset, own, keys, base, span in _series_chunks(
        series.bounds, t_all, steps, low, high
    ):
        queries = np.arange(len(own) - 1, dtype=np.int64)[:, None] * span + (eff - base)[None, :]
        idx = np.searchsorted(keys, queries, side="right") - 1
        valid = idx >= own[:-1, None]
        idx = np.where(valid, idx + offset, 0)
        found_ts = sample_ts[rows] = t_all[idx]
        found = values[rows] = v_all[idx]
        present[rows] = valid & (found_ts > (eff - lookback)[None, :]) & ~is_stale(found)
    return InstantSteps(series.labels, values, present, sample_ts)


# (series x steps) cells whose samples are searched at a time
SEARCH_CELLS = 1 << 16


def _series_chunks(
    bounds: Ints, timestamps: Ints, steps: int, low: int, high: int
) -> Iterator[tuple[slice, int, Ints, Ints, int, int]]:
    """The series a few at a time (SEARCH_CELLS), each chunk with its samples' keys alone
    (_series_time_keys): the keys and the (series x steps) searches in them are temporaries as
    big as the samples and the result for a long range query. Yields the chunk's rows, the
    position of its first sample, its bounds from 0, its keys, base and span; chunks without
    samples are left out."""
    per = max(1, SEARCH_CELLS // max(steps, 1))
    for first in range(0, len(bounds) - 1, per):
        last = min(first + per, len(bounds) - 1)
        offset, stop = int(bounds[first]), int(bounds[last])
        if stop > offset:
            own = bounds[first : last + 1] - offset
            keys, base, span = _series_time_keys(own, timestamps[offset:stop], low, high)
            yield slice(first, last), offset, own, keys, base, span


def _series_time_keys(bounds: Ints, timestamps: Ints, low: int, high: int) -> tuple[Ints, int, int]:
    """One sorted key per sample, (series, time), so one searchsorted finds every series' place
    at every step; also the base time and the span the keys use: series i's keys are
    `i * span + (time - base)`, all within [i * span, (i + 1) * span)."""
    base = min(low, int(timestamps.min())) - 1
    span = max(high, int(timestamps.max())) - base + 1
    # built in place: one array the size of the samples, not three
    keys: Ints = np.repeat(
        np.arange(len(bounds) - 1, dtype=np.int64) * span - base, np.diff(bounds)
    )
    keys += timestamps
    return keys, base, span


def windows(series: SeriesColumns, ends: Ints, range_ms: int) -> RangeSteps:
    """A range vector from flat samples: the window at each step is (end - range, end]."""
    n, steps = len(series), len(ends)
    bounds = series.bounds
    if n == 0 or bounds[-1] == 0:
        # one unused sample, so that the bounds of the (empty) windows index a sample
        t_none, v_none = np.zeros(1, dtype=np.int64), np.full(1, np.nan)
        zeros = np.zeros((n, steps), dtype=np.int64)
        return RangeSteps(
            series.labels, t_none, v_none, bounds, zeros, zeros.copy(), range_ms, ends
        )
    t_all, v_all = series.timestamps, series.values
    if steps == 1 and int(t_all.min()) > int(ends[0]) - range_ms and int(t_all.max()) <= ends[0]:
        # every sample in the one window, as an instant query's read of it gives: no search
        lo, hi = bounds[:-1, None].copy(), bounds[1:, None].copy()
        return RangeSteps(series.labels, t_all, v_all, bounds, lo, hi, range_ms, ends)
    # series without samples (staleness markers only) have empty windows at their place
    lo = np.repeat(bounds[1:], steps).reshape(n, steps)
    hi = lo.copy()
    low, high = int(ends.min()) - range_ms, int(ends.max())
    for rows, offset, own, keys, base, span in _series_chunks(bounds, t_all, steps, low, high):
        row = np.arange(len(own) - 1, dtype=np.int64)[:, None] * span
        lo[rows] = np.searchsorted(keys, row + (ends - range_ms - base), side="right")
        hi[rows] = np.searchsorted(keys, row + (ends - base), side="right")
        lo[rows] += offset
        hi[rows] += offset
    return RangeSteps(series.labels, t_all, v_all, bounds, lo, hi, range_ms, ends)
