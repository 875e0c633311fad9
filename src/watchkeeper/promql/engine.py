"""The query engine: parses a PromQL query, evaluates it at one time or over a range of steps,
and hands back a result in the shape the Prometheus API returns."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import promql_parser as pp

from watchkeeper.model import Matcher
from watchkeeper.promql.ast import selector_matcher_sets, walk
from watchkeeper.promql.duration_expressions import rewrite as rewrite_durations
from watchkeeper.promql.errors import QueryError, QueryParseError
from watchkeeper.promql.evaluator import EvalContext, Evaluator
from watchkeeper.promql.querier import Querier
from watchkeeper.promql.result import QueryResult, Series
from watchkeeper.promql.trim_operators import trim_nodes, without_trims
from watchkeeper.promql.values import (
    HistogramRange,
    HistogramSteps,
    InstantSteps,
    RangeSteps,
    ScalarSteps,
    StringValue,
    Value,
)

_NO_TIMES = np.empty(0, dtype=np.int64)
_NO_VALUES = np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class EngineOptions:
    """Engine settings; each limit has the config key `query.<field>`."""

    lookback_delta_ms: int = 300_000
    timeout_s: float = 120.0
    max_samples: int = 50_000_000
    max_series_per_selector: int = 1_000_000
    default_subquery_step_ms: int = 60_000
    # a selector whose series are worked on one by one is read in batches of about this many
    # samples, so a query over many long series never holds them all (0: all at once)
    batch_samples: int = 500_000


# Parsed queries an engine remembers by their text: parsing and checking a dashboard query
# takes 50-90 us, a tenth of a small instant query, and dashboards send the same texts on
# every refresh. The trees are never changed by evaluation, so queries can share them.
PARSED_QUERIES = 1024


def parse(query: str) -> Any:
    """The query's AST; a QueryParseError naming the problem if it is not valid PromQL."""
    try:
        expr = pp.parse(without_trims(query))
    except ValueError as err:
        raise QueryParseError(f"1:1: parse error: {err}") from None
    for node in walk(expr):
        if isinstance(node, pp.VectorSelector):
            for matchers in selector_matcher_sets(node):
                if all(m.matches_empty() for m in matchers):
                    raise QueryParseError(
                        "1:1: parse error: vector selector must contain at least one "
                        "non-empty matcher"
                    )
    return expr


def query_selectors(query: str) -> list[list[Matcher]]:
    """The matcher sets of every vector selector in a query (for /api/v1/query_exemplars);
    a QueryParseError if the query is not valid PromQL."""
    expr = parse(rewrite_durations(query, 0, 0))
    return [
        matchers
        for node in walk(expr)
        if isinstance(node, pp.VectorSelector)
        for matchers in selector_matcher_sets(node)
    ]


