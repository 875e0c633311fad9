"""Sums that keep small terms next to huge ones, as Prometheus' Kahan summation does.

A plain sum is exact enough unless terms cancel: `1 + 1e100 + 1 - 1e100` must give 2. Segments
whose terms' magnitudes dwarf their sum are summed again term by term with the Kahan-Babuska
(Neumaier) compensation Prometheus uses, so results agree with it even where compensation is
not enough; the common case stays one vectorised reduction.
"""

from __future__ import annotations

import math

import numpy as np

from watchkeeper.promql.values import Bools, Floats, Ints

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


# a variance this much smaller than the squared mean is recomputed with Prometheus' own updates
ILL_CONDITIONED = 1e6


def variance_segments(values: Floats, present: Bools, starts: Ints, compensated: bool) -> Floats:
    """Population variances of segments along axis 0 (2-D, `present` marks real values).

    Two passes (mean, then squared deviations) are accurate; Prometheus updates a running mean
    (Welford) instead, whose rounding shows when the values are large next to their spread
    (timestamps, say). There the segment is recomputed with Prometheus' updates so that the
    answers agree; equal values have no spread at all."""
    count = np.add.reduceat(present.astype(np.float64), starts, axis=0)
    zeroed = np.where(present, values, 0.0)
    with np.errstate(all="ignore"):
        mean = sum_segments(zeroed, starts) / count
        rows = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
        deviation = np.where(present, values - mean[rows], 0.0)
        variance = np.add.reduceat(deviation * deviation, starts, axis=0) / count
        blank = np.where(present, values, np.nan)
        same = np.fmin.reduceat(blank, starts, axis=0) == np.fmax.reduceat(blank, starts, axis=0)
        variance = np.where(same & np.isfinite(mean), 0.0, variance)
        suspect = (
            np.isfinite(variance) & (variance > 0) & (mean * mean > ILL_CONDITIONED * variance)
        )
    ends = np.r_[starts[1:], len(values)]
    for segment, column in zip(*np.nonzero(suspect), strict=True):
        a, b = int(starts[segment]), int(ends[segment])
        column_values = values[a:b, column][present[a:b, column]]
        variance[segment, column] = welford_variance(column_values.tolist(), compensated)
    result: Floats = variance
    return result


def welford_variance(values: list[float], compensated: bool) -> float:
    """Prometheus' running-mean variance: plain for the stdvar aggregation, with Kahan
    compensation of the mean and the sum of squares for stdvar_over_time."""
    count = 0.0
    mean = mean_c = aux = aux_c = 0.0
    for value in values:
        count += 1
        if compensated:
            delta = value - (mean + mean_c)
            mean, mean_c = kahan_step(delta / count, mean, mean_c)
            aux, aux_c = kahan_step(delta * (value - (mean + mean_c)), aux, aux_c)
        elif count == 1:
            mean = value
        else:
            delta = value - mean
            mean += delta / count
            aux += delta * (value - mean)
    return (aux + aux_c) / count


def kahan_step(value: float, total: float, compensation: float) -> tuple[float, float]:
    """Prometheus' kahanSumInc: add `value`, keeping the lost low-order part separately."""
    t = total + value
    if math.isinf(t):
        compensation = 0.0
    elif abs(total) >= abs(value):
        compensation += (total - t) + value
    else:
        compensation += (value - t) + total
    return t, compensation


def kahan_sum(values: list[float]) -> float:
    total = compensation = 0.0
    for value in values:
        total, compensation = kahan_step(value, total, compensation)
    return total + compensation
