"""The same alert stream, fed to a real Alertmanager (Debian's prometheus-alertmanager) and to
watchkeeper with the same configuration, gives the same webhook notifications, byte for byte.

The stream comes in stages (fire; resolve some and add one; resolve the rest), each posted to
both at once through `POST /api/v2/alerts` with explicit start and end times, as Prometheus
posts them. A stage lasts longer than group_wait and group_interval, so every group has
flushed by its end; repeat_interval is long, so the notification log lets nothing through
twice. Within a stage, notifications are compared as sorted sets: the order in which groups
flush is timing, not semantics. The configuration routes with matchers and with the older
`match`, groups by labels and by nothing, uses `continue`, a receiver that does not send
resolved alerts, an inhibition rule and a silence; besides webhooks, a receiver also pages
PagerDuty (Events API v2) and one posts to Slack, each with a templated field, so their
payloads are compared byte for byte too.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ManagedProcess, Server, WebhookSink, free_port
from tests.peer.conftest import LOGS, _require

EXTERNAL_URL = "http://alerts.example"
STAGE_SECONDS = 6.0  # more than group_wait (1s) + group_interval (2s) + posting and sending

CONFIG = """
global:
  resolve_timeout: 5m
templates: ['*.tmpl']
route:
  receiver: default
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['alertname="Watchdog"']
      receiver: watchdog_a
      continue: true
    - matchers: ['alertname="Watchdog"']
      receiver: watchdog_b
    - matchers: ['severity="page"']
      receiver: pager
      group_by: [alertname, cluster]
    - match: {team: db}
      receiver: team_db
      group_by: [alertname]
    - matchers: ['service=~"api|web"']
      receiver: web
      group_by: ['...']
receivers:
  - name: default
    webhook_configs: [{url: '%(sink)s/default'}]
  - name: watchdog_a
    webhook_configs: [{url: '%(sink)s/watchdog_a'}]
    telegram_configs:
      - {api_url: '%(sink)s/tg', bot_token: 'tok:en', chat_id: -1001234}
      - api_url: '%(sink)s/tg2'
        bot_token: 'tok:en'
        chat_id: 42
        parse_mode: ''
        disable_notifications: true
        message: '<b>{{ .Status }}</b> {{ .CommonLabels.alertname }} & {{ "a+b<c>" }}'
  - name: watchdog_b
    webhook_configs: [{url: '%(sink)s/watchdog_b', send_resolved: false}]
  - name: pager
    webhook_configs: [{url: '%(sink)s/pager'}]
    opsgenie_configs:
      - api_key: og-key
        api_url: '%(sink)s/opsgenie/'
        details: {cluster: '{{ .CommonLabels.cluster }}', source: am}
        responders:
          - {name: 'db,{{ .CommonLabels.service }}', type: teams}
          - {username: 'oncall@example.com', type: user}
          - {id: '{{ .CommonLabels.nothing }}', type: '{{ .CommonLabels.nothing }}'}
        tags: ' paging,{{ .CommonLabels.cluster }},, '
        priority: P1
        update_alerts: true
    discord_configs:
      - webhook_url: '%(sink)s/discord-pager'
        title: '{{ .CommonLabels.alertname }} <{{ .Status }}>'
        message: '{{ template "discord.default.message" . }}{{ .Alerts.Firing | len }}'
    webex_configs:
      - api_url: '%(sink)s/webex-pager'
        room_id: room-2
        message: '{{ .GroupLabels.cluster }}: {{ template "webex.default.message" . }}'
        http_config: {authorization: {credentials: bot-token}}
    pagerduty_configs:
      - url: '%(sink)s/pagerduty'
        routing_key: 0123456789abcdef0123456789abcdef
        details: {cluster: '{{ .CommonLabels.cluster }}'}
  - name: team_db
    webhook_configs: [{url: '%(sink)s/team_db', max_alerts: 2}]
    victorops_configs:
      - api_key: vo-key
        api_url: '%(sink)s/vo/'
        routing_key: 'db team {{ .CommonLabels.team }}'
        custom_fields: {runbook: 'http://rb/{{ .GroupLabels.alertname }}'}
      - {api_key: vo-key, api_url: '%(sink)s/vo-info/', routing_key: db, message_type: INFO}
    slack_configs:
      - api_url: '%(sink)s/slack'
        channel: '#db'
        send_resolved: true
        text: '{{ range .Alerts }}{{ .Labels.instance }}: {{ .Annotations.summary }} {{ end }}'
        pretext: '{{ template "db.pretext" . }}'
        fields: [{title: Severity, value: '{{ .CommonLabels.severity }}', short: true}]
        actions:
          - type: button
            text: 'Runbook {{ .CommonLabels.alertname }}'
            url: 'http://rb/{{ .GroupLabels.alertname }}'
            style: primary
            name: dropped  # a link button: Alertmanager drops a message action's fields
          - type: button
            text: Silence
            name: silence
            value: '{{ .CommonLabels.alertname }}'
            # `Yes` is a YAML boolean, and Go's text for a string field; an empty title is left out
            confirm: {text: 'Silence {{ .Alerts | len }}?', title: '{{ "" }}', ok_text: Yes}
  - name: web
    webhook_configs: [{url: '%(sink)s/web'}]
    opsgenie_configs: [{api_key: og-key, api_url: '%(sink)s/og-web/', note: 'see {{ .Status }}'}]
    discord_configs: [{webhook_url: '%(sink)s/discord'}]
    webex_configs:
      - api_url: '%(sink)s/webex'
        room_id: room-1
        http_config: {authorization: {credentials: bot-token}}
