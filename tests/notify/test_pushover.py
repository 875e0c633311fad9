"""Pushover: Alertmanager's request (its parameters in the query string of an empty POST), sent
to an HTTP sink on loopback. Alertmanager's Pushover URL is fixed, so no peer test can
compare it; the expected query follows notify/pushover/pushover.go and Go's url.Values.Encode
(keys sorted, QueryEscape)."""

from __future__ import annotations

import asyncio
import urllib.parse

import httpx
import pytest

from tests.conftest import WebhookSink
from watchkeeper.alerting import RoutingError
from watchkeeper.alerting.amconfig import parse_alertmanager_config
from watchkeeper.alerting.notification import Integration, notification_data
from watchkeeper.model.alerts import Alert
from watchkeeper.notify import pushover

NOW = 1_800_000_000_000


def _data(resolved: bool = False) -> object:
    alert = Alert(
        labels=(("alertname", "Disk"), ("instance", "db1")),
        annotations=(("summary", "disk <90% & rising"),),
        starts_at_ms=NOW - 60_000,
        ends_at_ms=NOW - 1 if resolved else 0,
        generator_url="http://prom/graph",
    )
    return notification_data("ops", [alert], (("alertname", "Disk"),), "http://am", "{}", NOW)


def _send(config: dict[str, object], data: object) -> list[tuple[str, bytes]]:
    sink = WebhookSink()
    integration = Integration("ops", "pushover", 0, config)

    async def run() -> None:
        async with httpx.AsyncClient() as client:
            await pushover.send(client, integration, data, api_url=f"{sink.url}/1/messages.json")  # type: ignore[arg-type]

    asyncio.run(run())
    return sink.received


def test_the_default_request_while_firing_and_once_resolved() -> None:
    ((path, body),) = _send({"token": "app token", "user_key": "u1"}, _data())
    assert body == b""
    route, _, query = path.partition("?")
    assert route == "/1/messages.json"
    assert list(urllib.parse.parse_qsl(query, keep_blank_values=True)) == [
        ("device", ""),
        ("expire", "3600"),
        (
            "message",
            "disk <90% & rising\n\nAlerts Firing:\nLabels:\n - alertname = Disk\n"
            " - instance = db1\nAnnotations:\n - summary = disk <90% & rising\n"
            "Source: http://prom/graph",  # trimmed
        ),
        ("priority", "2"),
        ("retry", "60"),
        ("sound", ""),
        ("title", "[FIRING:1] Disk (db1)"),
        ("token", "app token"),
        ("url", "http://am/#/alerts?receiver=ops"),
        ("url_title", ""),
        ("user", "u1"),
    ]
    assert "token=app+token" in query and "%3C90%25+%26+rising" in query  # QueryEscape
    ((path, _),) = _send({"token": "t", "user_key": "u"}, _data(resolved=True))
    params = dict(urllib.parse.parse_qsl(path.partition("?")[2]))
    assert params["priority"] == "0" and params["title"] == "[RESOLVED] Disk (db1)"


def test_html_ttl_and_settings() -> None:
    config = {
        "token": "t",
        "user_key": "u",
        "html": True,
        "message": "<b>{{ .CommonAnnotations.summary }}</b>",
        "ttl": "90s",
        "retry": "30s",
        "sound": "siren",
    }
    ((path, _),) = _send(config, _data())
    params = dict(urllib.parse.parse_qsl(path.partition("?")[2]))
    assert params["message"] == "<b>disk &lt;90% &amp; rising</b>"  # escaped as html/template
    assert (params["html"], params["ttl"], params["retry"], params["sound"]) == (
        "1", "90", "30", "siren",
    )  # fmt: skip
    ((path, _),) = _send({"token": "t", "user_key": "u", "message": "  "}, _data())
    assert dict(urllib.parse.parse_qsl(path.partition("?")[2]))["message"] == "(no details)"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"token": "t"}, "one of user_key or user_key_file must be configured"),
        ({"user_key": "u"}, "one of token or token_file must be configured"),
        ({"user_key": "u", "user_key_file": "/f", "token": "t"}, "at most one of user_key &"),
        ({"user_key": "u", "token": "t", "html": True, "monospace": True}, "monospace & html"),
    ],
)
def test_settings_are_checked_as_alertmanager_checks_them(
    entry: dict[str, object], message: str
) -> None:
    config = {"route": {"receiver": "a"}, "receivers": [{"name": "a", "pushover_configs": [entry]}]}
    with pytest.raises(RoutingError, match=message):
        parse_alertmanager_config(config)
