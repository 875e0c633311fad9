"""Prometheus duration strings ("1h30m", "15d", "500ms") and API timestamps.

Durations follow Prometheus' model.ParseDuration: units y, w, d, h, m, s, ms, each at most once
and in that order. Timestamps in API parameters are RFC 3339 or Unix seconds with an optional
fraction, as Prometheus' HTTP API accepts them.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

_UNITS_MS = {
    "y": 365 * 24 * 3600 * 1000,
    "w": 7 * 24 * 3600 * 1000,
    "d": 24 * 3600 * 1000,
    "h": 3600 * 1000,
    "m": 60 * 1000,
    "s": 1000,
    "ms": 1,
}
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)


def parse_duration(text: str) -> int:
    """Milliseconds in a Prometheus duration string; ValueError naming the text if it is not one."""
    if text == "0":
        return 0
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a valid duration string: {text!r} (examples: 30s, 5m, 1h30m, 15d)")
    total = 0
    for group, unit in zip(match.groups(), _UNITS_MS, strict=True):
        if group:
            total += int(group) * _UNITS_MS[unit]
    return total


def format_duration(ms: int) -> str:
    """The shortest Prometheus duration string for a number of milliseconds."""
    if ms == 0:
        return "0s"
    parts = []
    remaining = ms
    for unit, size in _UNITS_MS.items():
        if unit == "w":  # Prometheus prints days, not weeks, unless exact weeks; keep it simple
            continue
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_timestamp_ms(text: str) -> int:
    """An API time parameter (Unix seconds, possibly fractional, or RFC 3339) in milliseconds."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds) or math.isinf(seconds):
            raise ValueError(f"cannot parse {text!r} to a valid timestamp")
        return round(seconds * 1000)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot parse {text!r} to a valid timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(f"cannot parse {text!r} to a valid timestamp: missing time zone")
    return round(parsed.timestamp() * 1000)
