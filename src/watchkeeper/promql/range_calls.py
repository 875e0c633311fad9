"""Calls of the range-vector functions (rate, increase, *_over_time, ...): the table of them,
their scalar arguments, and their evaluation, whole or batch by batch as their selector is read
(`InParts`, which an aggregation folds); the arithmetic over windows is range_functions.py's,
over native histogram windows histogram_windows.py's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import promql_parser as pp

from watchkeeper.model import Labels
from watchkeeper.promql import aggregations, histogram_windows, native_histograms, range_functions
from watchkeeper.promql.errors import QueryError
from watchkeeper.promql.values import (
    Floats,
    HistogramRange,
    HistogramSteps,
    InstantSteps,
    Ints,
    RangeSteps,
)
from watchkeeper.promql.vectors import drop_name, merge_same_labels

if TYPE_CHECKING:
    from watchkeeper.promql.evaluator import Evaluator

OVER_TIME_KEEPING_NAME = {"last_over_time", "first_over_time"}


def evaluate(ev: Evaluator, name: str, args: list[Any]) -> InstantSteps | HistogramSteps:
    """The range function `name` (one of HANDLERS) of `args`, whole."""
    parts: list[InstantSteps] = []
    for whole, part in _parts(ev, name, args, ev.ctx.current_call()):
        if whole:
            return part
        assert isinstance(part, InstantSteps)
        parts.append(part)
    return _as_result(name, parts, ev.steps)


def _as_result(name: str, parts: list[InstantSteps], steps: int) -> InstantSteps:
    """The range function `name`'s result from its parts (series labelled as read, each part
    in label order; the list is emptied): in label order, the metric name dropped unless the
    function keeps it, repeated label sets merged."""
    result = InstantSteps.concat_in_label_order(parts, steps)
    return merge_same_labels(_result_labels(name, result.labels), result.values, result.present)


def _result_labels(name: str, labels: list[Labels]) -> list[Labels]:
    return labels if name in OVER_TIME_KEEPING_NAME else [drop_name(ls) for ls in labels]


class InParts:
    """A range function of a range selector alone, evaluated batch by batch as its selector is
    read (`parts`), or whole again (`whole`) when the parts will not do."""

    def __init__(self, ev: Evaluator, name: str, args: list[Any]) -> None:
        self._ev, self._name, self._args = ev, name, args
        self._call = ev.ctx.enter_call(name)
        ev.ctx.exit_call()

    def parts(self) -> Iterator[tuple[bool, InstantSteps | HistogramSteps]]:
        """Each part is the function's result for a batch of series, labelled as read (in
        label order within the part): `labels` gives the result's labels, `joined` the result
        of parts held together. What holds one part at a time (an aggregation) never holds
        every series' result. Where the function is not computed batch by batch (a selector
        holding native histograms), the one part is the whole value, marked True."""
        return _parts(self._ev, self._name, self._args, self._call)

    def labels(self, read: list[Labels]) -> list[Labels]:
        """The result's labels of series read as `read`: label sets may repeat, for the caller
        to merge or refuse as `merge_same_labels` does."""
        return _result_labels(self._name, read)

    def joined(self, parts: list[InstantSteps]) -> InstantSteps:
        """The result from parts held together (the list is emptied), as computed whole."""
        return _as_result(self._name, parts, self._ev.steps)

    def whole(self) -> InstantSteps | HistogramSteps:
        """The whole value, read and computed afresh, as the same call."""
        self._ev.ctx.resume_call(self._call)
        try:
            return evaluate(self._ev, self._name, self._args)
        finally:
            self._ev.ctx.exit_call()


def parts(ev: Evaluator, node: Any) -> InParts | None:
    """`node` as an InParts where it is a range function of a range selector alone
    (IN_PARTS); None for any other node."""
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    if not isinstance(node, pp.Call) or node.func.name not in IN_PARTS or len(node.args) != 1:
        return None
    return InParts(ev, node.func.name, list(node.args))


def _parts(
    ev: Evaluator, name: str, args: list[Any], call: tuple[str, int]
) -> Iterator[tuple[bool, InstantSteps | HistogramSteps]]:
    """`InParts.parts` of the range function `name` of `args`, evaluated as the call `call`."""
    matrix_arg = args[1] if name == "quantile_over_time" else args[0]
    compute = HANDLERS[name]
    extra: list[Floats] = []
    in_windows = np.zeros(ev.steps, dtype=np.int64)
    batches = ev.range_batches(matrix_arg)
    first = True
    while True:
        # in the call only while computing: the caller's work between parts is not
        ev.ctx.resume_call(call)
        try:
            batch = next(batches, None)
            if first:  # the arguments' errors and warnings, even with no series at all
                extra = _range_function_arguments(ev, name, args)
                first = False
            if batch is None:
                ev.ctx.count_samples(int(in_windows.max(initial=0)))
                return
            whole: InstantSteps | HistogramSteps | None = None
            if isinstance(batch, HistogramRange):  # read whole, never in batches
                whole = _range_function_histograms(ev, name, batch, extra, args.index(matrix_arg))
            else:
                in_windows += batch.counts.sum(axis=0)
                values, present = range_functions.by_rows(compute, batch, extra, ev.ts)
                labels = batch.labels
            del batch  # not held while the next batch is read
        finally:
            ev.ctx.exit_call()
        if whole is not None:
            yield True, whole
            return
        yield False, InstantSteps(labels, values, present)


def _range_function_histograms(
    ev: Evaluator, name: str, hr: HistogramRange, extra: list[Floats], arg: int
) -> InstantSteps | HistogramSteps:
    """A range function over series holding native histograms: floats through the usual
    arrays; each window with a histogram as histogram_windows.window_value says (functions
    that read floats only ignore the histograms, with Prometheus' info where floats are
    there too)."""
    floats = hr.floats
    values, present = range_functions.by_rows(HANDLERS[name], floats, extra, ev.ts)
    ev.ctx.count_samples(int(floats.counts.sum(axis=0).max(initial=0)))
    position = ev.ctx.argument_position(arg)
    maps = histogram_windows.over_windows(ev, name, hr, values, present, position)
    return native_histograms.steps_of(_result_labels(name, hr.labels), values, present, maps)


def _range_function_arguments(ev: Evaluator, name: str, args: list[Any]) -> list[Floats]:
    """The scalar arguments of a range-vector function, checked."""
    if name == "quantile_over_time":
        quantile = ev.eval_scalar(args[0]).values
        aggregations.warn_quantile_range(ev, quantile, ev.ctx.argument_position(0))
        return [quantile]
    if name == "predict_linear":
        return [ev.eval_scalar(args[1]).values]
    if name == "double_exponential_smoothing":
        extra = [ev.eval_scalar(args[1]).values, ev.eval_scalar(args[2]).values]
        _check_smoothing(extra[0], extra[1])
        return extra
    return []


def _check_smoothing(sf: Floats, tf: Floats) -> None:
    for value in sf:
        if not 0 < value < 1:
            raise QueryError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {value:f}")
    for value in tf:
        if not 0 < value < 1:
            raise QueryError(f"invalid trend factor. Expected: 0 < tf < 1, got: {value:f}")


RangeCompute = Callable[[RangeSteps, list[Floats], Ints], range_functions.Result]

HANDLERS: dict[str, RangeCompute] = {
    "rate": lambda rs, a, ts: range_functions.extrapolated(rs, counter=True, per_second=True),
    "increase": lambda rs, a, ts: range_functions.extrapolated(rs, counter=True, per_second=False),
    "delta": lambda rs, a, ts: range_functions.extrapolated(rs, counter=False, per_second=False),
    "irate": lambda rs, a, ts: range_functions.instant_change(rs, per_second=True),
    "idelta": lambda rs, a, ts: range_functions.instant_change(rs, per_second=False),
    "resets": lambda rs, a, ts: range_functions.resets(rs),
    "changes": lambda rs, a, ts: range_functions.changes(rs),
    "deriv": lambda rs, a, ts: range_functions.deriv(rs),
    # the intercept is at the evaluation time, even with `@` or `offset` on the selector
    "predict_linear": lambda rs, a, ts: range_functions.predict_linear(rs, a[0], ts),
    "first_over_time": lambda rs, a, ts: range_functions.first_over_time(rs),
    "last_over_time": lambda rs, a, ts: range_functions.last_over_time(rs),
    "count_over_time": lambda rs, a, ts: range_functions.count_over_time(rs),
    "present_over_time": lambda rs, a, ts: range_functions.present_over_time(rs),
    "quantile_over_time": lambda rs, a, ts: range_functions.quantile_over_time(rs, a[0]),
    "mad_over_time": lambda rs, a, ts: range_functions.mad_over_time(rs),
    "ts_of_first_over_time": lambda rs, a, ts: range_functions.ts_of(rs, "first"),
    "ts_of_last_over_time": lambda rs, a, ts: range_functions.ts_of(rs, "last"),
    "ts_of_min_over_time": lambda rs, a, ts: range_functions.ts_of(rs, "min"),
    "ts_of_max_over_time": lambda rs, a, ts: range_functions.ts_of(rs, "max"),
    "double_exponential_smoothing": lambda rs, a, ts: range_functions.double_exponential_smoothing(
        rs, a[0], a[1]
    ),
}


def _over_time(reducer: range_functions.Reducer) -> RangeCompute:
    return lambda rs, a, ts: range_functions.reduce_windows(rs, reducer)


for _name, _reducer in range_functions.SIMPLE_OVER_TIME.items():
    HANDLERS[_name] = _over_time(_reducer)
HANDLERS["min_over_time"] = lambda rs, a, ts: range_functions.extreme_over_time(rs, "min")
HANDLERS["max_over_time"] = lambda rs, a, ts: range_functions.extreme_over_time(rs, "max")

# Range functions of the range vector alone, which `parts` gives batch by batch
IN_PARTS = set(HANDLERS) - {
    "quantile_over_time",
    "predict_linear",
    "double_exponential_smoothing",
}
