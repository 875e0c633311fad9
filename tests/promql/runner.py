"""Runs promqltest eval cases against the engine and judges them as FORMAT.md §4.3 and §5 say.

What is run for an instant eval (§4.3):
* step 1, the instant query itself, with every expectation checked;
* step 2, the "@ check": unless the query uses a time-dependent function, the query with `@ T`
  added to every selector and subquery (at_rewrite.py) is run at -10T, 0, T/5, T and 10T and
  must meet the same result and failure expectations. Its annotations are not checked: their
  positions refer to the printed text, which differs from Prometheus' printer;
* step 3, the range-mode consistency check (the same text as a range query T-1m..T+1m, step 1m;
  the point at T must meet the result expectations; annotations are not checked), for the
  original query and each rewritten one.

Range evals are a single range query (§4.3). Native histograms are compared as §5.4 says
(`histograms_match`).

The engine is imported lazily (`make_engine`) so that the parser tests run without it.
"""

from __future__ import annotations

import itertools
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

from tests.promql.at_rewrite import is_time_dependent, pin
from tests.promql.promqltest import (
    EvalCase,
    ExpectedSeries,
    Histogram,
    almost_equal,
    is_stale_nan,
)
from watchkeeper.model import Labels
from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.promql.duration_expressions import rewrite as rewrite_durations
from watchkeeper.promql.engine import parse
from watchkeeper.promql.errors import QueryError, QueryParseError
from watchkeeper.promql.result import QueryResult, Series
from watchkeeper.promql.trim_operators import trim_nodes

# FORMAT.md §4.4: the engine settings every file assumes (lookback 5m and a 1m default subquery
# step are the engine defaults).
MAX_SAMPLES = 10_000

# §4.3 step 3 is skipped when the expression text contains one of these calls.
_RANGE_DEPENDENT_CALLS = ("start()", "end()", "range()", "step()")
# Samples per selector batch in conformance runs (the server default is millions).
BATCH_SAMPLES = 7

# How many points of a series a diff shows before eliding the rest.
_MAX_POINTS_SHOWN = 24
_MAX_LINES_SHOWN = 30


def make_engine() -> Any:
    """An engine configured as the conformance files assume (§4.4)."""
    # Lazy: the parser and runner tests must work before (and without) the engine module.
    from watchkeeper.promql.engine import Engine, EngineOptions  # noqa: PLC0415

    # Selectors are read in batches of a few samples, which the in-memory querier hands over in
    # reverse order: every case also checks that batched evaluation puts series back together.
    return Engine(EngineOptions(max_samples=MAX_SAMPLES, batch_samples=BATCH_SAMPLES))


class EvalFailedError(Exception):
    """Why an eval failed: a one-line summary and a multi-line, human-readable diff."""

    def __init__(self, summary: str, details: str = "") -> None:
        super().__init__(summary)
        self.summary = summary
        self.details = details


@dataclass
class Outcome:
    case: EvalCase
    passed: bool
    summary: str = ""
    details: str = ""
    seconds: float = 0.0

    def report(self) -> str:
        """The full failure text: case id, reason, the eval line as written, then the diff."""
        text = f"{self.case.id}: {self.summary}\n    {self.case.command}"
        if self.details:
            text += "\n" + _indent(self.details, "    ")
        return text


