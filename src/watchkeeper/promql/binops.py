"""Binary operators: arithmetic, comparisons (filtering or `bool`), set operators, and vector
matching with on/ignoring and group_left/group_right, as Prometheus defines them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.model import Labels, format_labels
from watchkeeper.promql import histogram_operators, native_histograms
from watchkeeper.promql.errors import QueryError, QueryParseError
from watchkeeper.promql.trim_operators import TRIM_OPERATORS
from watchkeeper.promql.values import (
    Bools,
    Floats,
    HistogramSteps,
    InstantSteps,
    ScalarSteps,
    Value,
)
from watchkeeper.promql.vectors import drop_name, merge_same_labels, signature

if TYPE_CHECKING:
    from watchkeeper.promql.evaluator import Evaluator

ARITHMETIC: dict[str, Callable[[Floats, Floats], Floats]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,  # Go's math.Mod: the result takes the dividend's sign
    "^": np.power,
    "atan2": np.arctan2,
}
COMPARISON: dict[str, Callable[[Floats, Floats], Bools]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}
SET_OPERATORS = ("and", "or", "unless")


def negate(value: Value) -> Value:
    if isinstance(value, HistogramSteps):
        maps = [{j: h.scaled(-1.0) for j, h in found.items()} for found in value.histograms]
        floats = value.floats
        labels = [drop_name(ls) for ls in floats.labels]
        return native_histograms.steps_of(labels, -floats.values, floats.present, maps)
    if isinstance(value, ScalarSteps):
        return ScalarSteps(-value.values)
    if isinstance(value, InstantSteps):
        return merge_same_labels(
            [drop_name(ls) for ls in value.labels], -value.values, value.present
        )
    raise QueryError("unary minus applies to scalars and instant vectors only")


def _apply(op: str, lhs: Floats, rhs: Floats, return_bool: bool) -> tuple[Floats, Bools | None]:
    """Values and, for a comparison, which elements pass. A filtering comparison keeps the left
    value; with `bool` the value becomes 1 or 0."""
    with np.errstate(all="ignore"):
        if op in ARITHMETIC:
            return np.asarray(ARITHMETIC[op](lhs, rhs), dtype=np.float64), None
        if op in TRIM_OPERATORS:  # no float is trimmed (histogram_operators.Tokens trims)
            shape = np.broadcast_shapes(np.shape(lhs), np.shape(rhs))
            return np.broadcast_to(lhs, shape).astype(np.float64), np.zeros(shape, dtype=bool)
        keep = COMPARISON[op](lhs, rhs)
    if return_bool:
        return keep.astype(np.float64), None
    return np.broadcast_to(lhs, keep.shape).astype(np.float64), keep


def evaluate(ev: Evaluator, node: Any) -> Value:
    # a trim (a histogram's observations below or above a float) takes histograms only, and
    # keeps the metric name as a comparison does
    op = ev.ctx.trims.get(id(node)) or str(node.op)
    modifier = node.modifier
    return_bool = bool(modifier is not None and modifier.return_bool)
    if op in TRIM_OPERATORS and return_bool:
        raise QueryParseError(
            "1:1: parse error: bool modifier can only be used on comparison operators"
        )
    lhs = ev.eval(node.lhs)
    rhs = ev.eval(node.rhs)
    if op in TRIM_OPERATORS or isinstance(lhs, HistogramSteps) or isinstance(rhs, HistogramSteps):
        return _with_histograms(ev, op, lhs, rhs, modifier, return_bool)
    if isinstance(lhs, ScalarSteps) and isinstance(rhs, ScalarSteps):
        values, _ = _apply(op, lhs.values, rhs.values, True)
        return ScalarSteps(values)
    if isinstance(lhs, InstantSteps) and isinstance(rhs, ScalarSteps):
        return _vector_scalar(op, lhs, rhs.values[None, :], return_bool, scalar_left=False)
    if isinstance(lhs, ScalarSteps) and isinstance(rhs, InstantSteps):
        return _vector_scalar(op, rhs, lhs.values[None, :], return_bool, scalar_left=True)
    if isinstance(lhs, InstantSteps) and isinstance(rhs, InstantSteps):
        if op in SET_OPERATORS:
            return _set_operation(op, lhs, rhs, modifier)
        return _vector_vector(op, lhs, rhs, modifier, return_bool)
    raise QueryError(f"operator {op} does not apply to these operand types")


Apply = Callable[[str, Floats, Floats, bool], tuple[Floats, "Bools | None"]]


def _with_histograms(
    ev: Evaluator, op: str, lhs: Value, rhs: Value, modifier: Any, return_bool: bool
) -> Value:
    """An operator with native histograms on a side: histogram samples travel through the
    float machinery as tokens (histogram_operators.Tokens) and are worked on one by one where
    an operator meets them, as Prometheus' vectorElemBinop does."""
    tokens = histogram_operators.Tokens(ev, _apply)
    left, right = tokens.encode(lhs), tokens.encode(rhs)
    apply = tokens.apply
    result: Value
    if isinstance(left, InstantSteps) and isinstance(right, ScalarSteps):
        result = _vector_scalar(
            op, left, right.values[None, :], return_bool, scalar_left=False, apply=apply
        )
    elif isinstance(left, ScalarSteps) and isinstance(right, InstantSteps):
        result = _vector_scalar(
            op, right, left.values[None, :], return_bool, scalar_left=True, apply=apply
        )
    elif isinstance(left, InstantSteps) and isinstance(right, InstantSteps):
        if op in SET_OPERATORS:
            result = _set_operation(op, left, right, modifier)
        else:
            result = _vector_vector(op, left, right, modifier, return_bool, apply=apply)
    else:
        raise QueryError(f"operator {op} does not apply to these operand types")
    return tokens.decode(result)


