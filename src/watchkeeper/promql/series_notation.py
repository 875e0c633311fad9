"""Prometheus' expanding notation for series values, as promtool's rule unit tests and the
PromQL test scripts write input series: `1 2 3`, `0+10x5` (0, 10, ..., 50), `5-1x3`, `1x4`
(five times 1), `_` (no sample), `_x3` (three gaps), `stale` (a staleness marker), and native
histograms `{{schema:0 count:2 buckets:[1 1]}}`, `{{...}}x3`, `{{...}}+{{...}}x3`. Numbers may be
`Inf`/`NaN` in any case and carry a sign; a repeat adds its step by repeated float64 (or
histogram) addition, as Prometheus does."""

from __future__ import annotations

import re
import struct

from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.model.histogram_notation import parse_histogram

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


# One position of a value list: a float, a native histogram, or None (`_`, no sample).
Item = float | FloatHistogram | None

HISTOGRAM_ITEM_RE = re.compile(
    r"(?P<a>\{\{.*?\}\})(?:(?:(?P<op>[+-])(?P<b>\{\{.*?\}\}))?x(?P<n>\d+))?", re.DOTALL
)


def split_items(text: str) -> list[str]:
    """Whitespace-separated items, where whitespace inside `{{...}}` does not split."""
    items: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        while i < n and not text[i].isspace():
            if text.startswith("{{", i):
                end = text.find("}}", i)
                if end < 0:
                    raise ValueError("unterminated {{ in value list")
                i = end + 2
            else:
                i += 1
        items.append(text[start:i])
    return items


def expand_histogram_item(item: str) -> list[Item]:
    """`{{...}}`, `{{a}}xN` (N+1 copies), `{{a}}+{{b}}xN` or `{{a}}-{{b}}xN` (a, a±b, ...,
    by repeated histogram addition, as Prometheus does); ValueError if it is none of them."""
    found = HISTOGRAM_ITEM_RE.fullmatch(item)
    if found is None:
        raise ValueError(f"invalid histogram item {item!r}")
    first = parse_histogram(found["a"])
    if found["n"] is None:
        return [first]
    if found["b"] is None:
        return [first] * (int(found["n"]) + 1)
    step = parse_histogram(found["b"])
    if first.schema > step.schema:
        # as Prometheus: the sums keep the start's schema, which cannot be finer
        raise ValueError(
            f"invalid histogram item {item!r}: cannot merge from schema {step.schema} to "
            f"{first.schema}"
        )
    out: list[Item] = [first]
    value = first
    for _ in range(int(found["n"])):
        value = value.add(step, negate=found["op"] == "-")
        out.append(value)
    return out


def expand_items(text: str) -> list[Item]:
    """Every position of a value list that may hold native histograms as well as floats;
    ValueError naming an item that is neither."""
    out: list[Item] = []
    for item in split_items(text):
        if item.startswith("{{"):
            out.extend(expand_histogram_item(item))
            continue
        expanded = expand_float_item(item)
        if expanded is None:
            raise ValueError(f"invalid value item {item!r}")
        out.extend(expanded)
    return out