def run_case(engine: Any, case: EvalCase) -> Outcome:
    started = time.perf_counter()
    try:
        if case.kind == "range":
            _run_range_eval(engine, case)
        else:
            _run_instant_eval(engine, case)
    except EvalFailedError as failure:
        seconds = time.perf_counter() - started
        return Outcome(case, False, failure.summary, failure.details, seconds)
    return Outcome(case, True, seconds=time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# Running queries


def _execute(
    call: Callable[[], QueryResult], what: str
) -> tuple[QueryResult | None, QueryError | None]:
    """The query's result or its QueryError. Any other exception is an engine bug and fails
    the eval whatever it expects (an `expect fail` means a QueryError)."""
    try:
        return call(), None
    except QueryError as err:
        return None, err
    except Exception as err:
        frames = traceback.format_exc(limit=-8)
        raise EvalFailedError(
            f"{what}: engine crashed: {type(err).__name__}: {err}", frames
        ) from err


def _run_instant_eval(engine: Any, case: EvalCase) -> None:
    querier = case.storage.querier()
    what = f"instant query at {format_ts(case.time_ms)}"
    result, error = _execute(lambda: engine.instant_query(querier, case.expr, case.time_ms), what)
    if _check_error(case, error, result):
        return  # failed as expected; §4.3 step 4: no range-mode check then
    assert result is not None
    _check_instant_result(case, result)
    _check_annotations(case, result)
    _range_mode_check(engine, case, result)
    _at_reruns(engine, case)


def _at_reruns(engine: Any, case: EvalCase) -> None:
    """§4.3 step 2; a failure names the rewritten query and the time it ran at."""
    expr = parse(rewrite_durations(case.expr, 0, 0))
    if is_time_dependent(expr):
        return
    text = pin(expr, case.time_ms, trim_nodes(case.expr, expr))
    t = case.time_ms
    times = [-1000, 0, 1000] if t == 0 else [-10 * t, 0, t // 5, t, 10 * t]
    querier = case.storage.querier()
    for when in times:
        what = f"@ re-run of `{text}` at {format_ts(when)}"
        try:
            result, error = _execute(
                lambda when=when: engine.instant_query(querier, text, when), what
            )
            if _check_error(case, error, result):
                continue
            assert result is not None
            _check_instant_result(case, result)
            _range_mode_check(engine, case, result, text, when)
        except EvalFailedError as failure:
            raise EvalFailedError(f"{what}: {failure.summary}", failure.details) from None


def _run_range_eval(engine: Any, case: EvalCase) -> None:
    querier = case.storage.querier()
    steps = (case.end_ms - case.start_ms) // case.step_ms + 1 if case.step_ms > 0 else 1
    for expected in case.series.values():
        if len(expected.values) > steps:
            raise EvalFailedError(
                f"script error: line {expected.line} lists {len(expected.values)} values, "
                f"but only {steps} steps fit in the range (§4.3)"
            )
    what = (
        f"range query {format_ts(case.start_ms)}..{format_ts(case.end_ms)} "
        f"step {format_ts(case.step_ms)}"
    )
    result, error = _execute(
        lambda: engine.range_query(querier, case.expr, case.start_ms, case.end_ms, case.step_ms),
        what,
    )
    if _check_error(case, error, result):
        return
    assert result is not None
    if case.expected_scalar is not None:
        raise EvalFailedError(
            f"a scalar expectation in a range eval cannot pass (got a {result.result_type})",
            format_result(result),
        )
    _require_type(case, result, "matrix", "range query")
    _compare_matrix(case, result.series, case.start_ms, case.step_ms, "range query")
    _check_annotations(case, result)


def _check_error(case: EvalCase, error: QueryError | None, result: QueryResult | None) -> bool:
    """§5.1. True if the query failed as expected (nothing more to check)."""
    if isinstance(error, QueryParseError):
        # The reference harness parses every eval expression when it loads the file, so every
        # expression in the files parses in Prometheus, and `expect fail` never covers a syntax
        # error (§4.1): a parse error is always the engine's (or its parser's) shortcoming.
        raise EvalFailedError(f"parse error: {error.message}", _expected_block(case))
    if error is not None:
        if not case.expect_fail:
            raise EvalFailedError(f"unexpected error: {error.message}", _expected_block(case))
        if case.fail_msg is not None and error.message != case.fail_msg:
            raise EvalFailedError(
                f"wrong error message: {error.message}",
                f"expected message: {case.fail_msg}\n     got message: {error.message}",
            )
        if case.fail_regex is not None and re2.search(case.fail_regex, error.message) is None:
            raise EvalFailedError(
                f"error message does not match the expected regex: {error.message}",
                f"expected regex: {case.fail_regex}\n   got message: {error.message}",
            )
        return True
    if case.expect_fail:
        assert result is not None
        raise EvalFailedError("expected the query to fail, but it succeeded", format_result(result))
    return False


# --------------------------------------------------------------------------------------------
# Results (§5.3)


def _check_instant_result(case: EvalCase, result: QueryResult) -> None:
    context = "instant query"
    if case.expected_string is not None:
        _require_type(case, result, "string", context)
        if result.string != case.expected_string:
            raise EvalFailedError(
                "wrong string",
                f"expected: {case.expected_string!r}\n     got: {result.string!r}",
            )
    elif case.expected_scalar is not None:
        _require_type(case, result, "scalar", context)
        _compare_scalar(case, result.scalar, context)
    elif case.range_vector is not None:
        _require_type(case, result, "matrix", context)
        if case.ordered:
            raise EvalFailedError("script error: expect ordered with a range vector result (§5.3)")
        rv = case.range_vector
        _compare_matrix(case, result.series, rv.start_ms, rv.step_ms, context)
    elif result.result_type == "vector":
        _compare_vector(case, _vector_samples(result.series, context), context)
    elif result.result_type == "matrix" and not case.series:
        if result.series:  # with no expected lines, only an empty vector or matrix passes
            raise EvalFailedError(
                "expected an empty result, got a non-empty matrix", format_result(result)
            )
    else:
        raise EvalFailedError(
            f"expected a vector, got a {result.result_type}"
            + (
                " (instant evals expecting a matrix need `expect range vector`)"
                if result.result_type == "matrix"
                else ""
            ),
            _result_diff(case, result),
        )


def _require_type(case: EvalCase, result: QueryResult, wanted: str, context: str) -> None:
    if result.result_type != wanted:
        raise EvalFailedError(
            f"{context}: expected a {wanted}, got a {result.result_type}",
            _result_diff(case, result),
        )


# A value of a result: a float or a native histogram.
Got = float | FloatHistogram


def _vector_samples(series: list[Series], context: str) -> list[tuple[Labels, Got]]:
    samples: list[tuple[Labels, Got]] = []
    for s in series:
        if len(s.values) + len(s.histograms) != 1:
            raise EvalFailedError(
                f"{context}: vector series {format_labels(s.labels)} has "
                f"{len(s.values) + len(s.histograms)} points, not 1 (result.py: a vector's "
                "series have exactly one point)"
            )
        samples.append((s.labels, s.histograms[0][1] if s.histograms else float(s.values[0])))
    return samples


def histograms_match(want: Histogram, got: FloatHistogram) -> bool:
    """§5.4: compacted (empty buckets dropped) both sides must have the same schema, almost
    equal count, sum and zero count, exactly equal zero width and custom bounds, the same
    bucket indexes with almost equal counts, and the same hint if the expectation states one."""
    expected = want.histogram
    if expected.schema != got.schema or expected.zero_threshold != got.zero_threshold:
        return False
    if expected.custom_values != got.custom_values:
        return False
    for a, b in (
        (expected.count, got.count),
        (expected.sum, got.sum),
        (expected.zero_count, got.zero_count),
    ):
        if not almost_equal(a, b):
            return False
    for side_want, side_got in (
        (expected.positive(), got.positive()),
        (expected.negative(), got.negative()),
    ):
        mine = {i: c for i, c in side_want.items() if c != 0}
        theirs = {i: c for i, c in side_got.items() if c != 0}
        if mine.keys() != theirs.keys():
            return False
        if not all(almost_equal(c, theirs[i]) for i, c in mine.items()):
            return False
    return not want.hint_stated or expected.counter_reset_hint == got.counter_reset_hint


def _value_problem(name: str, want: object, got: Got) -> str | None:
    """Why a got value is not the expected one, or None."""
    if isinstance(want, Histogram):
        if isinstance(got, FloatHistogram) and histograms_match(want, got):
            return None
    elif isinstance(want, float):
        if isinstance(got, float) and almost_equal(want, got):
            return None
    else:
        return f"{name}: expected no sample (`_`), got {format_value(got)}"
    return f"{name}: expected {format_value(want)}, got {format_value(got)}"


def _compare_scalar(case: EvalCase, value: float, context: str) -> None:
    expected = case.expected_scalar
    assert expected is not None
    if not almost_equal(expected, value):
        raise EvalFailedError(
            f"{context}: expected scalar {format_value(expected)}, got {format_value(value)}"
        )


def _compare_vector(case: EvalCase, actual: list[tuple[Labels, Got]], context: str) -> None:
    """Same set of label sets, almost-equal values, and the order if `expect ordered`."""
    problems: list[str] = []
    seen: set[Labels] = set()
    for index, (labels, value) in enumerate(actual, 1):
        name = format_labels(labels)
        if labels in seen:
            problems.append(f"duplicate series in the result: {name}")
        seen.add(labels)
        expected = case.series.get(labels)
        if expected is None:
            problems.append(f"unexpected series: {name} {format_value(value)}")
            continue
        problem = _value_problem(name, expected.values[0], value)
        if problem is not None:
            problems.append(problem)
        if case.ordered and expected.position != index:
            problems.append(
                f"order: {name} is result #{index}, expected #{expected.position} (expect ordered)"
            )
    for labels, expected in case.series.items():
        if labels not in seen:
            problems.append(f"missing series: {format_labels(labels)} {_values_text(expected)}")
    if problems:
        got = "\n".join(f"{format_labels(lb)} {format_value(v)}" for lb, v in actual) or "(empty)"
        _raise_problems(context, problems, _diff_text(_expected_text(case), got))


def _compare_matrix(
    case: EvalCase, series: list[Series], start_ms: int, step_ms: int, context: str
) -> None:
    """Sorted by labels, the expected set of series, and per series the same points."""
    problems = _sort_problems([s.labels for s in series])
    actual = {s.labels: s for s in series}
    for labels, s in actual.items():
        expected = case.series.get(labels)
        if expected is None:
            problems.append(f"unexpected series: {format_labels(labels)} {_points_text(s)}")
        else:
            problems += _point_problems(expected, s, start_ms, step_ms)
    for labels, expected in case.series.items():
        if labels not in actual:
            points = _expected_points(expected, start_ms, step_ms)
            problems.append(f"missing series: {format_labels(labels)} {_pairs_text(points)}")
    if problems:
        expected_text = "\n".join(
            f"{format_labels(e.labels)} {_pairs_text(_expected_points(e, start_ms, step_ms))}"
            for e in case.series.values()
        )
        got = "\n".join(f"{format_labels(s.labels)} {_points_text(s)}" for s in series)
        _raise_problems(context, problems, _diff_text(expected_text or "(empty)", got or "(empty)"))


def _sort_problems(labels: list[Labels]) -> list[str]:
    """A matrix must be sorted by label set, pair by pair (tuple order is exactly that)."""
    for before, after in itertools.pairwise(labels):
        if after < before:
            return [
                f"matrix not sorted by labels: {format_labels(before)} "
                f"comes before {format_labels(after)}"
            ]
        if after == before:
            return [f"duplicate series in the result: {format_labels(after)}"]
    return []


def _expected_points(
    expected: ExpectedSeries, start_ms: int, step_ms: int
) -> list[tuple[int, float | Histogram]]:
    return [
        (start_ms + i * step_ms, v)
        for i, v in enumerate(expected.values)
        if isinstance(v, (float, Histogram))
    ]


def _series_points(series: Series) -> list[tuple[int, Got]]:
    """A result series' float and histogram points, in time order."""
    points: list[tuple[int, Got]] = [
        (int(t), float(v)) for t, v in zip(series.timestamps, series.values, strict=True)
    ]
    points += list(series.histograms)
    return sorted(points, key=lambda p: p[0])


def _point_problems(
    expected: ExpectedSeries, actual: Series, start_ms: int, step_ms: int
) -> list[str]:
    want = _expected_points(expected, start_ms, step_ms)
    got = _series_points(actual)
    name = format_labels(expected.labels)
    if len(want) != len(got):
        return [f"{name}: expected {len(want)} points, got {len(got)}"]
    for (want_t, want_v), (got_t, got_v) in zip(want, got, strict=True):
        if want_t != got_t:
            return [
                f"{name}: expected a point at {format_ts(want_t)}, got one at {format_ts(got_t)}"
            ]
        problem = _value_problem(f"{name} at {format_ts(want_t)}", want_v, got_v)
        if problem is not None:
            return [problem]
    return []


def _raise_problems(context: str, problems: list[str], listing: str) -> None:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    details = "\n".join(problems[:_MAX_LINES_SHOWN]) + "\n" + listing
    raise EvalFailedError(f"{context}: {problems[0]}{more}", details)


# --------------------------------------------------------------------------------------------
# Annotations (§5.2)


def _check_annotations(case: EvalCase, result: QueryResult) -> None:
    emitted = {"warn": result.annotations.warnings, "info": result.annotations.infos}
    flags = {"warn": (case.any_warn, case.no_warn), "info": (case.any_info, case.no_info)}
    for kind, texts in emitted.items():
        at_least_one, none_allowed = flags[kind]
        article, noun = ("a", "warning") if kind == "warn" else ("an", "info annotation")
        expectations = case.expectations(kind)
        listing = _annotation_listing(case, result)
        if at_least_one and not texts:
            raise EvalFailedError(f"eval_{kind}: expected at least one {noun}, got none", listing)
        if none_allowed and texts:
            raise EvalFailedError(f"expect no_{kind}, but got: {texts[0]}", listing)
        if not expectations:
            continue
        if not texts:
            raise EvalFailedError(f"expected {article} {noun}, got none", listing)
        for exp in expectations:
            if not any(exp.matches(text) for text in texts):
                raise EvalFailedError(f"no {noun} matches `{exp.describe()}`", listing)
        for text in texts:
            if not any(exp.matches(text) for exp in expectations):
                raise EvalFailedError(f"unexpected {noun}: {text}", listing)


def _annotation_listing(case: EvalCase, result: QueryResult) -> str:
    expected = [a.describe() for a in case.annotations]
    expected += [
        f"expect no_{k}" for k, on in (("warn", case.no_warn), ("info", case.no_info)) if on
    ]
    expected += [f"eval_{case.modifier}"] if case.modifier in ("warn", "info") else []
    got = [f"warning: {w}" for w in result.annotations.warnings]
    got += [f"info: {i}" for i in result.annotations.infos]
    return _diff_text("\n".join(expected) or "(none)", "\n".join(got) or "(none)")


# --------------------------------------------------------------------------------------------
# Range-mode consistency check (§4.3 step 3)


def _range_mode_check(
    engine: Any, case: EvalCase, instant: QueryResult, expr: str = "", at: int | None = None
) -> None:
    expr = expr or case.expr
    if case.range_vector is not None or case.expected_string is not None:
        return
    if any(call in expr for call in _RANGE_DEPENDENT_CALLS):
        return
    at = case.time_ms if at is None else at
    context = "range-mode check (§4.3.3, range query T-1m..T+1m step 1m)"
    querier = case.storage.querier()
    result, error = _execute(
        lambda: engine.range_query(querier, expr, at - 60_000, at + 60_000, 60_000), context
    )
    if error is not None:
        raise EvalFailedError(f"{context}: the range query failed: {error.message}")
    assert result is not None
    if case.ordered:
        return  # range results are always label-sorted, so there is no order to compare
    _require_type(case, result, "matrix", context)
    problems = _sort_problems([s.labels for s in result.series])
    if problems:
        _raise_problems(context, problems, format_result(result))
    vector = [(s.labels, value) for s in result.series for t, value in _series_points(s) if t == at]
    if instant.result_type == "scalar":
        if not vector or not isinstance(vector[0][1], float):
            raise EvalFailedError(f"{context}: no float point at T", format_result(result))
        _compare_scalar(case, vector[0][1], context)
    else:
        _compare_vector(case, vector, context)


# --------------------------------------------------------------------------------------------
# Formatting


def format_labels(labels: Labels) -> str:
    """`name{a="1", b="2"}` the way PromQL prints a series; `{}` for no labels at all."""
    name = dict(labels).get("__name__", "")
    rest = ", ".join(f"{n}={_quote(v)}" for n, v in labels if n != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def format_value(value: object) -> str:
    if isinstance(value, Histogram):
        value = value.histogram
    if isinstance(value, FloatHistogram):
        return value.test_expression()
    value = float(value)  # type: ignore[arg-type]
    if is_stale_nan(value):
        return "stale"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def format_ts(ms: int) -> str:
    """Milliseconds as a duration from t=0 (`50m`, `1m30s`, `-1m`, `0`)."""
    if ms == 0:
        return "0"
    sign, rest = ("-", -ms) if ms < 0 else ("", ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    if rest:
        parts.append(f"{rest}ms")
    return sign + "".join(parts)


def _pairs_text(points: list[tuple[int, Any]]) -> str:
    shown = [f"{format_value(v)}@{format_ts(t)}" for t, v in points[:_MAX_POINTS_SHOWN]]
    more = f" … ({len(points) - _MAX_POINTS_SHOWN} more)" if len(points) > _MAX_POINTS_SHOWN else ""
    return (" ".join(shown) or "(no points)") + more


def _points_text(series: Series) -> str:
    return _pairs_text(_series_points(series))


def _values_text(expected: ExpectedSeries) -> str:
    return " ".join(
        "_" if v is None else format_value(v) if isinstance(v, float) else v.text
        for v in expected.values
    )


def format_result(result: QueryResult) -> str:
    """A query result as text, for a diff's `got` side."""
    return f"got ({result.result_type}):\n" + _indent(_cap(_result_body(result)), "  ")


def _result_body(result: QueryResult) -> str:
    if result.result_type == "scalar":
        body = format_value(result.scalar)
    elif result.result_type == "string":
        body = repr(result.string)
    elif result.result_type == "vector":
        body = "\n".join(
            f"{format_labels(s.labels)} " + " ".join(format_value(v) for _, v in _series_points(s))
            for s in result.series
        )
    else:
        body = "\n".join(f"{format_labels(s.labels)} {_points_text(s)}" for s in result.series)
    return body or "(empty)"


def _expected_text(case: EvalCase) -> str:
    if case.expect_fail:
        return "an error" + (f": {case.fail_msg}" if case.fail_msg else "")
    if case.expected_string is not None:
        return f"string {case.expected_string!r}"
    if case.expected_scalar is not None:
        return f"scalar {format_value(case.expected_scalar)}"
    lines = [f"{format_labels(e.labels)} {_values_text(e)}" for e in case.series.values()]
    return "\n".join(lines) or "(empty)"


def _expected_block(case: EvalCase) -> str:
    return "expected:\n" + _indent(_cap(_expected_text(case)), "  ")


def _diff_text(expected: str, got: str, got_header: str = "got") -> str:
    return (
        "expected:\n"
        + _indent(_cap(expected), "  ")
        + f"\n{got_header}:\n"
        + _indent(_cap(got), "  ")
    )


def _result_diff(case: EvalCase, result: QueryResult) -> str:
    return _diff_text(_expected_text(case), _result_body(result), f"got ({result.result_type})")


def _cap(text: str) -> str:
    lines = text.split("\n")
    if len(lines) <= _MAX_LINES_SHOWN:
        return text
    return "\n".join([*lines[:_MAX_LINES_SHOWN], f"… ({len(lines) - _MAX_LINES_SHOWN} more lines)"])


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.split("\n"))
