"""Go's float formatting, which Prometheus' output follows in several places."""

from __future__ import annotations

import math

import numpy as np
import pytest

from watchkeeper.model.gofloat import format_e, format_f, format_g


@pytest.mark.parametrize(
    ("value", "g", "f"),
    [
        (0.0, "0", "0"),
        (-0.0, "-0", "-0"),
        (1.0, "1", "1"),
        (0.005, "0.005", "0.005"),
        (100000.0, "100000", "100000"),
        (1e6, "1e+06", "1000000"),
        (1234567.8, "1.2345678e+06", "1234567.8"),
        (0.0001, "0.0001", "0.0001"),
        (1e-05, "1e-05", "0.00001"),
        (-2.5e-07, "-2.5e-07", "-0.00000025"),
        (1.7976931348623157e308, "1.7976931348623157e+308", "17976931348623157" + "0" * 292),
        (math.inf, "+Inf", "+Inf"),
        (-math.inf, "-Inf", "-Inf"),
        (math.nan, "NaN", "NaN"),
    ],
)
def test_like_strconv(value: float, g: str, f: str) -> None:
    assert format_g(value) == g  # strconv.FormatFloat(v, 'g', -1, 64), fmt's %v
    assert format_f(value) == f  # strconv.FormatFloat(v, 'f', -1, 64)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1e+00"),
        (0.0, "0e+00"),
        (2.5e-07, "2.5e-07"),
        (1234.5, "1.2345e+03"),
        (-10.0, "-1e+01"),
    ],
)
def test_e_like_strconv(value: float, expected: str) -> None:
    assert format_e(value) == expected  # strconv.FormatFloat(v, 'e', -1, 64): alert values


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (1 / 3, "0.3333333333333333"),
        (1e-7, "0.0000001"),
        (1.5e21, "1500000000000000000000"),
        (123456789012345678.0, "123456789012345680"),
        (5e-324, "0." + "0" * 323 + "5"),
        (np.float64(-2.5e-7), "-0.00000025"),  # numpy's floats too (their repr is not a float's)
        (np.float64(1e22), "10000000000000000000000"),
    ],
)
def test_f_as_prometheus_writes_sample_values(value: float, text: str) -> None:
    """strconv.FormatFloat(v, 'f', -1, 64): sample values in the query API, count_values'
    labels, numbers in annotations and in parse_query's tree."""
    assert format_f(value) == text


def test_numpy_floats_are_written_as_floats() -> None:
    # repr(np.float64(1e6)) is "np.float64(1000000.0)": the digits come from the float
    assert (format_g(np.float64(1e6)), format_e(np.float64(2.5e-7))) == ("1e+06", "2.5e-07")
