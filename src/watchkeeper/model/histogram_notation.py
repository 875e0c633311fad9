"""The `{{...}}` notation of a native histogram in PromQL test scripts and rule unit tests
(read here; `FloatHistogram.test_expression` writes it)."""

from __future__ import annotations

import re

from watchkeeper.model.histogram import HINT_NAMES, FloatHistogram

_HINTS_BY_NAME = {name: value for value, name in HINT_NAMES.items()}

_PAIR = re.compile(r"\s*([a-z_]+):\s*(\[[^\]]*\]|[^\s\[\]]+)")


def parse_histogram(text: str) -> FloatHistogram:
    """A histogram in the notation of PromQL test scripts and rule unit tests:
    `{{schema:1 count:4 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] offset:-1
    n_buckets:[1] n_offset:0 custom_values:[0.1 1] counter_reset_hint:not_reset}}`, every key
    optional (counts absolute). ValueError naming what is wrong."""
    stripped = text.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")):
        raise ValueError(f"a histogram is written {{{{...}}}}, not {text!r}")
    body = stripped[2:-2]
    fields: dict[str, str] = {}
    position = 0
    while position < len(body):
        if body[position:].strip() == "":
            break
        found = _PAIR.match(body, position)
        if found is None:
            raise ValueError(f"invalid histogram field at {body[position:].strip()!r}")
        key, raw = found.group(1), found.group(2)
        if key in fields:
            raise ValueError(f"histogram field {key} given twice")
        fields[key] = raw
        position = found.end()
    try:
        histogram = _from_fields(fields)
    except ValueError as err:
        raise ValueError(f"invalid histogram {stripped}: {err}") from None
    histogram.validate()
    return histogram


def _from_fields(fields: dict[str, str]) -> FloatHistogram:
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]}")

    def number(key: str) -> float:
        return _float(fields[key]) if key in fields else 0.0

    def integer(key: str) -> int:
        if key not in fields:
            return 0
        if not re.fullmatch(r"[+-]?\d+", fields[key]):
            raise ValueError(f"{key} must be an integer, not {fields[key]!r}")
        return int(fields[key])

    def numbers(key: str) -> tuple[float, ...]:
        raw = fields.get(key)
        if raw is None:
            return ()
        if not (raw.startswith("[") and raw.endswith("]")):
            raise ValueError(f"{key} must be a [list], not {raw!r}")
        return tuple(_float(item) for item in raw[1:-1].split())

    hint_name = fields.get("counter_reset_hint", "unknown")
    if hint_name not in _HINTS_BY_NAME:
        raise ValueError(f"counter_reset_hint {hint_name!r} is none of {sorted(_HINTS_BY_NAME)}")
    positive, negative = numbers("buckets"), numbers("n_buckets")
    return FloatHistogram(
        schema=integer("schema"),
        count=number("count"),
        sum=number("sum"),
        zero_threshold=number("z_bucket_w"),
        zero_count=number("z_bucket"),
        positive_spans=((integer("offset"), len(positive)),) if positive else (),
        positive_buckets=positive,
        negative_spans=((integer("n_offset"), len(negative)),) if negative else (),
        negative_buckets=negative,
        custom_values=numbers("custom_values"),
        counter_reset_hint=_HINTS_BY_NAME[hint_name],
    )


_FIELDS = {
    "schema",
    "count",
    "sum",
    "z_bucket",
    "z_bucket_w",
    "buckets",
    "offset",
    "n_buckets",
    "n_offset",
    "custom_values",
    "counter_reset_hint",
}
_NUMBER = re.compile(r"[+-]?(?:[iI][nN][fF]|[nN][aA][nN]|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)")


def _float(text: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"invalid number {text!r}")
    return float(text)
