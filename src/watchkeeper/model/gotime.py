"""Go's time.Time as notification templates see it: printed as Go prints a time, formatted with
Go's reference layouts (`.StartsAt.Format "2006-01-02 15:04"`), and the methods templates call
(Unix, UTC, In, IsZero, Before, ...). Millisecond precision, as alert times are kept."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable

_UTC = dt.UTC
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August"]
_MONTHS += ["September", "October", "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
# Go's zero time, 0001-01-01 00:00:00 UTC, in Unix milliseconds
ZERO_MS = -62_135_596_800_000


class GoTime:
    """An instant (Unix milliseconds) in a time zone (UTC unless moved with `In`/`tz`)."""

    template_methods = (
        "Format",
        "String",
        "Unix",
        "UnixMilli",
        "UnixNano",
        "UTC",
        "Local",
        "In",
        "IsZero",
        "Before",
        "After",
        "Equal",
        "Year",
        "YearDay",
        "Day",
        "Hour",
        "Minute",
        "Second",
    )

    def __init__(self, unix_ms: int, zone: dt.tzinfo = _UTC) -> None:
        self.unix_ms = unix_ms
        self.zone = zone

    @staticmethod
    def of_alert_time(ms: int) -> GoTime:
        """An alert's time: 0 (unset) is Go's zero time."""
        return GoTime(ZERO_MS if ms == 0 else ms)

    @property
    def _local(self) -> dt.datetime:
        return (_EPOCH + dt.timedelta(milliseconds=self.unix_ms)).astimezone(self.zone)

    def __str__(self) -> str:
        return self.String()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoTime) and other.unix_ms == self.unix_ms

    def __hash__(self) -> int:
        return hash(self.unix_ms)

    def String(self) -> str:  # noqa: N802
        return self.Format("2006-01-02 15:04:05.999999999 -0700 MST")

    def Format(self, layout: str) -> str:  # noqa: N802
        return format_go_time(self._local, self.unix_ms % 1000 * 1_000_000, layout)

    def Unix(self) -> int:  # noqa: N802
        return self.unix_ms // 1000

    def UnixMilli(self) -> int:  # noqa: N802
        return self.unix_ms

    def UnixNano(self) -> int:  # noqa: N802
        return self.unix_ms * 1_000_000

    def UTC(self) -> GoTime:  # noqa: N802
        return GoTime(self.unix_ms)

    def Local(self) -> GoTime:  # noqa: N802
        local = dt.datetime.now().astimezone().tzinfo
        return GoTime(self.unix_ms, local or _UTC)

    def In(self, zone: dt.tzinfo) -> GoTime:  # noqa: N802
        return GoTime(self.unix_ms, zone)

    def IsZero(self) -> bool:  # noqa: N802
        return self.unix_ms == ZERO_MS

    def Before(self, other: GoTime) -> bool:  # noqa: N802
        return self.unix_ms < other.unix_ms

    def After(self, other: GoTime) -> bool:  # noqa: N802
        return self.unix_ms > other.unix_ms

    def Equal(self, other: GoTime) -> bool:  # noqa: N802
        return self.unix_ms == other.unix_ms

    def Year(self) -> int:  # noqa: N802
        return self._local.year

    def YearDay(self) -> int:  # noqa: N802
        return self._local.timetuple().tm_yday

    def Day(self) -> int:  # noqa: N802
        return self._local.day

    def Hour(self) -> int:  # noqa: N802
        return self._local.hour

    def Minute(self) -> int:  # noqa: N802
        return self._local.minute

    def Second(self) -> int:  # noqa: N802
        return self._local.second


def location(name: str) -> dt.tzinfo:
    """Go's time.LoadLocation: "" and "UTC" are UTC, "Local" the server's zone, else an IANA
    name; ValueError naming it when unknown."""
    if name in ("", "UTC"):
        return _UTC
    if name == "Local":
        return dt.datetime.now().astimezone().tzinfo or _UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name}") from None


def format_go_time(when: dt.datetime, nanos: int, layout: str) -> str:
    """`when` (with its zone; `nanos` its fraction of a second) written by a Go layout."""
    out: list[str] = []
    i = 0
    while i < len(layout):
        for token, write in _TOKENS:
            if layout.startswith(token, i) and _fits(layout, i, token):
                out.append(write(when, nanos, token))
                i += len(token)
                break
        else:
            fraction = _fraction(layout, i)
            if fraction:
                out.append(_write_fraction(nanos, layout[i], fraction))
                i += 1 + len(fraction)
            else:
                out.append(layout[i])
                i += 1
    return "".join(out)


def _fits(layout: str, i: int, token: str) -> bool:
    """Go's special case: "Jan" and "Mon" stand only when not followed by a lowercase letter
    (so "Month" is text)."""
    if token in ("Jan", "Mon"):
        end = i + len(token)
        return end >= len(layout) or not layout[end].islower()
    return True


def _fraction(layout: str, i: int) -> str:
    """A run of 0s or 9s after "." or "," not followed by a digit: fractional seconds."""
    if layout[i] not in ".," or i + 1 >= len(layout) or layout[i + 1] not in "09":
        return ""
    digit, j = layout[i + 1], i + 1
    while j < len(layout) and layout[j] == digit:
        j += 1
    if j < len(layout) and layout[j].isdigit():
        return ""
    return layout[i + 1 : j]


def _write_fraction(nanos: int, separator: str, run: str) -> str:
    digits = f"{nanos:09d}"[: len(run)]
    if run[0] == "9":
        digits = digits.rstrip("0")
        return separator + digits if digits else ""
    return separator + digits


def _offset(when: dt.datetime, token: str) -> str:
    offset = when.utcoffset() or dt.timedelta(0)
    seconds = int(offset.total_seconds())
    if token.startswith("Z") and seconds == 0:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    hours, minutes, secs = seconds // 3600, seconds // 60 % 60, seconds % 60
    body = token.lstrip("Z-")  # 07, 0700, 07:00, 070000, 07:00:00
    colon = ":" in body
    parts = [f"{hours:02d}"]
    if len(body.replace(":", "")) >= 4:
        parts.append(f"{minutes:02d}")
    if len(body.replace(":", "")) == 6:
        parts.append(f"{secs:02d}")
    return sign + (":" if colon else "").join(parts)


def _zone_name(when: dt.datetime, nanos: int, token: str) -> str:
    # no abbreviation known: Go writes the offset as -0700
    return when.tzname() or _offset(when, "-0700")


def _hour12(when: dt.datetime) -> int:
    return when.hour % 12 or 12


_Writer = Callable[[dt.datetime, int, str], str]
# Go's layout elements, longest first where one is the start of another
_TOKENS: list[tuple[str, _Writer]] = [
    ("January", lambda w, n, t: _MONTHS[w.month - 1]),
    ("Jan", lambda w, n, t: _MONTHS[w.month - 1][:3]),
    ("Monday", lambda w, n, t: _DAYS[w.weekday()]),
    ("Mon", lambda w, n, t: _DAYS[w.weekday()][:3]),
    ("MST", _zone_name),
    ("2006", lambda w, n, t: f"{w.year:04d}"),
    ("-07:00:00", lambda w, n, t: _offset(w, t)),
    ("-070000", lambda w, n, t: _offset(w, t)),
    ("-07:00", lambda w, n, t: _offset(w, t)),
    ("-0700", lambda w, n, t: _offset(w, t)),
    ("-07", lambda w, n, t: _offset(w, t)),
    ("Z07:00:00", lambda w, n, t: _offset(w, t)),
    ("Z070000", lambda w, n, t: _offset(w, t)),
    ("Z07:00", lambda w, n, t: _offset(w, t)),
    ("Z0700", lambda w, n, t: _offset(w, t)),
    ("Z07", lambda w, n, t: _offset(w, t)),
    ("002", lambda w, n, t: f"{w.timetuple().tm_yday:03d}"),
    ("__2", lambda w, n, t: f"{w.timetuple().tm_yday:3d}"),
    ("_2006", lambda w, n, t: f"_{w.year:04d}"),  # Go: "_" then the year, not "_2" then "006"
    ("_2", lambda w, n, t: f"{w.day:2d}"),
    ("01", lambda w, n, t: f"{w.month:02d}"),
    ("02", lambda w, n, t: f"{w.day:02d}"),
    ("03", lambda w, n, t: f"{_hour12(w):02d}"),
    ("04", lambda w, n, t: f"{w.minute:02d}"),
    ("05", lambda w, n, t: f"{w.second:02d}"),
    ("06", lambda w, n, t: f"{w.year % 100:02d}"),
    ("15", lambda w, n, t: f"{w.hour:02d}"),
    ("PM", lambda w, n, t: "PM" if w.hour >= 12 else "AM"),
    ("pm", lambda w, n, t: "pm" if w.hour >= 12 else "am"),
    ("1", lambda w, n, t: str(w.month)),
    ("2", lambda w, n, t: str(w.day)),
    ("3", lambda w, n, t: str(_hour12(w))),
    ("4", lambda w, n, t: str(w.minute)),
    ("5", lambda w, n, t: str(w.second)),
]
