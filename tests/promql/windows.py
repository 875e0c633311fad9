"""Range vectors built by hand, for testing range functions without the store."""

from __future__ import annotations

import numpy as np

from watchkeeper.promql.values import RangeSteps


def range_steps(
    series: list[tuple[np.ndarray, np.ndarray]], ends: np.ndarray, range_ms: int
) -> RangeSteps:
    """The range vector of `series` ((timestamps, values) each, timestamps ascending) with
    windows (end - range_ms, end] at each of `ends`, laid out as the engine lays it out."""
    lengths = [len(t) for t, _ in series]
    bounds = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    # as the engine makes them: an unused sample only when there are none
    t = np.concatenate([s[0] for s in series] or [np.zeros(1, dtype=np.int64)])
    v = np.concatenate([s[1] for s in series] or [np.zeros(1)])
    lo = np.empty((len(series), len(ends)), dtype=np.int64)
    hi = np.empty_like(lo)
    for i, (times, _) in enumerate(series):
        lo[i] = bounds[i] + np.searchsorted(times, ends - range_ms, side="right")
        hi[i] = bounds[i] + np.searchsorted(times, ends, side="right")
    labels = [(("__name__", f"s{i}"),) for i in range(len(series))]
    return RangeSteps(labels, t, v, bounds, lo, hi, range_ms, ends)  # type: ignore[arg-type]
