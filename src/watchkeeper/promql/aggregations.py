"""Aggregation operators with by/without, computed for all steps at once: sum, avg, count,
min, max, group, stddev, stdvar and quantile sort series by group (grouping.py) and reduce them
with numpy's segment reductions, or fold a range function's result batch by batch; topk,
bottomk, limitk, limit_ratio and count_values choose or count series (selections.py). Native
histograms are summed and averaged, counted by count and group, and ignored (with Prometheus'
info) by the others."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels, go_quote
from watchkeeper.model.gofloat import format_f
from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.promql import native_histograms, selections
from watchkeeper.promql.errors import QueryError, refuse_histograms
from watchkeeper.promql.grouping import group_of, grouping, series_groups
from watchkeeper.promql.positions import (
    call_argument,
    call_argument_text,
    call_start,
    go_quote_bytes,
    go_string_bytes,
)
from watchkeeper.promql.summation import CANCELLATION_RATIO, sum_segments, variance_segments
from watchkeeper.promql.values import (
    Bools,
    Floats,
    HistogramSteps,
    InstantSteps,
    Ints,
    ScalarSteps,
    StringValue,
)
from watchkeeper.promql.vectors import merge_same_labels

if TYPE_CHECKING:
    from watchkeeper.promql.evaluator import Evaluator
    from watchkeeper.promql.range_calls import InParts


# cells (series x steps) an aggregation sorts into groups at a time: 128 Ki cells is 1 MiB per
# temporary array, several of which are alive at once (larger chunks were no faster)
AGGREGATION_CELLS = 1 << 17


def evaluate(ev: Evaluator, node: Any) -> InstantSteps | HistogramSteps:
    op = str(node.op)
    if op in FOLDED and ev.steps > 1:  # (an instant query's values are one per series)
        in_parts = ev.eval_parts(node.expr)
        if in_parts is not None:
            return _fold(ev, node, op, in_parts)
    param = ev.eval(node.param) if node.param is not None else None
    return _of_value(ev, node, op, param, ev.eval_histograms(node.expr))


def _of_value(
    ev: Evaluator, node: Any, op: str, param: Any, value: InstantSteps | HistogramSteps
) -> InstantSteps | HistogramSteps:
    if isinstance(value, HistogramSteps):
        return _with_histograms(ev, node, op, param, value)
    return _aggregate(ev, node, op, param, value)


# Aggregations whose groups' values at a step can be had from parts of their series each
# reduced on its own: over a range function read batch by batch (rate, increase, *_over_time,
# ...), they reduce each batch's result into their groups and let it go.
FOLDED = {"sum", "avg", "count", "group", "min", "max"}


def _fold(ev: Evaluator, node: Any, op: str, in_parts: InParts) -> InstantSteps | HistogramSteps:
    """The aggregation `op` of a range function given in parts (Evaluator.eval_parts), the
    same as of the whole value. Parts are held until they pass FOLD_CELLS together, and
    aggregated as the whole value if they never do; past that, each is reduced into the groups
    and let go: a group's sum is the compensated sum of its parts' sums, and the groups come in
    the order of their first series as read, as from the whole value. Where adding the parts'
    sums cancels most of them (or overflows an average), they cannot tell what the whole
    value's exact summation does: the function is computed whole again."""
    parts = in_parts.parts()
    held: list[InstantSteps] = []
    cells = 0
    for whole, part in parts:
        if whole:  # a selector holding native histograms: never read in batches
            return _of_value(ev, node, op, None, part)
        assert isinstance(part, InstantSteps)
        held.append(part)
        cells += part.values.size
        if cells > FOLD_CELLS:
            break
    else:
        return _of_value(ev, node, op, None, in_parts.joined(held))
    by, names = grouping(node.modifier)
    groups = _Groups(op, ev.steps)
    seen: list[tuple[list[Labels], Bools]] = []  # each part's series and where they are present
    rest = (part for _, part in parts)
    for part in itertools.chain(_emptied(held), rest):
        ev.ctx.check_deadline()
        assert isinstance(part, InstantSteps)
        seen.append(_fold_part(groups, part, in_parts.labels(part.labels), names, by))
        del part
    _refuse_repeated(seen)
    if groups.inexact():
        del groups, seen
        return _of_value(ev, node, op, None, in_parts.whole())
    return groups.result()


# cells (series x steps) of a range function's result held whole before an aggregation folds
# its parts instead: 64 Ki cells are 0.6 MiB; below that, folding costs time and saves nothing
FOLD_CELLS = 1 << 16


def _emptied(held: list[InstantSteps]) -> Iterator[InstantSteps]:
    """The parts held, each let go as it is taken."""
    while held:
        yield held.pop(0)