inhibit_rules:
  - source_matchers: ['severity="page"']
    target_matchers: ['severity="warn"']
    equal: [cluster]
"""

# a templates: file as Alertmanager users write them: {{define}}, Alertmanager's own named
# templates, and the methods of its data (Go's time methods too)
TEMPLATES = """{{ define "db.pretext" }}{{ template "__subject" . }} | {{ .Alerts.Firing | len }}
firing, {{ .Alerts.Resolved | len }} resolved:{{ range .Alerts.Firing }}
{{ range .Labels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}{{ end }}
others: {{ (.CommonLabels.Remove .GroupLabels.Names).Values | join "," }}
{{ range .Alerts }}since {{ .StartsAt }} | {{ .StartsAt.Format "Mon Jan _2 15:04:05.000 MST 2006 \
-07:00 Z07:00 3PM .999 002" }} | {{ .StartsAt.Unix }} {{ .EndsAt.IsZero }} {{ .StartsAt.UTC.Year }}
{{ end }}{{ end }}
"""


class Alertmanager(ManagedProcess):
    def __init__(self, binary: str, workdir: Path, config: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "alertmanager.log"
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(config)
        (workdir / "db.tmpl").write_text(TEMPLATES)
        self.args = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={EXTERNAL_URL}",
            "--cluster.listen-address=",  # no cluster: no gossip wait before notifying
            "--log.level=debug",
        ]

    def start(self, timeout: float = 30.0) -> Alertmanager:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log)
        self.wait_ready(f"{self.url}/-/ready", timeout)
        return self


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    binary = _require("prometheus-alertmanager")
    am_sink, wk_sink = WebhookSink(), WebhookSink()
    for sink in (am_sink, wk_sink):  # what Telegram's Bot API answers a sent message
        sink.answers["/sendMessage"] = b'{"ok":true,"result":{"message_id":1,"chat":{"id":1}}}'
    workdir = tmp_path_factory.mktemp("alertmanager")
    am = Alertmanager(binary, workdir, CONFIG % {"sink": am_sink.url})
    wk_dir = tmp_path_factory.mktemp("watchkeeper-alerting")
    (wk_dir / "alertmanager.yml").write_text(CONFIG % {"sink": wk_sink.url})
    (wk_dir / "db.tmpl").write_text(TEMPLATES)
    server = Server(
        wk_dir / "data",
        f"alerting:\n  alertmanager_config: alertmanager.yml\n  external_url: {EXTERNAL_URL}\n",
    )
    LOGS["alertmanager"] = am.log_path
    LOGS["watchkeeper"] = server.log_path
    try:
        am.start()
        server.start()
        yield am, server, am_sink, wk_sink
    finally:
        server.stop()
        am.stop()
        am_sink.server.shutdown()
        wk_sink.server.shutdown()


def _time(ms: int) -> str:
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _alert(labels: dict[str, str], starts: int, ends: int) -> dict[str, Any]:
    return {
        "labels": labels,
        "annotations": {"summary": f'{labels["alertname"]} <is> & "bad"'},
        "startsAt": _time(starts),
        "endsAt": _time(ends),
        "generatorURL": "http://prometheus.example/graph?g0.expr=up&g0.tab=1",
    }


A1 = {"alertname": "HighLatency", "service": "api", "severity": "page", "cluster": "eu"}
A2 = {"alertname": "HighLatency", "service": "api", "severity": "warn", "cluster": "eu"}
A3 = {"alertname": "HighLatency", "service": "web", "severity": "warn", "cluster": "us"}
A4 = {"alertname": "DiskFull", "team": "db", "severity": "warn", "instance": "db1", "job": "node"}
A5 = {"alertname": "DiskFull", "team": "db", "severity": "warn", "instance": "db2", "job": "node"}
A6 = {"alertname": "Noise", "severity": "info"}
A7 = {"alertname": "Watchdog"}
A8 = {"alertname": "DiskFull", "team": "db", "severity": "warn", "instance": "db3"}


def test_the_same_alert_stream_gives_the_same_notifications(peers: tuple[Any, ...]) -> None:
    am, server, am_sink, wk_sink = peers
    # alerts start now: one that started more than group_wait ago flushes its new group at
    # once, and Alertmanager inserts a request's alerts one by one, so which of them that
    # first flush holds would be a race
    start = int(time.time() * 1000)
    hour = start + 3_600_000
    silence = {
        "matchers": [{"name": "alertname", "value": "Noise", "isRegex": False, "isEqual": True}],
        "startsAt": _time(start),
        "endsAt": _time(hour),
        "createdBy": "peer test",
        "comment": "muted in both",
    }

    def post(path: str, body: Any) -> None:
        for url in (am.url, server.url):
            response = httpx.post(f"{url}/api/v2/{path}", json=body, timeout=10)
            assert response.status_code == 200, (url, response.text)

    post("silences", silence)
    stages = []
    post("alerts", [_alert(a, start, hour) for a in (A1, A2, A3, A4, A5, A6, A7)])
    time.sleep(STAGE_SECONDS)
    stages.append(("fire", am_sink.take(), wk_sink.take()))

    now = int(time.time() * 1000)
    post("alerts", [_alert(A1, start, now - 500), _alert(A8, now, hour)])
    time.sleep(STAGE_SECONDS)
    stages.append(("resolve the page, add a disk", am_sink.take(), wk_sink.take()))

    now = int(time.time() * 1000)
    post("alerts", [_alert(a, start, now - 500) for a in (A2, A3, A4, A5, A6, A7, A8)])
    time.sleep(STAGE_SECONDS)
    stages.append(("resolve everything", am_sink.take(), wk_sink.take()))

    for name, theirs, ours in stages:
        assert theirs, f"stage {name!r}: Alertmanager sent nothing (see its log)"
        if ours != theirs:
            pytest.fail(f"stage {name!r} differs:\n{_difference(theirs, ours)}")
    sent_to = {path for _, theirs, _ in stages for path, _ in theirs}
    assert {"/discord", "/discord-pager", "/webex", "/webex-pager", "/slack"} <= sent_to
    assert {"/tg/bottok:en/sendMessage", "/tg2/bottok:en/sendMessage"} <= sent_to
    assert {"/vo/vo-key/db%20team%20db", "/vo-info/vo-key/db"} <= sent_to
    assert {p.split("?")[0].rsplit("/", 1)[-1] for p in sent_to if "opsgenie" in p} == {
        "alerts",
        "message",
        "description",
        "close",
    }
    # the Slack pretext printed the alerts' times (so Go's time methods were compared too)
    slack = [body for _, theirs, _ in stages for path, body in theirs if path == "/slack"]
    assert slack and all(b"since " in body and b" +0000 UTC" in body for body in slack)
    # and they agree on the state the API reports afterwards: nothing active, one silence
    for url in (am.url, server.url):
        assert httpx.get(f"{url}/api/v2/alerts", timeout=10).json() == []
        silences = httpx.get(f"{url}/api/v2/silences", timeout=10).json()
        assert [s["status"]["state"] for s in silences] == ["active"]


def _difference(theirs: list[tuple[str, bytes]], ours: list[tuple[str, bytes]]) -> str:
    lines = []
    for label, items in (("Alertmanager", theirs), ("watchkeeper", ours)):
        lines.append(f"--- {label}: {len(items)} notifications")
        for path, body in items:
            parsed = json.loads(body)
            if "alerts" in parsed and "groupKey" in parsed:
                alerts = [(a["status"], a["labels"]) for a in parsed["alerts"]]
                lines.append(f"{path} {parsed['groupKey']} {parsed['status']} {alerts}")
            else:
                lines.append(f"{path} {body[:160]!r}")
    only_theirs = [b for b in theirs if b not in ours]
    only_ours = [b for b in ours if b not in theirs]
    if only_theirs and only_ours:
        lines.append("first differing bodies:")
        lines.append(f"  Alertmanager: {only_theirs[0][1]!r}")
        lines.append(f"  watchkeeper:  {only_ours[0][1]!r}")
    return "\n".join(lines)


def test_amtool_works_against_watchkeeper(peers: tuple[Any, ...]) -> None:
    """Debian's amtool (0.25), a real client of the API v2: alerts, silences, status."""
    amtool = _require("amtool")
    _, server, _, _ = peers

    def run(*args: str) -> str:
        done = subprocess.run(
            [amtool, f"--alertmanager.url={server.url}", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    run("alert", "add", "alertname=FromAmtool", "severity=warn", "--annotation=summary=hi")
    assert "FromAmtool" in run("alert", "query", "alertname=FromAmtool")
    silence_id = run("silence", "add", "alertname=FromAmtool", "-c", "quiet", "-d", "1h")
    silence_id = silence_id.strip()
    assert silence_id in run("silence", "query", "-q")
    assert "FromAmtool" in run("alert", "query", "--silenced", "alertname=FromAmtool")
    run("silence", "expire", silence_id)
    assert silence_id not in run("silence", "query", "-q")
    assert silence_id in run("silence", "query", "--expired", "-q")
    assert "route:" in run("config", "show")


def test_alerts_are_forwarded_to_an_external_alertmanager(
    peers: tuple[Any, ...], tmp_path: Path
) -> None:
    """alerting.forward_to: what watchkeeper receives, the real Alertmanager lists too."""
    am = peers[0]
    server = Server(
        tmp_path / "data", f"alerting:\n  forward_to: ['{am.url}']\n  forward_queue_capacity: 100\n"
    )
    LOGS["watchkeeper (forwarding)"] = server.log_path
    server.start()
    try:
        start = int(time.time() * 1000)
        alert = _alert({"alertname": "Forwarded", "team": "x"}, start, start + 3_600_000)
        assert httpx.post(f"{server.url}/api/v2/alerts", json=[alert]).status_code == 200
        deadline = time.monotonic() + 20
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not found:
            answer = httpx.get(
                f"{am.url}/api/v2/alerts", params={"filter": 'alertname="Forwarded"'}
            )
            found = answer.json()
            time.sleep(0.2)
        (theirs,) = found
        assert theirs["labels"] == alert["labels"]
        assert theirs["annotations"] == alert["annotations"]
        assert theirs["startsAt"] == alert["startsAt"]
    finally:
        server.stop()
