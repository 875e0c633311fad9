"""PromQL functions: math and trigonometry, time, label manipulation, sorting, absent,
scalar/vector and histogram_quantile; the calls of range-vector functions are range_calls.py's
(and their arithmetic range_functions.py's)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import promql_parser as pp

from watchkeeper.model import METRIC_NAME, Labels, MatchOp, is_valid_label_name
from watchkeeper.model.gofloat import format_f
from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.model.matchers import anchored_replacement, compile_anchored
from watchkeeper.promql import histograms, native_histograms, range_calls
from watchkeeper.promql.ast import selector_matcher_sets
from watchkeeper.promql.errors import QueryError
from watchkeeper.promql.values import (
    Floats,
    HistogramRange,
    HistogramSteps,
    InstantSteps,
    ScalarSteps,
    StringValue,
    Value,
)
from watchkeeper.promql.vectors import drop_name, merge_same_labels

if TYPE_CHECKING:
    from watchkeeper.promql.evaluator import Evaluator


Handler = Callable[["Evaluator", list[Any]], Value]


def _sgn(v: Floats) -> Floats:
    return np.where(np.isnan(v), v, np.sign(v))


ELEMENTWISE: dict[str, Callable[[Floats], Floats]] = {
    "abs": np.abs,
    "ceil": np.ceil,
    "floor": np.floor,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "ln": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "sgn": _sgn,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "deg": np.degrees,
    "rad": np.radians,
}

# Functions of an instant vector that read float samples only and skip histogram samples, as
# Prometheus' do; and those that only ask whether a sample is there.
FLOATS_ONLY = {
    *ELEMENTWISE,
    "clamp",
    "clamp_min",
    "clamp_max",
    "round",
    "scalar",
    "minute",
    "hour",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
    "sort",
    "sort_desc",
}
PRESENCE_ONLY = {"absent", "timestamp"}


def evaluate(ev: Evaluator, node: Any) -> Value:
    name = node.func.name
    args = list(node.args)
    ev.ctx.enter_call(name)
    try:
        return _evaluate(ev, name, args)
    finally:
        ev.ctx.exit_call()


def _evaluate(ev: Evaluator, name: str, args: list[Any]) -> Value:
    if name in ELEMENTWISE:
        vector = ev.eval_vector(args[0])
        with np.errstate(all="ignore"):
            values = ELEMENTWISE[name](vector.values)
        return _renamed(vector, values)
    handler = _HANDLERS.get(name)
    if handler is not None:
        return handler(ev, args)
    if name == "absent_over_time":
        return _absent_over_time(ev, args)
    if name in range_calls.HANDLERS:
        return range_calls.evaluate(ev, name, args)
    raise QueryError(f"function {name!r} is not supported")


def _renamed(
    vector: InstantSteps, values: Floats, present: Any = None, keep_name: bool = False
) -> InstantSteps:
    """A function's result: the input's series with new values; the metric name dropped."""
    labels = vector.labels if keep_name else [drop_name(ls) for ls in vector.labels]
    return merge_same_labels(labels, values, vector.present if present is None else present)


def _scalar_arg(ev: Evaluator, node: Any) -> Floats:
    return ev.eval_scalar(node).values


def _string_arg(ev: Evaluator, node: Any) -> str:
    value = ev.eval(node)
    if not isinstance(value, StringValue):
        raise QueryError("expected a string argument")
    return value.value


# -- absent_over_time (the other range-vector functions: range_calls.py)


def _absent_over_time(ev: Evaluator, args: list[Any]) -> InstantSteps:
    matrix_arg = args[0]
    value = ev.eval(matrix_arg)
    if isinstance(value, HistogramRange):
        found = value.floats.counts.sum(axis=0) > 0
        for i in range(len(value.labels)):
            found |= [value.window(i, j)[1] > value.window(i, j)[0] for j in range(ev.steps)]
        return _absent(ev, matrix_arg, found)
    rs = ev.eval_range(matrix_arg)
    return _absent(ev, matrix_arg, rs.counts.sum(axis=0) > 0)


# -- absent


def _absent_labels(node: Any) -> Labels:
    """The labels absent() reports: the selector's equality matchers (a label matched twice is
    left out, as Prometheus does)."""
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    if isinstance(node, pp.MatrixSelector):
        node = node.vector_selector
    if not isinstance(node, pp.VectorSelector):
        return ()
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for matcher in selector_matcher_sets(node)[0]:
        if matcher.name == METRIC_NAME:
            continue
        if matcher.op is MatchOp.EQUAL and matcher.name not in seen:
            labels[matcher.name] = matcher.value
            seen.add(matcher.name)
        else:
            # only an equality matcher claims the name: `{job=~".+", job="a"}` reports job="a"
            labels.pop(matcher.name, None)
    return tuple(sorted((k, v) for k, v in labels.items() if v))


def _absent(ev: Evaluator, node: Any, any_present: Any) -> InstantSteps:
    absent = ~np.asarray(any_present, dtype=bool)
    return InstantSteps([_absent_labels(node)], np.ones((1, len(ev.ts))), absent[None, :])


def _fn_absent(ev: Evaluator, args: list[Any]) -> Value:
    vector = ev.eval_vector(args[0])
    return _absent(ev, args[0], vector.present.any(axis=0))


# -- scalars, vectors, time


def _fn_time(ev: Evaluator, args: list[Any]) -> Value:
    return ScalarSteps(ev.ts / 1000.0)


def _query_time(part: str) -> Handler:
    """start(), end(), step() and range(): the query's own times in seconds (an instant
    query's start and end are its time, its step and range 0)."""

    def handler(ev: Evaluator, args: list[Any]) -> Value:
        ctx = ev.ctx
        seconds = {
            "start": ctx.start_ms,
            "end": ctx.end_ms,
            "step": ctx.step_ms,
            "range": ctx.end_ms - ctx.start_ms,
        }[part] / 1000.0
        return ScalarSteps(np.full(len(ev.ts), seconds))

    return handler


