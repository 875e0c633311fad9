"""Slack, PagerDuty, Microsoft Teams and email from the running server: HTTP sinks stand in
for the three services and a real SMTP server (aiosmtpd) on loopback takes the mail. The
expected bodies are what Alertmanager's default templates give for this alert (its
default.tmpl, Slack and PagerDuty as 0.25 writes them, Teams as 0.27+)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import Server, WebhookSink, free_port

pytestmark = pytest.mark.timeout(120)

SUBJECT = "[FIRING:1] DiskFull (db1 page)"
LINK = "http://wk.example/#/alerts?receiver=all"
GROUP_KEY = '{}:{alertname="DiskFull"}'
LABELS = "Labels:\n - alertname = DiskFull\n - instance = db1\n - severity = page\n"
ALERT_TEXT = f"{LABELS}Annotations:\n - summary = disk 95% full\nSource: http://prom/graph\n"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def test_each_service_gets_alertmanagers_payload(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    sink = WebhookSink()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        (tmp_path / "alertmanager.yml").write_text(
            f"""
route:
  receiver: all
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: all
    slack_configs: [{{api_url: '{sink.url}/slack', channel: '#ops'}}]
    pagerduty_configs: [{{url: '{sink.url}/pagerduty', routing_key: r0}}]
    msteams_configs: [{{webhook_url: '{sink.url}/teams'}}]
    msteamsv2_configs: [{{webhook_url: '{sink.url}/workflow'}}]
    email_configs:
      - to: ops@example.com
        from: watchkeeper@example.com
        smarthost: 127.0.0.1:{smtp.port}
        require_tls: false
"""
        )
        server = start_server(
            config="alerting:\n  alertmanager_config: alertmanager.yml\n"
            "  external_url: http://wk.example\n"
        )
        now = int(time.time() * 1000)
        alert: dict[str, Any] = {
            "labels": {"alertname": "DiskFull", "instance": "db1", "severity": "page"},
            "annotations": {"summary": "disk 95% full"},
            "startsAt": _iso(now),
            "generatorURL": "http://prom/graph",
        }
        posted = httpx.post(f"{server.url}/api/v2/alerts", json=[alert])
        assert posted.status_code == 200, posted.text
        bodies = dict(sink.wait(4))
        _wait_for(lambda: len(mailbox.messages) == 1)

        assert (
            bodies["/slack"]
            == (
                '{"channel":"#ops","username":"Alertmanager","attachments":[{'
                f'"title":"{SUBJECT}","title_link":"{LINK}","text":"",'
                f'"fallback":"{SUBJECT} | {LINK}","callback_id":"","footer":"","color":"danger",'
                '"mrkdwn_in":["fallback","pretext","text"]}]}\n'
            ).encode()
        )
        dedup = hashlib.sha256(GROUP_KEY.encode()).hexdigest()
        text = ALERT_TEXT.replace("\n", "\\n")
        assert (
            bodies["/pagerduty"]
            == (
                f'{{"routing_key":"r0","dedup_key":"{dedup}","event_action":"trigger",'
                f'"payload":{{"summary":"{SUBJECT}","source":"Alertmanager","severity":"error",'
                f'"custom_details":{{"firing":"{text}","num_firing":"1","num_resolved":"0",'
                f'"resolved":""}}}},"client":"Alertmanager","client_url":"{LINK}"}}\n'
            ).encode()
        )
        markdown = (
            "\\n\\n# Alerts Firing:\\n\\nLabels:\\n  - alertname = DiskFull\\n"
            "  - instance = db1\\n  - severity = page\\n\\nAnnotations:\\n"
            "  - summary = disk 95% full\\n\\nSource: http://prom/graph\\n\\n\\n\\n"
        )
        assert (
            bodies["/teams"]
            == (
                '{"@context":"http://schema.org/extensions","type":"MessageCard",'
                f'"title":"{SUBJECT}","summary":"{SUBJECT}","text":"{markdown}",'
                '"themeColor":"8C1A1A"}\n'
            ).encode()
        )

        # Teams through a Workflows webhook: Alertmanager's (0.28+) Adaptive Card
        assert (
            bodies["/workflow"]
            == (
                '{"type":"message","attachments":[{"contentType":'
                '"application/vnd.microsoft.card.adaptive","contentUrl":null,"content":{'
                '"$schema":"http://adaptivecards.io/schemas/adaptive-card.json",'
                '"type":"AdaptiveCard","version":"1.2","body":[{"type":"TextBlock",'
                f'"text":"{SUBJECT}","weight":"Bolder","size":"Medium","wrap":true,'
                '"style":"heading","color":"Attention"},{"type":"TextBlock",'
                f'"text":"{markdown}","wrap":true}}],"msteams":{{"width":"full"}}}}}}]}}\n'
            ).encode()
        )

        (mail,) = mailbox.messages
        assert mail["Subject"] == SUBJECT
        assert mail["From"] == "watchkeeper@example.com" and mail["To"] == "ops@example.com"
        plain = mail.get_body(("plain",))
        rich = mail.get_body(("html",))
        assert plain is not None and rich is not None
        text_body = plain.get_content().replace("\r\n", "\n")  # lines end in CRLF on the wire
        assert ALERT_TEXT in text_body and LINK in text_body
        assert "<b>instance</b> = db1" in rich.get_content()

        # resolved: PagerDuty resolves the incident and Teams turns green; Slack and email do
        # not send resolved notifications unless asked (Alertmanager's defaults)
        sink.received.clear()
        alert["endsAt"] = _iso(int(time.time() * 1000) - 1)
        assert httpx.post(f"{server.url}/api/v2/alerts", json=[alert]).status_code == 200
        bodies = dict(sink.wait(3))
        assert b'"event_action":"resolve"' in bodies["/pagerduty"]
        assert b'"themeColor":"2DC72D"' in bodies["/teams"]
        assert b'"color":"Good"' in bodies["/workflow"]
        time.sleep(2)
        assert sorted(bodies) == sorted(p for p, _ in sink.received)
        assert len(mailbox.messages) == 1
    finally:
        smtp.stop()


def test_a_failing_receiver_is_in_the_history_and_does_not_block_others(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    sink = WebhookSink()
    (tmp_path / "alertmanager.yml").write_text(
        f"""
route:
  receiver: both
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: both
    webhook_configs: [{{url: '{sink.url}/ok'}}, {{url: 'http://127.0.0.1:{free_port()}/down'}}]
"""
    )
    server = start_server(config="alerting:\n  alertmanager_config: alertmanager.yml\n")
    alert = {"labels": {"alertname": "X"}, "startsAt": _iso(int(time.time() * 1000))}
    assert httpx.post(f"{server.url}/api/v2/alerts", json=[alert]).status_code == 200
    sink.wait(1)
    failures: list[dict[str, Any]] = []

    def failed() -> bool:
        events = httpx.get(f"{server.url}/api/v1/alerts/history").json()
        failures[:] = [e for e in events if e["event"] == "notify_failed"]
        return bool(failures)

    _wait_for(failed, timeout=30)
    assert failures[0]["integration"] == "both/webhook[1]"
    assert "ConnectError" in failures[0]["error"]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'watchkeeper_notifications_failed_total{integration="webhook",receiver="both"}' in (
        metrics
    )


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
