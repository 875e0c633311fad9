"""Lossless decimal encoding of sample values for blocks.

Most metric values are integers or short decimals (counters, byte counts, 0.01-second CPU
times). Such a value v is stored as an integer mantissa m with a per-series exponent k, where
m / 10**k reproduces v bit for bit, and the mantissas of a series are stored as differences
from the previous one: small integers that compress far better than the float's bytes
(measured on the ingest benchmark's workload: 2.26 bytes per sample for byte-split floats,
1.33 for delta-packed mantissas, 1.03 for byte-split mantissa differences). Values that do not
round-trip exactly (NaN, infinities, full-precision floats) keep their float bits in a
separate column, also as differences (of the bit patterns, along the series' float rows).
Decoding is the same float division the encoder verified with.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MAX_EXPONENT = 9
_MAX_EXACT = float(2**53)
# 10 ** e for every int8 exponent, made by the same float power the encoder uses (so the same
# bits): a lookup per row instead of a power per row, a third of decoding a block's rows
_POW10 = 10.0 ** np.arange(-128, 128, dtype=np.float64)


def _same_bits(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Equality of the float bits: -0.0 is not 0.0 here."""
    same: npt.NDArray[np.bool_] = a.view(np.int64) == b.view(np.int64)
    return same


def _round_trips(values: npt.NDArray[np.float64], exponent: int) -> npt.NDArray[np.bool_]:
    scale = 10.0**exponent
    with np.errstate(all="ignore"):
        mantissa = np.round(values * scale)
        exact: npt.NDArray[np.bool_] = (
            np.isfinite(values)
            & (np.abs(mantissa) < _MAX_EXACT)
            & _same_bits(mantissa / scale, values)
        )
    return exact


Encoded = tuple[
    npt.NDArray[np.int8], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64]
]


def encode(series: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> Encoded:
    """For samples sorted by series: per-sample exponent, mantissa differences, whether the
    decimal form is used, and float-bit differences (meaningful where it is not). The exponent
    is the smallest that fits every finite value of the series, so it is constant along a series
    and costs almost nothing to store."""
    count = len(values)
    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]]) if count else np.empty(0, int)
    segment = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, count]))
    finite = np.isfinite(values)
    chosen = np.full(len(starts), -1, dtype=np.int64)
    pending = np.arange(len(starts))
    for exponent in range(MAX_EXPONENT + 1):
        if len(pending) == 0:
            break
        rows = np.isin(segment, pending)
        fails = rows & finite & ~_round_trips(values, exponent)
        failing = np.unique(segment[fails])
        fitting = np.setdiff1d(pending, failing, assume_unique=True)
        chosen[fitting] = exponent
        pending = failing
    per_sample = np.where(chosen[segment] >= 0, chosen[segment], 0).astype(np.int8)
    scale = 10.0 ** per_sample.astype(np.float64)
    with np.errstate(all="ignore"):
        mantissa_f = np.round(values * scale)
        use = (
            (chosen[segment] >= 0)
            & finite
            & (np.abs(mantissa_f) < _MAX_EXACT)
            & _same_bits(mantissa_f / scale, values)
        )
    mantissa = np.where(use, mantissa_f, 0).astype(np.int64)
    # Check through the integer, exactly as decode computes: -0.0 becomes 0 there, for one.
    use &= _same_bits(mantissa.astype(np.float64) / scale, values)
    floats = ~use
    float_differences = np.zeros(count, dtype=np.int64)
    float_differences[floats] = chain(series[floats], values[floats].view(np.int64))
    return per_sample, _differences(series, mantissa, use), use, float_differences


def chain(series: npt.NDArray[np.int64], numbers: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Differences from the previous number of the same series (the first one as is)."""
    if len(numbers) == 0:
        return numbers
    out = np.empty_like(numbers)
    out[0] = numbers[0]
    np.subtract(numbers[1:], numbers[:-1], out=out[1:])
    starts = _series_starts(series)
    out[starts] = numbers[starts]
    return out


def unchain(
    series: npt.NDArray[np.int64], differences: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Inverse of chain. int64 sums wrap around on overflow and wrap back when the base is
    taken off, so the result is exact."""
    if len(differences) == 0:
        return differences
    return sums_restarting(differences, _series_starts(series))


def sums_restarting(
    differences: npt.NDArray[np.int64], restarts: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Running sums of `differences`, started afresh at each position in `restarts`
    (ascending, 0 first), where the number is stored as is."""
    running = np.cumsum(differences)
    base = running[restarts] - differences[restarts]
    summed: npt.NDArray[np.int64] = running - np.repeat(
        base, np.diff(np.r_[restarts, len(differences)])
    )
    return summed


def _series_starts(series: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    first = np.empty(len(series), dtype=bool)
    first[:1] = True
    np.not_equal(series[1:], series[:-1], out=first[1:])
    return np.flatnonzero(first)


def _differences(
    series: npt.NDArray[np.int64], mantissa: npt.NDArray[np.int64], use: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """Each decimal row's mantissa minus the previous decimal row's of the same series (the
    first one as is); rows kept as floats carry the previous mantissa along (difference 0)."""
    count = len(mantissa)
    if count == 0:
        return mantissa
    starts = _series_starts(series)
    row_start = np.repeat(starts, np.diff(np.r_[starts, count]))
    last_decimal = np.maximum.accumulate(np.where(use, np.arange(count), -1))
    carried = np.where(last_decimal >= row_start, mantissa[np.maximum(last_decimal, 0)], 0)
    return chain(series, carried)


def decode(
    series: npt.NDArray[np.int64],
    exponents: npt.NDArray[np.int8],
    mantissa_differences: npt.NDArray[np.int64],
    use: npt.NDArray[np.bool_],
    float_differences: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """Values of rows sorted by series, each series complete from its first encoded row."""
    if len(series) == 0:
        return np.empty(0, dtype=np.float64)
    mantissas = unchain(series, mantissa_differences)
    scale = _POW10[exponents.astype(np.intp) + 128]
    values = mantissas.astype(np.float64) / scale
    if use.all():
        return values
    floats = ~use
    values[floats] = unchain(series[floats], float_differences[floats]).view(np.float64)
    return values