def _extreme_of(pick: Callable[..., Floats]) -> Handler:
    def handler(ev: Evaluator, args: list[Any]) -> Value:
        values = [_scalar_arg(ev, arg) for arg in args]
        return ScalarSteps(pick(np.vstack(values), axis=0))

    return handler


def _fn_pi(ev: Evaluator, args: list[Any]) -> Value:
    return ScalarSteps(np.full(len(ev.ts), math.pi))


def _fn_vector(ev: Evaluator, args: list[Any]) -> Value:
    values = _scalar_arg(ev, args[0])
    return InstantSteps([()], values[None, :].copy(), np.ones((1, len(values)), dtype=bool))


def _fn_scalar(ev: Evaluator, args: list[Any]) -> Value:
    vector = ev.eval_vector(args[0])
    steps = len(ev.ts)
    if not vector.labels:
        return ScalarSteps(np.full(steps, np.nan))
    single = vector.present.sum(axis=0) == 1
    which = np.argmax(vector.present, axis=0)
    values = vector.values[which, np.arange(steps)]
    return ScalarSteps(np.where(single, values, np.nan))


def _fn_timestamp(ev: Evaluator, args: list[Any]) -> Value:
    arg = args[0]
    while isinstance(arg, pp.ParenExpr):
        arg = arg.expr
    vector = ev.eval_vector(arg)
    if isinstance(arg, pp.VectorSelector) and vector.sample_ts is not None:
        values = vector.sample_ts / 1000.0
    else:
        values = np.broadcast_to(ev.ts / 1000.0, vector.values.shape).copy()
    return _renamed(vector, values)


def _date_part(part: Callable[[dt.datetime], float]) -> Callable[[Evaluator, list[Any]], Value]:
    def handler(ev: Evaluator, args: list[Any]) -> Value:
        if args:
            vector = ev.eval_vector(args[0])
        else:
            steps = len(ev.ts)
            vector = InstantSteps([()], (ev.ts / 1000.0)[None, :], np.ones((1, steps), dtype=bool))
        values = np.full(vector.values.shape, np.nan)
        rows, cols = np.nonzero(vector.present)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            seconds = vector.values[r, c]
            if math.isfinite(seconds):
                try:
                    # Go's int64() truncates toward zero: -0.5 is the epoch itself
                    when = dt.datetime.fromtimestamp(int(seconds), dt.UTC)
                except (OverflowError, ValueError, OSError):
                    continue
                values[r, c] = part(when)
        return _renamed(vector, values)

    return handler


