"""OpenTelemetry metric and attribute names as Prometheus names, the way Prometheus 3.x's OTLP
receiver builds them (prometheus/otlptranslator, strategy UnderscoreEscapingWithSuffixes, its
default), so OTLP data reads the same in watchkeeper as in Prometheus.

Metric names: split on every character outside `[a-zA-Z0-9:]` (so runs of them, `_` included,
become one `_`, and leading or trailing ones go), then the unit's words (`s` -> `seconds`,
`By/s` -> `bytes_per_second`, `{...}` annotations dropped) unless the name already has the
unit's word, then `_total` for monotonic sums or `_ratio` for gauges of unit `1`; a leading
digit gets `_`. Label names: every character outside `[a-zA-Z0-9]` becomes `_` (runs kept), a
leading digit gets `key_`, and a single leading `_` gets `key`. Where the OpenTelemetry
specification says otherwise (it has dropped the `_ratio` rule; it would collapse `__` in
labels), Prometheus' behaviour is followed and docs/otlp.md lists the differences.
"""

from __future__ import annotations

import re
from enum import Enum

_NAME_TOKENS = re.compile(r"[a-zA-Z0-9:]+")
_UNIT_CLEAN = re.compile(r"[^a-zA-Z0-9:]+")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9]")

UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",  # sic, as Prometheus writes it
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
PER_UNITS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}


class MetricKind(Enum):
    GAUGE = "gauge"
    COUNTER = "counter"  # a monotonic sum
    UPDOWN = "updown"  # a non-monotonic sum: a gauge to Prometheus, but no _ratio
    HISTOGRAM = "histogram"
    SUMMARY = "summary"


class OtelNameError(ValueError):
    """A name that translates to nothing usable; the message is Prometheus'."""


def _unit_parts(unit: str) -> tuple[str, str]:
    """The main and the per-unit suffix of a unit (`By/s` -> `bytes`, `per_second`)."""
    main_text, _, per_text = unit.partition("/")
    main_text, per_text = main_text.strip(), per_text.strip()
    main = ""
    if main_text and "{" not in main_text and "}" not in main_text:
        main = _clean_unit(UNITS.get(main_text, main_text))
    per = ""
    if per_text and "{" not in per_text and "}" not in per_text:
        word = PER_UNITS.get(per_text, per_text)
        if word:
            per = _clean_unit("per_" + word)
    return main, per


def _clean_unit(word: str) -> str:
    cleaned = _UNIT_CLEAN.sub("_", word)
    return cleaned[1:] if cleaned.startswith("_") else cleaned


def metric_name(name: str, unit: str, kind: MetricKind) -> str:
    """The Prometheus metric family name of an OTLP metric."""
    tokens = _NAME_TOKENS.findall(name)
    main, per = _unit_parts(unit)
    if main in tokens:  # already named: `process_cpu_seconds` stays as it is
        main = ""
    per = "" if per == "per_" else per.removesuffix("_")
    if per:
        main = main.removesuffix("_")
    # (the per-unit part is never found among the tokens: it holds a `_` and they do not)
    tokens.extend(part for part in (main, per) if part)
    if kind is MetricKind.COUNTER:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind is MetricKind.GAUGE:
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    built = "_".join(t for t in tokens if t)
    if not built:
        raise OtelNameError(f'normalization for metric "{name}" resulted in empty name')
    if built[0].isdigit():
        built = "_" + built
    return built


def unit_name(unit: str) -> str:
    """The unit as Prometheus' metadata records it (`s` -> `seconds`, `By/s` ->
    `bytes_per_second`, `1` and `{request}` -> "")."""
    main, per = _unit_parts(unit)
    return "_".join(part for part in (main, per) if part).strip("_")


def label_name(key: str) -> str:
    """The Prometheus label name of an attribute key."""
    if not key:
        raise OtelNameError("label name is empty")
    name = _LABEL_INVALID.sub("_", key)
    if name[0].isdigit():
        name = "key_" + name
    elif name.startswith("_") and not name.startswith("__"):
        name = "key" + name
    if not name.strip("_"):
        raise OtelNameError(
            f'normalization for label name "{key}" resulted in invalid name "{name}"'
        )
    return name
