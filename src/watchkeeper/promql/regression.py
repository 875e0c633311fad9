"""Least-squares lines through windows of samples, for deriv and predict_linear.

Prometheus fits each window on its own (linearRegression: four Kahan-compensated sums over the
window's samples, then a closing formula), so a range query costs samples-per-window times
steps: a 6 h window at a 30 s step shares 719 of its 720 samples with the next one. Here the four
sums come from running sums along each series, taken once, and a window's sums are differences
of two running sums: the cost is samples plus windows (`running_lines`).

The two ways agree up to rounding, and rounding is where they can part: the closing formula
cancels digits when the values are large next to their trend, and its answer can be nearly zero
next to the values. So every window's answer comes with a bound on how far rounding moves it,
either way. A window whose bound is not well below TRUSTED_ERROR of its answer, or that holds a
non-finite sample, is fitted again as Prometheus does it (`window_lines`): the same terms, each
sum taken in extended precision and rounded once, which is nearly always what Kahan
compensation gives. Windows of equal values are answered exactly, as Prometheus special-cases
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from watchkeeper.promql.values import Bools, Floats, Ints, RangeSteps

EPS = float(np.finfo(np.float64).eps)
# an answer from running sums is kept when rounding can move it by at most this share of it (a
# worst case, with ROUNDING_SLACK to spare: on the test series the largest difference from
# fitting window by window is 6e-13); the peer test compares with Prometheus to 1e-9 and the
# conformance tests to 1e-6
TRUSTED_ERROR = 1e-10
# the bound's allowance for the roundings it does not count one by one (each sum, product and
# quotient of both ways of computing, with room to spare)
ROUNDING_SLACK = 64.0
# running sums need the series laid out as rows of equal width; a group of series needing
# more than this many cells per sample (very different lengths) is fitted window by window
MAX_PADDING = 3.0
# running sums are taken when the windows hold this many times the samples there are (an
# instant query's windows hold each sample once; a 1 h range of 6 h windows, 120 times)
SHARED_SAMPLES = 4
# cells (series x longest series) of the running sums taken at once: 2 MiB per array, some
# 20 MiB for a group's arrays together
RUNNING_CELLS = 1 << 18


@dataclass(frozen=True)
class Lines:
    """Per window (series x steps): the fitted slope and the intercept at the window's
    reference time, bounds on the rounding error of both, and where they can be used (the
    window holds only finite samples and the sums were taken)."""

    slope: Floats
    intercept: Floats
    slope_error: Floats
    intercept_error: Floats
    usable: Bools


def windows_overlap(rs: RangeSteps) -> bool:
    """Whether the windows share enough samples for running sums to pay: they cost a few
    passes over every sample, fitting each window one pass over its own samples."""
    return rs.overlap >= SHARED_SAMPLES


def running_lines(rs: RangeSteps, reference_ms: Ints) -> Lines:
    """Every window's line from running sums along its series, x measured in seconds from
    `reference_ms` (series x steps). The series are taken in groups of about RUNNING_CELLS
    cells, to bound the memory; a group whose series differ too much in length (see
    MAX_PADDING) is left unusable, for fitting window by window."""
    shape = rs.lo.shape
    lines = Lines(
        np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape, bool)
    )
    lengths = np.diff(rs.bounds)
    if len(lengths) == 0:
        return lines
    per_group = max(1, RUNNING_CELLS // (int(lengths.max()) + 1))
    for first in range(0, len(lengths), per_group):
        rows = slice(first, first + per_group)
        group_lengths = lengths[rows]
        cells = len(group_lengths) * (int(group_lengths.max()) + 1)
        if cells > MAX_PADDING * int(group_lengths.sum()) + 4096:
            continue
        _group_lines(rs, rows, reference_ms[rows], lines)
    return lines


def _group_lines(rs: RangeSteps, rows: slice, reference_ms: Ints, out: Lines) -> None:
    """running_lines for the series `rows`, written into `out`."""
    starts = rs.bounds[:-1][rows]
    lengths = rs.bounds[1:][rows] - starts
    series = len(lengths)
    width = int(lengths.max())
    total = int(lengths.sum())
    t = rs.t[starts[0] : starts[0] + total]
    v = rs.v[starts[0] : starts[0] + total]
    finite = np.isfinite(v)
    y = np.where(finite, v, 0.0)
    # x from each series' first sample, so the running sums stay as small as they can
    base = rs.t[starts]
    tau = (t - np.repeat(base, lengths)) / 1000.0
    changed = np.ones(len(v), dtype=bool)  # (a series' first sample is never looked at)
    changed[1:] = v[1:] != v[:-1]

    even = bool((lengths == width).all())  # the usual case: a plain reshape lays them out
    if not even:
        row = np.repeat(np.arange(series), lengths)
        column = np.arange(total) - np.repeat(starts - starts[0], lengths)

    def laid_out(values: Floats) -> Floats:
        """The values as rows of series, after a first column of 0."""
        grid = np.zeros((series, width + 1))
        if even:
            grid[:, 1:] = values.reshape(series, width)
        else:
            grid[row, column + 1] = values
        return grid

    def running(values: Floats) -> Floats:
        """Per-series running sums laid out (series, width + 1), the first column 0."""
        result: Floats = np.cumsum(laid_out(values), axis=1)
        return result

    def running_exact(values: Floats) -> tuple[Floats, Floats]:
        """running(), and apart the rounding errors of its steps, each found exactly (Knuth's
        two-sum of the previous sum and the term) and summed up: together the running sum to
        about twice the precision, as long as they are not added into one float."""
        grid = laid_out(values)
        sums = np.cumsum(grid, axis=1)
        previous = sums[:, :-1]
        virtual = sums[:, 1:] - previous
        grid[:, 1:] = (previous - (sums[:, 1:] - virtual)) + (grid[:, 1:] - virtual)
        return sums, np.cumsum(grid, axis=1)

    lo = rs.lo[rows] - starts[:, None]
    hi = rs.hi[rows] - starts[:, None]
    at = np.arange(series)[:, None]

    def window(grid: Floats) -> Floats:
        result: Floats = grid[at, hi] - grid[at, lo]
        return result

    def window_exact(grids: tuple[Floats, Floats]) -> Floats:
        sums, lost = grids
        return window(sums) + window(lost)

    with np.errstate(all="ignore"):
        n = (hi - lo).astype(np.float64)
        s_t = window_exact(running_exact(tau))
        s_y = window_exact(running_exact(y))
        s_ty = window_exact(running_exact(tau * y))
        s_tt = window_exact(running_exact(tau * tau))
        abs_y_grid = running(np.abs(y))
        abs_ty_grid = running(np.abs(tau * y))
        abs_y, abs_ty = window(abs_y_grid), window(abs_ty_grid)
        nonfinite = window(running((~finite).astype(np.float64)))
        # equal values: no sample after the window's first differs from the one before it
        changes = running(changed.astype(np.float64))
        constant = (hi > lo) & (changes[at, hi] == changes[at, np.minimum(lo + 1, hi)])

        theta = (reference_ms - base[:, None]) / 1000.0
        var_x = s_tt - s_t * s_t / n
        cov_xy = s_ty - s_t * s_y / n
        slope = cov_xy / var_x
        mean_x = s_t / n - theta
        intercept = s_y / n - slope * mean_x

        # Magnitudes that every rounding of either way is small against: x is tau - theta, so
        # |x| <= tau + |theta|. Running sums also carry what they drifted by before the window:
        # at most about (length * eps)^2 of the series' whole magnitude for the compensated
        # ones, length * eps for the plain ones of magnitudes; `spread` of the whole, added to
        # the magnitudes, covers both.
        big_theta = np.abs(theta)
        spread = (lengths.astype(np.float64) ** 2 * EPS)[:, None]
        m_x = s_t + n * big_theta
        m_y = abs_y + spread * abs_y_grid[:, -1:]
        m_xy = abs_ty + spread * abs_ty_grid[:, -1:] + big_theta * m_y
        m_xx = s_tt + 2 * big_theta * s_t + n * big_theta * big_theta
        slope_error = (
            ROUNDING_SLACK
            * EPS
            * (m_xy + m_x * m_y / n + np.abs(slope) * (m_xx + m_x * m_x / n))
            / var_x
        )
        intercept_error = ROUNDING_SLACK * EPS * (
            m_y / n + np.abs(slope) * m_x / n
        ) + slope_error * (np.abs(mean_x) + m_x / n)
        first = v[np.clip(lo + (starts - starts[0])[:, None], 0, len(v) - 1)]
        out.slope[rows] = np.where(constant, 0.0, slope)
        out.intercept[rows] = np.where(constant, first, intercept)
        out.slope_error[rows] = np.where(constant, 0.0, slope_error)
        out.intercept_error[rows] = np.where(constant, 0.0, intercept_error)
        out.usable[rows] = (
            (nonfinite == 0)
            & (hi - lo >= 2)
            & np.isfinite(out.slope[rows])
            & np.isfinite(out.intercept[rows])
            & np.isfinite(out.slope_error[rows])
            & np.isfinite(out.intercept_error[rows])
        )


def trusted(answer: Floats, error: Floats) -> Bools:
    """Where a running-sum answer is as good as Prometheus' own (see TRUSTED_ERROR)."""
    with np.errstate(invalid="ignore"):
        result: Bools = error <= TRUSTED_ERROR * np.abs(answer)
    return result