def _vector_scalar(
    op: str,
    vector: InstantSteps,
    scalar: Floats,
    return_bool: bool,
    *,
    scalar_left: bool,
    apply: Apply = _apply,
) -> InstantSteps:
    lhs, rhs = (scalar, vector.values) if scalar_left else (vector.values, scalar)
    values, keep = apply(op, lhs, rhs, return_bool)
    present = vector.present
    if keep is not None:
        # a filter always returns the vector's own value, whichever side it is on (a trim
        # operator its result)
        if op not in TRIM_OPERATORS:
            values = vector.values
        present = present & keep
    labels = vector.labels
    if op in ARITHMETIC or return_bool:
        labels = [drop_name(ls) for ls in labels]
        return merge_same_labels(labels, values, present)
    return InstantSteps(labels, values, present)


def _matching(modifier: Any) -> tuple[list[str], bool]:
    """The matching label names and whether they are `on` (else `ignoring`)."""
    matching = modifier.matching if modifier is not None else None
    if matching is None:
        return [], False
    return list(matching.labels), str(matching.type).endswith("Include")


def _presence_by_signature(
    vector: InstantSteps, names: list[str], on: bool
) -> tuple[list[Labels], dict[Labels, Bools]]:
    sigs = [signature(ls, names, on) for ls in vector.labels]
    present: dict[Labels, Bools] = {}
    for sig, row in zip(sigs, vector.present, strict=True):
        if sig in present:
            present[sig] = present[sig] | row
        else:
            present[sig] = row
    return sigs, present


def _set_operation(op: str, lhs: InstantSteps, rhs: InstantSteps, modifier: Any) -> InstantSteps:
    names, on = _matching(modifier)
    steps = lhs.values.shape[1]
    none = np.zeros(steps, dtype=bool)
    lhs_sigs, lhs_present = _presence_by_signature(lhs, names, on)
    rhs_sigs, rhs_present = _presence_by_signature(rhs, names, on)
    if op in ("and", "unless"):
        matched = np.array([rhs_present.get(sig, none) for sig in lhs_sigs], dtype=bool)
        matched = matched.reshape(len(lhs_sigs), steps)
        present = lhs.present & (matched if op == "and" else ~matched)
        return InstantSteps(lhs.labels, lhs.values, present)
    blocked = np.array([lhs_present.get(sig, none) for sig in rhs_sigs], dtype=bool)
    blocked = blocked.reshape(len(rhs_sigs), steps)
    return merge_same_labels(
        lhs.labels + rhs.labels,
        np.concatenate([lhs.values, rhs.values]),
        np.concatenate([lhs.present, rhs.present & ~blocked]),
    )


def _match_labels(labels: Labels, names: list[str], on: bool) -> str:
    return format_labels(signature(labels, names, on))


