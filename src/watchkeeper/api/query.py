"""The Prometheus query API: /api/v1/query, query_range, format_query and parse_query.

Parameters, validation messages, error types and status codes follow Prometheus 3
(web/api/v1/api.go). Evaluation runs on the query threads, inside the query gate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from fastapi import APIRouter, Request, Response

from watchkeeper.api.context import ApiContext
from watchkeeper.api.errors import APIError
from watchkeeper.api.query_json import go_json, go_string, result_json, stats_json, success_body
from watchkeeper.api.requests import api_params, principal
from watchkeeper.model import parse_duration
from watchkeeper.model.durations import parse_timestamp_ms
from watchkeeper.promql import (
    GatedRun,
    QueryError,
    QueryResult,
    StoreQuerier,
    format_query,
    parse_query,
)

log = logging.getLogger(__name__)

MAX_POINTS = 11_000
TRUNCATED = "results truncated due to limit"
_INTEGER = re.compile(r"[+-]?[0-9]+")
Params = dict[str, list[str]]


def _first(params: Params, name: str) -> str:
    """The parameter's first value, "" when absent (Go's Request.FormValue)."""
    values = params.get(name)
    return values[0] if values else ""


def _quote(text: str) -> str:
    """Go's %q, for the texts of error messages."""
    return json.dumps(text, ensure_ascii=False)


def _invalid(name: str, message: str) -> APIError:
    return APIError("bad_data", f'invalid parameter "{name}": {message}')


def _timestamp(text: str) -> int:
    try:
        return parse_timestamp_ms(text)
    except ValueError:
        raise ValueError(f"cannot parse {_quote(text)} to a valid timestamp") from None


def _duration_ns(text: str) -> int:
    """Prometheus' API durations: float seconds or a duration string, in nanoseconds."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        nanoseconds = seconds * 1e9
        if math.isnan(nanoseconds):
            raise ValueError(f"cannot parse {_quote(text)} to a valid duration")
        if not -(2.0**63) <= nanoseconds < 2.0**63:
            raise ValueError(f"cannot parse {_quote(text)} to a valid duration. It overflows int64")
        return int(nanoseconds)
    try:
        return parse_duration(text) * 1_000_000
    except ValueError:
        raise ValueError(f"cannot parse {_quote(text)} to a valid duration") from None


def _limit(params: Params) -> int:
    text = _first(params, "limit")
    if not text:
        return 0
    if not _INTEGER.fullmatch(text):
        raise _invalid("limit", f"strconv.Atoi: parsing {_quote(text)}: invalid syntax")
    limit = int(text)
    if limit < 0:
        raise _invalid("limit", "limit must be non-negative")
    return limit


def _timeout_s(params: Params, configured_ms: int) -> float:
    """The request's `timeout`, never longer than query.timeout."""
    text = _first(params, "timeout")
    if not text:
        return configured_ms / 1000
    try:
        requested = _duration_ns(text) / 1e9
    except ValueError as err:
        raise _invalid("timeout", str(err)) from None
    return min(requested, configured_ms / 1000)


def _lookback_delta_ms(params: Params) -> int | None:
    """The request's `lookback_delta`; None (query.lookback_delta) when absent or not positive."""
    text = _first(params, "lookback_delta")
    if not text:
        return None
    try:
        nanoseconds = _duration_ns(text)
    except ValueError as err:
        raise APIError("bad_data", f"error parsing lookback delta duration: {err}") from None
    return nanoseconds // 1_000_000 if nanoseconds >= 1_000_000 else None


def _stats_warning(value: str) -> list[str]:
    if value in ("", "true", "all"):
        return []
    return [
        f'value {_quote(value)} for parameter "stats" is deprecated and will be rejected in '
        'the next major release, use "true" or "all"'
    ]


