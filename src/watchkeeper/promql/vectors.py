"""Helpers shared by operators, functions and aggregations: dropping the metric name, matching
signatures, and the rule that a vector holds each label set once per step."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from watchkeeper.model import METRIC_NAME, Labels
from watchkeeper.promql.errors import QueryError
from watchkeeper.promql.values import Bools, Floats, InstantSteps


def drop_name(labels: Labels) -> Labels:
    # label sets are sorted by name: __name__ is nearly always first (only names sorting before
    # it, such as upper-case ones, come first), and the search stops at the first name after it
    if labels and labels[0][0] == METRIC_NAME:
        return labels[1:]
    for i, (name, _) in enumerate(labels):
        if name == METRIC_NAME:
            return labels[:i] + labels[i + 1 :]
        if name > METRIC_NAME:
            break
    return labels


def signature(labels: Labels, names: Sequence[str], on: bool) -> Labels:
    """The labels two series are matched by: only `names` with `on`, otherwise every label but
    `names` and the metric name."""
    if on:
        wanted = set(names)
        return tuple([pair for pair in labels if pair[0] in wanted])
    unwanted = set(names) | {METRIC_NAME}
    return tuple([pair for pair in labels if pair[0] not in unwanted])


def merge_same_labels(
    labels: list[Labels], values: Floats, present: Bools, *, keep_order: bool = True
) -> InstantSteps:
    """One row per label set. Rows that share a label set are combined if they never have a
    sample at the same step; otherwise the vector is invalid, as in Prometheus."""
    if len(set(labels)) == len(labels):  # a set built in C: twice as fast as a loop here
        return InstantSteps(labels, values, present)
    groups: dict[Labels, list[int]] = {}
    for i, ls in enumerate(labels):
        groups.setdefault(ls, []).append(i)
    out_labels: list[Labels] = []
    rows_v: list[Floats] = []
    rows_p: list[Bools] = []
    for ls, rows in groups.items():
        if len(rows) == 1:
            out_labels.append(ls)
            rows_v.append(values[rows[0]])
            rows_p.append(present[rows[0]])
            continue
        p = present[rows]
        if (p.sum(axis=0) > 1).any():
            raise QueryError("vector cannot contain metrics with the same labelset")
        which = np.argmax(p, axis=0)
        out_labels.append(ls)
        rows_v.append(values[rows][which, np.arange(values.shape[1])])
        rows_p.append(np.asarray(p.any(axis=0), dtype=bool))
    steps = values.shape[1]
    return InstantSteps(
        out_labels,
        np.array(rows_v).reshape(len(out_labels), steps),
        np.array(rows_p, dtype=bool).reshape(len(out_labels), steps),
    )


def without_absent(vector: InstantSteps) -> InstantSteps:
    """Drops series with no sample at any step."""
    keep = vector.present.any(axis=1)
    if keep.all():
        return vector
    idx = np.flatnonzero(keep)
    return InstantSteps(
        [vector.labels[i] for i in idx],
        vector.values[idx],
        vector.present[idx],
        None if vector.sample_ts is None else vector.sample_ts[idx],
    )
