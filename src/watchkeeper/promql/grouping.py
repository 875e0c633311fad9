"""How an aggregation's `by` or `without` puts series into groups: each group's label set,
and each series' group."""

from __future__ import annotations

from typing import Any

import numpy as np

from watchkeeper.model import METRIC_NAME, Labels
from watchkeeper.promql.values import InstantSteps, Ints


def group_of(labels: Labels, names: set[str], by: bool) -> Labels:
    """The label set of the group of a series labelled `labels`: those `names` (`by`), or all
    but them and the metric name (`without`)."""
    # list comprehensions: building the tuple from a generator takes twice as long
    if by:
        return tuple([pair for pair in labels if pair[0] in names])
    return tuple([pair for pair in labels if pair[0] not in names and pair[0] != METRIC_NAME])


def grouping(modifier: Any) -> tuple[bool, set[str]]:
    """Whether the modifier is `by` (else `without`), and its label names."""
    if modifier is None:
        return True, set()
    return str(modifier.type).endswith("By"), set(modifier.labels)


def series_groups(vector: InstantSteps, modifier: Any) -> tuple[list[Labels], Ints]:
    """Each series' group (index into the returned group label sets, in order of first
    appearance)."""
    by, names = grouping(modifier)
    if by and not names:  # one group of every series (`sum(x)`, `topk(5, x)`)
        n = len(vector.labels)
        return [()] if n else [], np.zeros(n, dtype=np.int64)
    index: dict[Labels, int] = {}
    gid = np.empty(len(vector.labels), dtype=np.int64)
    for i, ls in enumerate(vector.labels):
        gid[i] = index.setdefault(group_of(ls, names, by), len(index))
    return list(index), gid