def _days_in_month(when: dt.datetime) -> float:
    following = when.replace(day=28) + dt.timedelta(days=4)
    return float((following - dt.timedelta(days=following.day)).day)


# -- clamping and rounding


def _fn_clamp(ev: Evaluator, args: list[Any]) -> Value:
    vector = ev.eval_vector(args[0])
    low = _scalar_arg(ev, args[1])[None, :]
    high = _scalar_arg(ev, args[2])[None, :]
    values = np.maximum(low, np.minimum(high, vector.values))
    return _renamed(vector, values, vector.present & ~(high < low))


def _fn_clamp_min(ev: Evaluator, args: list[Any]) -> Value:
    vector = ev.eval_vector(args[0])
    return _renamed(vector, np.maximum(_scalar_arg(ev, args[1])[None, :], vector.values))


def _fn_clamp_max(ev: Evaluator, args: list[Any]) -> Value:
    vector = ev.eval_vector(args[0])
    return _renamed(vector, np.minimum(_scalar_arg(ev, args[1])[None, :], vector.values))


def _fn_round(ev: Evaluator, args: list[Any]) -> Value:
    vector = ev.eval_vector(args[0])
    to_nearest = _scalar_arg(ev, args[1]) if len(args) > 1 else np.ones(len(ev.ts))
    with np.errstate(all="ignore"):
        inverse = (1.0 / to_nearest)[None, :]
        values = np.floor(vector.values * inverse + 0.5) / inverse
    return _renamed(vector, values)


# -- sorting


def _reordered(
    ev: Evaluator, value: InstantSteps | HistogramSteps, order_of: Callable[[], Any]
) -> Value:
    """The sort family: the series in `order_of()`'s order in an instant query; a range query's
    result is ordered by labels anyway, which Prometheus warns about."""
    if ev.ctx.range_query:
        ev.ctx.annotations.warn(
            "PromQL warning: sort is ineffective for range queries since results are "
            f"always ordered by labels ({ev.ctx.call_position()})"
        )
    vector = value.floats if isinstance(value, HistogramSteps) else value
    if len(ev.ts) != 1 or not vector.labels:
        return value
    order = order_of()
    ordered = InstantSteps(
        [vector.labels[i] for i in order], vector.values[order], vector.present[order]
    )
    if isinstance(value, HistogramSteps):
        return HistogramSteps(ordered, [value.histograms[i] for i in order])
    return ordered


def _sort(descending: bool) -> Handler:
    def handler(ev: Evaluator, args: list[Any]) -> Value:
        vector = ev.eval_vector(args[0])

        def by_value() -> Any:
            values = vector.values[:, 0]
            nan = np.isnan(values)  # NaN last either way
            return np.lexsort((np.where(nan, 0.0, -values if descending else values), nan))

        return _reordered(ev, vector, by_value)

    return handler


def _natural_key(value: str) -> list[tuple[int, int, str]]:
    """Natural order: runs of digits compare as numbers (`a2` before `a10`)."""
    return [
        (0, int(chunk), "") if chunk.isdigit() else (1, 0, chunk)
        for chunk in re.findall(r"\d+|\D+", value)
    ]


def _sort_by_label(descending: bool) -> Handler:
    def handler(ev: Evaluator, args: list[Any]) -> Value:
        value = ev.eval_histograms(args[0])  # by labels: histograms are sorted as floats
        vector = value.floats if isinstance(value, HistogramSteps) else value
        names = [_string_arg(ev, a) for a in args[1:]]

        def key(i: int) -> tuple[list[list[tuple[int, int, str]]], Labels]:
            values = dict(vector.labels[i])
            return [_natural_key(values.get(n, "")) for n in names], vector.labels[i]

        def by_labels() -> Any:
            return sorted(range(len(vector.labels)), key=key, reverse=descending)

        return _reordered(ev, value, by_labels)

    return handler


