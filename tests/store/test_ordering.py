import numpy as np

from watchkeeper.store.ordering import INT64_MIN, Verdict, judge


def _judge(series, ts, values, prior_max=None, prior_vals=None, lower=INT64_MIN, ooo=None):
    series = np.array(series, dtype=np.int64)
    ts = np.array(ts, dtype=np.int64)
    bits = np.array(values, dtype=np.float64).view(np.int64)
    pmax = np.array(prior_max or [INT64_MIN] * len(ts), dtype=np.int64)
    pbits = np.array(prior_vals or [0.0] * len(ts), dtype=np.float64).view(np.int64)
    return [Verdict(v) for v in judge(series, ts, bits, pmax, pbits, lower, ooo)]


A, R, OOO, D, B = (
    Verdict.APPEND,
    Verdict.RESENT,
    Verdict.OUT_OF_ORDER,
    Verdict.DUPLICATE_TIMESTAMP,
    Verdict.OUT_OF_BOUNDS,
)


def test_in_order_samples_append() -> None:
    assert _judge([1, 1, 2], [10, 20, 5], [1, 2, 3]) == [A, A, A]


def test_against_stored_newest() -> None:
    got = _judge([1, 2, 3, 4], [10, 10, 5, 11], [1.0, 9.0, 1.0, 1.0], [10] * 4, [1.0] * 4)
    assert got == [R, D, OOO, A]


def test_resent_nan_is_bit_exact() -> None:
    stale = np.array([0x7FF0000000000002], dtype=np.int64).view(np.float64)[0]
    assert _judge([1], [10], [stale], [10], [stale]) == [R]
    assert _judge([1], [10], [float("nan")], [10], [stale]) == [D]


def test_unordered_within_batch_uses_running_newest() -> None:
    # 10 appends, 5 is older than 10, 7 still older than 10, 12 appends, 12 again is a resend
    assert _judge([1] * 5, [10, 5, 7, 12, 12], [1, 1, 1, 2, 2]) == [A, OOO, OOO, A, R]
    assert _judge([1, 1], [10, 10], [1, 2]) == [A, D]


def test_series_are_independent_in_mixed_batches() -> None:
    got = _judge([1, 2, 1, 2], [10, 30, 20, 25], [0, 0, 0, 0])
    assert got == [A, A, A, OOO]


def test_lower_bound() -> None:
    assert _judge([1, 2], [99, 100], [0, 0], lower=100) == [B, A]


def test_out_of_order_window() -> None:
    got = _judge([1, 1, 1], [50, 95, 120], [0, 0, 0], [100] * 3, [0.0] * 3, lower=90, ooo=80)
    assert got == [OOO, A, A]
