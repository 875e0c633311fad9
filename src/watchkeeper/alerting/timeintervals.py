"""Alertmanager's time intervals: when a route's notifications are muted or allowed.

A named interval is a list of periods; a period holds when all of its given parts hold
(`times` of day, `weekdays`, `days_of_month`, `months`, `years`), read in its `location`
(UTC unless named). Ranges are inclusive (`monday:friday`, `1:5`), except that a time range
ends before its `end_time` (`09:00`-`17:00` holds until 16:59:59). A negative day of the month
counts from its end (`-1` is the last day). As Alertmanager's timeinterval package.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchkeeper.alerting.routing import RoutingError

_WEEKDAYS = {
    name: number
    for number, name in enumerate(
        ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
    )
}
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_TIME = re.compile(r"^(\d{2}):(\d{2})$")
_UTC = dt.UTC


@dataclass(frozen=True)
class Period:
    times: tuple[tuple[int, int], ...] = ()  # minutes of the day, [start, end)
    weekdays: tuple[tuple[int, int], ...] = ()  # 0 = Sunday, inclusive
    days_of_month: tuple[tuple[int, int], ...] = ()  # negative: from the month's end
    months: tuple[tuple[int, int], ...] = ()
    years: tuple[tuple[int, int], ...] = ()
    location: dt.tzinfo = _UTC

    def contains(self, now_ms: int) -> bool:
        t = dt.datetime.fromtimestamp(now_ms / 1000, tz=self.location)
        if self.times:
            minute = t.hour * 60 + t.minute
            if not any(start <= minute < end for start, end in self.times):
                return False
        if self.days_of_month:
            days = calendar.monthrange(t.year, t.month)[1]
            if not any(_in_month(t.day, begin, end, days) for begin, end in self.days_of_month):
                return False
        if self.months and not any(a <= t.month <= b for a, b in self.months):
            return False
        if self.years and not any(a <= t.year <= b for a, b in self.years):
            return False
        weekday = (t.weekday() + 1) % 7  # Python's Monday = 0; Go's Sunday = 0
        return not self.weekdays or any(a <= weekday <= b for a, b in self.weekdays)


def _in_month(day: int, begin: int, end: int, days: int) -> bool:
    if begin < 0:
        begin = days + begin + 1
    if end < 0:
        end = days + end + 1
    return max(begin, 1) <= day <= min(end, days)


def in_any(periods: Sequence[Period], now_ms: int) -> bool:
    return any(p.contains(now_ms) for p in periods)


def parse_time_intervals(raw: Mapping[str, Any]) -> dict[str, tuple[Period, ...]]:
    """The named intervals of a configuration (`time_intervals` and the older
    `mute_time_intervals`); RoutingError naming the interval and the problem."""
    found: dict[str, tuple[Period, ...]] = {}
    for key in ("mute_time_intervals", "time_intervals"):
        for item in raw.get(key) or []:
            name = str(item.get("name") or "")
            if not name:
                raise RoutingError(f"{key}: missing name in time interval")
            if name in found:
                raise RoutingError(f"time interval {name!r} is not unique")
            try:
                found[name] = tuple(_period(p) for p in item.get("time_intervals") or [])
            except ValueError as err:
                raise RoutingError(f"time interval {name!r}: {err}") from None
    return found


def _period(raw: Mapping[str, Any]) -> Period:
    location: dt.tzinfo = _UTC
    if raw.get("location"):
        name = str(raw["location"])
        try:
            location = _UTC if name in ("UTC", "Local") else ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
    return Period(
        times=tuple(_time_range(t) for t in raw.get("times") or []),
        weekdays=tuple(_ranges(raw.get("weekdays"), _WEEKDAYS, 0, 6, "weekday")),
        days_of_month=tuple(_days_of_month(raw.get("days_of_month"))),
        months=tuple(_ranges(raw.get("months"), _MONTHS, 1, 12, "month")),
        years=tuple(_ranges(raw.get("years"), {}, 0, 9999, "year")),
        location=location,
    )


def _time_range(raw: Mapping[str, Any]) -> tuple[int, int]:
    start, end = _minute(raw.get("start_time")), _minute(raw.get("end_time"))
    if start >= end:
        raise ValueError("start time cannot be equal or greater than end time")
    return start, end


def _minute(text: Any) -> int:
    found = _TIME.match(str(text or ""))
    if found is None:
        raise ValueError(f"couldn't parse timestamp {text!r}, invalid format")
    hours, minutes = int(found.group(1)), int(found.group(2))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"timestamp {text!r} out of range")
    return hours * 60 + minutes


def _ranges(
    items: Any, names: Mapping[str, int], low: int, high: int, what: str
) -> list[tuple[int, int]]:
    out = []
    for item in items or []:
        parts = str(item).lower().split(":")
        if len(parts) > 2:
            raise ValueError(f"invalid {what} range {item!r}")
        bounds = [_bound(p, names, low, high, what) for p in parts]
        begin, end = bounds[0], bounds[-1]
        if begin > end:
            raise ValueError(f"start {what} cannot be after end {what}: {item!r}")
        out.append((begin, end))
    return out


def _bound(text: str, names: Mapping[str, int], low: int, high: int, what: str) -> int:
    text = text.strip()
    if text in names:
        return names[text]
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid {what}") from None
    if not low <= value <= high:
        raise ValueError(f"{what} {value} out of range {low}..{high}")
    return value


def _days_of_month(items: Any) -> list[tuple[int, int]]:
    out = []
    for item in items or []:
        parts = str(item).split(":")
        if len(parts) > 2:
            raise ValueError(f"invalid day of month range {item!r}")
        try:
            bounds = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"invalid day of month range {item!r}") from None
        if any(b == 0 or not -31 <= b <= 31 for b in bounds):
            raise ValueError(f"day of month {item!r} out of range (1..31 or -31..-1)")
        begin, end = bounds[0], bounds[-1]
        if (begin > 0) == (end > 0) and begin > end:
            raise ValueError(f"start day cannot be after end day: {item!r}")
        out.append((begin, end))
    return out