# -- labels


def _fn_label_replace(ev: Evaluator, args: list[Any]) -> Value:
    vector = ev.eval_histograms(args[0])
    dst, replacement, src, pattern = (_string_arg(ev, a) for a in args[1:5])
    try:
        compile_anchored(pattern)
    except ValueError as err:
        raise QueryError(f"invalid regular expression in label_replace(): {pattern}") from err
    if not is_valid_label_name(dst) or not ev.ctx.argument_is_utf8(1):
        raise QueryError(f"invalid destination label name in label_replace(): {dst}")

    def replaced(values: dict[str, str]) -> str | None:
        return anchored_replacement(pattern, replacement, values.get(src, ""))

    return _with_label(vector, dst, replaced)


def _fn_label_join(ev: Evaluator, args: list[Any]) -> Value:
    vector = ev.eval_histograms(args[0])
    dst = _string_arg(ev, args[1])
    separator = _string_arg(ev, args[2])
    sources = [_string_arg(ev, a) for a in args[3:]]
    if not is_valid_label_name(dst) or not ev.ctx.argument_is_utf8(1):
        raise QueryError(f"invalid destination label name in label_join(): {dst}")
    return _with_label(
        vector, dst, lambda values: separator.join(values.get(n, "") for n in sources)
    )


def _with_label(
    vector: InstantSteps | HistogramSteps,
    dst: str,
    value_of: Callable[[dict[str, str]], str | None],
) -> InstantSteps | HistogramSteps:
    """Each series with label `dst` set to `value_of(its labels)`, or removed when that is
    empty; None leaves the series as it is (label_replace's regex did not match). Native
    histogram samples keep their histograms."""
    labels: list[Labels] = []
    for ls in vector.labels:
        values = dict(ls)
        value = value_of(values)
        if value:
            values[dst] = value
        elif value is not None:
            values.pop(dst, None)
        labels.append(tuple(sorted(values.items())))
    if isinstance(vector, HistogramSteps):
        floats = vector.floats
        return native_histograms.steps_of(labels, floats.values, floats.present, vector.histograms)
    return merge_same_labels(labels, vector.values, vector.present)


# -- histograms


def _fn_histogram_quantile(ev: Evaluator, args: list[Any]) -> Value:
    q = _scalar_arg(ev, args[0])
    position = ev.ctx.argument_position(1)
    classic, natives = native_histograms.split_classic(ev, ev.eval_histograms(args[1]), position)
    result = histograms.quantile(ev, q, classic)
    if not natives:
        return result
    native = native_histograms.per_histogram(ev, natives, _quantile_of(q), position)
    return _joined(native, result)


def _joined(first: InstantSteps, second: InstantSteps) -> InstantSteps:
    """Two results of one function as one vector (the same label set at one step twice is the
    usual error)."""
    return merge_same_labels(
        first.labels + second.labels,
        np.concatenate([first.values, second.values]),
        np.concatenate([first.present, second.present]),
    )


def _fn_histogram_quantiles(ev: Evaluator, args: list[Any]) -> Value:
    """histogram_quantiles(v, "label", q1, q2, ...): each quantile as its own series, told
    apart by the label."""
    position = ev.ctx.argument_position(0)
    vector, natives = native_histograms.split_classic(ev, ev.eval_histograms(args[0]), position)
    label = _string_arg(ev, args[1])
    labels: list[Labels] = []
    values: list[Floats] = []
    present: list[Any] = []
    for index, node in enumerate(args[2:], start=2):
        q = _scalar_arg(ev, node)
        result = histograms.quantile(ev, q, vector, vector_arg=0, q_arg=index)
        if natives:
            native = native_histograms.per_histogram(ev, natives, _quantile_of(q), position)
            result = _joined(native, result)
        shown = format_f(float(q[0]))
        if "." not in shown and shown.lstrip("-").isdigit():
            shown += ".0"  # as Prometheus labels them: 0.0, 0.25, 1.0
        for row, ls in enumerate(result.labels):
            labels.append(tuple(sorted({**dict(ls), label: shown}.items())))
            values.append(result.values[row])
            present.append(result.present[row])
    steps = len(ev.ts)
    return merge_same_labels(
        labels,
        np.array(values).reshape(len(labels), steps),
        np.array(present, dtype=bool).reshape(len(labels), steps),
    )


