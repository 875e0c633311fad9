"""Sums that keep small terms next to huge ones, as Prometheus' Kahan summation does.

A plain sum is exact enough unless terms cancel: `1 + 1e100 + 1 - 1e100` must give 2. Segments
whose terms' magnitudes dwarf their sum are summed again term by term with the Kahan-Babuska
(Neumaier) compensation Prometheus uses, so results agree with it even where compensation is
not enough; the common case stays one vectorised reduction.
"""

from __future__ import annotations

import math

import numpy as np

from watchkeeper.promql.values import Floats, Ints

# a sum this many times smaller than the sum of its terms' magnitudes is recomputed exactly
CANCELLATION_RATIO = 1e3


def sum_segments(values: Floats, starts: Ints) -> Floats:
    """Sums of `values[starts[i]:starts[i+1]]` along axis 0 (1-D or 2-D)."""
    naive = np.add.reduceat(values, starts, axis=0)
    with np.errstate(all="ignore"):
        magnitude = np.add.reduceat(np.abs(values), starts, axis=0)
        # (an overflowing sum stays infinite under compensation too)
        suspect = np.isfinite(magnitude) & (magnitude > CANCELLATION_RATIO * np.abs(naive))
    if not suspect.any():
        return naive
    ends = np.r_[starts[1:], len(values)]
    for index in zip(*np.nonzero(suspect), strict=True):
        segment = int(index[0])
        column = values[starts[segment] : ends[segment]]
        if values.ndim == 2:
            column = column[:, int(index[1])]
        naive[index] = kahan_sum(column.tolist())
    return naive


def kahan_sum(values: list[float]) -> float:
    total = compensation = 0.0
    for value in values:
        t = total + value
        if math.isinf(t):
            compensation = 0.0
        elif abs(total) >= abs(value):
            compensation += (total - t) + value
        else:
            compensation += (value - t) + total
        total = t
    return total + compensation
