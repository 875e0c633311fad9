import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.store import valuecodec

STALE = np.array([0x7FF0000000000002], dtype=np.int64).view(np.float64)[0]


def _round_trip(series: np.ndarray, values: np.ndarray) -> np.ndarray:
    exponents, differences, use, float_differences = valuecodec.encode(series, values)
    float_differences[use] = 12345  # unused where the decimal form is used
    return valuecodec.decode(series, exponents, differences, use, float_differences)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4),
            st.one_of(
                st.floats(allow_nan=True),
                st.integers(-(2**60), 2**60).map(float),
                st.decimals(-(10**9), 10**9, places=3, allow_nan=False).map(float),
            ),
        ),
        max_size=60,
    )
)
def test_every_value_round_trips_bit_exact(rows: list[tuple[int, float]]) -> None:
    rows.sort(key=lambda row: row[0])
    series = np.array([r[0] for r in rows], dtype=np.int64)
    values = np.array([r[1] for r in rows], dtype=np.float64)
    out = _round_trip(series, values)
    assert out.view(np.int64).tolist() == values.view(np.int64).tolist()


def test_decimals_use_the_mantissa_and_odd_values_the_float() -> None:
    series = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)
    values = np.array([697206.93, 697211.27, STALE, 42011.02744175017, 1.0, 0.1])
    exponents, differences, use, _ = valuecodec.encode(series, values)
    assert use.tolist() == [True, True, False, False, False, True]
    assert differences[:3].tolist() == [69720693, 434, 0]
    assert exponents.tolist()[:2] == [2, 2]
    assert _round_trip(series, values).view(np.int64)[2] == 0x7FF0000000000002


def test_negative_zero_keeps_its_sign() -> None:
    values = np.array([-0.0, 0.0, -0.0])
    out = _round_trip(np.zeros(3, dtype=np.int64), values)
    assert out.view(np.int64).tolist() == values.view(np.int64).tolist()


def test_running_sums_may_overflow_and_still_decode() -> None:
    big = float(2**52 + 12345)
    series = np.repeat(np.arange(4000, dtype=np.int64), 2)
    values = np.tile(np.array([big, big - 1.0]), 4000)
    assert np.array_equal(_round_trip(series, values), values)
