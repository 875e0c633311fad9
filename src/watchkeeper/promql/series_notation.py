"""Prometheus' expanding notation for series values, as promtool's rule unit tests and the
PromQL test scripts write input series: `1 2 3`, `0+10x5` (0, 10, ..., 50), `5-1x3`, `1x4`
(five times 1), `_` (no sample), `_x3` (three gaps), `stale` (a staleness marker). Numbers may
be `Inf`/`NaN` in any case and carry a sign; a repeat adds its step by repeated float64
addition, as Prometheus does."""

from __future__ import annotations

import re
import struct

STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]

NUMBER = r"[+-]?(?:[iI][nN][fF]|[nN][aA][nN]|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_NUMBER_RE = re.compile(NUMBER)
_REPEAT_RE = re.compile(rf"(?P<a>{NUMBER})(?:(?P<op>[+-])(?P<b>{NUMBER}))?x(?P<n>\d+)")
_GAPS_RE = re.compile(r"_x(?P<n>\d+)")


def parse_number(text: str) -> float:
    if not _NUMBER_RE.fullmatch(text):
        raise ValueError(f"invalid number {text!r}")
    return float(text)


def repeat(start: float, step: float, count: int) -> list[float | None]:
    """`count + 1` values by repeated float64 addition (not start + i*step)."""
    out: list[float | None] = [start]
    value = start
    for _ in range(count):
        value += step
        out.append(value)
    return out


def expand_float_item(item: str) -> list[float | None] | None:
    """The positions one float item stands for (None for a gap); None if it is not one."""
    if item == "_":
        return [None]
    if item == "stale":
        return [STALE_NAN]
    if found := _GAPS_RE.fullmatch(item):
        return [None] * int(found["n"])  # `_xN` is N gaps, not N+1
    if _NUMBER_RE.fullmatch(item):
        return [float(item)]
    if found := _REPEAT_RE.fullmatch(item):
        start = float(found["a"])
        if found["op"] is None:
            return repeat(start, 0.0, int(found["n"]))
        step = float(found["b"]) if found["op"] == "+" else -float(found["b"])
        return repeat(start, step, int(found["n"]))
    return None


def expand_values(text: str) -> list[float | None]:
    """Every position of a float value list; ValueError naming an item that is not one."""
    out: list[float | None] = []
    for item in text.split():
        expanded = expand_float_item(item)
        if expanded is None:
            raise ValueError(f"invalid value item {item!r}")
        out.extend(expanded)
    return out