def _vector_vector(
    op: str,
    lhs: InstantSteps,
    rhs: InstantSteps,
    modifier: Any,
    return_bool: bool,
    apply: Apply = _apply,
) -> InstantSteps:
    names, on = _matching(modifier)
    card = str(modifier.card).rsplit(".", 1)[-1] if modifier is not None else "OneToOne"
    include = list(modifier.group_labels or []) if modifier is not None else []
    steps = lhs.values.shape[1]
    swapped = card == "OneToMany"
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    one_side = "left" if swapped else "right"

    # the "one" side: per signature, its series; two present at one step is many-to-many
    one_groups: dict[Labels, list[int]] = {}
    for j, ls in enumerate(one.labels):
        one_groups.setdefault(signature(ls, names, on), []).append(j)
    # (only at steps where the other side has samples: with nothing to match there is no error)
    many_present = many.present.any(axis=0)
    for rows in one_groups.values():
        if len(rows) > 1:
            duplicated = (one.present[rows].sum(axis=0) > 1) & many_present
            if duplicated.any():
                step = int(np.argmax(duplicated))
                both = sorted(one.labels[r] for r in rows if one.present[r, step])[:2]
                raise QueryError(
                    f"found duplicate series for the match group "
                    f"{_match_labels(both[0], names, on)} on the {one_side} "
                    f"hand-side of the operation: [{format_labels(both[0])}, "
                    f"{format_labels(both[1])}];many-to-many matching not allowed: "
                    "matching labels must be unique on one side"
                )

    drop = op in ARITHMETIC or return_bool
    # every (many, one) pair with equal signatures; the arithmetic then runs on all at once
    pair_many: list[int] = []
    pair_one: list[int] = []
    pair_sig: list[int] = []
    sig_ids: dict[Labels, int] = {}
    sigs: list[Labels] = []
    for i, ls in enumerate(many.labels):
        sig = signature(ls, names, on)
        for j in one_groups.get(sig, ()):
            pair_many.append(i)
            pair_one.append(j)
            if sig not in sig_ids:
                sig_ids[sig] = len(sigs)
                sigs.append(sig)
            pair_sig.append(sig_ids[sig])
    ii = np.array(pair_many, dtype=np.int64)
    jj = np.array(pair_one, dtype=np.int64)
    sid = np.array(pair_sig, dtype=np.int64)
    paired = many.present[ii] & one.present[jj]
    if card == "OneToOne" and len(ii):
        # a signature may be matched once per step, counted before any filtering
        matches = np.zeros((len(sigs), steps), dtype=np.int64)
        np.add.at(matches, sid, paired.astype(np.int64))
        if (matches > 1).any():
            raise QueryError(
                "multiple matches for labels: many-to-one matching must be explicit "
                "(group_left/group_right)"
            )
    lv, rv = (one.values[jj], many.values[ii]) if swapped else (many.values[ii], one.values[jj])
    values, keep = apply(op, lv, rv, return_bool)
    present = paired if keep is None else paired & keep
    kept = np.flatnonzero(present.any(axis=1))
    out_labels = [
        _result_labels(
            many.labels[pair_many[r]], one.labels[pair_one[r]], names, on, card, include, drop
        )
        for r in kept.tolist()
    ]
    out_sig = [sigs[pair_sig[r]] for r in kept.tolist()]
    values_arr = np.asarray(values[kept], dtype=np.float64).reshape(len(kept), steps)
    present_arr = present[kept].reshape(len(kept), steps)
    _check_unique_matches(out_labels, out_sig, present_arr, card)
    return merge_same_labels(out_labels, values_arr, present_arr)


def _result_labels(
    many: Labels,
    one: Labels,
    names: list[str],
    on: bool,
    card: str,
    include: list[str],
    drop: bool,
) -> Labels:
    labels = dict(many)
    if drop:
        labels.pop("__name__", None)
    if card == "OneToOne":
        if on:
            labels = {k: v for k, v in labels.items() if k in names}
        else:
            for name in names:
                labels.pop(name, None)
    if not include:
        return tuple(labels.items())  # still sorted: only removals happened
    one_values = dict(one)
    for name in include:
        if one_values.get(name, ""):
            labels[name] = one_values[name]
        else:
            labels.pop(name, None)
    return tuple(sorted(labels.items()))


def _check_unique_matches(
    labels: list[Labels], sigs: list[Labels], present: Bools, card: str
) -> None:
    """One-to-one: a signature may match once per step. Many-to-one: each result label set
    once per step within a signature."""
    if len(set(labels if card != "OneToOne" else sigs)) == len(sigs):
        return  # nothing twice, so nothing twice at one step
    groups: dict[Labels, list[int]] = {}
    for i, sig in enumerate(sigs):
        groups.setdefault(sig, []).append(i)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        if card == "OneToOne":
            if (present[rows].sum(axis=0) > 1).any():
                raise QueryError(
                    "multiple matches for labels: many-to-one matching must be explicit "
                    "(group_left/group_right)"
                )
            continue
        by_labels: dict[Labels, list[int]] = {}
        for r in rows:
            by_labels.setdefault(labels[r], []).append(r)
        for same in by_labels.values():
            if len(same) > 1 and (present[same].sum(axis=0) > 1).any():
                raise QueryError(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                )
