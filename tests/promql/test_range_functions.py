"""Range functions' fast paths for overlapping windows agree with reducing every window, and
the windows the engine finds agree with a search per series."""

from __future__ import annotations

import numpy as np
import pytest

from tests.promql.windows import range_steps
from watchkeeper.promql import range_functions
from watchkeeper.promql.evaluator import windows
from watchkeeper.store.types import SeriesColumns, SeriesSamples


@pytest.mark.parametrize("which", ["min", "max"])
@pytest.mark.parametrize("seed", range(5))
def test_min_and_max_over_time_from_the_table_match_window_by_window(
    seed: int, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(seed)
    series = []
    for _ in range(int(rng.integers(1, 12))):
        count = int(rng.integers(1, 700))
        t = np.cumsum(rng.integers(1, 40, count)).astype(np.int64) * 1000
        v = rng.normal(size=count) * 10.0 ** rng.integers(-3, 6)
        v[rng.random(count) < 0.1] = np.nan  # NaN loses to any number, as in Prometheus
        if rng.random() < 0.3:
            v[:] = np.nan
        v[rng.random(count) < 0.02] = rng.choice([np.inf, -np.inf])
        series.append((t, v))
    last = max(int(t[-1]) for t, _ in series)
    # windows of 1, 2, 3, 4, ... 2**k +- 1 samples, and empty ones
    range_ms = int(rng.choice([1, 2, 4, 17, 64, 65, 200])) * 1000
    ends = np.arange(-5000, last + 20_000, int(rng.choice([1, 3, 10])) * 1000, dtype=np.int64)
    rs = range_steps(series, ends, range_ms)
    monkeypatch.setattr(range_functions, "TABLE_SAMPLES", int(rng.integers(1, 3000)))  # groups
    pick = np.fmin if which == "min" else np.fmax
    table, table_ok = range_functions.table_extremes(rs, pick)
    monkeypatch.setattr(range_functions, "TABLE_OVERLAP", float("inf"))  # window by window
    direct, direct_ok = range_functions.extreme_over_time(rs, which)
    assert table_ok.tolist() == direct_ok.tolist()
    np.testing.assert_array_equal(table[table_ok], direct[direct_ok])


def test_the_table_is_used_for_overlapping_windows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[int] = []
    reduce = range_functions.reduce_windows
    monkeypatch.setattr(
        range_functions, "reduce_windows", lambda *a, **k: used.append(1) or reduce(*a, **k)
    )
    t = np.arange(0, 3_600_000, 30_000, dtype=np.int64)
    series = [(t, np.sin(t / 1e6))]
    instant = range_steps(series, np.array([t[-1]]), 3_600_000)
    range_query = range_steps(series, t[::2], 600_000)  # 20 samples per window, step 2
    range_functions.extreme_over_time(instant, "max")
    assert used == [1]
    range_functions.extreme_over_time(range_query, "max")
    assert used == [1]
    wide = range_steps(series, t[::2], 3_600_000)  # 120 samples per window: 7 levels, fine
    range_functions.extreme_over_time(wide, "max")
    assert used == [1]
    few = range_steps(series, t[::40], 3_600_000)  # each sample in 3 windows: too few
    range_functions.extreme_over_time(few, "max")
    assert used == [1, 1]


@pytest.mark.parametrize("seed", range(6))
def test_windows_found_from_flat_samples_match_a_search_per_series(seed: int) -> None:
    """evaluator.windows, for one step (an instant query: a read of exactly the window needs
    no search) and for many, with samples inside and outside the windows."""
    rng = np.random.default_rng(seed)
    series = []
    for _ in range(int(rng.integers(1, 9))):
        count = int(rng.integers(0, 30))
        series.append((np.sort(rng.choice(np.arange(0, 400, 3), count, replace=False)), None))
    series = [(t.astype(np.int64), t.astype(np.float64)) for t, _ in series]
    range_ms = int(rng.integers(5, 200))
    for ends in (np.array([int(rng.integers(0, 450))]), np.arange(0, 450, 37)):
        for inside_only in (True, False):
            given = series
            if inside_only and len(ends) == 1:  # as the store reads an instant window
                low, end = int(ends[0]) - range_ms, int(ends[0])
                given = [(t[(t > low) & (t <= end)], v[(t > low) & (t <= end)]) for t, v in series]
            labels = [(("s", str(i)),) for i in range(len(given))]
            flat = SeriesColumns.of(
                [SeriesSamples(ls, t, v) for ls, (t, v) in zip(labels, given, strict=True)]
            )
            got = windows(flat, ends, range_ms)
            want = range_steps(given, ends, range_ms)
            if flat.bounds[-1]:  # (no samples at all: empty windows either way)
                assert got.lo.tolist() == want.lo.tolist()
                assert got.hi.tolist() == want.hi.tolist()
            assert got.counts.tolist() == want.counts.tolist()