# what each aggregation does with native histogram samples (Prometheus' aggregation())
_COUNTS_HISTOGRAMS = {"count", "group"}
_SUMS_HISTOGRAMS = {"sum", "avg"}
_IGNORES_HISTOGRAMS = {"min", "max", "topk", "bottomk", "stddev", "stdvar", "quantile"}
_CHOOSES_SERIES = {"limitk", "limit_ratio"}  # by their order or label hash, not their values


def _chosen_with_histograms(
    ev: Evaluator, node: Any, op: str, param: Any, value: HistogramSteps
) -> InstantSteps | HistogramSteps:
    """limitk or limit_ratio over samples of either kind: the series chosen where they have
    a sample, each keeping its samples as they are."""
    chosen = _aggregate(ev, node, op, param, value.present_anyhow())
    row_of = {labels: i for i, labels in enumerate(value.floats.labels)}
    present = chosen.present.copy()
    maps: list[dict[int, FloatHistogram]] = []
    for r, labels in enumerate(chosen.labels):
        found = value.histograms[row_of[labels]]
        maps.append({j: h for j, h in found.items() if present[r, j]})
        present[r, list(maps[-1])] = False
    return native_histograms.steps_of(chosen.labels, chosen.values, present, maps)


def _with_histograms(
    ev: Evaluator, node: Any, op: str, param: Any, value: HistogramSteps
) -> InstantSteps | HistogramSteps:
    floats = value.floats
    steps = len(ev.ts)
    if op in _COUNTS_HISTOGRAMS:
        # they only count samples: the histograms' places as present
        return _aggregate(ev, node, op, param, value.present_anyhow())
    if op in _IGNORES_HISTOGRAMS:
        if any(value.histograms):
            where = call_start(ev.ctx.query, op, 0)
            ev.ctx.annotations.info(f"PromQL info: ignored histogram in {op} aggregation ({where})")
        return _aggregate(ev, node, op, param, floats)
    if op in _CHOOSES_SERIES:
        return _chosen_with_histograms(ev, node, op, param, value)
    if op == "count_values":
        label = _value_label(ev, param)
        # a histogram's value text is Prometheus' FloatHistogram.String()
        texts = {
            (i, j): h.go_string()
            for i, found in enumerate(value.histograms)
            for j, h in found.items()
        }
        return selections.count_values(value.present_anyhow(), node.modifier, label, steps, texts)
    if op not in _SUMS_HISTOGRAMS:
        raise refuse_histograms(f"the aggregation {op}")
    result = _aggregate(ev, node, op, param, floats)
    group_labels, gid = series_groups(floats, node.modifier)
    # each group's histograms at each step; a group with floats there as well is dropped
    rows: dict[tuple[int, int], list[int]] = {}  # (group, step): its series, in order
    for i, found in enumerate(value.histograms):
        for j in found:
            rows.setdefault((int(gid[i]), j), []).append(i)
    row_of = {labels: r for r, labels in enumerate(result.labels)}
    values, present = result.values.copy(), result.present.copy()
    maps: list[dict[int, FloatHistogram]] = [{} for _ in result.labels]
    out_labels = list(result.labels)
    mixed = collided = reconciled = False
    for (g, j), series in rows.items():
        members = [value.histograms[i][j] for i in series]
        labels = group_labels[g]
        row = row_of.get(labels)
        if row is not None and present[row, j]:
            present[row, j] = False
            mixed = True
            continue
        try:
            total, collision = native_histograms.kahan_sum(members)
        except ValueError:
            # exponential and custom buckets do not add up: no sample, and a warning naming
            # the metric of the first one that did not add to those before
            custom = members[0].uses_custom_buckets
            k = next(k for k, h in enumerate(members) if h.uses_custom_buckets != custom)
            name = dict(floats.labels[series[k]]).get("__name__", "")
            where = call_argument(ev.ctx.query, op, 0, 0)
            ev.ctx.annotations.warn(
                f'PromQL warning: {native_histograms.MIXED_SCHEMAS} "{name}" ({where})'
            )
            continue
        if collision:
            collided = True
        if native_histograms.reconciled(members):
            reconciled = True
        if op == "avg":
            total = native_histograms.average(total, members)
        if row is None:
            row = row_of[labels] = len(out_labels)
            out_labels.append(labels)
            values = np.vstack([values, np.full((1, steps), np.nan)])
            present = np.vstack([present, np.zeros((1, steps), dtype=bool)])
            maps.append({})
        maps[row][j] = total.compacted()
    if mixed:
        where = call_argument(ev.ctx.query, op, 0, 0)
        ev.ctx.annotations.warn(
            f"PromQL warning: encountered a mix of histograms and floats for aggregation ({where})"
        )
    if reconciled:
        where = call_argument(ev.ctx.query, op, 0, 0)
        ev.ctx.annotations.info(
            f"PromQL info: {native_histograms.RECONCILED} aggregation ({where})"
        )
    if collided:
        where = call_argument(ev.ctx.query, op, 0, 0)
        ev.ctx.annotations.warn(
            f"PromQL warning: {native_histograms.COUNTER_RESET_COLLISION} aggregation ({where})"
        )
    if not any(maps):
        return InstantSteps(out_labels, values, present)
    return HistogramSteps(InstantSteps(out_labels, values, present), maps)