def _rounded_sums(values: Floats, seg: Ints) -> Floats:
    """Segment sums in extended precision (x87's 64-bit mantissa), rounded to float64."""
    with np.errstate(all="ignore"):
        exact = np.add.reduceat(values.astype(np.longdouble), seg)
    result: Floats = exact.astype(np.float64)
    return result


def window_lines(g: Floats, seg: Ints, c: Ints, x: Floats) -> tuple[Floats, Floats]:
    """Least-squares slope and intercept per window, as Prometheus' linearRegression computes
    them (including its answer for a constant series), from the windows' samples laid end to
    end (`seg` their starts, `c` their counts) and their x values.

    Prometheus adds up with Kahan compensation, which gives the correctly rounded sums almost
    always, and its closing formula cancels digits when the values are large next to their
    trend; so the sums here are taken in extended precision and rounded once, and the formula
    is the same, to give the same answer rather than a more accurate one."""
    n = c.astype(np.float64)
    sum_x = _rounded_sums(x, seg)
    sum_y = _rounded_sums(g, seg)
    sum_xy = _rounded_sums(x * g, seg)
    sum_x2 = _rounded_sums(x * x, seg)
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = cov_xy / var_x
    intercept = sum_y / n - slope * sum_x / n
    first = g[seg]
    constant = np.logical_and.reduceat(g == np.repeat(first, c), seg)
    slope = np.where(constant, np.where(np.isinf(first), np.nan, 0.0), slope)
    intercept = np.where(constant, np.where(np.isinf(first), np.nan, first), intercept)
    return slope, intercept
