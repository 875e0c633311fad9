"""Floats written as Go writes them, where Prometheus' output is defined by Go's formatting:
`strconv.FormatFloat(v, 'g', -1, 64)` (also `%v`: OpenMetrics label values, templates) and
`strconv.FormatFloat(v, 'f', -1, 64)` (OTLP `le` and `quantile`). Both use the shortest digits
that read back as the same float, which is what Python's repr finds."""

from __future__ import annotations

import math
from decimal import Decimal


def _digits(value: float) -> tuple[str, int]:
    """The shortest decimal digits of |value| (no leading or trailing zeros) and the position
    of the decimal point after the first of them (value = 0.d1d2... x 10^point)."""
    mantissa, _, exponent = repr(float(abs(value))).partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = whole + fraction
    digits = raw.lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(raw) - len(digits))
    return digits.rstrip("0"), point


def _special(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def _format(value: float, style: str) -> str:
    """`value` in Go's shortest form of `style` (g or e; format_f has its own way)."""
    special = _special(value)
    if special is not None:
        return special
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + ("0e+00" if style == "e" else "0")
    digits, point = _digits(value)
    exponent = point - 1
    if style == "e" or (style == "g" and (exponent < -4 or exponent >= 6)):
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return sign + _positional(digits, point)


def format_g(value: float) -> str:
    """Go's shortest %g: the exponent form when the decimal exponent is below -4 or at least
    6, as strconv decides it for the shortest digits (`1e+06`, `123456.7`, `1e-05`)."""
    return _format(value, "g")


def format_f(value: float) -> str:
    """Go's shortest %f: never an exponent (`1`, `0.005`, `1000000`). As Prometheus writes
    sample values (the query API, count_values' labels, annotations): the hot one of these,
    so through Decimal (1.2 us a value against 2.3 for the digits' own positional form)."""
    special = _special(value)
    if special is not None:
        return special
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_e(value: float) -> str:
    """Go's shortest %e (`1e+00`, `2.5e-07`), as Prometheus writes alert values."""
    return _format(value, "e")


def _positional(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]