def _value_label(ev: Evaluator, param: Any) -> str:
    """count_values' label name: a valid one (any non-empty UTF-8 text, as Prometheus 3.x),
    or the query fails. promql-parser reads `"\\xc5"` as `Å`, so the bytes are read from the
    query as written."""
    if not isinstance(param, StringValue):
        raise QueryError("count_values needs a label name string as its first argument")
    written = go_string_bytes(call_argument_text(ev.ctx.query, "count_values", 0, 0))
    try:
        written.decode("utf-8")
    except UnicodeDecodeError:
        raise QueryError(f"invalid label name {go_quote_bytes(written)}") from None
    if not param.value:
        raise QueryError(f"invalid label name {go_quote(param.value)}")
    return str(param.value)


def _aggregate(ev: Evaluator, node: Any, op: str, param: Any, vector: InstantSteps) -> InstantSteps:
    steps = len(ev.ts)
    if op == "count_values":
        return selections.count_values(vector, node.modifier, _value_label(ev, param), steps)
    if op in ("topk", "bottomk", "limitk"):
        if not isinstance(param, ScalarSteps):
            raise QueryError(f"{op} needs a scalar as its first argument")
        return selections.select_k(op, vector, node.modifier, param.values)
    if op == "limit_ratio":
        if not isinstance(param, ScalarSteps):
            raise QueryError("limit_ratio needs a scalar as its first argument")
        return selections.limit_ratio(ev, vector, param.values)
    group_labels, gid = series_groups(vector, node.modifier)
    if not group_labels:
        return InstantSteps.empty(steps)
    if op == "quantile":
        if not isinstance(param, ScalarSteps):
            raise QueryError("quantile needs a scalar as its first argument")
        # an aggregation is no call being evaluated: its parameter is found by its name
        warn_quantile_range(ev, param.values, call_argument(ev.ctx.query, "quantile", 0, 0))
    q = param.values if op == "quantile" else None
    result, group_present = _reduce_groups(op, vector, gid, len(group_labels), q)
    return merge_same_labels(group_labels, result, group_present)


def _fold_part(
    groups: _Groups, part: InstantSteps, labels: list[Labels], names: set[str], by: bool
) -> tuple[list[Labels], Bools]:
    """Reduces one part, whose series are labelled as read and whose result labels are
    `labels`, into `groups`; its result's series (repeated label sets merged, as
    merge_same_labels does) and where they are present."""
    merged = merge_same_labels(labels, part.values, part.present)
    firsts = part.labels
    if len(merged.labels) < len(labels):  # a merged series takes its first one's place
        first_read: dict[Labels, Labels] = {}
        for ls, at in zip(labels, part.labels, strict=True):
            first_read.setdefault(ls, at)
        firsts = [first_read[ls] for ls in merged.labels]
    gid = np.array(
        [
            groups.index(group_of(ls, names, by), at)
            for ls, at in zip(merged.labels, firsts, strict=True)
        ],
        dtype=np.int64,
    )
    groups.add(merged, gid)
    return merged.labels, merged.present