def _quantile_of(q: Floats) -> Callable[[int, FloatHistogram], tuple[float, str | None]]:
    """The quantile `q` (at each step) of a native histogram."""
    return lambda j, h: native_histograms.histogram_quantile(float(q[j]), h)


def _fn_histogram_fraction(ev: Evaluator, args: list[Any]) -> Value:
    lower = _scalar_arg(ev, args[0])
    upper = _scalar_arg(ev, args[1])
    position = ev.ctx.argument_position(2)
    classic, natives = native_histograms.split_classic(ev, ev.eval_histograms(args[2]), position)
    result = histograms.fraction(ev, lower, upper, classic)
    if not natives:
        return result
    native = native_histograms.per_histogram(
        ev,
        natives,
        lambda j, h: native_histograms.histogram_fraction(float(lower[j]), float(upper[j]), h),
        position,
    )
    return _joined(native, result)


def _histogram_property(read: Callable[[FloatHistogram], float]) -> Handler:
    """histogram_count(), histogram_sum(), histogram_avg(): a number of each native histogram
    sample, named without the metric name; float samples give nothing, as in Prometheus."""

    def handler(ev: Evaluator, args: list[Any]) -> Value:
        vector = ev.eval_histograms(args[0])
        if not isinstance(vector, HistogramSteps):
            return InstantSteps.empty(len(ev.ts))
        shape = vector.floats.values.shape
        values = np.full(shape, np.nan)
        present = np.zeros(shape, dtype=bool)
        for i, found in enumerate(vector.histograms):
            for j, histogram in found.items():
                values[i, j] = read(histogram)
                present[i, j] = True
        return _renamed(vector.floats, values, present)

    return handler


def _average(histogram: FloatHistogram) -> float:
    with np.errstate(all="ignore"):
        return float(np.float64(histogram.sum) / np.float64(histogram.count))


_HANDLERS: dict[str, Handler] = {
    "absent": _fn_absent,
    "time": _fn_time,
    "pi": _fn_pi,
    "vector": _fn_vector,
    "scalar": _fn_scalar,
    "timestamp": _fn_timestamp,
    "minute": _date_part(lambda d: d.minute),
    "hour": _date_part(lambda d: d.hour),
    "day_of_month": _date_part(lambda d: d.day),
    "day_of_week": _date_part(lambda d: (d.weekday() + 1) % 7),
    "day_of_year": _date_part(lambda d: d.timetuple().tm_yday),
    "days_in_month": _date_part(_days_in_month),
    "month": _date_part(lambda d: d.month),
    "year": _date_part(lambda d: d.year),
    "clamp": _fn_clamp,
    "clamp_min": _fn_clamp_min,
    "clamp_max": _fn_clamp_max,
    "round": _fn_round,
    "start": _query_time("start"),
    "end": _query_time("end"),
    "step": _query_time("step"),
    "range": _query_time("range"),
    "min_of": _extreme_of(np.min),
    "max_of": _extreme_of(np.max),
    "sort_by_label": _sort_by_label(descending=False),
    "sort_by_label_desc": _sort_by_label(descending=True),
    "sort": _sort(descending=False),
    "sort_desc": _sort(descending=True),
    "label_replace": _fn_label_replace,
    "label_join": _fn_label_join,
    "histogram_quantile": _fn_histogram_quantile,
    "histogram_fraction": _fn_histogram_fraction,
    "histogram_quantiles": _fn_histogram_quantiles,
    "histogram_count": _histogram_property(lambda h: h.count),
    "histogram_sum": _histogram_property(lambda h: h.sum),
    "histogram_avg": _histogram_property(_average),
    "histogram_stddev": _histogram_property(
        lambda h: math.sqrt(v) if (v := native_histograms.histogram_variance(h)) >= 0 else math.nan
    ),
    "histogram_stdvar": _histogram_property(native_histograms.histogram_variance),
}