class Engine:
    """Evaluates PromQL against a `Querier`. Thread-safe: every query has its own state."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.parse = functools.lru_cache(maxsize=PARSED_QUERIES)(parse)

    def instant_query(
        self,
        querier: Querier,
        query: str,
        time_ms: int,
        *,
        lookback_delta_ms: int | None = None,
        timeout_s: float | None = None,
        tree: Any = None,
    ) -> QueryResult:
        """`tree`: the query as `parse_instant` gave it, for callers that run the same text
        again and again (rules), so a large rule set does not churn the parse cache."""
        return self._run(querier, query, time_ms, time_ms, 0, lookback_delta_ms, timeout_s, tree)

    def parse_instant(self, query: str) -> Any:
        """The tree of an instant query, to pass back to `instant_query`; QueryParseError if
        it is not valid PromQL."""
        return parse(rewrite_durations(query, 0, 0))

    def range_query(
        self,
        querier: Querier,
        query: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        lookback_delta_ms: int | None = None,
        timeout_s: float | None = None,
    ) -> QueryResult:
        if step_ms <= 0:
            raise QueryParseError(
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer"
            )
        if end_ms < start_ms:
            raise QueryParseError("end timestamp must not be before start time")
        return self._run(querier, query, start_ms, end_ms, step_ms, lookback_delta_ms, timeout_s)

    def _run(
        self,
        querier: Querier,
        query: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        lookback_delta_ms: int | None,
        timeout_s: float | None,
        tree: Any = None,
    ) -> QueryResult:
        """Evaluates `query` from start to end every step (an instant query has step 0)."""
        expr = tree
        if expr is None:
            expr = self.parse(rewrite_durations(query, step_ms, end_ms - start_ms))
        trims = trim_nodes(query, expr)
        options = self.options
        timeout = options.timeout_s if timeout_s is None else min(timeout_s, options.timeout_s)
        ctx = EvalContext(
            querier=querier,
            query=query,
            start_ms=start_ms,
            end_ms=end_ms,
            lookback_ms=lookback_delta_ms or options.lookback_delta_ms,
            subquery_step_ms=options.default_subquery_step_ms,
            max_samples=options.max_samples,
            max_series_per_selector=options.max_series_per_selector,
            batch_samples=options.batch_samples,
            deadline=time.monotonic() + timeout,
            range_query=step_ms > 0,
            step_ms=step_ms,
            trims=trims,
        )
        if step_ms:
            steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
            result = _range_result(Evaluator(ctx, steps).eval(expr), steps)
        else:
            steps = np.array([start_ms], dtype=np.int64)
            result = _instant_result(Evaluator(ctx, steps).eval(expr), start_ms)
        result.annotations = ctx.annotations
        result.samples_loaded = ctx.samples_loaded
        return result


def _instant_result(value: Value, time_ms: int) -> QueryResult:
    if isinstance(value, ScalarSteps):
        return QueryResult("scalar", scalar=float(value.values[0]), time_ms=time_ms)
    if isinstance(value, StringValue):
        return QueryResult("string", string=value.value, time_ms=time_ms)
    if isinstance(value, RangeSteps):
        series = []
        for i, labels in enumerate(value.labels):
            lo, hi = int(value.lo[i, 0]), int(value.hi[i, 0])
            if hi > lo:
                series.append(Series(labels, value.t[lo:hi].copy(), value.v[lo:hi].copy()))
        series.sort(key=lambda s: s.labels)
        return QueryResult("matrix", series=series, time_ms=time_ms)
    if isinstance(value, HistogramRange):
        series = []
        floats = value.floats
        for i, labels in enumerate(value.labels):
            lo, hi = int(floats.lo[i, 0]), int(floats.hi[i, 0])
            first, last = value.window(i, 0)
            points = tuple(
                zip(
                    value.times[i][first:last].tolist(),
                    value.histograms[i][first:last],
                    strict=True,
                )
            )
            if hi > lo or points:
                ts, vs = floats.t[lo:hi].copy(), floats.v[lo:hi].copy()
                series.append(Series(labels, ts, vs, points))
        series.sort(key=lambda s: s.labels)
        return QueryResult("matrix", series=series, time_ms=time_ms)
    if isinstance(value, InstantSteps):
        rows = np.flatnonzero(value.present[:, 0])
        stamp = np.array([time_ms], dtype=np.int64)
        values = value.values[rows, 0]  # a copy: each series' value is a view of it
        names = value.labels
        return QueryResult(
            "vector",
            series=[
                Series(names[i], stamp, values[k : k + 1]) for k, i in enumerate(rows.tolist())
            ],
            time_ms=time_ms,
        )
    if isinstance(value, HistogramSteps):
        series = []
        for i, labels in enumerate(value.labels):
            if value.floats.present[i, 0]:
                stamp = np.array([time_ms], dtype=np.int64)
                series.append(Series(labels, stamp, value.floats.values[i, :1].copy()))
            elif 0 in value.histograms[i]:
                point = ((time_ms, value.histograms[i][0]),)
                series.append(Series(labels, _NO_TIMES, _NO_VALUES, point))
        return QueryResult("vector", series=series, time_ms=time_ms)
    raise QueryError(f"unexpected result type {type(value).__name__}")


def _range_result(value: Value, steps: Any) -> QueryResult:
    if isinstance(value, ScalarSteps):
        return QueryResult("matrix", series=[Series((), steps, value.values.copy())])
    if isinstance(value, InstantSteps):
        series = []
        for i, labels in enumerate(value.labels):
            mask = value.present[i]
            if mask.any():
                series.append(Series(labels, steps[mask], value.values[i][mask]))
        series.sort(key=lambda s: s.labels)
        return QueryResult("matrix", series=series)
    if isinstance(value, HistogramSteps):
        series = []
        for i, labels in enumerate(value.labels):
            mask = value.floats.present[i]
            found = value.histograms[i]
            if mask.any() or found:
                points = tuple((int(steps[j]), found[j]) for j in sorted(found))
                series.append(Series(labels, steps[mask], value.floats.values[i][mask], points))
        return QueryResult("matrix", series=series)
    kind = "range vector" if isinstance(value, (RangeSteps, HistogramRange)) else "string"
    raise QueryParseError(
        f'invalid expression type "{kind}" for range query, must be Scalar or instant Vector'
    )