def _reduce_groups(
    op: str, vector: InstantSteps, gid: Ints, ngroups: int, q: Floats | None = None
) -> tuple[Floats, Bools]:
    """Each group's value and presence at each step: series i is in group gid[i] (every one
    of 0 .. ngroups - 1 has a series); `q` is quantile's parameter at each step."""
    steps = vector.values.shape[1]
    order = np.argsort(gid, kind="stable")
    sorted_gid = gid[order]
    starts = np.flatnonzero(np.r_[True, sorted_gid[1:] != sorted_gid[:-1]])
    result = np.empty((ngroups, steps))
    group_present = np.empty((ngroups, steps), dtype=bool)
    # a few steps at a time: the series sorted into groups and the reductions' temporaries are
    # copies as big as what they cover, several times the input for a long range query
    width = max(1, AGGREGATION_CELLS // max(1, len(order)))
    for first in range(0, steps, width):
        cols = slice(first, min(steps, first + width))
        present = vector.present[order, cols]
        values = vector.values[order, cols]
        count = np.add.reduceat(present.astype(np.float64), starts, axis=0)
        group_present[:, cols] = count > 0
        with np.errstate(all="ignore"):
            if q is not None:
                result[:, cols] = np.vstack(
                    [
                        quantile_columns(q[cols], values[a:b], present[a:b])
                        for a, b in zip(starts, np.r_[starts[1:], len(order)], strict=True)
                    ]
                ).reshape(ngroups, -1)
            else:
                result[:, cols] = _reduce(op, values, present, starts, count)
    return result, group_present


class _Groups:
    """The groups of an aggregation folded part by part (_fold): their labels, the first of
    their series as read (which orders them), and their values and presence at each step so
    far. A sum (and an average's) keeps the compensation of adding its parts' sums, as Kahan
    summation does, and the sum of its terms' magnitudes, to tell where that is not enough."""

    def __init__(self, op: str, steps: int) -> None:
        self.op = op
        self.labels: list[Labels] = []
        self._firsts: list[Labels] = []
        self._index: dict[Labels, int] = {}
        size = 16
        self._values = np.zeros((size, steps))
        self._present = np.zeros((size, steps), dtype=bool)
        summed = op in ("sum", "avg")
        self._compensation = np.zeros((size, steps) if summed else (0, steps))
        self._magnitude = np.zeros((size, steps) if summed else (0, steps))
        self._count = np.zeros((size, steps) if op == "avg" else (0, steps))
        self._infinite = np.zeros((size, steps) if op == "avg" else (0, steps), dtype=bool)

    def index(self, labels: Labels, read: Labels) -> int:
        """The group of the labels `labels`, for a series read as `read`."""
        g = self._index.get(labels)
        if g is None:
            g = self._index[labels] = len(self.labels)
            self.labels.append(labels)
            self._firsts.append(read)
        elif read < self._firsts[g]:
            self._firsts[g] = read
        return g

    def add(self, part: InstantSteps, gid: Ints) -> None:
        """Reduces `part`, whose series i is in group gid[i], into the groups."""
        if len(self.labels) > len(self._values):
            self._grow(max(len(self.labels), 2 * len(self._values)))
        rows, local = np.unique(gid, return_inverse=True)
        local = local.reshape(-1)
        had = self._present[rows]
        old = self._values[rows]
        with np.errstate(all="ignore"):
            if self.op in ("sum", "avg"):
                order = np.argsort(local, kind="stable")
                sorted_gid = local[order]
                starts = np.flatnonzero(np.r_[True, sorted_gid[1:] != sorted_gid[:-1]])
                present_sorted = part.present[order]
                zeroed = np.where(present_sorted, part.values[order], 0.0)
                present = np.logical_or.reduceat(present_sorted, starts, axis=0)
                add = sum_segments(zeroed, starts)
                self._magnitude[rows] += np.add.reduceat(np.abs(zeroed), starts, axis=0)
                if self.op == "avg":
                    self._count[rows] += np.add.reduceat(present_sorted, starts, axis=0)
                    self._infinite[rows] |= np.logical_or.reduceat(np.isinf(zeroed), starts, axis=0)
                total = old + add
                compensation = self._compensation[rows] + np.where(
                    np.abs(old) >= np.abs(add), (old - total) + add, (add - total) + old
                )
                compensation[np.isinf(total)] = 0.0
                self._compensation[rows] = compensation
                self._values[rows] = total
            else:
                partial, present = _reduce_groups(self.op, part, local, len(rows))
                if self.op == "count":
                    self._values[rows] = old + np.where(present, partial, 0.0)
                elif self.op == "group":
                    self._values[rows] = 1.0
                else:  # min, max: NaN only where every value is
                    pick = np.fmin if self.op == "min" else np.fmax
                    both = pick(old, partial)
                    self._values[rows] = np.where(
                        had & present, both, np.where(present, partial, old)
                    )
        self._present[rows] = had | present

    def _grow(self, size: int) -> None:
        self._values = _grown(self._values, size)
        self._present = _grown(self._present, size)
        if self.op in ("sum", "avg"):
            self._compensation = _grown(self._compensation, size)
            self._magnitude = _grown(self._magnitude, size)
        if self.op == "avg":
            self._count = _grown(self._count, size)
            self._infinite = _grown(self._infinite, size)

    def inexact(self) -> bool:
        """Whether a sum cancels so much of its terms that the whole value must be summed
        term by term (summation.sum_segments' rule), or an average overflows."""
        if self.op not in ("sum", "avg"):
            return False
        n = len(self.labels)
        present = self._present[:n]
        with np.errstate(all="ignore"):
            total = self._values[:n] + self._compensation[:n]
            magnitude = self._magnitude[:n]
            suspect = np.isfinite(magnitude) & (magnitude > CANCELLATION_RATIO * np.abs(total))
            if self.op == "avg":
                suspect |= np.isinf(total) & ~self._infinite[:n]
        return bool((suspect & present).any())

    def result(self) -> InstantSteps:
        n = len(self.labels)
        order = sorted(range(n), key=self._firsts.__getitem__)
        values = self._values[order]
        if self.op in ("sum", "avg"):
            values += self._compensation[order]
        if self.op == "avg":
            with np.errstate(all="ignore"):
                values /= self._count[order]
        return InstantSteps([self.labels[g] for g in order], values, self._present[order])


def _grown(array: npt.NDArray[Any], rows: int) -> npt.NDArray[Any]:
    grown = np.zeros((rows, array.shape[1]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def _refuse_repeated(seen: list[tuple[list[Labels], Bools]]) -> None:
    """merge_same_labels' rule over parts: a label set may repeat where never present at the
    same step (each of an aggregation's groups takes one value per step either way)."""
    labels = [ls for part_labels, _ in seen for ls in part_labels]
    if len(set(labels)) == len(labels):
        return
    rows: dict[Labels, list[Bools]] = {}
    for part_labels, present in seen:
        for ls, row in zip(part_labels, present, strict=True):
            rows.setdefault(ls, []).append(row)
    for found in rows.values():
        if len(found) > 1 and (np.sum(found, axis=0) > 1).any():
            raise QueryError("vector cannot contain metrics with the same labelset")


def _reduce(op: str, values: Floats, present: Bools, starts: Ints, count: Floats) -> Floats:
    zeroed = np.where(present, values, 0.0)
    if op == "sum":
        return sum_segments(zeroed, starts)
    if op == "count":
        return count
    if op == "group":
        return np.ones_like(count)
    if op == "avg":
        total = sum_segments(zeroed, starts)
        mean = total / count
        # Prometheus switches to an incremental mean when the sum overflows
        finite_inputs = ~np.logical_or.reduceat(np.isinf(zeroed), starts, axis=0)
        overflow = np.isinf(total) & finite_inputs
        if overflow.any():
            rows = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
            scaled = np.add.reduceat(zeroed / count[rows], starts, axis=0)
            mean = np.where(overflow, scaled, mean)
        return mean
    if op in ("min", "max"):
        blank = np.where(present, values, np.nan)
        reducer = np.fmin if op == "min" else np.fmax
        return reducer.reduceat(blank, starts, axis=0)
    if op in ("stddev", "stdvar"):
        var = variance_segments(values, present, starts, compensated=False)
        return np.sqrt(var) if op == "stddev" else var
    raise QueryError(f"unsupported aggregation {op}")


def warn_quantile_range(ev: Evaluator, q: Floats, where: str) -> None:
    """Prometheus' warning for a quantile outside [0, 1]; `where` is the argument's position."""
    bad = q[np.isnan(q) | (q < 0) | (q > 1)]
    if len(bad):
        ev.ctx.annotations.warn(
            f"PromQL warning: quantile value should be between 0 and 1, got "
            f"{format_f(float(bad[0]))} ({where})"
        )


def quantile_columns(q: Floats, values: Floats, present: Bools) -> Floats:
    """Per column, the q-quantile of the present values as Prometheus computes it (NaNs sort
    first; linear interpolation between closest ranks)."""
    rows, steps = values.shape
    category = np.where(present, np.where(np.isnan(values), 0, 1), 2)
    keyed = np.where(present & ~np.isnan(values), values, 0.0)
    order = np.lexsort((keyed, category), axis=0)
    ordered = np.take_along_axis(values, order, axis=0)
    n = present.sum(axis=0).astype(np.float64)
    rank = q * (n - 1)
    lower = np.maximum(0, np.floor(rank))
    upper = np.minimum(n - 1, lower + 1)
    weight = rank - np.floor(rank)
    cols = np.arange(steps)
    li = np.clip(np.nan_to_num(lower), 0, max(rows - 1, 0)).astype(np.int64)
    ui = np.clip(np.nan_to_num(upper), 0, max(rows - 1, 0)).astype(np.int64)
    if rows == 0:
        return np.full(steps, np.nan)
    result = ordered[li, cols] * (1 - weight) + ordered[ui, cols] * weight
    result = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, result))
    return np.where((n == 0) | np.isnan(q), np.nan, result)
