"""Go's time.Time in templates: printing, Go's reference layouts and the methods templates call.
The expected texts are what Go's time package writes for the same instant (the Alertmanager peer
test compares a few of them with a real Alertmanager)."""

from __future__ import annotations

import json

import pytest

from watchkeeper.model.gotime import GoTime, location

AT = 1_796_027_691_753  # 2026-11-30 08:34:51.753 UTC, a Monday


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("2006-01-02T15:04:05Z07:00", "2026-11-30T08:34:51Z"),  # time.RFC3339
        ("2006-01-02T15:04:05.999999999Z07:00", "2026-11-30T08:34:51.753Z"),  # RFC3339Nano
        ("Mon, 02 Jan 2006 15:04:05 MST", "Mon, 30 Nov 2026 08:34:51 UTC"),  # RFC1123
        ("3:04PM", "8:34AM"),  # time.Kitchen
        ("Monday January _2 06 002 __2", "Monday November 30 26 334 334"),
        ("15:04:05.000 ,000000 .99", "08:34:51.753 ,753000 .75"),
        ("-0700 -07:00 -07 Z0700", "+0000 +00:00 +00 Z"),
        ("Month Monthly", "Month Monthly"),  # "Mon" followed by a lowercase letter is text
        ("_2006 pm 1/2/3", "_2026 am 11/30/8"),
    ],
)
def test_format_with_go_layouts(layout: str, expected: str) -> None:
    assert GoTime(AT).Format(layout) == expected


def test_printing_zones_and_methods() -> None:
    at = GoTime(AT)
    assert str(at) == "2026-11-30 08:34:51.753 +0000 UTC"
    assert str(GoTime(AT - 753)) == "2026-11-30 08:34:51 +0000 UTC"  # no fraction: none shown
    zero = GoTime.of_alert_time(0)
    assert str(zero) == "0001-01-01 00:00:00 +0000 UTC" and zero.IsZero() and not at.IsZero()
    berlin = at.In(location("Europe/Berlin"))
    assert str(berlin) == "2026-11-30 09:34:51.753 +0100 CET"
    assert berlin.Format("15:04 Z07:00") == "09:34 +01:00" and berlin.Hour() == 9
    assert at.In(location("Asia/Kolkata")).Format("15:04 -0700 MST") == "14:04 +0530 IST"
    assert berlin.UTC().Hour() == 8 and berlin.Equal(at)
    assert at.Unix() == AT // 1000 and at.UnixMilli() == AT
    assert zero.Unix() == -62135596800  # Go's zero time
    assert zero.Before(at) and at.After(zero)
    assert (at.Year(), at.YearDay(), at.Day(), at.Minute(), at.Second()) == (2026, 334, 30, 34, 51)
    with pytest.raises(ValueError, match="unknown time zone Mars/Olympus"):
        location("Mars/Olympus")


def test_templates_call_time_methods_and_alertmanagers_date_and_tz() -> None:
    from watchkeeper.alerting.notification import notification_data  # noqa: PLC0415
    from watchkeeper.model.alerts import Alert  # noqa: PLC0415
    from watchkeeper.notify import slack  # noqa: PLC0415

    alert = Alert(labels=(("alertname", "Disk"),), starts_at_ms=AT, ends_at_ms=0)
    data = notification_data("team", [alert], (), "http://am", "{}", AT)
    title = (
        '{{ range .Alerts }}{{ .StartsAt }}; {{ .StartsAt.Format "Jan 2 15:04" }}; '
        '{{ .StartsAt | tz "Europe/Berlin" | date "15:04 MST" }}; {{ .EndsAt.IsZero }}{{ end }}'
    )
    body = json.loads(slack.payload(data, {"title": title}))
    assert body["attachments"][0]["title"] == (
        "2026-11-30 08:34:51.753 +0000 UTC; Nov 30 08:34; 09:34 CET; true"
    )
