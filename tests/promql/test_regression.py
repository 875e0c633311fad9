"""deriv and predict_linear from running sums agree with fitting every window on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.promql.windows import range_steps
from watchkeeper.promql import range_functions, regression
from watchkeeper.promql.values import RangeSteps

MINUTE = 60_000


def _workload(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Scrape-like series (jittered 30 s intervals, gaps) of the shapes that make regression
    hard: large values with a small trend, values crossing zero, counters, constants, tiny
    values after huge ones, and non-finite samples."""
    out = []
    for kind in range(15):
        count = int(rng.integers(5, 1500))
        step = 30_000 + rng.integers(-300, 300, count)
        t = 1_700_000_000_000 + int(rng.integers(0, 10**6)) + np.cumsum(step)
        t = t[rng.random(count) > 0.05]  # missed scrapes
        x = (t - t[0]) / 1000.0
        noise = rng.normal(size=len(t))
        if kind == 0:  # free bytes of a filling disk
            v = 2e11 - 1e3 * x + 5e4 * noise
        elif kind == 1:  # crosses zero inside the data
            v = 50.0 - 0.01 * x + noise
        elif kind == 2:  # counter
            v = np.cumsum(rng.integers(0, 100, len(t))).astype(np.float64)
        elif kind == 3:  # constant, then a step
            v = np.where(np.arange(len(t)) < len(t) // 2, 7.25, 9.5)
        elif kind == 4:  # a trend far below the values' last digits
            v = 1e15 + np.round(noise) * 0.125 + 1e-6 * x
        elif kind == 5:  # non-finite samples
            v = rng.normal(size=len(t)) * 10
            v[rng.random(len(t)) < 0.05] = rng.choice([np.nan, np.inf, -np.inf])
        elif kind == 6:  # tiny values
            v = 1e-12 * (1 + 0.001 * x + 0.01 * noise)
        elif kind == 7:  # constant infinity
            v = np.full(len(t), np.inf)
        elif kind == 8:  # integers: exact sums
            v = rng.integers(-5, 5, len(t)).astype(np.float64)
        elif kind == 9:  # a perfect line predicted to be exactly zero somewhere
            v = 3.0 * (x - x[-1] / 2)
        elif kind == 10:  # huge values, then small ones: running sums dwarf later windows
            v = np.where(np.arange(len(t)) < len(t) // 3, 1e13 * (1 + noise**2), 2.0 + 0.01 * x)
        else:
            v = rng.normal(size=len(t)) * 10.0 ** rng.integers(-3, 12)
        out.append((t.astype(np.int64), v.astype(np.float64)))
    return out


def _both_ways(
    rs: RangeSteps, monkeypatch: pytest.MonkeyPatch, function: str
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    seconds = np.full(len(rs.ends), 4 * 3600.0)

    def run() -> tuple[np.ndarray, np.ndarray]:
        if function == "deriv":
            return range_functions.deriv(rs)
        return range_functions.predict_linear(rs, seconds, rs.ends)

    with monkeypatch.context() as patched:
        patched.setattr(regression, "SHARED_SAMPLES", 0)  # running sums whenever they can
        fast = run()
    with monkeypatch.context() as patched:
        patched.setattr(regression, "MAX_PADDING", -1.0)  # no group is laid out
        one_by_one = run()
    return fast, one_by_one


def _agree(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-10 * max(abs(a), abs(b)) or a == b


@pytest.mark.parametrize("function", ["deriv", "predict_linear"])
@pytest.mark.parametrize("seed", range(6))
def test_running_sums_give_what_fitting_each_window_gives(
    seed: int, function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(seed)
    series = _workload(rng)
    first = min(int(t[0]) for t, _ in series)
    last = max(int(t[-1]) for t, _ in series)
    range_ms = int(rng.choice([2, 10, 60, 360])) * MINUTE
    ends = np.arange(first, last + 10 * MINUTE, int(rng.choice([1, 5, 15])) * MINUTE)
    rs = range_steps(series, ends.astype(np.int64), range_ms)
    (fast, fast_ok), (slow, slow_ok) = _both_ways(rs, monkeypatch, function)
    assert fast_ok.tolist() == slow_ok.tolist()
    bad = [
        (i, j, fast[i, j], slow[i, j])
        for i, j in zip(*np.nonzero(fast_ok), strict=True)
        if not _agree(float(fast[i, j]), float(slow[i, j]))
    ]
    assert not bad, bad[:5]


def test_windows_are_refitted_one_by_one_only_where_rounding_could_show(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refitted: list[int] = []
    reduce = range_functions.reduce_windows

    def counting(rs: RangeSteps, reducer: range_functions.Reducer, **kw: object):  # type: ignore[no-untyped-def]
        only = kw.get("only")
        refitted.append(int(np.count_nonzero(only)) if only is not None else -1)
        return reduce(rs, reducer, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(range_functions, "reduce_windows", counting)
    rng = np.random.default_rng(3)
    t = (1_700_000_000_000 + np.arange(3120) * 30_000).astype(np.int64)
    x = (t - t[0]) / 1000.0
    disk = 2e11 - 1e3 * x + 5e4 * rng.normal(size=len(t))  # a disk filling up, 26 h
    flat = 1e12 + 1e-3 * x + 0.01 * rng.normal(size=len(t))  # a trend in the last digits
    ends = t[720::10]
    seconds = np.full(len(ends), 4 * 3600.0)
    for values, function, expected in [
        (disk, "predict_linear", 0),  # its prediction is well within reach: none
        (flat, "predict_linear", 0),  # 1e12 give or take a little: none
        (flat, "deriv", len(ends)),  # a slope lost in rounding: every window
    ]:
        rs = range_steps([(t, values)], ends, 360 * MINUTE)
        if function == "deriv":
            range_functions.deriv(rs)
        else:
            range_functions.predict_linear(rs, seconds, ends)
        assert refitted.pop() == expected, (function, expected)


def test_series_of_very_different_lengths_are_fitted_window_by_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(regression, "RUNNING_CELLS", 200_000)  # groups of 9 series
    long = np.arange(20_000, dtype=np.int64) * 1000
    short = [(long[:3], np.arange(3.0)) for _ in range(59)]
    # the second group holds the long series and eight short ones: mostly padding
    rs = range_steps(
        [*short[:9], (long, long / 1e3), *short[9:]], np.array([2000, long[-1]]), MINUTE
    )
    lines = regression.running_lines(rs, rs.t[np.minimum(rs.lo, len(rs.t) - 1)])
    assert lines.usable[:, 0].tolist() == [True] * 9 + [False] * 9 + [True] * 42
    slope, ok = range_functions.deriv(rs)
    assert ok[:, 0].all() and np.flatnonzero(ok[:, 1]).tolist() == [9]
    assert slope[9, 1] == pytest.approx(1.0)
    assert slope[:, 0] == pytest.approx(np.ones(60))