def _range(params: Params) -> tuple[int, int, int]:
    """start, end and step (milliseconds) of a range query, checked as Prometheus does."""
    bounds = []
    for name in ("start", "end"):
        try:
            bounds.append(_timestamp(_first(params, name)))
        except ValueError as err:
            raise _invalid(name, str(err)) from None
    start, end = bounds
    if end < start:
        raise _invalid("end", "end timestamp must not be before start time")
    try:
        step_ns = _duration_ns(_first(params, "step"))
    except ValueError as err:
        raise _invalid("step", str(err)) from None
    if step_ns <= 0:
        raise _invalid(
            "step",
            "zero or negative query resolution step widths are not accepted. "
            "Try a positive integer",
        )
    # Prometheus' safety limit: 60s resolution for a week, or 1h for a year
    if (end - start) * 1_000_000 // step_ns > MAX_POINTS:
        raise APIError(
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)",
        )
    return start, end, max(1, step_ns // 1_000_000)


def _answer(run: GatedRun[QueryResult], limit: int, stats: str) -> bytes:
    """The success body of a query: its result (the first `limit` series, with Prometheus'
    warning when that cut some), annotations, and timings when `stats` asks for them."""
    result = run.value
    series = result.series
    warnings = list(result.annotations.warnings)
    if limit and result.result_type in ("vector", "matrix") and len(series) > limit:
        series = series[:limit]
        warnings.append(TRUNCATED)
    warnings += _stats_warning(stats)
    data = result_json(result, series)
    if stats:
        data += ',"stats":' + stats_json(run)
    return success_body("{" + data + "}", warnings, result.annotations.infos)


class RunTimes:
    """How long recent queries took to evaluate and write, by their shape (text, and a range
    query's length and step), the least recently asked forgotten first. Safe from any thread."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._seconds: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def took(self, shape: Hashable) -> float | None:
        with self._lock:
            seconds = self._seconds.get(shape)
            if seconds is not None:
                self._seconds.move_to_end(shape)
            return seconds

    def note(self, shape: Hashable, seconds: float) -> None:
        with self._lock:
            self._seconds[shape] = seconds
            self._seconds.move_to_end(shape)
            if len(self._seconds) > self._size:
                self._seconds.popitem(last=False)


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()
    settings = ctx.config.query
    engine = ctx.engine
    gate = ctx.query_gate
    inline_below_s = settings.inline_below / 1000
    run_times = RunTimes()

    async def evaluate(
        params: Params,
        limit: int,
        started: float,
        timeout_s: float,
        work: Callable[[float], QueryResult],
        shape: Hashable,
    ) -> Response:
        """Run `work` (given its remaining seconds) in the gate, then write the answer, both on
        a query thread (a big matrix takes a while to write); or on the event loop, when the
        same query last took under query.inline_below and a slot is free: handing it to a
        thread and back costs 0.07-0.1 ms, as much as evaluating a small query."""
        stats = _first(params, "stats")

        def answer(run: GatedRun[QueryResult]) -> bytes:
            writing = time.perf_counter()
            body = _answer(run, limit, stats)
            # its cost where it runs, not counting a wait for a slot
            run_times.note(shape, run.run_seconds + time.perf_counter() - writing)
            return body

        def in_thread() -> bytes:
            return answer(gate.run(work, timeout_s, started))

        loop = asyncio.get_running_loop()
        try:
            last = run_times.took(shape)
            run = None
            if last is not None and last < inline_below_s:
                run = gate.run_now(work, timeout_s, started)
            if run is not None:
                body = answer(run)
            else:
                body = await loop.run_in_executor(ctx.query_executor, in_thread)
        except QueryError as err:
            if err.kind == "bad_data":
                raise _invalid("query", err.message) from None
            raise APIError(err.kind, err.message) from None
        except Exception:
            log.exception("query failed: %s", _first(params, "query"))
            raise APIError("internal", "internal error while evaluating the query") from None
        return Response(body, media_type="application/json")

    @api.api_route("/api/v1/query", methods=["GET", "POST"])
    async def instant_query(request: Request) -> Response:
        started = gate.clock()
        who = principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        limit = _limit(params)
        text = _first(params, "time")
        try:
            at = _timestamp(text) if text else int(time.time() * 1000)
        except ValueError as err:
            raise _invalid("time", f"invalid time value for 'time': {err}") from None
        timeout_s = _timeout_s(params, settings.timeout)
        lookback = _lookback_delta_ms(params)
        query = _first(params, "query")
        querier = StoreQuerier(ctx.store, who.tenant)

        def work(remaining: float) -> QueryResult:
            return engine.instant_query(
                querier, query, at, lookback_delta_ms=lookback, timeout_s=remaining
            )

        return await evaluate(params, limit, started, timeout_s, work, ("instant", query))

    @api.api_route("/api/v1/query_range", methods=["GET", "POST"])
    async def range_query(request: Request) -> Response:
        started = gate.clock()
        who = principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        limit = _limit(params)
        start, end, step = _range(params)
        timeout_s = _timeout_s(params, settings.timeout)
        lookback = _lookback_delta_ms(params)
        query = _first(params, "query")
        querier = StoreQuerier(ctx.store, who.tenant)

        def work(remaining: float) -> QueryResult:
            return engine.range_query(
                querier, query, start, end, step, lookback_delta_ms=lookback, timeout_s=remaining
            )

        shape = ("range", query, end - start, step)
        return await evaluate(params, limit, started, timeout_s, work, shape)

    async def from_syntax_tree(request: Request, answer: Callable[[str], str]) -> Response:
        """An answer computed from the query's syntax tree alone (no data is read)."""
        principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        try:
            data = answer(_first(params, "query"))
        except QueryError as err:
            raise _invalid("query", err.message) from None
        return Response(success_body(data), media_type="application/json")

    @api.api_route("/api/v1/format_query", methods=["GET", "POST"])
    async def format_query_route(request: Request) -> Response:
        return await from_syntax_tree(request, lambda query: go_string(format_query(query)))

    @api.api_route("/api/v1/parse_query", methods=["GET", "POST"])
    async def parse_query_route(request: Request) -> Response:
        return await from_syntax_tree(request, lambda query: go_json(parse_query(query)))

    return api
